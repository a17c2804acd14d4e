import { METRIC_LIST, type CollectorName, type MetricSpec } from './catalogue.ts';
import { compatAliases, compatFamilies, type CompatAlias, type CompatFamily, type CompatSet } from './compat.ts';
import { collectExporter, type ExporterState } from './exporter.ts';
import { COLLECTOR_DEFS } from './index.ts';
import type { Emit, Snapshot } from './snapshot.ts';

/** Seconds each collector's function took over a snapshot, by snapshot. */
const SPENT = new WeakMap<Snapshot, Map<CollectorName, number>>();

/** What one pass over a snapshot may add or narrow (all optional). */
export interface SampleOptions extends ExporterState {
  /** Only these collectors (a scrape's collect[]); default: the snapshot's. */
  collectors?: ReadonlySet<CollectorName>;
}

/** A family the samples path may emit, in the order an exposition lists them. */
export interface FamilyDef {
  spec: MetricSpec;
  /** An alias of a native family under another exporter's name (listed after every native one). */
  alias: boolean;
}

/**
 * The one place a snapshot becomes samples: the registered collectors, the
 * exporter's own health, and (with a compat set) the aliases and computed
 * families of another exporter's names. The Prometheus renderer and the OTLP
 * producer both read their samples from here and only format them.
 */
export class SamplesPath {
  readonly #aliases: ReadonlyMap<MetricSpec, CompatAlias>;
  readonly #computed: readonly CompatFamily[];
  /** Every family, natives first (catalogue order, then computed compat families), then aliases. */
  readonly families: readonly FamilyDef[];

  constructor(compat: CompatSet = '') {
    this.#aliases = compatAliases(compat);
    this.#computed = compatFamilies(compat);
    this.families = [
      ...METRIC_LIST.map((spec) => ({ spec, alias: false })),
      ...this.#computed.map((f) => ({ spec: f.spec, alias: false })),
      ...METRIC_LIST.flatMap((spec) => {
        const a = this.#aliases.get(spec);
        return a === undefined ? [] : [{ spec: a.spec, alias: true }];
      }),
    ];
  }

  /** Emits every sample of `snapshot` (see SampleOptions); samples of one family come in a stable order. */
  collect(snapshot: Snapshot, emit: Emit, opts: SampleOptions = {}): void {
    const enabled = opts.collectors ?? snapshot.collectors ?? new Set(Object.keys(snapshot.parts) as CollectorName[]);
    let out = emit;
    if (this.#aliases.size > 0) {
      const aliases = this.#aliases;
      out = (metric, labels, value) => {
        emit(metric, labels, value);
        const a = aliases.get(metric);
        if (a !== undefined) emit(a.spec, a.pick(labels), value);
      };
    }
    // What each collector cost: the time its function took over this snapshot, the first time it ran
    // (kept with the snapshot, so every render of one snapshot says the same).
    let spent = SPENT.get(snapshot);
    if (spent === undefined) {
      spent = new Map();
      SPENT.set(snapshot, spent);
    }
    for (const def of COLLECTOR_DEFS) {
      if (!enabled.has(def.name)) continue;
      if (spent.has(def.name)) {
        def.collect(snapshot, out);
        continue;
      }
      const t0 = performance.now();
      def.collect(snapshot, out);
      spent.set(def.name, (performance.now() - t0) / 1000);
    }
    collectExporter(snapshot, opts, spent, out);
    for (const fam of this.#computed) {
      if (fam.collector === 'exporter' || enabled.has(fam.collector)) fam.collect(snapshot, (labels, value) => emit(fam.spec, labels, value));
    }
  }
}

const plain = new SamplesPath();

/** The native samples of a snapshot (no compat names). */
export function collectSamples(snapshot: Snapshot, emit: Emit, opts: SampleOptions = {}): void {
  plain.collect(snapshot, emit, opts);
}
