/**
 * The hypervisor and proxy sub-drivers: domain info straight from Xen
 * (getdomaininfolist) through virt-proxy, over --stdio (root) or its socket
 * (non-root). Read-only by construction. Xen knows ids, UUIDs, flags and
 * counters but not names: those come from `identify` (XenStore, else Xend).
 */
import { arch, hostname } from 'node:os';
import { VirtError } from '../../virt/errors.ts';
import type { BlockReading, BulkReadOptions, BulkStats, DomainInfo, DomainStats, HostInfo, NetReading, ReadError, ReadOptions, VcpuReading } from '../types.ts';
import type { VirtProxyClient } from './proxy-client.ts';
import { xenFlagsToState } from './state.ts';
import { XEN_DOMINF, type XenDomainReading, type XenHostReading } from './types.ts';
import { matchesKey, type XenSubDriver } from './subdriver.ts';
import type { Reconnecting } from './reconnecting.ts';

export interface DomainIdentity {
  name: string;
  memoryTargetBytes?: number;
  /** vbd devid -> disk name. */
  vbdNames?: Map<number, string>;
  /** vbd devid -> backing path. */
  vbdPaths?: Map<number, string>;
  /** vif devid -> MAC. */
  vifMacs?: Map<number, string>;
}

export type Identify = (readings: XenDomainReading[], signal?: AbortSignal) => Promise<{ ids: Map<number, DomainIdentity>; errors: ReadError[] }>;

/** The subset of VirtProxyClient this sub-driver uses (tests may pass a double). */
export type ProxyReader = Pick<VirtProxyClient, 'version' | 'hostInfo' | 'listDomains' | 'close' | 'closed'>;

export function fallbackName(domid: number): string {
  return domid === 0 ? 'Domain-0' : `domain-${domid}`;
}

export function hostInfoFromReading(h: XenHostReading): HostInfo {
  return {
    hostname: hostname(),
    model: arch() === 'x64' ? 'x86_64' : arch(),
    cpus: h.cpus,
    mhz: h.mhz,
    nodes: h.nodes,
    sockets: h.sockets,
    cores: h.cores,
    threads: h.threads,
    memoryBytes: h.totalBytes,
    freeMemoryBytes: h.freeBytes,
    hypervisor: 'xen',
    hypervisorVersion: h.xenVersion,
  };
}

export function domainInfoFromReading(r: XenDomainReading, ident: DomainIdentity | undefined): DomainInfo {
  const st = xenFlagsToState(r.flags);
  return {
    name: ident?.name ?? fallbackName(r.domid),
    uuid: r.uuid,
    id: r.domid,
    state: st.state,
    stateReason: st.reason,
    maxMemoryBytes: r.maximumBytes,
    memoryBytes: r.currentBytes,
    vcpus: r.onlineVcpus,
    cpuTimeSeconds: r.cpuTimeSeconds,
    osType: (r.flags & XEN_DOMINF.hvm_guest) !== 0 ? 'hvm' : 'linux',
  };
}

export function domainStatsFromReading(r: XenDomainReading, ident: DomainIdentity | undefined, groups: readonly string[]): DomainStats {
  const out: DomainStats = { info: domainInfoFromReading(r, ident) };
  if (groups.includes('vcpu') && r.vcpus !== undefined) {
    out.vcpus = r.vcpus.map((v): VcpuReading => {
      if (!v.online) return { id: v.id, state: 'offline', timeSeconds: v.timeSeconds };
      return { id: v.id, state: v.running ? 'running' : 'blocked', timeSeconds: v.timeSeconds, cpu: v.cpu };
    });
  }
  if (groups.includes('memory')) {
    out.memory = { maximumBytes: r.maximumBytes, currentBytes: r.currentBytes };
    if (ident?.memoryTargetBytes !== undefined) out.memory.balloonBytes = ident.memoryTargetBytes;
  }
  if (groups.includes('block') && r.vbds !== undefined) {
    out.block = r.vbds.map((v): BlockReading => {
      const b: BlockReading = {
        device: (v.devid !== undefined ? ident?.vbdNames?.get(v.devid) : undefined) ?? v.device,
        readBytes: v.readSectors * 512,
        writeBytes: v.writeSectors * 512,
        readRequests: v.readRequests,
        writeRequests: v.writeRequests,
      };
      if (v.errors !== undefined) b.errors = v.errors;
      const path = v.devid !== undefined ? ident?.vbdPaths?.get(v.devid) : undefined;
      if (path !== undefined) b.path = path;
      return b;
    });
  }
  if (groups.includes('net') && r.vifs !== undefined) {
    out.net = r.vifs.map((v): NetReading => {
      const m = /^vif\d+\.(\d+)$/.exec(v.interface);
      const mac = m === null ? undefined : ident?.vifMacs?.get(Number(m[1]));
      // The proxy client already turned the host's counters into the guest's view.
      const { interface: iface, ...counters } = v;
      return { interface: iface, ...(mac !== undefined ? { mac } : {}), counters };
    });
  }
  return out;
}

export function createHypervisorSubDriver(opts: { slot: 'hypervisor' | 'proxy'; conn: Reconnecting<ProxyReader>; identify: Identify }): XenSubDriver {
  const { conn, identify } = opts;
  const name = `xen/${opts.slot}`;

  const read = async (o: ReadOptions | undefined, devices: boolean): Promise<{ readings: XenDomainReading[]; ids: Map<number, DomainIdentity>; errors: ReadError[] }> => {
    const readings = await (await conn.get()).listDomains({ signal: o?.signal, devices });
    const { ids, errors } = await identify(readings, o?.signal);
    return { readings, ids, errors };
  };

  const find = async (key: string, o?: ReadOptions): Promise<DomainInfo> => {
    const { readings, ids } = await read(o, false);
    for (const r of readings) {
      const info = domainInfoFromReading(r, ids.get(r.domid));
      if (matchesKey(key, info)) return info;
    }
    throw new VirtError('VIRT_ERR_NO_DOMAIN', `no running domain ${JSON.stringify(key)}`, { driver: name, domain: key });
  };

  return {
    name,
    slot: opts.slot,
    canWrite: false,
    knowsInactive: false,
    version: async (o) => (await conn.get()).version(o),
    hostInfo: async (o) => hostInfoFromReading(await (await conn.get()).hostInfo(o)),
    listDomains: async (o) => {
      if (o?.active === false) return [];
      const { readings, ids } = await read(o, false);
      return readings.map((r) => ({ name: ids.get(r.domid)?.name ?? fallbackName(r.domid), uuid: r.uuid, id: r.domid }));
    },
    lookupDomain: async (key, o) => {
      const { name: n, uuid, id } = await find(key, o);
      return { name: n, uuid, id };
    },
    domainInfo: (key, o) => find(key, o),
    allDomainStats: async (o: BulkReadOptions): Promise<BulkStats> => {
      // "devices" asks virt-proxy for the per-domain details: device counters and per-vCPU readings.
      const devices = o.groups.includes('block') || o.groups.includes('net') || o.groups.includes('vcpu');
      const { readings, ids, errors } = await read(o, devices);
      const domains: DomainStats[] = [];
      for (const r of readings) {
        try {
          domains.push(domainStatsFromReading(r, ids.get(r.domid), o.groups));
        } catch (err) {
          errors.push({ domain: String(r.domid), code: err instanceof VirtError ? err.code : 'VIRT_ERR_INTERNAL_ERROR', message: (err as Error).message });
        }
      }
      return { domains, errors };
    },
    close: () => conn.close(),
  };
}
