/**
 * Descriptive facts of each domain (its parsed XML), cached by UUID and kept
 * current by domain lifecycle events: an event bumps the domain's version and
 * refreshes its entry in the background (scrapes keep using the old entry
 * until then), `undefined` drops it, and a lost connection drops them all
 * (events may have been missed). The versions also tell the bulk read whether
 * a held reading of a paused domain is still good.
 */
import { VirtError } from '../../virt/errors.ts';
import type { ReadOptions } from '../types.ts';
import { parseDomainXml, type DomainMeta, type MetadataRule } from './domxml.ts';
import type { WireDomain } from './protocol.ts';

export class MetaCache {
  readonly #cache = new Map<string, DomainMeta>();
  /** Bumped per UUID by every event, so a fetch that raced a newer event is not cached. */
  readonly #versions = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<DomainMeta | undefined>>();
  readonly #fetchXml: (d: WireDomain, opts?: ReadOptions) => Promise<string>;
  readonly #rules: readonly MetadataRule[];
  /** Bumped by every lost connection. */
  #epoch = 0;

  constructor(fetchXml: (d: WireDomain, opts?: ReadOptions) => Promise<string>, rules: readonly MetadataRule[]) {
    this.#fetchXml = fetchXml;
    this.#rules = rules;
  }

  /** A token that changes whenever an event for the domain arrives or the connection is lost. */
  token(uuid: string): string {
    return `${this.#epoch}/${this.#versions.get(uuid) ?? 0}`;
  }

  get(uuid: string): DomainMeta | undefined {
    return this.#cache.get(uuid);
  }

  /** A lifecycle event for the domain (kind: LIFECYCLE_EVENTS' name). */
  onEvent(dom: WireDomain, kind: string): void {
    this.#versions.set(dom.uuid, (this.#versions.get(dom.uuid) ?? 0) + 1);
    if (kind === 'undefined') {
      this.#cache.delete(dom.uuid);
      return;
    }
    this.refresh(dom).catch(() => undefined);
  }

  /** The connection was lost: events may have been missed. */
  clear(): void {
    this.#cache.clear();
    this.#versions.clear();
    this.#epoch++;
  }

  refresh(d: WireDomain, opts?: ReadOptions): Promise<DomainMeta | undefined> {
    const token = this.token(d.uuid);
    const key = `${d.uuid}/${token}`;
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const p = (async () => {
      try {
        const meta = parseDomainXml(await this.#fetchXml(d, opts), this.#rules);
        if (this.token(d.uuid) === token) this.#cache.set(d.uuid, meta);
        return meta;
      } catch (err) {
        if (err instanceof VirtError && (err.code === 'VIRT_ERR_NO_DOMAIN' || err.code === 'VIRT_ERR_OPERATION_TIMEOUT')) return undefined;
        throw err;
      } finally {
        this.#inflight.delete(key);
      }
    })();
    this.#inflight.set(key, p);
    return p;
  }

  /** The cached facts (even while an event-driven refresh runs), else fetched now (counted). */
  metaOf(d: WireDomain, opts?: ReadOptions, counter?: { n: number }): Promise<DomainMeta | undefined> {
    const hit = this.#cache.get(d.uuid);
    if (hit !== undefined) return Promise.resolve(hit);
    if (counter !== undefined) counter.n++;
    return this.refresh(d, opts);
  }
}
