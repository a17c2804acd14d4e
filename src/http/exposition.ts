import type { Registry } from 'prom-client';
import { METRIC_LIST, type CollectorName, type MetricSpec } from '../collectors/catalogue.ts';
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

interface Family {
  name: string;
  help: string;
  type: string;
  unit: string;
  lines: string[];
}

function header(f: Family, format: ExpositionFormat): string {
  // OpenMetrics names a counter family without its _total suffix.
  const name = format === 'openmetrics' && f.type === 'counter' ? f.name.replace(/_total$/, '') : f.name;
  let out = `# HELP ${name} ${escapeHelp(f.help)}\n# TYPE ${name} ${f.type}\n`;
  if (format === 'openmetrics' && f.unit !== '' && name.endsWith(`_${f.unit}`)) out += `# UNIT ${name} ${f.unit}\n`;
  return out;
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

/** Families from the catalogue, filled by the enabled collectors from one snapshot. */
export function catalogueSamples(snapshot: Snapshot, enabled: ReadonlySet<CollectorName>, state: ExporterState): Map<MetricSpec, string[]> {
  const byMetric = new Map<MetricSpec, string[]>();
  for (const spec of METRIC_LIST) byMetric.set(spec, []);
  const emit = (s: Sample): void => {
    byMetric.get(s.metric)?.push(sampleLine(s.metric.name, s.metric.labels, s.labels, s.value));
  };
  collectExporter(snapshot, state, emit);
  for (const name of Object.keys(COLLECTOR_FNS) as CollectorName[]) {
    if (enabled.has(name)) COLLECTOR_FNS[name](snapshot, emit);
  }
  return byMetric;
}

interface PromClientMetric {
  name: string;
  help: string;
  type: string;
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

function promClientFamilies(json: PromClientMetric[]): Family[] {
  // prom-client's default nodejs_active_*_total are gauges named like counters,
  // which promtool rightly rejects; they add nothing process_* does not say.
  return json.filter((m) => !(m.type !== 'counter' && m.name.endsWith('_total'))).map((m) => ({
    name: m.name,
    help: m.help,
    type: m.type,
    unit: /_(seconds|bytes)(_total)?$/.exec(m.name)?.[1] ?? '',
    lines: m.values.map((v) => {
      const names = Object.keys(v.labels);
      return sampleLine(v.metricName ?? m.name, names, names.map((n) => String(v.labels[n])), v.value);
    }),
  }));
}

/** Renders one scrape: the catalogue's families, then the process/self metrics of the prom-client registry. */
export async function renderExposition(
  snapshot: Snapshot,
  enabled: ReadonlySet<CollectorName>,
  state: ExporterState,
  registry: Registry | undefined,
  format: ExpositionFormat,
): Promise<string> {
  const families: Family[] = [];
  for (const [spec, lines] of catalogueSamples(snapshot, enabled, state)) {
    if (lines.length > 0) families.push({ name: spec.name, help: spec.help, type: spec.type, unit: spec.unit, lines });
  }
  if (registry !== undefined) families.push(...promClientFamilies((await registry.getMetricsAsJSON()) as unknown as PromClientMetric[]));
  const chunks: string[] = [];
  for (const f of families) {
    if (f.lines.length === 0) continue;
    chunks.push(header(f, format), f.lines.join(''));
  }
  if (format === 'openmetrics') chunks.push('# EOF\n');
  return chunks.join('');
}
