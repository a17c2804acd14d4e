import { QEMU } from '../qemud-shared/settings.ts';
import { TELEMETRY } from '../telemetry/settings.ts';
import { ADMIN } from './schema/admin.ts';
import { COLLECT, COLLECTOR, CORE, WEB } from './schema/core.ts';
import { LOG } from './schema/log.ts';
import { LIBVIRT } from './schema/libvirt.ts';
import type { SchemaFragment } from './schema/types.ts';
import { XEN } from './schema/xen.ts';
import { loadSettings, settingsHelp, type LoadedConfig } from './load.ts';
import { schemaOf } from './spec.ts';

/** Every area's settings table, in the order of --help and docs/configuration.md: the exporter's (and virtctl's) settings. */
export const AREAS = [CORE, WEB, COLLECTOR, COLLECT, LOG, QEMU, XEN, LIBVIRT, ADMIN, TELEMETRY] as const;

/** The exporter's whole schema. */
export function fullSchema(): SchemaFragment {
  return schemaOf(AREAS);
}

/** The exporter's (and virtctl's) settings from flags, environment and config file. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return loadSettings(argv, env, AREAS);
}

/** The exporter's --help text. */
export function helpText(program: string, summary: string): string {
  return settingsHelp(program, summary, AREAS);
}
