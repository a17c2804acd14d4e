/**
 * The collectors' bulk read over libvirt, planned by what libvirtd 9.0 does
 * per stats group (measured with bench/libvirt-profile.ts; see docs/libvirt.md):
 * `state` and `interface` are answered from libvirtd's own state and /proc
 * (no QEMU monitor command), while `cpu-total` (query-stats), `vcpu`
 * (query-stats), `balloon` (query-balloon, qom-get) and `block`
 * (query-blockstats twice, query-named-block-nodes) make libvirtd take a job
 * on each domain and ask its QEMU, domain after domain, in one worker thread.
 *
 * So one scrape is:
 * 1. one connect-get-all-domain-stats for every domain with the monitor-free
 *    groups only: the domain list, states and NIC counters;
 * 2. the monitor groups the enabled collectors need, for the running domains
 *    (and any other active domain without a held reading), split into up to
 *    STATS_CALLS_MAX concurrent calls over domain subsets (the same procedure
 *    with a domain list, as virDomainListGetStats), so that libvirtd's worker
 *    threads ask several QEMUs at once.
 *
 * An active domain whose guest cannot run (paused, pmsuspended, crashed)
 * keeps the monitor-group reading taken while it was in that state: its guest
 * cannot move its counters. The reading is dropped by any lifecycle event of
 * the domain, by a lost connection, and after HELD_READING_MS at the latest.
 */
import { VirtError } from '../../virt/errors.ts';
import type { BulkReadOptions, BulkStats, ReadError, ReadOptions } from '../types.ts';
import type { MetadataRule } from './domxml.ts';
import type { MetaCache } from './meta-cache.ts';
import { Proc, readAllDomainStats, StatsFlag, StatsType, writeDomain, type StatsRecord, type TypedValue, type WireDomain } from './protocol.ts';
import { toDomainStats } from './readings.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

/** Concurrent monitor-group calls at most (libvirtd serves 5 requests of one client at once by default: max_client_requests). */
export const STATS_CALLS_MAX = 4;
/** Longest time a paused domain's monitor-group reading is reused. */
export const HELD_READING_MS = 30_000;
/** libvirt states whose guest cannot run: paused, crashed (held by QEMU), pmsuspended. */
const STILL = new Set<TypedValue | undefined>([3, 6, 7]);

export type ReadCall = <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T, opts?: ReadOptions) => Promise<T>;

/** What the last bulk read cost (tests count it; docs/libvirt.md explains it). */
export interface BulkCost {
  /** RPCs in all: stats calls plus domain XML fetches for domains not yet cached. */
  rpcs: number;
  /** connect-get-all-domain-stats calls: 1 for the states, plus one per subset of domains read from their QEMUs. */
  statsCalls: number;
  /** Domains whose QEMU was asked (the monitor groups); held paused readings are not. */
  monitorDomains: number;
}

/** remote_connect_get_all_domain_stats_args: a domain list (empty: every domain), the groups, the flags. */
function statsArgs(doms: readonly WireDomain[], types: number, flags: number): (w: XdrWriter) => void {
  return (w) => {
    w.uint(doms.length);
    for (const d of doms) writeDomain(w, d);
    w.uint(types).uint(flags);
  };
}

/** Splits the list into n nearly equal parts, in order. */
export function split<T>(xs: readonly T[], n: number): T[][] {
  const parts = Math.max(1, Math.min(n, xs.length));
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const len = Math.floor(xs.length / parts) + (i < xs.length % parts ? 1 : 0);
    out.push(xs.slice(at, at + len));
    at += len;
  }
  return out.filter((p) => p.length > 0);
}

interface Held {
  token: string;
  at: number;
  params: Map<string, TypedValue>;
}

export class BulkReader {
  readonly #read: ReadCall;
  readonly #meta: MetaCache;
  readonly #rules: readonly MetadataRule[];
  readonly #held = new Map<string, Held>();
  last: BulkCost = { rpcs: 0, statsCalls: 0, monitorDomains: 0 };

  constructor(read: ReadCall, meta: MetaCache, rules: readonly MetadataRule[]) {
    this.#read = read;
    this.#meta = meta;
    this.#rules = rules;
  }

  /** The connection was lost: held readings may have missed events. */
  clear(): void {
    this.#held.clear();
  }

  async read(opts: BulkReadOptions): Promise<BulkStats> {
    const groups = new Set<string>(opts.groups);
    const cheap = StatsType.STATE | (groups.has('net') ? StatsType.INTERFACE : 0);
    let monitor = StatsType.CPU_TOTAL;
    if (groups.has('vcpu')) monitor |= StatsType.VCPU;
    if (groups.has('memory')) monitor |= StatsType.BALLOON;
    if (groups.has('block')) monitor |= StatsType.BLOCK;
    const flags = StatsFlag.NOWAIT | (opts.inactive === true ? 0 : StatsFlag.ACTIVE);
    const xml = { n: 0 };

    const recs = await this.#read(Proc.CONNECT_GET_ALL_DOMAIN_STATS, statsArgs([], cheap, flags), readAllDomainStats, opts);
    const errors: ReadError[] = [];
    const metas = Promise.all(
      recs.map((r) =>
        this.#meta.metaOf(r.dom, opts, xml).catch((err: unknown) => {
          const e = err instanceof VirtError ? err : new VirtError('VIRT_ERR_OPERATION_FAILED', String(err));
          errors.push({ group: 'state', domain: r.dom.name, code: e.code, message: `domain XML of ${r.dom.name}: ${e.message}` });
          return undefined;
        }),
      ),
    );

    // Which active domains need their QEMU asked; the tokens are taken before asking, so an event during the call invalidates.
    const now = Date.now();
    const ask: WireDomain[] = [];
    const tokens = new Map<string, string>();
    const held = new Map<string, Map<string, TypedValue>>();
    for (const r of recs) {
      if (r.dom.id < 0) continue;
      const token = this.#meta.token(r.dom.uuid);
      const h = this.#held.get(r.dom.uuid);
      if (STILL.has(r.params.get('state.state')) && h !== undefined && h.token === token && now - h.at < HELD_READING_MS) {
        held.set(r.dom.uuid, h.params);
        continue;
      }
      tokens.set(r.dom.uuid, token);
      ask.push(r.dom);
    }
    const parts = split(ask, STATS_CALLS_MAX);
    const answers = await Promise.all(parts.map((p) => this.#read(Proc.CONNECT_GET_ALL_DOMAIN_STATS, statsArgs(p, monitor, StatsFlag.NOWAIT), readAllDomainStats, opts)));
    const fresh = new Map<string, StatsRecord>();
    for (const a of answers) for (const r of a) fresh.set(r.dom.uuid, r);

    const out: StatsRecord[] = [];
    const seen = new Set<string>();
    for (const r of recs) {
      seen.add(r.dom.uuid);
      if (r.dom.id < 0) {
        out.push(r);
        continue;
      }
      const keep = held.get(r.dom.uuid);
      if (keep !== undefined) {
        out.push({ dom: r.dom, params: new Map([...keep, ...r.params]) });
        continue;
      }
      const f = fresh.get(r.dom.uuid);
      if (f === undefined) {
        this.#held.delete(r.dom.uuid);
        continue; // gone between the two calls
      }
      // Stopped between the two calls: what the second call saw stands (an inactive domain).
      out.push({ dom: f.dom, params: new Map([...f.params, ...r.params]) });
      if (f.dom.id >= 0 && STILL.has(r.params.get('state.state'))) {
        this.#held.set(r.dom.uuid, { token: tokens.get(r.dom.uuid) ?? '', at: now, params: f.params });
      } else {
        this.#held.delete(r.dom.uuid);
      }
    }
    for (const uuid of this.#held.keys()) if (!seen.has(uuid)) this.#held.delete(uuid);

    const metaOf = new Map(recs.map((r, i) => [r.dom.uuid, i]));
    const m = await metas;
    this.last = { rpcs: 1 + parts.length + xml.n, statsCalls: 1 + parts.length, monitorDomains: ask.length };
    const domains = out.map((r) => toDomainStats(r, m[metaOf.get(r.dom.uuid) ?? -1], groups, this.#rules));
    return { domains, errors } satisfies BulkStats;
  }
}
