// Every collector module registers itself when loaded (registerCollector);
// this module loads them all. Adding a collector: its module (registration and
// function), its metrics in catalogue.ts, one import here, and its test.
import './domain.ts';
import './cpu.ts';
import './vcpu.ts';
import './memory.ts';
import './block.ts';
import './network.ts';
import './host.ts';
import type { CollectorName } from './catalogue.ts';
import { registeredCollectors, type CollectorDef } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

export const COLLECTOR_DEFS: readonly CollectorDef[] = registeredCollectors();

/** Each collector's function, by name. */
export const COLLECTOR_FNS = Object.fromEntries(COLLECTOR_DEFS.map((d) => [d.name, d.collect])) as Record<CollectorName, CollectorFn>;

/** Whether a collector is on when no flag says otherwise. */
export function defaultOn(name: CollectorName): boolean {
  return COLLECTOR_DEFS.find((d) => d.name === name)?.defaultOn ?? false;
}
