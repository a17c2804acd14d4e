/**
 * The Xend sub-driver: every state change (when opened writable), plus
 * reads: node info, running and managed domains, domain details.
 */
import { VirtError, isVirtError, toVirtError } from '../../virt/errors.ts';
import type { BulkReadOptions, BulkStats, DomainInfo, DomainRef, DomainStats, ReadError, ShutdownOptions } from '../types.ts';
import type { Reconnecting } from './reconnecting.ts';
import { checkState, type LifecycleOp } from './state-rules.ts';
import { definitionToConfig } from './xend-config.ts';
import type { XendDomain } from './xend-domain.ts';
import { parseXendDomain } from './xend-domain.ts';
import { isList, parseSexpr, serializeSexpr } from './sexpr.ts';
import type { XendClient } from './xend.ts';
import type { XenSubDriver } from './subdriver.ts';

const DRIVER = 'xen/xend';

export function xendDomainInfo(d: XendDomain): DomainInfo {
  const off = isOff(d);
  return {
    name: d.name,
    uuid: d.uuid,
    id: d.domid,
    state: d.state,
    // Xend prints shutdown_reason for every domain; it means something only once stopped.
    ...(d.shutdownReason !== undefined && (d.state === 'shutoff' || d.state === 'shutdown' || d.state === 'crashed') && d.domid !== null ? { stateReason: d.shutdownReason } : {}),
    maxMemoryBytes: d.maxMemoryBytes,
    memoryBytes: off ? 0 : d.memoryBytes,
    vcpus: d.onlineVcpus ?? d.vcpus,
    cpuTimeSeconds: d.cpuTimeSeconds,
    osType: d.osType,
    autostart: d.autostart,
  };
}

const ref = (d: XendDomain): DomainRef => ({ name: d.name, uuid: d.uuid, id: d.domid });

/** Xend's inactive (halted, or `---s--` shut off) domains hold no memory, whatever the reply says. */
function isOff(d: XendDomain): boolean {
  return d.domid === null || d.state === 'shutoff';
}

function domainStats(d: XendDomain): DomainStats {
  const info = xendDomainInfo(d);
  // Xend knows no per-device counters: block and net stay absent, not zero.
  return { info, memory: { maximumBytes: info.maxMemoryBytes, currentBytes: info.memoryBytes } };
}

export interface XendSubDriverOptions {
  conn: Reconnecting<XendClient>;
  writable: boolean;
  /** Grace period of a forced shutdown before destroy, in ms. */
  graceMs: number;
}

/** The Xend sub-driver plus the read the unified driver uses for shut-off managed domains alone. */
export interface XendSubDriver extends XenSubDriver {
  /** Inactive managed domains only (never the running list again), each failure costing only itself. */
  inactiveDomainStats(o: BulkReadOptions): Promise<BulkStats>;
}

export function createXendSubDriver(opts: XendSubDriverOptions): XendSubDriver {
  const { conn } = opts;

  /** All running domains in one GET (detail=1 on the directory), each turned into a XendDomain as it is parsed. */
  const running = async (signal?: AbortSignal): Promise<XendDomain[]> => (await conn.get()).getEach('/xend/domain?detail=1', parseXendDomain, { signal });

  /**
   * Inactive managed domains as real Xend serves them: it ignores state= when
   * detail=1 is given (and answers the running list), so the halted names come
   * first and each domain's details in a request of its own, all at once. A
   * domain whose read fails is left out with an error; one that vanished in
   * between is simply gone.
   */
  const halted = async (signal?: AbortSignal): Promise<{ domains: XendDomain[]; errors: ReadError[] }> => {
    const client = await conn.get();
    if (client.configFormat < 3) return { domains: [], errors: [] };
    const names = await client.domainNames({ halted: true, signal });
    const errors: ReadError[] = [];
    const found = await Promise.all(
      names.map(async (name) => {
        try {
          const d = await client.domain(name, { signal });
          return d.domid === null ? d : undefined;
        } catch (err) {
          const e = toVirtError(err);
          if (e.code !== 'VIRT_ERR_NO_DOMAIN') errors.push({ domain: name, code: e.code, message: `inactive domain ${name} from Xend: ${e.message}` });
          return undefined;
        }
      }),
    );
    return { domains: found.filter((d): d is XendDomain => d !== undefined), errors };
  };

  const inactiveDomainStats = async (o: BulkReadOptions): Promise<BulkStats> => {
    const h = await halted(o.signal);
    return { domains: h.domains.map(domainStats), errors: h.errors };
  };

  const sub: XendSubDriver = {
    name: DRIVER,
    slot: 'xend',
    canWrite: opts.writable,
    knowsInactive: true,
    inactiveDomainStats,
    version: async (o) => (await (await conn.get()).node(o)).hypervisorVersion,
    hostInfo: async (o) => (await conn.get()).node(o),
    listDomains: async (o) => {
      const active = o?.active ?? true;
      const inactive = o?.inactive ?? false;
      const [a, h] = await Promise.all([active ? running(o?.signal) : [], inactive ? halted(o?.signal) : { domains: [], errors: [] }]);
      return [...a, ...h.domains].map(ref);
    },
    lookupDomain: async (key, o) => ref(await (await conn.get()).domain(key, o)),
    domainInfo: async (key, o) => xendDomainInfo(await (await conn.get()).domain(key, o)),
    domainDefinition: async (key, o) => ({ format: 'xend-sexpr', sexpr: serializeSexpr(await (await conn.get()).get(`/xend/domain/${encodeURIComponent(key)}?detail=1`, { ...o, domain: key })) }),
    allDomainStats: async (o): Promise<BulkStats> => {
      // The running list and the halted list are independent: a failing halted read costs only the inactive domains.
      const [a, h] = await Promise.all([
        running(o.signal),
        o.inactive === true ? inactiveDomainStats(o).catch((err: unknown): BulkStats => ({ domains: [], errors: [{ group: 'state', code: toVirtError(err).code, message: `inactive domains from Xend: ${toVirtError(err).message}` }] })) : undefined,
      ]);
      const domains = a.map(domainStats);
      return { domains: h === undefined ? domains : [...domains, ...h.domains], errors: h?.errors ?? [] };
    },
    close: () => conn.close(),
  };

  if (!opts.writable) return sub;

  const waitGone = async (key: string, ms: number): Promise<boolean> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      try {
        const d = await (await conn.get()).domain(key);
        if (isOff(d)) return true;
      } catch (err) {
        if (isVirtError(err, 'VIRT_ERR_NO_DOMAIN')) return true;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  };

  /** Reads the domain, refuses a wrong-state op before anything is posted, then runs it by the domain's name. */
  const guarded = async (op: LifecycleOp, key: string, run: (client: XendClient, name: string) => Promise<void>): Promise<void> => {
    const client = await conn.get();
    const d = await client.domain(key);
    checkState(op, { name: d.name, id: d.domid, state: d.state }, DRIVER);
    await run(client, d.name);
  };

  Object.assign(sub, {
    define: async (definition: unknown): Promise<DomainRef> => {
      const client = await conn.get();
      const config = definitionToConfig(definition);
      const name = isList(config) ? config.find((x): x is string[] => isList(x) && x[0] === 'name')?.[1] : undefined;
      await client.define(config);
      return ref(await client.domain(typeof name === 'string' ? name : ''));
    },
    undefine: (key: string) => guarded('undefine', key, (c, n) => c.delete(n)),
    start: (key: string) => guarded('start', key, (c, n) => c.start(n)),
    // A forced shutdown may also finish off a domain that is already shutting down.
    shutdown: (key: string, so?: ShutdownOptions) =>
      guarded(so?.force === true ? 'destroy' : 'shutdown', key, async (c, n) => {
        await c.shutdown(n, 'poweroff');
        if (so?.force === true && !(await waitGone(n, opts.graceMs))) await c.destroy(n);
      }),
    reboot: (key: string) => guarded('reboot', key, (c, n) => c.shutdown(n, 'reboot')),
    destroy: (key: string) => guarded('destroy', key, (c, n) => c.destroy(n)),
    suspend: (key: string) => guarded('suspend', key, (c, n) => c.pause(n)),
    resume: (key: string) => guarded('resume', key, (c, n) => c.unpause(n)),
    save: (key: string, file: string) => {
      if (!file.startsWith('/') || file.includes('\0')) throw new VirtError('VIRT_ERR_INVALID_ARG', `save file must be an absolute path, got ${JSON.stringify(file)}`, { driver: DRIVER, domain: key });
      return guarded('save', key, (c, n) => c.save(n, file));
    },
    restore: async (file: string): Promise<DomainRef> => {
      if (!file.startsWith('/') || file.includes('\0')) throw new VirtError('VIRT_ERR_INVALID_ARG', `restore file must be an absolute path, got ${JSON.stringify(file)}`, { driver: DRIVER });
      const text = await (await conn.get()).restore(file);
      try {
        return ref(parseXendDomain(parseSexpr(text)));
      } catch {
        throw new VirtError('VIRT_ERR_RPC', `Xend restored ${file} but did not say which domain`, { driver: DRIVER });
      }
    },
  });
  return sub;
}
