/**
 * The unified Xen driver (libvirt's xen_unified, protocols.md §1.3): one
 * Driver over the opened sub-drivers, in slot order hypervisor|proxy, xend,
 * xenstore. Each operation goes to the first sub-driver that implements it;
 * a sub-driver that cannot reach its backend, does not support the call or
 * does not know the domain passes it on. State changes only ever go to a
 * sub-driver opened writable.
 */
import { VirtError, toVirtError } from '../../virt/errors.ts';
import type { Logger } from '../../util/logger.ts';
import type { Driver, DriverOperations, OperationName } from '../driver.ts';
import { WRITE_OPERATIONS } from '../driver.ts';
import type { BulkReadOptions, BulkStats, DomainRef, ListOptions } from '../types.ts';
import type { XenSubDriver } from './subdriver.ts';

type Fn = (...args: unknown[]) => Promise<unknown>;

const PASS_ON = new Set(['VIRT_ERR_NO_SUPPORT', 'VIRT_ERR_NO_CONNECT']);
const PASS_ON_LOOKUP = new Set([...PASS_ON, 'VIRT_ERR_NO_DOMAIN']);
const KEYED_READS = new Set<OperationName>(['lookupDomain', 'domainInfo', 'domainDefinition']);

export interface UnifiedOptions {
  logger: Logger;
  /** Why writes are refused when no sub-driver can write (read-only or unprivileged). */
  denyReason: string;
}

export function createUnifiedDriver(subs: XenSubDriver[], opts: UnifiedOptions): Driver & { readonly subDrivers: readonly XenSubDriver[] } {
  const { logger } = opts;

  async function dispatch(op: OperationName, args: unknown[]): Promise<unknown> {
    const write = WRITE_OPERATIONS.has(op);
    const candidates = subs.filter((s) => typeof s[op] === 'function' && (!write || s.canWrite));
    if (candidates.length === 0) {
      if (write && !subs.some((s) => s.canWrite)) throw new VirtError('VIRT_ERR_OPERATION_DENIED', `operation ${op} refused: ${opts.denyReason}`, { driver: 'xen' });
      throw new VirtError('VIRT_ERR_NO_SUPPORT', `operation ${op} is not supported by any open Xen sub-driver (${subs.map((s) => s.slot).join(', ')})`, { driver: 'xen' });
    }
    const passOn = KEYED_READS.has(op) || (write && op !== 'define' && op !== 'restore') ? PASS_ON_LOOKUP : PASS_ON;
    let last: VirtError | undefined;
    for (const s of candidates) {
      try {
        return await (s[op] as Fn).apply(s, args);
      } catch (err) {
        const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
        if (!passOn.has(e.code)) throw e;
        logger.debug('xen sub-driver passed on', { op, sub: s.slot, code: e.code, err: e.message });
        // A real "no such domain" outranks "backend unreachable" in the final answer.
        if (last === undefined || e.code === 'VIRT_ERR_NO_DOMAIN') last = e;
      }
    }
    throw last as VirtError;
  }

  const inactiveSource = (): XenSubDriver | undefined => subs.find((s) => s.knowsInactive && typeof s.listDomains === 'function');

  const driver: Driver & { subDrivers: readonly XenSubDriver[] } = {
    name: 'xen',
    subDrivers: subs,
    version: (o) => dispatch('version', [o]) as Promise<string>,
    hostInfo: (o) => dispatch('hostInfo', [o]) as ReturnType<NonNullable<DriverOperations['hostInfo']>>,
    lookupDomain: (k, o) => dispatch('lookupDomain', [k, o]) as Promise<DomainRef>,
    domainInfo: (k, o) => dispatch('domainInfo', [k, o]) as ReturnType<NonNullable<DriverOperations['domainInfo']>>,
    domainDefinition: (k, o) => dispatch('domainDefinition', [k, o]),

    // Running domains from the first source; shut-off managed ones only Xend knows.
    listDomains: async (o?: ListOptions): Promise<DomainRef[]> => {
      const out: DomainRef[] = [];
      if (o?.active ?? true) out.push(...((await dispatch('listDomains', [{ ...o, active: true, inactive: false }])) as DomainRef[]));
      const src = inactiveSource();
      if ((o?.inactive ?? false) && src?.listDomains !== undefined) {
        out.push(...(await src.listDomains({ signal: o?.signal, active: false, inactive: true })));
      }
      return out;
    },

    allDomainStats: async (o: BulkReadOptions): Promise<BulkStats> => {
      const bulk = (await dispatch('allDomainStats', [{ ...o, inactive: false }])) as BulkStats;
      const src = inactiveSource();
      if (o.inactive === true && src?.allDomainStats !== undefined) {
        try {
          const more = await src.allDomainStats({ ...o, inactive: true });
          const seen = new Set(bulk.domains.map((d) => d.info.uuid));
          for (const d of more.domains) if (d.info.id === null && !seen.has(d.info.uuid)) bulk.domains.push(d);
          bulk.errors.push(...more.errors);
        } catch (err) {
          const e = toVirtError(err);
          bulk.errors.push({ group: 'state', code: e.code, message: `inactive domains from Xend: ${e.message}` });
        }
      }
      return bulk;
    },

    define: (d) => dispatch('define', [d]) as Promise<DomainRef>,
    undefine: (k) => dispatch('undefine', [k]) as Promise<void>,
    start: (k) => dispatch('start', [k]) as Promise<void>,
    shutdown: (k, so) => dispatch('shutdown', [k, so]) as Promise<void>,
    reboot: (k) => dispatch('reboot', [k]) as Promise<void>,
    destroy: (k) => dispatch('destroy', [k]) as Promise<void>,
    suspend: (k) => dispatch('suspend', [k]) as Promise<void>,
    resume: (k) => dispatch('resume', [k]) as Promise<void>,
    save: (k, f) => dispatch('save', [k, f]) as Promise<void>,
    restore: (f) => dispatch('restore', [f]) as Promise<DomainRef>,

    close: async () => {
      const results = await Promise.allSettled(subs.map((s) => s.close?.() ?? Promise.resolve()));
      for (const r of results) if (r.status === 'rejected') logger.debug('xen sub-driver close failed', { err: r.reason as unknown });
    },
  };
  return driver;
}

