/**
 * What the unified Xen driver needs from each sub-driver: a Driver (its
 * implemented operations) plus its slot and whether it can change anything.
 */
import type { Driver } from '../driver.ts';
import { VirtError } from '../../virt/errors.ts';

export type XenSlot = 'hypervisor' | 'proxy' | 'xend' | 'xenstore';

export interface XenSubDriver extends Driver {
  readonly slot: XenSlot;
  /** False for everything opened read-only; the unified driver checks it. */
  readonly canWrite: boolean;
  /** Lists shut-off managed domains too (only Xend knows them). */
  readonly knowsInactive: boolean;
}

/** Resolves `p` or rejects when `signal` aborts first (for backends without signal support). */
export function withSignal<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string, driver: string): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what}: aborted by the caller`, { driver }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what}: aborted by the caller`, { driver }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Matches a lookup key (name, uuid or numeric id) against a domain. */
export function matchesKey(key: string, d: { name: string; uuid: string; id: number | null }): boolean {
  if (d.name === key) return true;
  if (d.uuid === key.toLowerCase()) return true;
  return /^\d+$/.test(key) && d.id === Number(key);
}
