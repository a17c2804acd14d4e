import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../../util/deadline.ts';
import { VirtError } from '../../virt/errors.ts';

/**
 * Strict readers for the YAML files that guard the listeners (web config,
 * admin config). Every refusal names the file and the dotted key, and an
 * unknown key is an error: a misspelt security setting must never be
 * silently ignored.
 */
export type Mapping = Record<string, unknown>;

export class ConfigFile {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  error(path: string, message: string, cause?: unknown): VirtError {
    const where = path === '' ? '' : ` key ${JSON.stringify(path)}`;
    return new VirtError('VIRT_ERR_CONFIG', `${this.file}:${where} ${message}`, cause === undefined ? {} : { cause });
  }

  /** A mapping whose keys are all in `allowed` (null/undefined reads as empty). */
  mapping(value: unknown, path: string, allowed: readonly string[] | null): Mapping {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw this.error(path, 'must be a mapping');
    const obj = value as Mapping;
    if (allowed !== null) {
      for (const key of Object.keys(obj)) {
        if (!allowed.includes(key)) {
          throw this.error(join(path, key), `is not a known key${path === '' ? '' : ` of ${path}`}; known keys: ${allowed.join(', ')}`);
        }
      }
    }
    return obj;
  }

  string(obj: Mapping, key: string, path: string): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw this.error(join(path, key), `must be a string, got ${typeof v}`);
    return v;
  }

  requiredString(obj: Mapping, key: string, path: string): string {
    const v = this.string(obj, key, path);
    if (v === undefined || v === '') throw this.error(join(path, key), 'is required');
    return v;
  }

  bool(obj: Mapping, key: string, path: string): boolean | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw this.error(join(path, key), `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  int(obj: Mapping, key: string, path: string, min: number, max: number): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw this.error(join(path, key), `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  number(obj: Mapping, key: string, path: string, min: number, max: number): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw this.error(join(path, key), `must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  stringList(obj: Mapping, key: string, path: string): string[] | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw this.error(join(path, key), 'must be a list of strings');
    return v.map((item, i) => {
      if (typeof item !== 'string') throw this.error(`${join(path, key)}[${i}]`, 'must be a string');
      return item;
    });
  }

  list(obj: Mapping, key: string, path: string): unknown[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.error(join(path, key), 'must be a list');
    return v as unknown[];
  }

  duration(obj: Mapping, key: string, path: string): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw this.error(join(path, key), `must be a duration such as "1s" or "500ms", got ${JSON.stringify(v)}`);
    try {
      return parseDuration(v);
    } catch {
      throw this.error(join(path, key), `is not a duration: ${JSON.stringify(v)} (use e.g. "1s", "500ms", "1m30s")`);
    }
  }
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Reads and parses a YAML file into `unknown`; errors name the file. */
export async function loadYamlFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new VirtError('VIRT_ERR_CONFIG', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return parseYaml(text, { uniqueKeys: true }) as unknown;
  } catch (err) {
    const message = (err as Error).message;
    if (err instanceof RangeError || message.includes('Maximum call stack size exceeded')) {
      throw new VirtError('VIRT_ERR_CONFIG', `${file}: nested too deeply to parse; no key of this file is more than a few levels deep`, { cause: err });
    }
    throw new VirtError('VIRT_ERR_CONFIG', `${file}: not valid YAML: ${message}`, { cause: err });
  }
}
