import type { BulkStats, DomainStats, HostInfo, ReadError, StatsGroup } from '../drivers/types.ts';
import { inSpan } from '../telemetry/tracing.ts';
import { withDeadline } from '../util/deadline.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import type { Connection } from '../virt/connection.ts';
import { toVirtError } from '../virt/errors.ts';
import type { CollectorName } from './catalogue.ts';
import { COLLECTOR_DEFS } from './index.ts';
import { groupsOf } from './registry.ts';
import type { PartResult, Snapshot } from './snapshot.ts';

export interface CollectionOptions {
  collectors: ReadonlySet<CollectorName>;
  /** Deadline of one collection in milliseconds. */
  timeoutMs: number;
  /** A collection finished less than this long ago is served again (0: never). */
  maxAgeMs?: number;
  /** Report shut-off domains too (default true). */
  inactive?: boolean;
  include?: RegExp;
  exclude?: RegExp;
  logger?: Logger;
}

/** The collectors that read the bulk domain read, and the groups each needs. */
const DOMAIN_COLLECTORS = COLLECTOR_DEFS.filter((d) => d.reads !== 'host');
const HOST_COLLECTORS = COLLECTOR_DEFS.filter((d) => d.reads === 'host');

/**
 * Runs collections over one read-only connection: one bulk read per cycle,
 * a deadline per cycle, and concurrent callers sharing the collection in
 * flight. Never throws: failures become parts with success=false.
 */
export class Collection {
  readonly #conn: Connection;
  readonly #opts: CollectionOptions;
  readonly #log: Logger;
  #inFlight: Promise<Snapshot> | undefined;
  readonly #errorCounts = new Map<string, number>();
  /** Failures of the last collection, by collector, code and domain. */
  #failing = new Set<string>();
  #collections = 0;
  #last: { snapshot: Snapshot; doneAt: number } | undefined;
  /** Per-domain deadline misses, by domain name; forgotten once a domain is gone. */
  readonly #timeouts = new Map<string, number>();

  constructor(conn: Connection, opts: CollectionOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.#log = opts.logger ?? silentLogger;
  }

  get errorCounts(): ReadonlyMap<string, number> {
    return this.#errorCounts;
  }

  /** Number of collections actually run (not shared). */
  get collections(): number {
    return this.#collections;
  }

  collect(): Promise<Snapshot> {
    const maxAge = this.#opts.maxAgeMs ?? 0;
    if (this.#inFlight === undefined && this.#last !== undefined && maxAge > 0 && performance.now() - this.#last.doneAt < maxAge) {
      return Promise.resolve(this.#last.snapshot);
    }
    if (this.#inFlight === undefined) {
      // One span per collection (child of the scrape or export that started it), one child per driver read.
      this.#inFlight = inSpan('virt.collection', { 'virt.driver': this.#conn.driverName }, (span) =>
        this.#run().then((snap) => {
          span.setAttributes({ 'virt.up': snap.up, 'virt.domains': snap.domains.length });
          this.#last = { snapshot: snap, doneAt: performance.now() };
          return snap;
        }),
      ).finally(() => {
        this.#inFlight = undefined;
      });
    }
    return this.#inFlight;
  }

  #count(collector: CollectorName, code: string): void {
    const key = `${collector}\0${code}`;
    this.#errorCounts.set(key, (this.#errorCounts.get(key) ?? 0) + 1);
  }

  async #run(): Promise<Snapshot> {
    this.#collections++;
    const startedAt = Date.now();
    const t0 = performance.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#opts.timeoutMs);
    const { signal } = controller;
    const enabled = this.#opts.collectors;
    const domainParts = DOMAIN_COLLECTORS.filter((d) => enabled.has(d.name));
    const groups = [...new Set<StatsGroup>(domainParts.flatMap(groupsOf))];
    const hostParts = HOST_COLLECTORS.filter((d) => enabled.has(d.name));

    const timed = async <T>(fn: () => Promise<T>, what: string): Promise<{ value?: T; error?: ReadError; seconds: number }> => {
      const s = performance.now();
      try {
        const value = await withDeadline(inSpan(what, { 'virt.driver': this.#conn.driverName }, fn), signal, what);
        return { value, seconds: (performance.now() - s) / 1000 };
      } catch (err) {
        const e = toVirtError(err);
        return { error: { code: e.code, message: e.message }, seconds: (performance.now() - s) / 1000 };
      }
    };

    const hostRead = hostParts.length > 0 ? timed<HostInfo>(() => this.#conn.hostInfo({ signal }), 'host info read') : undefined;
    const bulkRead =
      domainParts.length > 0
        ? timed<BulkStats>(() => this.#conn.allDomainStats({ groups, inactive: this.#opts.inactive ?? true, signal, deadline: startedAt + this.#opts.timeoutMs }), 'bulk domain stats read')
        : undefined;
    const [host, bulk] = await Promise.all([hostRead, bulkRead]);
    clearTimeout(timer);

    const parts: Snapshot['parts'] = {};
    if (host !== undefined) {
      // A read shared by several collectors is the collection's cost, not each one's.
      for (const d of hostParts) parts[d.name] = { success: host.error === undefined, durationSeconds: hostParts.length === 1 ? host.seconds : 0, errors: host.error ? [host.error] : [] };
    }
    let domains: DomainStats[] = [];
    if (bulk !== undefined) {
      const readErrors = bulk.error ? [bulk.error] : (bulk.value?.errors ?? []);
      for (const d of domainParts) {
        const mine = groupsOf(d);
        // Whole-domain failures (no group) are the domain collector's; group failures their collector's.
        const errors = readErrors.filter((e) => (e.group === undefined ? d.name === 'domain' || bulk.error !== undefined : mine.includes(e.group)));
        parts[d.name] = { success: bulk.error === undefined && errors.length === 0, durationSeconds: domainParts.length === 1 ? bulk.seconds : 0, errors } satisfies PartResult;
      }
      if (bulk.value !== undefined) domains = this.#filter(bulk.value.domains);
      this.#countTimeouts(readErrors, bulk.value?.domains);
    }

    let up = false;
    const failing = new Set<string>();
    for (const [name, part] of Object.entries(parts) as [CollectorName, PartResult][]) {
      if (part.success) up = true;
      for (const e of part.errors) {
        this.#count(name, e.code);
        const key = `${name}\0${e.code}\0${e.domain ?? ''}`;
        failing.add(key);
        // A failure is logged when it starts and when it clears, not on every scrape.
        if (this.#failing.has(key)) this.#log.debug('collector read still failing', { collector: name, code: e.code, domain: e.domain, err: e.message });
        else this.#log.warn('collector read failed', { collector: name, code: e.code, domain: e.domain, err: e.message });
      }
    }
    for (const key of this.#failing) {
      if (failing.has(key)) continue;
      const [collector, code, domain] = key.split('\0');
      this.#log.info('collector read recovered', { collector, code, domain: domain === '' ? undefined : domain });
    }
    this.#failing = failing;
    if (bulk?.value !== undefined || host?.value !== undefined) up = true;

    return {
      driver: this.#conn.driverName,
      startedAt,
      durationSeconds: (performance.now() - t0) / 1000,
      up,
      host: host?.value,
      domains,
      domainsKnown: bulk === undefined || bulk.value !== undefined,
      readTimeouts: new Map(this.#timeouts),
      parts,
      collectors: enabled,
      errorCounts: new Map(this.#errorCounts),
    };
  }

  #countTimeouts(errors: readonly ReadError[], read: readonly DomainStats[] | undefined): void {
    const present = new Set<string>();
    for (const e of errors) {
      if (e.domain === undefined) continue;
      present.add(e.domain);
      if (e.code === 'VIRT_ERR_OPERATION_TIMEOUT') this.#timeouts.set(e.domain, (this.#timeouts.get(e.domain) ?? 0) + 1);
    }
    // An unknown list (failed read) forgets nothing; a known one drops domains that are gone.
    if (read === undefined) return;
    for (const d of read) present.add(d.info.name);
    for (const name of this.#timeouts.keys()) if (!present.has(name)) this.#timeouts.delete(name);
  }

  #filter(domains: DomainStats[]): DomainStats[] {
    const { include, exclude, inactive } = this.#opts;
    const seen = new Set<string>();
    const out: DomainStats[] = [];
    for (const d of domains) {
      // Two readings for one UUID would yield duplicate series; keep the first.
      if (seen.has(d.info.uuid)) continue;
      seen.add(d.info.uuid);
      if (inactive === false && d.info.state === 'shutoff') continue;
      if (include !== undefined && !include.test(d.info.name)) continue;
      if (exclude?.test(d.info.name) === true) continue;
      out.push(d);
    }
    return out;
  }
}
