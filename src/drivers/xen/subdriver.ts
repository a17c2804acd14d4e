/**
 * What the unified Xen driver needs from each sub-driver: a Driver (its
 * implemented operations) plus its slot and whether it can change anything.
 */
import type { Driver } from '../driver.ts';
import type { BulkReadOptions, BulkStats } from '../types.ts';

export type XenSlot = 'hypervisor' | 'proxy' | 'xend' | 'libxl' | 'xenstore';

export interface XenSubDriver extends Driver {
  readonly slot: XenSlot;
  /** False for everything opened read-only; the unified driver checks it. */
  readonly canWrite: boolean;
  /** Lists shut-off managed domains too (only Xend knows them). */
  readonly knowsInactive: boolean;
  /** Shut-off managed domains alone (a sub-driver that knowsInactive may offer it, so the running list is not read twice). */
  inactiveDomainStats?(o: BulkReadOptions): Promise<BulkStats>;
}

/** Matches a lookup key (name, uuid or numeric id) against a domain. */
export function matchesKey(key: string, d: { name: string; uuid: string; id: number | null }): boolean {
  if (d.name === key) return true;
  if (d.uuid === key.toLowerCase()) return true;
  return /^\d+$/.test(key) && d.id === Number(key);
}
