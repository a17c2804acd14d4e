import type { Registry } from 'prom-client';
import { METRIC_LIST, type CollectorName, type MetricSpec } from '../collectors/catalogue.ts';
import { compatAliases, type CompatSet } from '../collectors/compat.ts';
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

/**
 * Renders scrapes from snapshots. One instance serves one listener; its
 * buffers are reused, and the body of a snapshot already rendered in a format
 * is reused by the concurrent scrapes that share that snapshot.
 */
export class Exposition {
  readonly #families = new Map<MetricSpec, { sink: ByteSink; pieces: LinePieces; alias?: { sink: ByteSink; pieces: LinePieces; pick: (l: readonly string[]) => string[] } }>();
  readonly #aliases: Array<{ spec: MetricSpec; sink: ByteSink }> = [];
  readonly #rendered = new WeakMap<Snapshot, Partial<Record<ExpositionFormat, Promise<Buffer>>>>();

  constructor(compat: CompatSet = '') {
    const aliases = compatAliases(compat);
    for (const spec of METRIC_LIST) {
      const a = aliases.get(spec);
      const alias = a === undefined ? undefined : { sink: new ByteSink(), pieces: pieces(a.spec), pick: a.pick };
      if (a !== undefined && alias !== undefined) this.#aliases.push({ spec: a.spec, sink: alias.sink });
      this.#families.set(spec, { sink: new ByteSink(), pieces: pieces(spec), ...(alias === undefined ? {} : { alias }) });
    }
  }

  /**
   * The catalogue's families filled from one snapshot, without the process
   * metrics, as chunks that view the reused sinks: copy them before the next call.
   */
  catalogue(snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState, format: ExpositionFormat): Buffer[] {
    for (const f of this.#families.values()) f.sink.len = 0;
    for (const a of this.#aliases) a.sink.len = 0;
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
      const f = this.#families.get(s.metric);
      if (f === undefined) return;
      const value = formatValue(s.value);
      f.sink.write(line(f.pieces, s.labels, value));
      if (f.alias !== undefined) f.alias.sink.write(line(f.alias.pieces, f.alias.pick(s.labels), value));
    };
    collectExporter(snapshot, state, emit);
    for (const name of Object.keys(COLLECTOR_FNS) as CollectorName[]) {
      if (enabled.has(name)) COLLECTOR_FNS[name](snapshot, emit);
    }
    const chunks: Buffer[] = [];
    for (const [spec, f] of this.#families) {
      if (f.sink.len === 0) continue;
      chunks.push(Buffer.from(header(spec.name, spec.help, spec.type, spec.unit, format)), f.sink.bytes());
    }
    for (const a of this.#aliases) {
      if (a.sink.len > 0) chunks.push(Buffer.from(header(a.spec.name, a.spec.help, a.spec.type, a.spec.unit, format)), a.sink.bytes());
    }
    return chunks;
  }

  /** One scrape's body: catalogue families, then the prom-client registry (process and admin metrics). */
  render(snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState, registry: Registry | undefined, format: ExpositionFormat): Promise<Buffer> {
    let byFormat = this.#rendered.get(snapshot);
    if (byFormat === undefined) {
      byFormat = {};
      this.#rendered.set(snapshot, byFormat);
    }
    const cached = byFormat[format];
    if (cached !== undefined) return cached;
    const done = (async () => {
      const extra = registry === undefined ? '' : promClientText((await registry.getMetricsAsJSON()) as unknown as PromClientMetric[], format);
      // Filling the shared sinks and copying out of them happen in one synchronous
      // step, so no other render can interleave.
      const chunks = this.catalogue(snapshot, enabled, state, format);
      chunks.push(Buffer.from(extra + (format === 'openmetrics' ? '# EOF\n' : '')));
      return Buffer.concat(chunks);
    })();
    byFormat[format] = done;
    return done;
  }
}

/** Convenience for one-off renders (tests, virtctl): a fresh Exposition, text out. */
export async function renderExposition(
  snapshot: Snapshot,
  enabled: ReadonlySet<CollectorName>,
  state: ExporterState,
  registry: Registry | undefined,
  format: ExpositionFormat,
): Promise<string> {
  return (await new Exposition().render(snapshot, enabled, state, registry, format)).toString('utf8');
}
