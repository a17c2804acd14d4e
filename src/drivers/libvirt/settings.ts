/** The libvirt driver's settings, read with the defaults of its schema fragment. */
import { LIBVIRT_DEFAULTS } from '../../config/schema/libvirt.ts';
import { VirtError } from '../../virt/errors.ts';
import type { OpenContext } from '../driver.ts';

type Settings = OpenContext['settings'];
type Key = keyof typeof LIBVIRT_DEFAULTS;

export function num(s: Settings, k: Key): number {
  const v = s[`libvirt.${k}`];
  const d = LIBVIRT_DEFAULTS[k] as number;
  if (v === undefined || v === '') return d;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new VirtError('VIRT_ERR_CONFIG', `setting libvirt.${k} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

export function str(s: Settings, k: Key): string {
  const v = s[`libvirt.${k}`];
  return v === undefined ? (LIBVIRT_DEFAULTS[k] as string) : String(v);
}
