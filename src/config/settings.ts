/**
 * One settings mechanism for every area: a table of settings (default, doc,
 * format) gives both the convict schema fragment (flags, environment
 * variables, config-file keys, --help, docs/configuration.md) and a typed,
 * validated reader of the flattened settings a driver or server receives
 * (settings['AREA.KEY']), which applies the same default when a key is
 * absent. No area keeps defaults or readers of its own.
 *
 * Formats are convict's: 'nat' (also the default for numbers), Boolean,
 * String, a list of allowed values, a named format of config/formats.ts, or
 * a function that throws on a bad value.
 */
import { VirtError } from '../virt/errors.ts';
import { FORMATS } from './formats.ts';
import type { SchemaFragment, SettingSpec } from './schema/types.ts';

export type SettingScalar = string | number | boolean;
export type FlatSettings = Readonly<Record<string, SettingScalar | undefined>>;

export interface SettingDef {
  readonly doc: string;
  readonly default: SettingScalar;
  /** Convict format; absent: 'nat' for a number default, Boolean, else String. */
  readonly format?: unknown;
  /** Smallest number the reader accepts (the schema stays 'nat'). */
  readonly min?: number;
  readonly sensitive?: boolean;
  readonly repeatable?: boolean;
  readonly hidden?: boolean;
  /** Overrides the derived environment variable name. */
  readonly env?: string;
}

type Widen<T> = T extends number ? number : T extends boolean ? boolean : string;
/** The type a setting reads as: one of its allowed values, else its default's type. */
export type ValueOf<D extends SettingDef> = D extends { readonly format: readonly (infer E extends string)[] } ? E : Widen<D['default']>;
export type Values<T extends Record<string, SettingDef>> = { readonly [K in keyof T]: ValueOf<T[K]> };

export interface SettingsArea<T extends Record<string, SettingDef>> {
  /** The first part of every key: 'qemu', 'xen', 'admin', 'web', ... */
  readonly area: string;
  readonly table: T;
  /** The convict fragment: { AREA: { KEY: spec } }, dotted keys nested. */
  readonly schema: SchemaFragment;
  /** One setting, validated, its default when absent; VIRT_ERR_CONFIG naming key and value when bad. */
  get<K extends keyof T & string>(settings: FlatSettings, key: K): ValueOf<T[K]>;
  /** Every setting of the area. */
  read(settings: FlatSettings): Values<T>;
}

export function formatOf(def: SettingDef): unknown {
  if (def.format !== undefined) return def.format;
  return typeof def.default === 'number' ? 'nat' : typeof def.default === 'boolean' ? Boolean : String;
}

function bad(key: string, value: unknown, why: string): VirtError {
  return new VirtError('VIRT_ERR_CONFIG', `setting ${key} ${JSON.stringify(value)}: ${why}`);
}

/** A value as convict would have it after loading, checked against the setting's format. */
export function checkSetting(key: string, def: SettingDef, value: SettingScalar): SettingScalar {
  const format = formatOf(def);
  if (format === 'nat' || format === 'int' || format === Number) {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
    if (!Number.isFinite(n) || (format !== Number && !Number.isInteger(n)) || (format === 'nat' && n < 0)) throw bad(key, value, format === 'nat' ? 'must be a whole number >= 0' : 'must be a number');
    if (def.min !== undefined && n < def.min) throw bad(key, value, `must be at least ${def.min}`);
    return n;
  }
  if (format === Boolean) {
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    throw bad(key, value, 'must be true or false');
  }
  if (typeof value !== 'string') throw bad(key, value, 'must be a string');
  if (Array.isArray(format)) {
    if (!(format as unknown[]).includes(value)) throw bad(key, value, `must be one of ${format.map((f) => JSON.stringify(f)).join(', ')}`);
    return value;
  }
  if (typeof format === 'function' && format !== String) {
    // A format function of the area's own (telemetry's parsers) names key and value itself.
    (format as (v: unknown) => void)(value);
  } else if (typeof format === 'string') {
    try {
      FORMATS[format]?.(value);
    } catch (err) {
      throw bad(key, value, (err as Error).message);
    }
  }
  return value;
}

function nest(entries: Array<[string, SettingSpec]>): SchemaFragment {
  const out: SchemaFragment = {};
  for (const [key, spec] of entries) {
    const parts = key.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as SchemaFragment;
    node[parts[parts.length - 1] as string] = spec;
  }
  return out;
}

/** Defines an area's settings: the schema fragment and the typed reader come from this one table. */
export function settingsArea<const T extends Record<string, SettingDef>>(area: string, table: T): SettingsArea<T> {
  const keys = Object.keys(table) as Array<keyof T & string>;
  const specs = keys.map((k): [string, SettingSpec] => {
    const d = table[k] as SettingDef;
    const spec: SettingSpec = { doc: d.doc, format: formatOf(d), default: d.default };
    if (d.env !== undefined) spec.env = d.env;
    if (d.hidden !== undefined) spec.hidden = d.hidden;
    if (d.sensitive !== undefined) spec.sensitive = d.sensitive;
    if (d.repeatable !== undefined) spec.repeatable = d.repeatable;
    return [k, spec];
  });
  const get = <K extends keyof T & string>(settings: FlatSettings, key: K): ValueOf<T[K]> => {
    const def = table[key] as SettingDef;
    const full = area === '' ? key : `${area}.${key}`;
    const v = settings[full];
    return (v === undefined || v === null ? def.default : checkSetting(full, def, v)) as ValueOf<T[K]>;
  };
  return {
    area,
    table,
    schema: area === '' ? nest(specs) : { [area]: nest(specs) },
    get,
    read: (settings) => Object.fromEntries(keys.map((k) => [k, get(settings, k)])) as Values<T>,
  };
}
