import { METRIC_LIST, REGISTRY_METRICS, type MetricSpec } from '../collectors/catalogue.ts';
import { fullSchema } from '../config/schema.ts';
import { envName, settingsOf } from '../config/spec.ts';
import { OTEL_ATTRIBUTE_NAMES, otelAttributeName } from './attributes.ts';
import { FLAG_VARIABLES } from './settings.ts';
import { VirtError } from '../virt/errors.ts';

/**
 * The generated sections of docs/opentelemetry.md (between BEGIN/END
 * GENERATED markers): the name and attribute mapping from the catalogue,
 * and the flag-to-variable table from the schema. `npm run docs` refreshes
 * them; test/telemetry/doc.test.ts fails while they are stale.
 */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function otelNamesTable(metrics: readonly MetricSpec[] = [...METRIC_LIST, ...Object.values(REGISTRY_METRICS)]): string {
  const rows = ['| Prometheus | OpenTelemetry | Unit | Kind | Value | Attributes |', '|---|---|---|---|---|---|'];
  for (const m of metrics) {
    const attrs = [...Object.entries(m.otel.attributes).map(([k, v]) => `\`${k}=${v}\``), ...m.labels.map((l) => `\`${otelAttributeName(l)}\``)].join(', ');
    rows.push(`| \`${m.name}\` | \`${m.otel.name}\` | \`${cell(m.otel.unit)}\` | ${m.type === 'counter' ? 'monotonic sum' : 'gauge'} | ${m.otel.int ? 'int' : 'double'} | ${attrs} |`);
  }
  return rows.join('\n') + '\n';
}

export function otelAttributesTable(): string {
  const rows = ['| Prometheus label | OTel attribute |', '|---|---|'];
  for (const [label, attr] of Object.entries(OTEL_ATTRIBUTE_NAMES)) rows.push(`| \`${label}\` | \`${attr}\` |`);
  return rows.join('\n') + '\n';
}

export function otelVariablesTable(): string {
  const rows = ['| Flag | Also as | Stands for (and wins over) | Meaning |', '|---|---|---|---|'];
  const specs = new Map(settingsOf(fullSchema()));
  for (const [key, variable] of Object.entries(FLAG_VARIABLES)) {
    const spec = specs.get(key);
    if (spec === undefined) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `no setting ${key}`);
    rows.push(`| \`--${key}\` | \`${spec.env ?? envName(key)}\` | \`${variable}\` | ${cell(spec.doc)} |`);
  }
  return rows.join('\n') + '\n';
}

const SECTIONS: Record<string, () => string> = {
  'otel-variables': otelVariablesTable,
  'otel-names': otelNamesTable,
  'otel-attributes': otelAttributesTable,
};

/** Replaces the generated sections of docs/opentelemetry.md. */
export function refreshOtelDoc(text: string): string {
  let out = text;
  for (const [name, gen] of Object.entries(SECTIONS)) {
    const begin = `<!-- BEGIN GENERATED ${name} -->`;
    const end = `<!-- END GENERATED ${name} -->`;
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i === -1 || j === -1 || j < i) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `docs/opentelemetry.md lacks the ${begin} ... ${end} markers`);
    out = out.slice(0, i + begin.length) + '\n' + gen() + out.slice(j);
  }
  return out;
}

