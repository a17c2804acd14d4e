/**
 * What every program's settings have in common, whichever areas it serves
 * (the exporter and virtctl all of them, virt-qemud its own): dotted keys,
 * environment names, the convict schema of a list of areas, named formats.
 */
import convict from 'convict';
import { FORMATS } from './formats.ts';
import type { FlatSettings, SettingsArea, SettingDef } from './settings.ts';
import type { SchemaFragment, SettingSpec } from './schema/types.ts';

/** An area whatever its table: what the loader, --help and the docs need of it. */
export type AnyArea = Pick<SettingsArea<Record<string, SettingDef>>, 'schema'> & { read(settings: FlatSettings): unknown };

export const ENV_PREFIX = 'VIRT_EXPORTER_';

export function isSetting(node: SettingSpec | SchemaFragment): node is SettingSpec {
  return typeof node === 'object' && node !== null && 'doc' in node && 'default' in node && 'format' in node;
}

/** Leaves of a schema with their dotted keys, in declaration order. */
export function settingsOf(schema: SchemaFragment, prefix = ''): Array<[string, SettingSpec]> {
  const out: Array<[string, SettingSpec]> = [];
  for (const [k, node] of Object.entries(schema)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (isSetting(node)) out.push([key, node]);
    else out.push(...settingsOf(node, key));
  }
  return out;
}

export function envName(key: string): string {
  return ENV_PREFIX + key.toUpperCase().replace(/[.-]/g, '_');
}

/** The schema of some areas: their fragments merged, each leaf given its environment variable. */
export function schemaOf(areas: readonly AnyArea[]): SchemaFragment {
  const merged: SchemaFragment = Object.assign({}, ...areas.map((a) => a.schema)) as SchemaFragment;
  const withEnv = (node: SchemaFragment, prefix: string): SchemaFragment => {
    const out: SchemaFragment = {};
    for (const [k, child] of Object.entries(node)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      out[k] = isSetting(child) ? { ...child, env: child.env ?? envName(key) } : withEnv(child, key);
    }
    return out;
  };
  return withEnv(merged, '');
}

/** Reads every area through its typed reader: VIRT_ERR_CONFIG for the first bad value (e.g. below a minimum). */
export function checkAreas(settings: FlatSettings, areas: readonly AnyArea[]): void {
  for (const area of areas) area.read(settings);
}

let formatsAdded = false;
/** Formats with messages that say what was expected. */
export function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  for (const [name, validate] of Object.entries(FORMATS)) convict.addFormat({ name, validate });
}
