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
  /**
   * Deadline of the shut-off managed domains' part of a bulk read, in ms
   * (default 2000): when it is missed the bulk read still returns the running
   * domains, with an error for the rest. Keep it below the collection deadline.
   */
  inactiveTimeoutMs?: number;
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
    const passed: Array<{ sub: XenSubDriver; e: VirtError }> = [];
    for (const s of candidates) {
      try {
        return await (s[op] as Fn).apply(s, args);
      } catch (err) {
        const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
        if (!passOn.has(e.code)) throw e;
        logger.debug('xen sub-driver passed on', { op, sub: s.slot, code: e.code, err: e.message });
        passed.push({ sub: s, e });
      }
    }
    // A real "no such domain" outranks "backend unreachable", unless the
    // unreachable backend is the one that knows shut-off domains: then the
    // domain may well exist, and the answer says what is missing.
    const noDomain = passed.find((p) => p.e.code === 'VIRT_ERR_NO_DOMAIN');
    const blindInactive = passed.find((p) => p.sub.knowsInactive && p.e.code === 'VIRT_ERR_NO_CONNECT');
    if (noDomain !== undefined && (blindInactive === undefined || passed.some((p) => p.sub.knowsInactive && p.e.code === 'VIRT_ERR_NO_DOMAIN'))) throw noDomain.e;
    const unreachable = passed.filter((p) => p.e.code === 'VIRT_ERR_NO_CONNECT');
    if (unreachable.length > 0) {
      const what = passed.map((p) => `${p.sub.slot}: ${p.e.message}`).join('; ');
      throw new VirtError('VIRT_ERR_NO_CONNECT', `${op}: no open Xen sub-driver could answer (${what})`, { driver: 'xen', cause: unreachable[0]?.e });
    }
    throw (passed[0] as { e: VirtError }).e;
  }

  const inactiveSource = (): XenSubDriver | undefined => subs.find((s) => s.knowsInactive && typeof s.listDomains === 'function');
  const inactiveTimeoutMs = opts.inactiveTimeoutMs ?? 2000;

  /** Shut-off managed domains alone, within their own deadline; a failure becomes an error, never the scrape's. */
  const inactivePart = async (src: XenSubDriver, o: BulkReadOptions): Promise<BulkStats> => {
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(o.signal?.reason);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `shut-off managed domains from ${src.slot} not read within ${inactiveTimeoutMs} ms`, { driver: 'xen' });
        ac.abort(e);
        reject(e);
      }, inactiveTimeoutMs);
    });
    try {
      const read = src.inactiveDomainStats !== undefined
        ? src.inactiveDomainStats({ ...o, inactive: true, signal: ac.signal })
        : (src.allDomainStats as NonNullable<typeof src.allDomainStats>)({ ...o, inactive: true, signal: ac.signal }).then((b) => ({ domains: b.domains.filter((d) => d.info.id === null), errors: b.errors }));
      return await Promise.race([read, deadline]);
    } catch (err) {
      const e = toVirtError(err);
      logger.debug('inactive domains not read', { sub: src.slot, code: e.code, err: e.message });
      return { domains: [], errors: [{ group: 'state', code: e.code, message: `shut-off managed domains from ${src.slot}: ${e.message}` }] };
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    }
  };

  const driver: Driver & { subDrivers: readonly XenSubDriver[] } = {
    name: 'xen',
    subDrivers: subs,
    version: (o) => dispatch('version', [o]) as Promise<string>,
    hostInfo: (o) => dispatch('hostInfo', [o]) as ReturnType<NonNullable<DriverOperations['hostInfo']>>,
    lookupDomain: (k, o) => dispatch('lookupDomain', [k, o]) as Promise<DomainRef>,
    domainInfo: (k, o) => dispatch('domainInfo', [k, o]) as ReturnType<NonNullable<DriverOperations['domainInfo']>>,
    domainDefinition: (k, o) => dispatch('domainDefinition', [k, o]),

    // Running domains from the first source; shut-off managed ones from the toolstack that keeps them.
    listDomains: async (o?: ListOptions): Promise<DomainRef[]> => {
      const src = inactiveSource();
      const [active, inactive] = await Promise.all([
        (o?.active ?? true) ? (dispatch('listDomains', [{ ...o, active: true, inactive: false }]) as Promise<DomainRef[]>) : [],
        (o?.inactive ?? true) && src?.listDomains !== undefined
          ? src.listDomains({ signal: o?.signal, active: false, inactive: true }).catch((err: unknown) => {
            // No toolstack reachable (no Xend on Xen >= 4.5): the running domains are still the answer.
            const e = toVirtError(err);
            if (!PASS_ON.has(e.code)) throw e;
            logger.debug('inactive domains not listed', { sub: src.slot, code: e.code, err: e.message });
            return [];
          })
          : [],
      ]);
      const seen = new Set(active.map((d) => d.uuid));
      return [...active, ...inactive.filter((d) => !seen.has(d.uuid))];
    },

    allDomainStats: async (o: BulkReadOptions): Promise<BulkStats> => {
      const src = inactiveSource();
      const wantInactive = o.inactive === true && src !== undefined;
      // The two parts are independent: read them at once, and let the inactive one cost only itself.
      const [bulk, more] = await Promise.all([
        dispatch('allDomainStats', [{ ...o, inactive: false }]) as Promise<BulkStats>,
        wantInactive ? inactivePart(src, o) : undefined,
      ]);
      if (more !== undefined) {
        const seen = new Set(bulk.domains.map((d) => d.info.uuid));
        for (const d of more.domains) if (d.info.id === null && !seen.has(d.info.uuid)) bulk.domains.push(d);
        bulk.errors.push(...more.errors);
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
    restore: (f, ro) => dispatch('restore', ro === undefined ? [f] : [f, ro]) as Promise<DomainRef>,

    close: async () => {
      const results = await Promise.allSettled(subs.map((s) => s.close?.() ?? Promise.resolve()));
      for (const r of results) if (r.status === 'rejected') logger.debug('xen sub-driver close failed', { err: r.reason as unknown });
    },
  };
  return driver;
}

