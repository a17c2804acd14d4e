/**
 * Small boundary validators that name the offending path and value, used for
 * host files and domain definitions, and the one domain-name and UUID rule
 * that the admin API, virt-qemud and the drivers share. Each returns the
 * typed value or throws VIRT_ERR_XML_ERROR ("a definition is malformed").
 */
import { VirtError, isVirtError } from '../virt/errors.ts';

/** The error of a malformed definition at `path` (e.g. "domains[2].name"). */
export function invalid(path: string, message: string): VirtError {
  return new VirtError('VIRT_ERR_XML_ERROR', `${path}: ${message}`);
}

/** Whether err came from these validators (or is another malformed-definition error). */
export function isInvalid(err: unknown): err is VirtError {
  return isVirtError(err, 'VIRT_ERR_XML_ERROR');
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
    throw invalid(path, `expected an object, got ${describe(value)}`);
  }
  const obj = value as Obj;
  if (allowed !== undefined) {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) throw invalid(`${path}.${key}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
  return obj;
}

export function asArray(value: unknown, path: string, maxItems = 100_000): unknown[] {
  if (!Array.isArray(value)) throw invalid(path, `expected an array, got ${describe(value)}`);
  if (value.length > maxItems) throw invalid(path, `at most ${maxItems} items allowed, got ${value.length}`);
  return value;
}

export function asString(value: unknown, path: string, opts: { pattern?: RegExp; maxLength?: number; what?: string } = {}): string {
  if (typeof value !== 'string') throw invalid(path, `expected a string, got ${describe(value)}`);
  const max = opts.maxLength ?? 4096;
  if (value.length > max) throw invalid(path, `longer than ${max} characters`);
  if (opts.pattern !== undefined && !opts.pattern.test(value)) {
    throw invalid(path, `${describe(value)} is not ${opts.what ?? `of the form ${String(opts.pattern)}`}`);
  }
  return value;
}

export function asNumber(value: unknown, path: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(path, `expected a number, got ${describe(value)}`);
  if (opts.integer === true && !Number.isInteger(value)) throw invalid(path, `expected an integer, got ${value}`);
  if (opts.min !== undefined && value < opts.min) throw invalid(path, `must be at least ${opts.min}, got ${value}`);
  if (opts.max !== undefined && value > opts.max) throw invalid(path, `must be at most ${opts.max}, got ${value}`);
  return value;
}

export function asBoolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw invalid(path, `expected true or false, got ${describe(value)}`);
  return value;
}

export function asEnum<T extends string>(value: unknown, path: string, options: readonly T[]): T {
  if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) {
    throw invalid(path, `expected one of ${options.join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

export function optional<T>(obj: Obj, key: string, path: string, read: (v: unknown, p: string) => T): T | undefined {
  const v = obj[key];
  return v === undefined ? undefined : read(v, `${path}.${key}`);
}

/** A UUID in 8-4-4-4-12 hexadecimal form, either case (store it lower-cased). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * A domain name: a letter or digit, then letters, digits, "_", ".", "+" or
 * "-", at most 64 in all. Safe as a file name, a URL path segment and a QEMU
 * -name; the admin API and virt-qemud check it alike.
 */
export const DOMAIN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;
/** DOMAIN_NAME_PATTERN in words, for error messages. */
export const DOMAIN_NAME_RULE = 'a domain name (letters, digits, _ . + -, starting with a letter or digit, at most 64)';

export function isDomainName(s: string): boolean {
  return DOMAIN_NAME_PATTERN.test(s);
}

export function isUuid(s: string): boolean {
  return UUID_PATTERN.test(s);
}
