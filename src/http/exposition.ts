import { Counter, Registry, type Metric, type RegistryContentType } from 'prom-client';
import { METRICS, type CollectorName, type MetricSpec } from '../collectors/catalogue.ts';
import type { CompatSet } from '../collectors/compat.ts';
import type { ExporterState } from '../collectors/exporter.ts';
import { SamplesPath, type SampleOptions } from '../collectors/samples.ts';
import type { Emit, Snapshot } from '../collectors/snapshot.ts';
import { ByteSink } from './byte-sink.ts';

export type ExpositionFormat = 'text' | 'openmetrics';
export const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** Picks OpenMetrics only when the client's Accept asks for it, as Prometheus does. */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept) ? 'openmetrics' : 'text';
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function header(name: string, help: string, type: string, unit: string, format: ExpositionFormat): string {
  // OpenMetrics names a counter family without its _total suffix.
  const family = format === 'openmetrics' && type === 'counter' ? name.replace(/_total$/, '') : name;
  let out = `# HELP ${family} ${escapeHelp(help)}\n# TYPE ${family} ${type}\n`;
  if (format === 'openmetrics' && unit !== '' && family.endsWith(`_${unit}`)) out += `# UNIT ${family} ${unit}\n`;
  return out;
}

/** Per metric: the constant pieces around its label values. */
interface LinePieces {
  /** Number of label values a line has. */
  labels: number;
  open: string;
  between: string[];
  close: string;
}

function pieces(spec: MetricSpec): LinePieces {
  const names = spec.labels;
  return {
    labels: names.length,
    open: names.length === 0 ? `${spec.name} ` : `${spec.name}{${names[0] ?? ''}="`,
    between: names.slice(1).map((n) => `",${n}="`),
    close: names.length === 0 ? '' : '"} ',
  };
}

/** Writes one sample line: NAME{L1="v1",L2="v2"} VALUE. */
function writeLine(sink: ByteSink, p: LinePieces, labels: readonly string[], value: number): void {
  sink.ascii(p.open);
  if (p.labels > 0) {
    sink.labelValue(labels[0] ?? '');
    for (let i = 0; i < p.between.length; i++) {
      sink.ascii(p.between[i] as string);
      sink.labelValue(labels[i + 1] ?? '');
    }
    sink.ascii(p.close);
  }
  sink.value(value);
  sink.byte(0x0a);
}

/** prom-client's registry rendered by prom-client itself, without its gauges named like counters. */
const registryViews = new WeakMap<Registry, { size: number; views: Partial<Record<ExpositionFormat, Registry>> }>();

function registryView(registry: Registry, format: ExpositionFormat): Registry {
  const metrics = registry.getMetricsAsArray();
  let entry = registryViews.get(registry);
  // Metrics registered later (the admin endpoint's) make a new view.
  if (entry === undefined || entry.size !== metrics.length) {
    entry = { size: metrics.length, views: {} };
    registryViews.set(registry, entry);
  }
  let view = entry.views[format];
  if (view === undefined) {
    const fresh = new Registry<RegistryContentType>();
    if (format === 'openmetrics') fresh.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    view = fresh as unknown as Registry;
    for (const m of metrics as unknown as Array<Metric & { name: string }>) {
      // prom-client's default nodejs_active_*_total are gauges named like counters,
      // which promtool rightly rejects; they add nothing process_* does not say.
      if (m.name.endsWith('_total') && !(m instanceof Counter)) continue;
      view.registerMetric(m);
    }
    entry.views[format] = view;
  }
  return view;
}

async function registryText(registry: Registry, format: ExpositionFormat): Promise<string> {
  const text = await registryView(registry, format).metrics();
  // The body's own # EOF comes last, after the catalogue's families.
  return format === 'openmetrics' && text.endsWith('# EOF\n') ? text.slice(0, -'# EOF\n'.length) : text;
}

/** One family's buffer in a set: its sample lines, and the constant pieces around their label values. */
interface Family {
  spec: MetricSpec;
  sink: ByteSink;
  pieces: LinePieces;
}

/** One set of family buffers; a set is owned by one rendered body until every scrape sending it is done. */
interface SinkSet {
  bySpec: Map<MetricSpec, Family>;
  /** Native families in exposition order (variants of virt_domain_info appended at first use). */
  natives: Family[];
  aliases: Family[];
}

interface RenderedEntry {
  chunks: Buffer[];
  bytes: number;
  set: SinkSet;
  users: number;
  /** Its set went back to the pool: the chunks no longer hold this body. */
  returned: boolean;
}

/** A rendered body lent to one scrape: send the chunks, then release. */
export interface Rendered {
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  release(): void;
}

const MAX_FREE_SETS = 2;

function family(spec: MetricSpec): Family {
  return { spec, sink: new ByteSink(), pieces: pieces(spec) };
}

/**
 * Formats scrapes: the samples of a snapshot (from the one samples path,
 * src/collectors/samples.ts) as text or OpenMetrics, then the prom-client
 * registry as prom-client renders it. One instance serves one listener.
 * Bodies are written into pooled sets of buffers and lent out without
 * copying; the scrapes that share a snapshot share its body, and a set
 * returns to the pool when the last of them has finished sending. This keeps
 * a large scrape from allocating (and leaving to the garbage collector) a
 * fresh body each time.
 */
export class Exposition {
  readonly #path: SamplesPath;
  readonly #free: SinkSet[] = [];
  readonly #rendered = new WeakMap<Snapshot, Partial<Record<ExpositionFormat, Promise<RenderedEntry>>>>();

  constructor(compat: CompatSet = '') {
    this.#path = new SamplesPath(compat);
  }

  #newSet(): SinkSet {
    const set: SinkSet = { bySpec: new Map(), natives: [], aliases: [] };
    for (const { spec, alias } of this.#path.families) {
      const f = family(spec);
      set.bySpec.set(spec, f);
      (alias ? set.aliases : set.natives).push(f);
    }
    return set;
  }

  /** Fills a set from one snapshot; returns the chunks (views into the set) of the catalogue's families. */
  #fill(set: SinkSet, snapshot: Snapshot, opts: SampleOptions, format: ExpositionFormat): Buffer[] {
    for (const f of set.bySpec.values()) f.sink.reset();
    const emit: Emit = (metric, labels, value) => {
      let f = set.bySpec.get(metric);
      if (f === undefined) {
        // virt_domain_info with configured extra labels: a variant spec, given its sink on first use.
        if (metric.name !== METRICS.domainInfo.name) return;
        f = family(metric);
        set.bySpec.set(metric, f);
        set.natives.push(f);
      }
      writeLine(f.sink, f.pieces, labels, value);
    };
    this.#path.collect(snapshot, emit, opts);
    const chunks: Buffer[] = [];
    for (const f of [...set.natives, ...set.aliases]) {
      if (f.sink.len > 0) chunks.push(Buffer.from(header(f.spec.name, f.spec.help, f.spec.type, f.spec.unit, format)), f.sink.bytes());
    }
    return chunks;
  }

  #renderEntry(snapshot: Snapshot, opts: SampleOptions, registry: Registry | undefined, format: ExpositionFormat): Promise<RenderedEntry> {
    let byFormat = this.#rendered.get(snapshot);
    if (byFormat === undefined) {
      byFormat = {};
      this.#rendered.set(snapshot, byFormat);
    }
    const cached = byFormat[format];
    if (cached !== undefined) return cached;
    const entry = (async (): Promise<RenderedEntry> => {
      const extra = registry === undefined ? '' : await registryText(registry, format);
      const set = this.#free.pop() ?? this.#newSet();
      const chunks = this.#fill(set, snapshot, opts, format);
      chunks.push(Buffer.from(extra + (format === 'openmetrics' ? '# EOF\n' : '')));
      return { chunks, bytes: chunks.reduce((n, c) => n + c.length, 0), set, users: 0, returned: false };
    })();
    byFormat[format] = entry;
    return entry;
  }

  /**
   * One scrape's body: catalogue families, then the prom-client registry (process and admin metrics).
   * `collectors` narrows the snapshot's (collect[]); `state` adds what is not in the snapshot.
   */
  async render(snapshot: Snapshot, collectors: ReadonlySet<CollectorName> | undefined, state: ExporterState, registry: Registry | undefined, format: ExpositionFormat): Promise<Rendered> {
    const opts: SampleOptions = { ...state, ...(collectors === undefined ? {} : { collectors }) };
    let entry = await this.#renderEntry(snapshot, opts, registry, format);
    if (entry.returned) {
      // Every earlier user of this body finished and its buffers were reused: render again.
      const byFormat = this.#rendered.get(snapshot);
      if (byFormat !== undefined) delete byFormat[format];
      entry = await this.#renderEntry(snapshot, opts, registry, format);
    }
    const e = entry;
    e.users++;
    let released = false;
    return {
      chunks: e.chunks,
      bytes: e.bytes,
      release: () => {
        if (released) return;
        released = true;
        if (--e.users > 0) return;
        e.returned = true;
        if (this.#free.length < MAX_FREE_SETS) this.#free.push(e.set);
      },
    };
  }
}

/** A one-off render to a string (tests, tools). */
export async function renderExposition(
  snapshot: Snapshot,
  enabled: ReadonlySet<CollectorName> | undefined,
  state: ExporterState,
  registry: Registry | undefined,
  format: ExpositionFormat,
): Promise<string> {
  const r = await new Exposition().render(snapshot, enabled, state, registry, format);
  try {
    return Buffer.concat(r.chunks).toString('utf8');
  } finally {
    r.release();
  }
}
