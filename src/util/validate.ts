/**
 * Small boundary validators that name the offending path and value, used for
 * host files, domain definitions and request bodies. Each returns the typed
 * value or throws a ValidationError; callers wrap it in their VirtError code.
 */
export class ValidationError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'ValidationError';
    this.path = path;
  }
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 60) + '...' : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object' || typeof value === 'function') return 'an object';
  return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : typeof value;
}

export type Obj = Record<string, unknown>;

export function asObject(value: unknown, path: string, allowed?: readonly string[]): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(path, `expected an object, got ${describe(value)}`);
  }
  const obj = value as Obj;
  if (allowed !== undefined) {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) throw new ValidationError(`${path}.${key}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
  return obj;
}

export function asArray(value: unknown, path: string, maxItems = 100_000): unknown[] {
  if (!Array.isArray(value)) throw new ValidationError(path, `expected an array, got ${describe(value)}`);
  if (value.length > maxItems) throw new ValidationError(path, `at most ${maxItems} items allowed, got ${value.length}`);
  return value;
}

export function asString(value: unknown, path: string, opts: { pattern?: RegExp; maxLength?: number; what?: string } = {}): string {
  if (typeof value !== 'string') throw new ValidationError(path, `expected a string, got ${describe(value)}`);
  const max = opts.maxLength ?? 4096;
  if (value.length > max) throw new ValidationError(path, `longer than ${max} characters`);
  if (opts.pattern !== undefined && !opts.pattern.test(value)) {
    throw new ValidationError(path, `${describe(value)} is not ${opts.what ?? `of the form ${String(opts.pattern)}`}`);
  }
  return value;
}

export function asNumber(value: unknown, path: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ValidationError(path, `expected a number, got ${describe(value)}`);
  if (opts.integer === true && !Number.isInteger(value)) throw new ValidationError(path, `expected an integer, got ${value}`);
  if (opts.min !== undefined && value < opts.min) throw new ValidationError(path, `must be at least ${opts.min}, got ${value}`);
  if (opts.max !== undefined && value > opts.max) throw new ValidationError(path, `must be at most ${opts.max}, got ${value}`);
  return value;
}

export function asBoolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw new ValidationError(path, `expected true or false, got ${describe(value)}`);
  return value;
}

export function asEnum<T extends string>(value: unknown, path: string, options: readonly T[]): T {
  if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) {
    throw new ValidationError(path, `expected one of ${options.join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

export function optional<T>(obj: Obj, key: string, path: string, read: (v: unknown, p: string) => T): T | undefined {
  const v = obj[key];
  return v === undefined ? undefined : read(v, `${path}.${key}`);
}

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const DOMAIN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
