/**
 * The libvirt driver: monitors and manages any host run by libvirt's daemons
 * (libvirtd, or the modular virtqemud/virtxend) through libvirt's own remote
 * protocol, in pure TypeScript.
 *
 * - The bulk read is ONE connect-get-all-domain-stats call with every group
 *   the collectors need, shut-off domains included.
 * - Descriptive facts (OS type, arch, machine, MACs, <metadata> labels) come
 *   from the domain XML, fetched once per domain and cached by UUID; domain
 *   lifecycle events (registered once per connection) drop a domain's entry,
 *   and a lost connection drops them all. A steady-state scrape therefore
 *   makes exactly one RPC.
 * - Units leave in base units: ns to s, KiB to bytes; guest balloon figures
 *   are absent, not zero, when the guest reports none.
 * - Every lifecycle operation is one libvirt procedure (after a lookup), and
 *   libvirt's errors come back typed (LibvirtError keeps libvirt's code).
 */
import { VirtError } from '../../virt/errors.ts';
import type { VirtUri } from '../../virt/uri.ts';
import { LIBVIRT_DEFAULTS } from '../../config/schema/libvirt.ts';
import type { Driver } from '../driver.ts';
import type { OpenContext } from '../driver.ts';
import {
  DOMAIN_STATES,
  type BlockReading,
  type BulkReadOptions,
  type BulkStats,
  type DomainInfo,
  type DomainRef,
  type DomainStats,
  type HostInfo,
  type ListOptions,
  type MemoryReading,
  type NetReading,
  type ReadError,
  type ReadOptions,
  type ShutdownOptions,
  type VcpuReading,
} from '../types.ts';
import { LibvirtClient } from './client.ts';
import { parseDomainXml, parseMetadataRules, uuidOfXml, type DomainMeta, type MetadataRule } from './domxml.ts';
import {
  DOMAIN_LIST_MAX,
  LIFECYCLE_EVENTS,
  ListFlag,
  Proc,
  readAllDomainStats,
  readDomain,
  readNodeInfo,
  StatsFlag,
  StatsType,
  STRING_MAX,
  uuidToBytes,
  UUID_BYTES,
  writeDomain,
  type StatsRecord,
  type TypedValue,
  type WireDomain,
} from './protocol.ts';
import { chooseSocket } from './sockets.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

type Settings = OpenContext['settings'];
type Key = keyof typeof LIBVIRT_DEFAULTS;

function num(s: Settings, k: Key): number {
  const v = s[`libvirt.${k}`];
  const d = LIBVIRT_DEFAULTS[k] as number;
  if (v === undefined || v === '') return d;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new VirtError('VIRT_ERR_CONFIG', `setting libvirt.${k} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

function str(s: Settings, k: Key): string {
  const v = s[`libvirt.${k}`];
  return v === undefined ? (LIBVIRT_DEFAULTS[k] as string) : String(v);
}

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const NS = 1e9;
const KIB = 1024;
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

function put<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

function toRef(d: WireDomain): DomainRef {
  return { name: d.name, uuid: d.uuid, id: d.id < 0 ? null : d.id };
}

/** libvirt's packed version number (major * 1,000,000 + minor * 1,000 + micro) as text. */
export function versionText(v: number): string {
  return `${Math.floor(v / 1e6)}.${Math.floor(v / 1e3) % 1000}.${v % 1000}`;
}

interface CacheEntry {
  meta: DomainMeta;
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

export interface LibvirtDriver extends Driver {
  /** RPCs sent so far, handshakes included (tests count them). */
  readonly rpcCalls: number;
  /** RPCs the last allDomainStats made: 1 in the steady state (tests count them). */
  readonly lastBulkRpcs: number;
  /** Values of the configured <metadata> label rules, by UUID, from the cache. */
  metadataLabels(uuid: string): readonly string[] | undefined;
  readonly metadataRules: readonly MetadataRule[];
  readonly socketPath: string;
}

export async function openLibvirtDriver(uri: VirtUri, ctx: OpenContext): Promise<LibvirtDriver> {
  const lv = uri.libvirt;
  if (lv === undefined) throw new VirtError('VIRT_ERR_INVALID_URI', `${uri.text} is not a libvirt+DRIVER:/// URI`);
  const set = ctx.settings;
  const log = ctx.logger;
  const sock = chooseSocket(lv.hypervisor, uri.path, ctx.readOnly, { explicit: lv.socket, runDir: str(set, 'run-dir') });
  log.info('libvirt socket chosen', { socket: sock.path, reason: sock.reason, readOnly: ctx.readOnly });
  const readTimeout = num(set, 'read-timeout-ms');
  const writeTimeout = num(set, 'write-timeout-ms');
  const connectTimeout = num(set, 'connect-timeout-ms');
  const graceMs = num(set, 'shutdown-grace-seconds') * 1000;
  const hostRefreshMs = num(set, 'host-refresh-seconds') * 1000;
  const rules = parseMetadataRules(str(set, 'metadata-labels'), str(set, 'metadata-preset'));

  const cache = new Map<string, CacheEntry>();
  /** Bumped per UUID by every event, so a fetch that raced a newer event is not cached. */
  const versions = new Map<string, number>();
  const inflight = new Map<string, Promise<DomainMeta | undefined>>();
  let epoch = 0;
  /** RPCs the last bulk read made (1 in the steady state). */
  let lastBulkRpcs = 0;
  // Set once the client exists; events only arrive after that.
  let refresh: (d: WireDomain, opts?: ReadOptions) => Promise<DomainMeta | undefined> = () => Promise.resolve(undefined);

  const client = new LibvirtClient({
    socketPath: sock.path,
    name: `${lv.hypervisor}://${uri.path}`,
    readOnly: ctx.readOnly,
    maxMessageBytes: num(set, 'max-message-bytes'),
    connectTimeoutMs: connectTimeout,
    keepaliveIntervalMs: num(set, 'keepalive-interval-ms'),
    keepaliveCount: num(set, 'keepalive-count'),
    logger: log,
    events: (e) => {
      const kind = LIFECYCLE_EVENTS[e.event] ?? String(e.event);
      log.debug('libvirt lifecycle event', { domain: e.dom.name, event: kind });
      versions.set(e.dom.uuid, (versions.get(e.dom.uuid) ?? 0) + 1);
      if (kind === 'undefined') {
        cache.delete(e.dom.uuid);
        return;
      }
      // Refreshed in the background: scrapes keep using the entry they have until then.
      refresh(e.dom).catch(() => undefined);
    },
    onDisconnect: () => {
      // Events may have been missed while the link was down.
      cache.clear();
      versions.clear();
      epoch++;
      host = undefined;
    },
  });

  const read = <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T, opts?: ReadOptions): Promise<T> =>
    client.call(proc, payload, decode, { timeoutMs: readTimeout, signal: opts?.signal });
  const write = <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T): Promise<T> =>
    client.call(proc, payload, decode, { timeoutMs: writeTimeout });
  const none = (): undefined => undefined;
  const domArg = (d: WireDomain) => (w: XdrWriter): void => writeDomain(w, d);

  async function lookup(key: string, opts?: ReadOptions): Promise<WireDomain> {
    const k = key.trim();
    if (k === '' || k.length > 1024) throw new VirtError('VIRT_ERR_INVALID_ARG', `domain key ${JSON.stringify(key.slice(0, 64))} is empty or too long`);
    if (UUID_RE.test(k)) return read(Proc.DOMAIN_LOOKUP_BY_UUID, (w) => w.fixedOpaque(uuidToBytes(k), UUID_BYTES), readDomain, opts);
    if (/^\d+$/.test(k) && Number(k) <= 0x7fffffff) {
      try {
        return await read(Proc.DOMAIN_LOOKUP_BY_ID, (w) => w.int(Number(k)), readDomain, opts);
      } catch (err) {
        if (!(err instanceof VirtError && err.code === 'VIRT_ERR_NO_DOMAIN')) throw err;
      }
    }
    return read(Proc.DOMAIN_LOOKUP_BY_NAME, (w) => w.string(k, STRING_MAX), readDomain, opts);
  }

  async function xmlOf(d: WireDomain, opts?: ReadOptions): Promise<string> {
    return read(Proc.DOMAIN_GET_XML_DESC, (w) => {
      writeDomain(w, d);
      w.uint(0);
    }, (r) => r.string(STRING_MAX), opts);
  }

  refresh = (d: WireDomain, opts?: ReadOptions): Promise<DomainMeta | undefined> => {
    const v = versions.get(d.uuid) ?? 0;
    const key = `${d.uuid}/${v}/${epoch}`;
    const running = inflight.get(key);
    if (running !== undefined) return running;
    const e = epoch;
    const p = (async () => {
      try {
        const meta = parseDomainXml(await xmlOf(d, opts), rules);
        if ((versions.get(d.uuid) ?? 0) === v && epoch === e) cache.set(d.uuid, { meta });
        return meta;
      } catch (err) {
        if (err instanceof VirtError && (err.code === 'VIRT_ERR_NO_DOMAIN' || err.code === 'VIRT_ERR_OPERATION_TIMEOUT')) return undefined;
        throw err;
      } finally {
        inflight.delete(key);
      }
    })();
    inflight.set(key, p);
    return p;
  };

  /** A domain's XML facts: the cached ones (even while an event-driven refresh runs), else fetched now. */
  function metaOf(d: WireDomain, opts?: ReadOptions, counter?: { n: number }): Promise<DomainMeta | undefined> {
    const hit = cache.get(d.uuid);
    if (hit !== undefined) return Promise.resolve(hit.meta);
    if (counter !== undefined) counter.n++;
    return refresh(d, opts);
  }

  let host: { info: HostInfo; at: number } | undefined;

  /** The bulk read in flight, if any: cached host facts are only as good as the link it tests. */
  let bulkInFlight: Promise<unknown> | undefined;

  async function hostInfo(opts?: ReadOptions): Promise<HostInfo> {
    if (host !== undefined && Date.now() - host.at < hostRefreshMs && client.connected) {
      const cached = host.info;
      // A collection starts its host and bulk reads in the same tick: let the bulk read begin, and
      // answer from the cache only if that one RPC reaches the daemon (virt_up stays honest).
      await new Promise((r) => setImmediate(r));
      if (bulkInFlight !== undefined) await bulkInFlight;
      return cached;
    }
    const [node, hostname, type, hv, free] = await Promise.all([
      read(Proc.NODE_GET_INFO, undefined, readNodeInfo, opts),
      read(Proc.CONNECT_GET_HOSTNAME, undefined, (r) => r.string(STRING_MAX), opts),
      read(Proc.CONNECT_GET_TYPE, undefined, (r) => r.string(STRING_MAX), opts),
      read(Proc.CONNECT_GET_VERSION, undefined, (r) => Number(r.uhyper()), opts),
      read(Proc.NODE_GET_FREE_MEMORY, undefined, (r) => Number(r.uhyper()), opts).catch(() => undefined),
    ]);
    const info: HostInfo = {
      hostname,
      model: node.model,
      memoryBytes: node.memoryKiB * KIB,
      cpus: node.cpus,
      mhz: node.mhz,
      nodes: node.nodes,
      sockets: node.sockets,
      cores: node.cores,
      threads: node.threads,
      hypervisor: type,
      hypervisorVersion: versionText(hv),
    };
    if (free !== undefined) info.freeMemoryBytes = free;
    host = { info, at: Date.now() };
    return info;
  }

  async function stateOf(d: WireDomain): Promise<number> {
    return read(Proc.DOMAIN_GET_STATE, (w) => {
      writeDomain(w, d);
      w.uint(0);
    }, (r) => {
      const st = r.int();
      r.int();
      return st;
    });
  }

  async function bulkRead(opts: BulkReadOptions): Promise<BulkStats> {
    const groups = new Set<string>(opts.groups);
    let types = StatsType.STATE | StatsType.CPU_TOTAL | StatsType.BALLOON | StatsType.VCPU;
    if (groups.has('net')) types |= StatsType.INTERFACE;
    if (groups.has('block')) types |= StatsType.BLOCK;
    const flags = StatsFlag.NOWAIT | (opts.inactive === true ? 0 : StatsFlag.ACTIVE);
    const counter = { n: 1 };
    const recs = await read(Proc.CONNECT_GET_ALL_DOMAIN_STATS, (w) => w.uint(0).uint(types).uint(flags), readAllDomainStats, opts);
    const errors: ReadError[] = [];
    const metas = await Promise.all(
      recs.map((r) =>
        metaOf(r.dom, opts, counter).catch((err: unknown) => {
          const e = err instanceof VirtError ? err : new VirtError('VIRT_ERR_OPERATION_FAILED', String(err));
          errors.push({ group: 'state', domain: r.dom.name, code: e.code, message: `domain XML of ${r.dom.name}: ${e.message}` });
          return undefined;
        }),
      ),
    );
    lastBulkRpcs = counter.n;
    const domains = recs.map((r, i) => toDomainStats(r, metas[i], groups, rules));
    return { domains, errors } satisfies BulkStats;
  }

  const driver: LibvirtDriver = {
    name: 'libvirt',
    socketPath: sock.path,
    metadataRules: rules,
    get rpcCalls() {
      return client.calls;
    },
    get lastBulkRpcs() {
      return lastBulkRpcs;
    },
    metadataLabels: (uuid) => cache.get(uuid)?.meta.labels,
    close: () => {
      client.close();
      return Promise.resolve();
    },
    version: async (opts) => {
      const [lib, hv, type] = await Promise.all([
        read(Proc.CONNECT_GET_LIB_VERSION, undefined, (r) => Number(r.uhyper()), opts),
        read(Proc.CONNECT_GET_VERSION, undefined, (r) => Number(r.uhyper()), opts),
        read(Proc.CONNECT_GET_TYPE, undefined, (r) => r.string(STRING_MAX), opts),
      ]);
      return `libvirt ${versionText(lib)}, ${type} ${versionText(hv)}`;
    },
    hostInfo,
    listDomains: async (opts?: ListOptions) => {
      let flags = 0;
      if (opts?.active === true) flags |= ListFlag.ACTIVE;
      if (opts?.inactive === true) flags |= ListFlag.INACTIVE;
      if (opts?.active === false && opts.inactive !== true) flags = ListFlag.INACTIVE;
      if (opts?.inactive === false && opts.active !== true) flags = ListFlag.ACTIVE;
      const doms = await read(Proc.CONNECT_LIST_ALL_DOMAINS, (w) => w.int(1).uint(flags), (r) => {
        const d = r.array(DOMAIN_LIST_MAX, readDomain, 24);
        r.uint();
        return d;
      }, opts);
      return doms.map(toRef);
    },
    lookupDomain: async (key, opts) => toRef(await lookup(key, opts)),
    domainInfo: async (key, opts) => {
      const d = await lookup(key, opts);
      const [gi, meta] = await Promise.all([
        read(Proc.DOMAIN_GET_INFO, domArg(d), (r) => ({ state: r.uint(), maxKiB: Number(r.uhyper()), memKiB: Number(r.uhyper()), vcpus: r.uint(), cpuNs: Number(r.uhyper()) }), opts),
        metaOf(d, opts),
      ]);
      const info: DomainInfo = {
        ...toRef(d),
        state: DOMAIN_STATES[gi.state] ?? 'nostate',
        maxMemoryBytes: gi.maxKiB * KIB,
        memoryBytes: d.id >= 0 ? gi.memKiB * KIB : 0,
        vcpus: gi.vcpus,
        cpuTimeSeconds: gi.cpuNs / NS,
      };
      put(info, 'osType', meta?.osType);
      put(info, 'arch', meta?.arch);
      put(info, 'machine', meta?.machine);
      return info;
    },
    domainDefinition: async (key, opts) => ({ xml: await xmlOf(await lookup(key, opts), opts) }),
    allDomainStats: (opts: BulkReadOptions) => {
      const p = bulkRead(opts);
      const tracked = p.finally(() => {
        if (bulkInFlight === tracked) bulkInFlight = undefined;
      });
      bulkInFlight = tracked;
      tracked.catch(() => undefined);
      return p;
    },

    define: async (definition) => {
      const xml = typeof definition === 'string' ? definition : typeof definition === 'object' && definition !== null && typeof (definition as { xml?: unknown }).xml === 'string' ? (definition as { xml: string }).xml : undefined;
      if (xml === undefined || !xml.trimStart().startsWith('<')) {
        throw new VirtError('VIRT_ERR_XML_ERROR', 'the libvirt driver defines domains from libvirt domain XML: pass {"xml": "<domain ...>...</domain>"}');
      }
      return toRef(await write(Proc.DOMAIN_DEFINE_XML, (w) => w.string(xml, STRING_MAX), readDomain));
    },
    undefine: async (key) => {
      await write(Proc.DOMAIN_UNDEFINE, domArg(await lookup(key)), none);
    },
    start: async (key) => {
      await write(Proc.DOMAIN_CREATE, domArg(await lookup(key)), none);
    },
    shutdown: async (key, opts?: ShutdownOptions) => {
      const d = await lookup(key);
      await write(Proc.DOMAIN_SHUTDOWN, domArg(d), none);
      const until = Date.now() + graceMs;
      for (;;) {
        const st = await stateOf(d).catch((err: unknown) => {
          if (err instanceof VirtError && err.code === 'VIRT_ERR_NO_DOMAIN') return 5; // a transient domain is gone once off
          throw err;
        });
        if (DOMAIN_STATES[st] === 'shutoff') return;
        if (Date.now() >= until) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (opts?.force === true) {
        log.warn('guest ignored the ACPI shutdown request; destroying it', { domain: d.name, graceSeconds: graceMs / 1000 });
        await write(Proc.DOMAIN_DESTROY, domArg(d), none);
        return;
      }
      throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `domain ${d.name} did not stop within ${graceMs / 1000} s of the ACPI shutdown request; the guest may ignore ACPI (use force to destroy it)`, { domain: d.name, driver: 'libvirt' });
    },
    reboot: async (key) => {
      const d = await lookup(key);
      await write(Proc.DOMAIN_REBOOT, (w) => {
        writeDomain(w, d);
        w.uint(0);
      }, none);
    },
    destroy: async (key) => {
      await write(Proc.DOMAIN_DESTROY, domArg(await lookup(key)), none);
    },
    suspend: async (key) => {
      await write(Proc.DOMAIN_SUSPEND, domArg(await lookup(key)), none);
    },
    resume: async (key) => {
      await write(Proc.DOMAIN_RESUME, domArg(await lookup(key)), none);
    },
    save: async (key, file) => {
      const d = await lookup(key);
      await write(Proc.DOMAIN_SAVE, (w) => {
        writeDomain(w, d);
        w.string(file, STRING_MAX);
      }, none);
    },
    restore: async (file) => {
      const xml = await read(Proc.DOMAIN_SAVE_IMAGE_GET_XML_DESC, (w) => w.string(file, STRING_MAX).uint(0), (r) => r.string(STRING_MAX));
      await write(Proc.DOMAIN_RESTORE, (w) => w.string(file, STRING_MAX), none);
      const uuid = uuidOfXml(xml);
      if (uuid === undefined) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `restored ${file}, but its XML names no UUID to report`);
      return toRef(await lookup(uuid));
    },
  };

  try {
    await client.connect({ timeoutMs: connectTimeout });
  } catch (err) {
    client.close();
    throw err;
  }
  return driver;
}
