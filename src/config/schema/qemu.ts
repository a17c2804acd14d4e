import { QEMU_SETTINGS } from '../../qemud-shared/settings.ts';
import type { SchemaFragment, SettingSpec } from './types.ts';

function spec(key: keyof typeof QEMU_SETTINGS): SettingSpec {
  const s = QEMU_SETTINGS[key];
  const d = s.default as unknown;
  return { doc: s.doc, format: typeof d === 'number' ? 'nat' : typeof d === 'boolean' ? Boolean : String, default: d };
}

/** Settings of the qemu area; keys are reached as settings['qemu.KEY'] by the driver/server. */
export const qemuSchema: SchemaFragment = {
  qemu: Object.fromEntries((Object.keys(QEMU_SETTINGS) as (keyof typeof QEMU_SETTINGS)[]).map((k) => [k, spec(k)])),
};
