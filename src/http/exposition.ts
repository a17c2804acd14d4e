import type { Registry } from 'prom-client';
import { METRIC_LIST, METRICS, type CollectorName, type MetricSpec } from '../collectors/catalogue.ts';
import { compatAliases, compatFamilies, type CompatAlias, type CompatFamily, type CompatSet } from '../collectors/compat.ts';
import { collectExporter, type ExporterState } from '../collectors/exporter.ts';
import { COLLECTOR_FNS } from '../collectors/index.ts';
import type { Sample, Snapshot } from '../collectors/snapshot.ts';

export type ExpositionFormat = 'text' | 'openmetrics';
export const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** Picks OpenMetrics only when the client's Accept asks for it, as Prometheus does. */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept) ? 'openmetrics' : 'text';
}

const NEEDS_ESCAPE = /[\\"\n]/;
function escapeLabel(v: string): string {
  return NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * A growable byte buffer kept across scrapes. Sample lines are written into
 * it as soon as they are made, so they die young instead of piling up in
 * arrays until a final join (which made the garbage collector dominate
 * large scrapes).
 */
class ByteSink {
  buf: Buffer = Buffer.allocUnsafe(4096);
  len = 0;
  write(s: string): void {
    const need = this.len + s.length * 3;
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.len += this.buf.write(s, this.len);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
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
  open: string;
  between: string[];
  close: string;
}

function pieces(spec: MetricSpec): LinePieces {
  const names = spec.labels;
  if (names.length === 0) return { open: `${spec.name} `, between: [], close: '' };
  return {
    open: `${spec.name}{${names[0] ?? ''}="`,
    between: names.slice(1).map((n) => `",${n}="`),
    close: '"} ',
  };
}

function sampleLine(name: string, labelNames: readonly string[], labelValues: readonly string[], value: number): string {
  if (labelNames.length === 0) return `${name} ${formatValue(value)}\n`;
  let s = name + '{';
  for (let i = 0; i < labelNames.length; i++) {
    if (i > 0) s += ',';
    s += `${labelNames[i]}="${escapeLabel(labelValues[i] ?? '')}"`;
  }
  return `${s}} ${formatValue(value)}\n`;
}

interface PromClientMetric {
  name: string;
  help: string;
  type: string;
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

function promClientText(json: PromClientMetric[], format: ExpositionFormat): string {
  let out = '';
  for (const m of json) {
    // prom-client's default nodejs_active_*_total are gauges named like counters,
    // which promtool rightly rejects; they add nothing process_* does not say.
    if ((m.type !== 'counter' && m.name.endsWith('_total')) || m.values.length === 0) continue;
    out += header(m.name, m.help, m.type, /_(seconds|bytes)(_total)?$/.exec(m.name)?.[1] ?? '', format);
    for (const v of m.values) {
      const names = Object.keys(v.labels);
      out += sampleLine(v.metricName ?? m.name, names, names.map((n) => String(v.labels[n])), v.value);
    }
  }
  return out;
}

interface Family {
  sink: ByteSink;
  pieces: LinePieces;
  alias?: { spec: MetricSpec; sink: ByteSink; pieces: LinePieces; pick: (l: readonly string[]) => string[] };
}

/** One set of family buffers; a set is owned by one rendered body until every scrape sending it is done. */
type SinkSet = Map<MetricSpec, Family>;

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

/**
 * Renders scrapes from snapshots. One instance serves one listener. Bodies
 * are written into pooled sets of buffers and lent out without copying; the
 * scrapes that share a snapshot share its body, and a set returns to the pool
 * when the last of them has finished sending. This keeps a large scrape from
 * allocating (and leaving to the garbage collector) a fresh body each time.
 */
export class Exposition {
  readonly #aliases: ReadonlyMap<MetricSpec, CompatAlias>;
  readonly #families: readonly CompatFamily[];
  readonly #free: SinkSet[] = [];
  readonly #rendered = new WeakMap<Snapshot, Partial<Record<ExpositionFormat, Promise<RenderedEntry>>>>();

  constructor(compat: CompatSet = '') {
    this.#aliases = compatAliases(compat);
    this.#families = compatFamilies(compat);
  }

  #newSet(): SinkSet {
    const set: SinkSet = new Map();
    for (const spec of METRIC_LIST) {
      const a = this.#aliases.get(spec);
      set.set(spec, {
        sink: new ByteSink(),
        pieces: pieces(spec),
        ...(a === undefined ? {} : { alias: { spec: a.spec, sink: new ByteSink(), pieces: pieces(a.spec), pick: a.pick } }),
      });
    }
    for (const fam of this.#families) set.set(fam.spec, { sink: new ByteSink(), pieces: pieces(fam.spec) });
    return set;
  }

  /** Fills a set from one snapshot; returns the chunks (views into the set) of the catalogue's families. */
  #fill(set: SinkSet, snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState, format: ExpositionFormat): Buffer[] {
    for (const f of set.values()) {
      f.sink.len = 0;
      if (f.alias !== undefined) f.alias.sink.len = 0;
    }
    const line = (p: LinePieces, labels: readonly string[], value: string): string => {
      let out = p.open;
      if (p.between.length > 0 || labels.length > 0) {
        out += escapeLabel(labels[0] ?? '');
        for (let i = 0; i < p.between.length; i++) out += p.between[i] + escapeLabel(labels[i + 1] ?? '');
        out += p.close;
      }
      return out + value + '\n';
    };
    const emit = (s: Sample): void => {
      let f = set.get(s.metric);
      if (f === undefined) {
        // virt_domain_info with configured extra labels: a variant spec, given its sink on first use.
        if (s.metric.name !== METRICS.domainInfo.name) return;
        f = { sink: new ByteSink(), pieces: pieces(s.metric) };
        set.set(s.metric, f);
      }
      const value = formatValue(s.value);
      f.sink.write(line(f.pieces, s.labels, value));
      if (f.alias !== undefined) f.alias.sink.write(line(f.alias.pieces, f.alias.pick(s.labels), value));
    };
    collectExporter(snapshot, state, emit);
    for (const name of Object.keys(COLLECTOR_FNS) as CollectorName[]) {
      if (enabled.has(name)) COLLECTOR_FNS[name](snapshot, emit);
    }
    for (const fam of this.#families) {
      if (fam.collector === 'exporter' || enabled.has(fam.collector)) fam.collect(snapshot, (labels, value) => emit({ metric: fam.spec, labels, value }));
    }
    const chunks: Buffer[] = [];
    const aliasChunks: Buffer[] = [];
    for (const [spec, f] of set) {
      if (f.sink.len > 0) chunks.push(Buffer.from(header(spec.name, spec.help, spec.type, spec.unit, format)), f.sink.bytes());
      const a = f.alias;
      if (a !== undefined && a.sink.len > 0) aliasChunks.push(Buffer.from(header(a.spec.name, a.spec.help, a.spec.type, a.spec.unit, format)), a.sink.bytes());
    }
    return [...chunks, ...aliasChunks];
  }

  #renderEntry(snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState, registry: Registry | undefined, format: ExpositionFormat): Promise<RenderedEntry> {
    let byFormat = this.#rendered.get(snapshot);
    if (byFormat === undefined) {
      byFormat = {};
      this.#rendered.set(snapshot, byFormat);
    }
    const cached = byFormat[format];
    if (cached !== undefined) return cached;
    const entry = (async (): Promise<RenderedEntry> => {
      const extra = registry === undefined ? '' : promClientText((await registry.getMetricsAsJSON()) as unknown as PromClientMetric[], format);
      const set = this.#free.pop() ?? this.#newSet();
      const chunks = this.#fill(set, snapshot, enabled, state, format);
      chunks.push(Buffer.from(extra + (format === 'openmetrics' ? '# EOF\n' : '')));
      return { chunks, bytes: chunks.reduce((n, c) => n + c.length, 0), set, users: 0, returned: false };
    })();
    byFormat[format] = entry;
    return entry;
  }

  /** One scrape's body: catalogue families, then the prom-client registry (process and admin metrics). */
  async render(snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState, registry: Registry | undefined, format: ExpositionFormat): Promise<Rendered> {
    let entry = await this.#renderEntry(snapshot, enabled, state, registry, format);
    if (entry.returned) {
      // Every earlier user of this body finished and its buffers were reused: render again.
      const byFormat = this.#rendered.get(snapshot);
      if (byFormat !== undefined) delete byFormat[format];
      entry = await this.#renderEntry(snapshot, enabled, state, registry, format);
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
  enabled: ReadonlySet<CollectorName>,
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
