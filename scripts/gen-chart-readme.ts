/**
 * The Helm chart's README, generated from helm/virt-exporter/values.yaml: one
 * row per value with its type, default and the comment above it. Written by
 * `npm run dashboards` (scripts/gen-dashboards.ts) and checked for staleness.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML, { isMap, isScalar, isSeq, type Pair, type YAMLMap } from 'yaml';

const CHART = fileURLToPath(new URL('../helm/virt-exporter/', import.meta.url));
/** Kubernetes objects passed through whole: one row each, the default as JSON. */
const WHOLE = new Set(['podSecurityContext', 'securityContext', 'resources', 'nodeSelector', 'updateStrategy']);

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

function commentOf(pair: Pair): string {
  const key = pair.key as { commentBefore?: string | null } | null;
  return (key?.commentBefore ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
}

function rows(map: YAMLMap, prefix: string, out: Row[]): void {
  // A comment above a nested map's first key belongs to the map node in the yaml library's model.
  const first = map.items[0]?.key as { commentBefore?: string | null } | undefined;
  if (first !== undefined && (first.commentBefore ?? '') === '' && prefix !== '') first.commentBefore = map.commentBefore;
  for (const pair of map.items) {
    const name = String((pair.key as { value?: unknown }).value ?? pair.key);
    const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `${prefix}${name}` : `${prefix.replace(/\.$/, '')}["${name}"]`;
    const value = pair.value;
    const description = commentOf(pair);
    if (isMap(value) && value.items.length > 0 && !WHOLE.has(key)) {
      if (description !== '') out.push({ key, type: 'object', default: '', description });
      rows(value, `${key}.`, out);
      continue;
    }
    const js: unknown = isMap(value) || isSeq(value) || isScalar(value) ? value.toJSON() : null;
    const type = Array.isArray(js) ? 'list' : js === null ? 'null' : typeof js === 'object' ? 'object' : typeof js === 'number' && Number.isInteger(js) ? 'int' : typeof js;
    out.push({ key, type, default: JSON.stringify(js), description });
  }
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function chartReadme(): string {
  const chart = YAML.parse(readFileSync(CHART + 'Chart.yaml', 'utf8')) as { name: string; version: string; appVersion: string; description: string; kubeVersion: string };
  const doc = YAML.parseDocument(readFileSync(CHART + 'values.yaml', 'utf8'));
  const out: Row[] = [];
  if (!isMap(doc.contents)) throw new Error('values.yaml is not a mapping');
  rows(doc.contents, '', out);
  return [
    `# ${chart.name}`,
    '',
    '<!-- Generated from values.yaml by scripts/gen-chart-readme.ts (npm run dashboards); do not edit. -->',
    '',
    `${chart.description.trim()}`,
    '',
    `Chart ${chart.version}, virt-exporter ${chart.appVersion}, Kubernetes ${chart.kubeVersion}.`,
    '',
    '```sh',
    'kubectl label node NODE virt-exporter.io/hypervisor=true',
    'helm install virt-exporter ./helm/virt-exporter --set driver=qemu',
    '```',
    '',
    'Modes: `ci/*-values.yaml` holds one values file per mode (test host, qemu, xen proxy, xen hypervisor,',
    'libvirt, everything on); the values are checked against `values.schema.json` at install.',
    'See [docs/helm.md](../../docs/helm.md) for the host mounts of each driver and [docs/alerts.md](../../docs/alerts.md)',
    'for the rules of `prometheusRule.enabled`.',
    '',
    '## Values',
    '',
    '| Key | Type | Default | Description |',
    '|---|---|---|---|',
    ...out.map((r) => `| \`${cell(r.key)}\` | ${r.type} | ${r.default === '' ? '' : `\`${cell(r.default)}\``} | ${cell(r.description)} |`),
    '',
  ].join('\n');
}
