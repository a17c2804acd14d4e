/**
 * The libvirt driver: monitors and manages any host run by libvirt's daemons
 * (libvirtd, or the modular virtqemud/virtxend) through libvirt's own remote
 * protocol, in pure TypeScript.
 *
 * - The bulk read (bulk.ts) is one connect-get-all-domain-stats call for the
 *   states of every domain, plus the QEMU-monitor groups for the running
 *   domains split over a few concurrent calls; paused domains keep their
 *   reading until an event of theirs.
 * - Descriptive facts (OS type, arch, machine, MACs, <metadata> labels) come
 *   from the domain XML, fetched once per domain and cached by UUID
 *   (meta-cache.ts); domain lifecycle events (registered once per connection)
 *   refresh a domain's entry, and a lost connection drops them all. A
 *   steady-state scrape makes no per-domain call.
 * - Units leave in base units (readings.ts).
 * - Every lifecycle operation is one libvirt procedure (lifecycle.ts).
 */
import { VirtError } from '../../virt/errors.ts';
import type { VirtUri } from '../../virt/uri.ts';
import type { Driver } from '../driver.ts';
import type { OpenContext } from '../driver.ts';
import { DOMAIN_STATES, type BulkReadOptions, type DomainInfo, type HostInfo, type ListOptions, type ReadOptions } from '../types.ts';
import { BulkReader, type BulkCost } from './bulk.ts';
import { LibvirtClient } from './client.ts';
import { parseMetadataRules, type MetadataRule } from './domxml.ts';
import { lifecycleOps } from './lifecycle.ts';
import { MetaCache } from './meta-cache.ts';
import {
  DOMAIN_LIST_MAX,
  LIFECYCLE_EVENTS,
  ListFlag,
  Proc,
  readDomain,
  readNodeInfo,
  STRING_MAX,
  uuidToBytes,
  UUID_BYTES,
  writeDomain,
  type WireDomain,
} from './protocol.ts';
import { KIB, NS, put, toRef, versionText } from './readings.ts';
import { num, str } from './settings.ts';
import { chooseSocket } from './sockets.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

export { toDomainStats, versionText } from './readings.ts';

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

export interface LibvirtDriver extends Driver {
  /** RPCs sent so far, handshakes included (tests count them). */
  readonly rpcCalls: number;
  /** RPCs the last allDomainStats made (tests count them). */
  readonly lastBulkRpcs: number;
  /** What the last allDomainStats made, call by call. */
  readonly lastBulk: BulkCost;
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
  const hostRefreshMs = num(set, 'host-refresh-seconds') * 1000;
  const rules = parseMetadataRules(str(set, 'metadata-labels'), str(set, 'metadata-preset'));

  // The cache and the bulk reader call through `read` below, once the client exists.
  const meta = new MetaCache((d, o) => xmlOf(d, o), rules);
  const reader = new BulkReader((proc, payload, decode, o) => read(proc, payload, decode, o), meta, rules);
  let host: { info: HostInfo; at: number } | undefined;

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
      meta.onEvent(e.dom, kind);
    },
    onDisconnect: () => {
      // Events may have been missed while the link was down.
      meta.clear();
      reader.clear();
      host = undefined;
    },
  });

  const read = <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T, opts?: ReadOptions): Promise<T> =>
    client.call(proc, payload, decode, { timeoutMs: readTimeout, signal: opts?.signal });
  const write = <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T): Promise<T> =>
    client.call(proc, payload, decode, { timeoutMs: writeTimeout });
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

  const driver: LibvirtDriver = {
    name: 'libvirt',
    socketPath: sock.path,
    metadataRules: rules,
    get rpcCalls() {
      return client.calls;
    },
    get lastBulkRpcs() {
      return reader.last.rpcs;
    },
    get lastBulk() {
      return reader.last;
    },
    metadataLabels: (uuid) => meta.get(uuid)?.labels,
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
      const [gi, facts] = await Promise.all([
        read(Proc.DOMAIN_GET_INFO, domArg(d), (r) => ({ state: r.uint(), maxKiB: Number(r.uhyper()), memKiB: Number(r.uhyper()), vcpus: r.uint(), cpuNs: Number(r.uhyper()) }), opts),
        meta.metaOf(d, opts),
      ]);
      const info: DomainInfo = {
        ...toRef(d),
        state: DOMAIN_STATES[gi.state] ?? 'nostate',
        maxMemoryBytes: gi.maxKiB * KIB,
        memoryBytes: d.id >= 0 ? gi.memKiB * KIB : 0,
        vcpus: gi.vcpus,
        cpuTimeSeconds: gi.cpuNs / NS,
      };
      put(info, 'osType', facts?.osType);
      put(info, 'arch', facts?.arch);
      put(info, 'machine', facts?.machine);
      return info;
    },
    domainDefinition: async (key, opts) => ({ xml: await xmlOf(await lookup(key, opts), opts) }),
    allDomainStats: (opts: BulkReadOptions) => {
      const p = reader.read(opts);
      const tracked = p.finally(() => {
        if (bulkInFlight === tracked) bulkInFlight = undefined;
      });
      bulkInFlight = tracked;
      tracked.catch(() => undefined);
      return p;
    },

    ...lifecycleOps({ lookup, read, write, graceMs: num(set, 'shutdown-grace-seconds') * 1000, log }),
  };

  try {
    await client.connect({ timeoutMs: connectTimeout });
  } catch (err) {
    client.close();
    throw err;
  }
  return driver;
}
