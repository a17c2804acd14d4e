/**
 * libvirt's typed stats parameters (virDomainStatsRecord) to the driver's
 * typed readings, in base units: ns to s, KiB to bytes; guest balloon figures
 * absent, not zero, when the guest reports none; vCPU delay (steal) where
 * libvirt has it. Pure: no I/O.
 */
import {
  DOMAIN_STATES,
  type BlockReading,
  type DomainInfo,
  type DomainRef,
  type DomainStats,
  type MemoryReading,
  type NetReading,
  type VcpuReading,
} from '../types.ts';
import type { DomainMeta, MetadataRule } from './domxml.ts';
import type { StatsRecord, TypedValue, WireDomain } from './protocol.ts';

export const NS = 1e9;
export const KIB = 1024;
const VCPU_STATE = ['offline', 'running', 'blocked'] as const;

function n(p: Map<string, TypedValue>, k: string): number | undefined {
  const v = p.get(k);
  return typeof v === 'number' ? v : undefined;
}
function s(p: Map<string, TypedValue>, k: string): string | undefined {
  const v = p.get(k);
  return typeof v === 'string' ? v : undefined;
}
const scaled = (v: number | undefined, f: number): number | undefined => (v === undefined ? undefined : v * f);
/** Nanoseconds to seconds (a division keeps 2300000000 ns exactly 2.3 s). */
const secs = (v: number | undefined): number | undefined => (v === undefined ? undefined : v / NS);

export function put<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

export function toRef(d: WireDomain): DomainRef {
  return { name: d.name, uuid: d.uuid, id: d.id < 0 ? null : d.id };
}

/** libvirt's packed version number (major * 1,000,000 + minor * 1,000 + micro) as text. */
export function versionText(v: number): string {
  return `${Math.floor(v / 1e6)}.${Math.floor(v / 1e3) % 1000}.${v % 1000}`;
}

/** A DomainStats out of one stats record, with the domain's cached XML facts. */
export function toDomainStats(rec: StatsRecord, meta: DomainMeta | undefined, groups: ReadonlySet<string>, rules: readonly MetadataRule[] = []): DomainStats {
  const p = rec.params;
  const stateNo = n(p, 'state.state') ?? 0;
  const state = DOMAIN_STATES[stateNo] ?? 'nostate';
  const active = rec.dom.id >= 0;
  const maxMem = scaled(n(p, 'balloon.maximum'), KIB) ?? meta?.maxMemoryBytes ?? 0;
  const curMem = active ? (scaled(n(p, 'balloon.current'), KIB) ?? maxMem) : 0;
  const info: DomainInfo = {
    ...toRef(rec.dom),
    state,
    maxMemoryBytes: maxMem,
    memoryBytes: curMem,
    vcpus: n(p, 'vcpu.current') ?? meta?.vcpus ?? 0,
    cpuTimeSeconds: secs(n(p, 'cpu.time')) ?? 0,
  };
  put(info, 'osType', meta?.osType);
  put(info, 'arch', meta?.arch);
  put(info, 'machine', meta?.machine);
  if (rules.length > 0) info.labels = Object.fromEntries(rules.map((r, i) => [r.label, meta?.labels[i] ?? '']));
  const out: DomainStats = { info };
  if (groups.has('cpu')) {
    const user = secs(n(p, 'cpu.user'));
    const system = secs(n(p, 'cpu.system'));
    if (user !== undefined || system !== undefined) {
      out.cpu = {};
      put(out.cpu, 'userSeconds', user);
      put(out.cpu, 'systemSeconds', system);
    }
  }
  if (groups.has('vcpu') && active) {
    const vcpus: VcpuReading[] = [];
    const max = Math.min(n(p, 'vcpu.maximum') ?? n(p, 'vcpu.current') ?? 0, 16384);
    for (let i = 0; i < max; i++) {
      const st = n(p, `vcpu.${i}.state`);
      if (st === undefined) continue;
      const v: VcpuReading = { id: i, state: VCPU_STATE[st] ?? 'offline' };
      put(v, 'timeSeconds', secs(n(p, `vcpu.${i}.time`)));
      put(v, 'delaySeconds', secs(n(p, `vcpu.${i}.delay`)));
      vcpus.push(v);
    }
    out.vcpus = vcpus;
  }
  if (groups.has('memory')) {
    const m: MemoryReading = { maximumBytes: maxMem, currentBytes: curMem };
    if (active) put(m, 'balloonBytes', scaled(n(p, 'balloon.current'), KIB));
    put(m, 'rssBytes', scaled(n(p, 'balloon.rss'), KIB));
    const guest: NonNullable<MemoryReading['guest']> = {};
    put(guest, 'totalBytes', scaled(n(p, 'balloon.available'), KIB));
    put(guest, 'freeBytes', scaled(n(p, 'balloon.unused'), KIB));
    put(guest, 'availableBytes', scaled(n(p, 'balloon.usable'), KIB));
    put(guest, 'diskCachesBytes', scaled(n(p, 'balloon.disk_caches'), KIB));
    put(guest, 'swapInBytes', scaled(n(p, 'balloon.swap_in'), KIB));
    put(guest, 'swapOutBytes', scaled(n(p, 'balloon.swap_out'), KIB));
    put(guest, 'majorFaults', n(p, 'balloon.major_fault'));
    put(guest, 'minorFaults', n(p, 'balloon.minor_fault'));
    // last-update is always sent (0 without a guest driver): only meaningful beside real figures.
    if (Object.keys(guest).length > 0) {
      put(guest, 'lastUpdateSeconds', n(p, 'balloon.last-update'));
      m.guest = guest;
    }
    out.memory = m;
  }
  if (groups.has('block') && active) {
    const block: BlockReading[] = [];
    const count = Math.min(n(p, 'block.count') ?? 0, 16384);
    for (let i = 0; i < count; i++) {
      const b = `block.${i}.`;
      const device = s(p, `${b}name`);
      if (device === undefined || n(p, `${b}rd.reqs`) === undefined) continue; // e.g. an empty CD-ROM drive
      const r: BlockReading = {
        device,
        readBytes: n(p, `${b}rd.bytes`) ?? 0,
        writeBytes: n(p, `${b}wr.bytes`) ?? 0,
        readRequests: n(p, `${b}rd.reqs`) ?? 0,
        writeRequests: n(p, `${b}wr.reqs`) ?? 0,
      };
      put(r, 'path', s(p, `${b}path`));
      put(r, 'flushRequests', n(p, `${b}fl.reqs`));
      put(r, 'readTimeSeconds', secs(n(p, `${b}rd.times`)));
      put(r, 'writeTimeSeconds', secs(n(p, `${b}wr.times`)));
      put(r, 'flushTimeSeconds', secs(n(p, `${b}fl.times`)));
      put(r, 'capacityBytes', n(p, `${b}capacity`));
      put(r, 'allocationBytes', n(p, `${b}allocation`));
      block.push(r);
    }
    out.block = block;
  }
  if (groups.has('net') && active) {
    const net: NetReading[] = [];
    const count = Math.min(n(p, 'net.count') ?? 0, 16384);
    const ifaces = meta?.interfaces ?? [];
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const b = `net.${i}.`;
      const name = s(p, `${b}name`);
      if (name === undefined) continue;
      seen.add(name);
      const r: NetReading = {
        interface: name,
        counters: {
          rxBytes: n(p, `${b}rx.bytes`) ?? 0,
          rxPackets: n(p, `${b}rx.pkts`) ?? 0,
          rxErrors: n(p, `${b}rx.errs`) ?? 0,
          rxDrops: n(p, `${b}rx.drop`) ?? 0,
          txBytes: n(p, `${b}tx.bytes`) ?? 0,
          txPackets: n(p, `${b}tx.pkts`) ?? 0,
          txErrors: n(p, `${b}tx.errs`) ?? 0,
          txDrops: n(p, `${b}tx.drop`) ?? 0,
        },
      };
      put(r, 'mac', ifaces.find((f) => f.target === name)?.mac);
      net.push(r);
    }
    // NICs without a host-side device (user-mode networking) have no counters at all.
    ifaces.forEach((f, i) => {
      if (f.target !== undefined && seen.has(f.target)) return;
      const id = f.target ?? f.alias ?? `net${i}`;
      if (seen.has(id)) return;
      const r: NetReading = { interface: id, counters: null };
      put(r, 'mac', f.mac);
      net.push(r);
    });
    out.net = net;
  }
  return out;
}
