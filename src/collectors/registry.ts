import type { StatsGroup } from '../drivers/types.ts';
import { COLLECTORS, type CollectorName } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';
import { VirtError } from '../virt/errors.ts';

/**
 * A collector as it registers itself (as node_exporter's registerCollector):
 * its name (one of the catalogue's COLLECTORS, whose metrics name it as their
 * collector), what it needs from a collection, whether it is on by default,
 * and the pure function from a snapshot to its samples.
 */
export interface CollectorDef {
  readonly name: CollectorName;
  /** What it reads: the bulk domain read (with these stats groups) or the host info read. */
  readonly reads: { readonly domains: readonly StatsGroup[] } | 'host';
  /** On unless --no-collector.NAME (or --collector.disable-defaults) turns it off. */
  readonly defaultOn: boolean;
  readonly collect: CollectorFn;
}

const registered = new Map<CollectorName, CollectorDef>();

/** Registers a collector; its module calls this once, at load. */
export function registerCollector(def: CollectorDef): CollectorDef {
  if (!(COLLECTORS as readonly string[]).includes(def.name)) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `collector ${def.name} is not in the catalogue's COLLECTORS`);
  if (registered.has(def.name)) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `collector ${def.name} registered twice`);
  registered.set(def.name, Object.freeze(def));
  return def;
}

/** The registered collectors, in the catalogue's order. */
export function registeredCollectors(): readonly CollectorDef[] {
  return COLLECTORS.map((n) => registered.get(n)).filter((d): d is CollectorDef => d !== undefined);
}

/** The stats groups a domain collector needs ([] for the host collector). */
export function groupsOf(def: CollectorDef): readonly StatsGroup[] {
  return def.reads === 'host' ? [] : def.reads.domains;
}
