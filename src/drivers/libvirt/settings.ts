/** The libvirt driver's settings, read through the libvirt area's table (src/config/schema/libvirt.ts). */
import { LIBVIRT } from '../../config/schema/libvirt.ts';
import type { OpenContext } from '../driver.ts';

type Settings = OpenContext['settings'];
type Table = typeof LIBVIRT.table;
type NumKey = { [K in keyof Table]: Table[K]['default'] extends number ? K : never }[keyof Table];
type StrKey = Exclude<keyof Table, NumKey>;

/** A number setting: the table's default when absent or empty, VIRT_ERR_CONFIG when not a whole number >= 0. */
export function num(s: Settings, k: NumKey): number {
  return s[`libvirt.${k}`] === '' ? LIBVIRT.table[k].default : LIBVIRT.get(s, k);
}

/** A string setting: the table's default when absent. */
export function str(s: Settings, k: StrKey): string {
  return LIBVIRT.get(s, k);
}
