// Every collector the catalogue names (COLLECTORS) is loaded from the module
// of that name in this directory, which registers itself (registerCollector).
// Adding a collector: its name and metrics in catalogue.ts (the table), its
// module, and its test; nothing here.
import { COLLECTORS, type CollectorName } from './catalogue.ts';
import { registeredCollectors, type CollectorDef } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';
import { VirtError } from '../virt/errors.ts';

// The compiled copy (build/) holds .js files, the sources .ts.
const EXT = import.meta.url.endsWith('.js') ? '.js' : '.ts';
await Promise.all(COLLECTORS.map((name) => import(new URL(`./${name}${EXT}`, import.meta.url).href)));

export const COLLECTOR_DEFS: readonly CollectorDef[] = registeredCollectors();
for (const name of COLLECTORS) {
  if (!COLLECTOR_DEFS.some((d) => d.name === name)) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `collector module ./${name}${EXT} did not register collector ${name}`);
}

/** Each collector's function, by name. */
export const COLLECTOR_FNS = Object.fromEntries(COLLECTOR_DEFS.map((d) => [d.name, d.collect])) as Record<CollectorName, CollectorFn>;

/** Whether a collector is on when no flag says otherwise. */
export function defaultOn(name: CollectorName): boolean {
  return COLLECTOR_DEFS.find((d) => d.name === name)?.defaultOn ?? false;
}
