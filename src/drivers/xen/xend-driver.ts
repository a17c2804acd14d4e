/**
 * The Xend sub-driver: every state change (when opened writable), plus
 * reads: node info, running and managed domains, domain details.
 */
import { VirtError, isVirtError } from '../../virt/errors.ts';
import type { BulkStats, DomainInfo, DomainRef, DomainStats, ShutdownOptions } from '../types.ts';
import { definitionToConfig } from './xend-config.ts';
import type { XendDomain } from './xend-domain.ts';
import { parseXendDomain } from './xend-domain.ts';
import { isList, parseSexpr, serializeSexpr } from './sexpr.ts';
import type { XendClient } from './xend.ts';
import type { XenSubDriver } from './subdriver.ts';

const DRIVER = 'xen/xend';

export function xendDomainInfo(d: XendDomain): DomainInfo {
  return {
    name: d.name,
    uuid: d.uuid,
    id: d.domid,
    state: d.state,
    // Xend prints shutdown_reason for every domain; it means something only once stopped.
    ...(d.shutdownReason !== undefined && (d.state === 'shutoff' || d.state === 'shutdown' || d.state === 'crashed') && d.domid !== null ? { stateReason: d.shutdownReason } : {}),
    maxMemoryBytes: d.maxMemoryBytes,
    memoryBytes: d.memoryBytes,
    vcpus: d.onlineVcpus ?? d.vcpus,
    cpuTimeSeconds: d.cpuTimeSeconds,
    osType: d.osType,
    autostart: d.autostart,
  };
}

const ref = (d: XendDomain): DomainRef => ({ name: d.name, uuid: d.uuid, id: d.domid });

export interface XendSubDriverOptions {
  client: XendClient;
  writable: boolean;
  /** Grace period of a forced shutdown before destroy, in ms. */
  graceMs: number;
}

export function createXendSubDriver(opts: XendSubDriverOptions): XenSubDriver {
  const { client } = opts;

  /** All running domains in one GET (detail=1 on the directory), managed ones in one more. */
  const allDomains = async (inactive: boolean, signal?: AbortSignal): Promise<XendDomain[]> => {
    const parseList = (sx: unknown): XendDomain[] => {
      if (!Array.isArray(sx)) throw new VirtError('VIRT_ERR_RPC', 'unexpected Xend reply: domain list is not a list', { driver: DRIVER });
      return (sx as unknown[]).map((x) => parseXendDomain(x as string));
    };
    const out = parseList(await client.get('/xend/domain?detail=1', { signal }));
    if (inactive && client.configFormat >= 3) out.push(...parseList(await client.get('/xend/domain?state=halted&detail=1', { signal })));
    return out;
  };

  const sub: XenSubDriver = {
    name: DRIVER,
    slot: 'xend',
    canWrite: opts.writable,
    knowsInactive: true,
    version: async (o) => (await client.node(o)).hypervisorVersion,
    hostInfo: (o) => client.node(o),
    listDomains: async (o) => {
      const active = o?.active ?? true;
      const inactive = o?.inactive ?? false;
      const out: DomainRef[] = [];
      if (active) out.push(...(await allDomains(false, o?.signal)).map(ref));
      if (inactive && client.configFormat >= 3) {
        for (const name of await client.domainNames({ halted: true, signal: o?.signal })) out.push(ref(await client.domain(name, o)));
      }
      return out;
    },
    lookupDomain: async (key, o) => ref(await client.domain(key, o)),
    domainInfo: async (key, o) => xendDomainInfo(await client.domain(key, o)),
    domainDefinition: async (key, o) => ({ format: 'xend-sexpr', sexpr: serializeSexpr(await client.get(`/xend/domain/${encodeURIComponent(key)}?detail=1`, { ...o, domain: key })) }),
    allDomainStats: async (o): Promise<BulkStats> => {
      // Xend knows no per-device counters: block and net stay absent, not zero.
      const domains: DomainStats[] = (await allDomains(o.inactive === true, o.signal)).map((d) => ({
        info: xendDomainInfo(d),
        memory: { maximumBytes: d.maxMemoryBytes, currentBytes: d.memoryBytes },
      }));
      return { domains, errors: [] };
    },
    close: () => client.close(),
  };

  if (!opts.writable) return sub;

  const waitGone = async (key: string, ms: number): Promise<boolean> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      try {
        const d = await client.domain(key);
        if (d.domid === null || d.state === 'shutoff') return true;
      } catch (err) {
        if (isVirtError(err, 'VIRT_ERR_NO_DOMAIN')) return true;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  };

  Object.assign(sub, {
    define: async (definition: unknown): Promise<DomainRef> => {
      const config = definitionToConfig(definition);
      const name = isList(config) ? config.find((x): x is string[] => isList(x) && x[0] === 'name')?.[1] : undefined;
      await client.define(config);
      return ref(await client.domain(typeof name === 'string' ? name : ''));
    },
    undefine: (key: string) => client.delete(key),
    start: (key: string) => client.start(key),
    shutdown: async (key: string, so?: ShutdownOptions) => {
      await client.shutdown(key, 'poweroff');
      if (so?.force === true && !(await waitGone(key, opts.graceMs))) await client.destroy(key);
    },
    reboot: (key: string) => client.shutdown(key, 'reboot'),
    destroy: (key: string) => client.destroy(key),
    suspend: (key: string) => client.pause(key),
    resume: (key: string) => client.unpause(key),
    save: (key: string, file: string) => {
      if (!file.startsWith('/') || file.includes('\0')) throw new VirtError('VIRT_ERR_INVALID_ARG', `save file must be an absolute path, got ${JSON.stringify(file)}`, { driver: DRIVER, domain: key });
      return client.save(key, file);
    },
    restore: async (file: string): Promise<DomainRef> => {
      if (!file.startsWith('/') || file.includes('\0')) throw new VirtError('VIRT_ERR_INVALID_ARG', `restore file must be an absolute path, got ${JSON.stringify(file)}`, { driver: DRIVER });
      const text = await client.restore(file);
      try {
        return ref(parseXendDomain(parseSexpr(text)));
      } catch {
        throw new VirtError('VIRT_ERR_RPC', `Xend restored ${file} but did not say which domain`, { driver: DRIVER });
      }
    },
  });
  return sub;
}
