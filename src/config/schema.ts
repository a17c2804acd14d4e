import convict from 'convict';
import { FORMATS } from './formats.ts';
import { QEMU } from '../qemud-shared/settings.ts';
import { TELEMETRY } from '../telemetry/settings.ts';
import { ADMIN } from './schema/admin.ts';
import { COLLECT, COLLECTOR, CORE, LOG, WEB } from './schema/core.ts';
import { LIBVIRT } from './schema/libvirt.ts';
import type { SchemaFragment, SettingSpec } from './schema/types.ts';
import { XEN } from './schema/xen.ts';
import type { FlatSettings } from './settings.ts';

/** Every area's settings table, in the order of --help and docs/configuration.md. */
export const AREAS = [CORE, WEB, COLLECTOR, COLLECT, LOG, QEMU, XEN, LIBVIRT, ADMIN, TELEMETRY] as const;

/** Reads every area through its typed reader: VIRT_ERR_CONFIG for the first bad value (e.g. below a minimum). */
export function checkAreas(settings: FlatSettings): void {
  for (const area of AREAS) area.read(settings);
}

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

/** The whole schema: every area's fragment, each leaf given its environment variable. */
export function fullSchema(): SchemaFragment {
  const merged: SchemaFragment = Object.assign({}, ...AREAS.map((a) => a.schema)) as SchemaFragment;
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

let formatsAdded = false;
/** Formats with messages that say what was expected. */
export function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  for (const [name, validate] of Object.entries(FORMATS)) convict.addFormat({ name, validate });
}
