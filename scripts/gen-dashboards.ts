/**
 * Generates the Grafana dashboards in dashboards/ from the metric catalogue,
 * so a renamed or removed metric breaks generation (and the test comparing
 * the committed JSON with a fresh generation) instead of silently emptying a
 * panel. Counters can only be charted through rate()/increase().
 *
 *   node scripts/gen-dashboards.ts          write dashboards/*.json
 *   node scripts/gen-dashboards.ts --check  exit 1 when the committed files differ
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { METRICS, type MetricId, type MetricSpec } from '../src/collectors/catalogue.ts';

const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' } as const;
const RATE_WINDOW = '$__rate_interval';

/** Catalogue metrics deliberately left off the dashboards, with the reason. Every other one must be charted. */
export const NOT_CHARTED: Partial<Record<MetricId, string>> = {
  otelExportFailures: 'health of the OTLP push, not of the host: alert on it (rate > 0) rather than chart it',
};

// ---- PromQL building: selectors only from catalogue entries --------------------------------

type Scope = 'host' | 'domain';

function matchers(scope: Scope, extra: string): string {
  const base = ['job=~"$job"', 'instance=~"$instance"'];
  if (scope === 'domain') base.push('domain="$domain"');
  if (extra !== '') base.push(extra);
  return `{${base.join(',')}}`;
}

/** A gauge selector; refuses counters, which only make sense as rates. */
function g(spec: MetricSpec, scope: Scope, extra = ''): string {
  if (spec.type !== 'gauge') throw new Error(`${spec.name} is a ${spec.type}; chart it with rate()`);
  return `${spec.name}${matchers(scope, extra)}`;
}

/** rate() of a counter over Grafana's rate interval; refuses gauges. */
function rate(spec: MetricSpec, scope: Scope, extra = ''): string {
  if (spec.type !== 'counter') throw new Error(`${spec.name} is a ${spec.type}; rate() needs a counter`);
  return `rate(${spec.name}${matchers(scope, extra)}[${RATE_WINDOW}])`;
}

// ---- Grafana JSON model -----------------------------------------------------------------------

interface Target {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  format?: 'table' | 'time_series';
}

interface PanelSpec {
  type: 'timeseries' | 'stat' | 'table' | 'bargauge';
  title: string;
  description?: string;
  targets: Target[];
  unit?: string;
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  stacked?: boolean;
  /** Stat panels: show the series name (e.g. the state) rather than the value. */
  showName?: boolean;
  mappings?: unknown[];
  /** Table panels: columns to hide. */
  hide?: string[];
}

interface Row {
  title: string;
  panels: PanelSpec[];
}

function panelJson(p: PanelSpec, id: number, x: number, y: number): Record<string, unknown> {
  const targets = p.targets.map((t, i) => ({
    datasource: DS,
    refId: String.fromCharCode(65 + i),
    expr: t.expr,
    legendFormat: t.legendFormat ?? '__auto',
    range: t.instant !== true,
    instant: t.instant === true,
    ...(t.format !== undefined ? { format: t.format } : {}),
  }));
  const defaults: Record<string, unknown> = { unit: p.unit ?? 'short' };
  if (p.min !== undefined) defaults.min = p.min;
  if (p.max !== undefined) defaults.max = p.max;
  if (p.mappings !== undefined) defaults.mappings = p.mappings;
  let options: Record<string, unknown>;
  let transformations: unknown[] = [];
  switch (p.type) {
    case 'timeseries':
      defaults.custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: p.stacked === true ? 30 : 10, showPoints: 'never', stacking: { mode: p.stacked === true ? 'normal' : 'none', group: 'A' } };
      options = { legend: { displayMode: 'table', placement: 'bottom', calcs: ['mean', 'max', 'lastNotNull'], showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } };
      break;
    case 'stat':
      options = {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        textMode: p.showName === true ? 'name' : 'auto',
        colorMode: p.showName === true ? 'none' : 'value',
        graphMode: 'none',
        justifyMode: 'auto',
        orientation: 'auto',
      };
      break;
    case 'bargauge':
      options = { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, displayMode: 'gradient', orientation: 'horizontal', showUnfilled: true };
      break;
    case 'table':
      options = { showHeader: true, cellHeight: 'sm' };
      transformations = [{ id: 'organize', options: { excludeByName: Object.fromEntries(['Time', '__name__', 'Value', ...(p.hide ?? [])].map((k) => [k, true])) } }];
      break;
  }
  return {
    id,
    type: p.type,
    title: p.title,
    ...(p.description !== undefined ? { description: p.description } : {}),
    datasource: DS,
    gridPos: { h: p.h ?? 8, w: p.w ?? 12, x, y },
    fieldConfig: { defaults, overrides: [] },
    options,
    ...(transformations.length > 0 ? { transformations } : {}),
    targets,
  };
}

function layout(rows: Row[]): unknown[] {
  const out: unknown[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    out.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let rowH = 0;
    for (const p of row.panels) {
      const w = p.w ?? 12;
      if (x + w > 24) {
        x = 0;
        y += rowH;
        rowH = 0;
      }
      out.push(panelJson(p, id++, x, y));
      x += w;
      rowH = Math.max(rowH, p.h ?? 8);
    }
    y += rowH;
  }
  return out;
}

function queryVariable(name: string, label: string, query: string, opts: { multi: boolean; includeAll: boolean }): Record<string, unknown> {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    definition: query,
    query: { query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    sort: 1,
    multi: opts.multi,
    includeAll: opts.includeAll,
    ...(opts.includeAll ? { allValue: '.*' } : {}),
    current: {},
    options: [],
    hide: 0,
  };
}

function dashboard(uid: string, title: string, description: string, variables: unknown[], rows: Row[]): Record<string, unknown> {
  const panelTypes = [...new Set(rows.flatMap((r) => r.panels.map((p) => p.type)))].sort();
  return {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', description: 'Prometheus that scrapes virt-exporter', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...panelTypes.map((t) => ({ type: 'panel', id: t, name: t, version: '' })),
    ],
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ title: 'virt-exporter dashboards', type: 'dashboards', tags: ['virt-exporter'], asDropdown: true, includeVars: true, keepTime: true }],
    panels: layout(rows),
    refresh: '30s',
    schemaVersion: 39,
    tags: ['virt-exporter'],
    templating: { list: variables },
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: '',
    title,
    uid,
    version: 1,
    weekStart: '',
  };
}

const M = METRICS;
const UP_MAPPINGS = [{ type: 'value', options: { '0': { text: 'DOWN', color: 'red', index: 0 }, '1': { text: 'UP', color: 'green', index: 1 } } }];

function commonVariables(): unknown[] {
  return [
    queryVariable('job', 'Job', `label_values(${M.up.name}, job)`, { multi: true, includeAll: true }),
    queryVariable('instance', 'Instance', `label_values(${M.up.name}{job=~"$job"}, instance)`, { multi: true, includeAll: true }),
  ];
}

function hostOverview(): Record<string, unknown> {
  const h = (spec: MetricSpec, extra = ''): string => g(spec, 'host', extra);
  const r = (spec: MetricSpec, extra = ''): string => rate(spec, 'host', extra);
  const top = (expr: string): string => `topk(10, ${expr})`;
  const rows: Row[] = [
    {
      title: 'Exporter health',
      panels: [
        { type: 'stat', title: 'Hypervisor reachable', targets: [{ expr: h(M.up), legendFormat: '{{instance}} ({{driver}})' }], w: 6, h: 4, mappings: UP_MAPPINGS },
        { type: 'stat', title: 'Failing collectors', description: 'Collectors that failed or missed the deadline in the last collection.', targets: [{ expr: `count(${h(M.collectorSuccess)} == 0) or vector(0)` }], w: 6, h: 4 },
        { type: 'stat', title: 'Domains', targets: [{ expr: `sum(${h(M.domains)})` }], w: 6, h: 4 },
        { type: 'table', title: 'Exporter build', targets: [{ expr: h(M.buildInfo), instant: true, format: 'table' }], w: 6, h: 4, hide: ['job'] },
        { type: 'timeseries', title: 'Collector success', targets: [{ expr: h(M.collectorSuccess), legendFormat: '{{instance}} {{collector}}' }], min: 0, max: 1 },
        {
          type: 'timeseries',
          title: 'Collection duration',
          targets: [
            { expr: h(M.collectionDuration), legendFormat: '{{instance}} whole collection' },
            { expr: h(M.collectorDuration), legendFormat: '{{instance}} {{collector}}' },
          ],
          unit: 's',
        },
        {
          type: 'timeseries',
          title: 'Read errors',
          description: 'Read errors per second by collector and stable error code.',
          targets: [{ expr: `sum by (instance, collector, code) (${r(M.collectionErrors)})`, legendFormat: '{{instance}} {{collector}} {{code}}' }],
          unit: 'short',
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Stuck domains',
          description: 'Domain reads per second that missed their deadline (a stuck monitor or process), by domain: the domain stays listed, its stuck part is missing.',
          targets: [{ expr: `sum by (instance, domain) (${r(M.domainReadTimeouts)})`, legendFormat: '{{instance}} {{domain}}' }],
          unit: 'short',
          w: 12,
        },
      ],
    },
    {
      title: 'Domains',
      panels: [
        { type: 'timeseries', title: 'Domains by state', targets: [{ expr: `sum by (state) (${h(M.domainState)}) > 0`, legendFormat: '{{state}}' }], stacked: true },
        { type: 'bargauge', title: 'Top domains by CPU (cores)', targets: [{ expr: top(`sum by (instance, domain) (${r(M.cpuTime)})`), legendFormat: '{{domain}} ({{instance}})', instant: true }], unit: 'short' },
        { type: 'bargauge', title: 'Top domains by memory', targets: [{ expr: top(h(M.memoryCurrent)), legendFormat: '{{domain}} ({{instance}})', instant: true }], unit: 'bytes' },
        {
          type: 'bargauge',
          title: 'Top domains by disk throughput',
          targets: [{ expr: top(`sum by (instance, domain) (${r(M.blockReadBytes)} + ${r(M.blockWriteBytes)})`), legendFormat: '{{domain}} ({{instance}})', instant: true }],
          unit: 'Bps',
        },
        {
          type: 'bargauge',
          title: 'Top domains by network throughput',
          targets: [{ expr: top(`sum by (instance, domain) (${r(M.netRxBytes)} + ${r(M.netTxBytes)})`), legendFormat: '{{domain}} ({{instance}})', instant: true }],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Disk IOPS by domain',
          targets: [{ expr: `sum by (instance, domain) (${r(M.blockReadRequests)} + ${r(M.blockWriteRequests)} + ${r(M.blockFlushRequests)})`, legendFormat: '{{domain}} ({{instance}})' }],
          unit: 'iops',
        },
      ],
    },
    {
      title: 'Host',
      panels: [
        { type: 'stat', title: 'Host CPUs', targets: [{ expr: h(M.hostCpus), legendFormat: '{{instance}}' }], w: 6, h: 4 },
        { type: 'stat', title: 'CPU frequency', targets: [{ expr: h(M.hostCpuFrequency), legendFormat: '{{instance}}' }], w: 6, h: 4, unit: 'hertz' },
        { type: 'stat', title: 'NUMA nodes', targets: [{ expr: h(M.hostNumaNodes), legendFormat: '{{instance}}' }], w: 6, h: 4 },
        { type: 'stat', title: 'Host memory', targets: [{ expr: h(M.hostMemory), legendFormat: '{{instance}}' }], w: 6, h: 4, unit: 'bytes' },
        {
          type: 'timeseries',
          title: 'Host CPU used by domains (cores)',
          targets: [
            { expr: `sum by (instance) (${r(M.cpuTime)})`, legendFormat: '{{instance}} used' },
            { expr: h(M.hostCpus), legendFormat: '{{instance}} capacity' },
          ],
        },
        {
          type: 'timeseries',
          title: 'vCPUs allocated vs host CPUs',
          targets: [
            { expr: `sum by (instance) (${h(M.vcpus)})`, legendFormat: '{{instance}} vCPUs' },
            { expr: h(M.hostCpus), legendFormat: '{{instance}} host CPUs' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Host memory',
          targets: [
            { expr: h(M.hostMemory), legendFormat: '{{instance}} total' },
            { expr: h(M.hostMemoryFree), legendFormat: '{{instance}} free' },
            { expr: `sum by (instance) (${h(M.memoryCurrent)})`, legendFormat: '{{instance}} allocated to domains' },
          ],
          unit: 'bytes',
        },
        { type: 'table', title: 'Host and hypervisor', targets: [{ expr: h(M.hostInfo), instant: true, format: 'table' }], hide: ['job'] },
      ],
    },
  ];
  return dashboard('virt-exporter-host', 'virt-exporter / Host overview', 'Domains, host capacity and exporter health of virt-exporter hosts.', commonVariables(), rows);
}

function domainDetail(): Record<string, unknown> {
  const d = (spec: MetricSpec, extra = ''): string => g(spec, 'domain', extra);
  const r = (spec: MetricSpec, extra = ''): string => rate(spec, 'domain', extra);
  const rows: Row[] = [
    {
      title: 'Domain',
      panels: [
        { type: 'stat', title: 'State', targets: [{ expr: `${d(M.domainState)} == 1`, legendFormat: '{{state}}' }], w: 4, h: 4, showName: true },
        { type: 'stat', title: 'vCPUs', targets: [{ expr: d(M.vcpus) }], w: 4, h: 4 },
        { type: 'stat', title: 'Maximum memory', targets: [{ expr: d(M.memoryMaximum) }], w: 4, h: 4, unit: 'bytes' },
        { type: 'table', title: 'Definition', targets: [{ expr: d(M.domainInfo), instant: true, format: 'table' }], w: 12, h: 4, hide: ['job'] },
      ],
    },
    {
      title: 'CPU',
      panels: [
        {
          type: 'timeseries',
          title: 'CPU usage (cores)',
          targets: [
            { expr: r(M.cpuTime), legendFormat: 'total' },
            { expr: r(M.cpuUser), legendFormat: 'user' },
            { expr: r(M.cpuSystem), legendFormat: 'system' },
          ],
        },
        { type: 'timeseries', title: 'CPU usage per vCPU (cores)', targets: [{ expr: r(M.vcpuTime), legendFormat: 'vCPU {{vcpu}}' }] },
        { type: 'timeseries', title: 'vCPU steal (waiting for a host CPU, cores)', targets: [{ expr: r(M.vcpuDelay), legendFormat: 'vCPU {{vcpu}}' }] },
      ],
    },
    {
      title: 'Memory',
      panels: [
        {
          type: 'timeseries',
          title: 'Memory allocation (host view)',
          targets: [
            { expr: d(M.memoryMaximum), legendFormat: 'maximum' },
            { expr: d(M.memoryCurrent), legendFormat: 'current' },
            { expr: d(M.memoryBalloon), legendFormat: 'balloon' },
            { expr: d(M.memoryRss), legendFormat: 'host RSS' },
          ],
          unit: 'bytes',
        },
        {
          type: 'timeseries',
          title: 'Guest memory (balloon stats)',
          description: 'Reported by the guest balloon driver; needs a memory stats period on the domain.',
          targets: [
            { expr: d(M.memoryGuestTotal), legendFormat: 'total' },
            { expr: `${d(M.memoryGuestTotal)} - ${d(M.memoryGuestFree)}`, legendFormat: 'used' },
            { expr: d(M.memoryGuestAvailable), legendFormat: 'available' },
            { expr: d(M.memoryGuestCaches), legendFormat: 'disk caches' },
            { expr: d(M.memoryGuestFree), legendFormat: 'free' },
          ],
          unit: 'bytes',
        },
        {
          type: 'timeseries',
          title: 'Guest swap',
          targets: [
            { expr: r(M.memorySwapIn), legendFormat: 'swap in' },
            { expr: r(M.memorySwapOut), legendFormat: 'swap out' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Guest page faults',
          targets: [
            { expr: r(M.memoryMajorFaults), legendFormat: 'major' },
            { expr: r(M.memoryMinorFaults), legendFormat: 'minor' },
          ],
          unit: 'short',
        },
      ],
    },
    {
      title: 'Block devices',
      panels: [
        {
          type: 'timeseries',
          title: 'Disk throughput',
          targets: [
            { expr: r(M.blockReadBytes), legendFormat: '{{device}} read' },
            { expr: r(M.blockWriteBytes), legendFormat: '{{device}} write' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Disk IOPS',
          targets: [
            { expr: r(M.blockReadRequests), legendFormat: '{{device}} read' },
            { expr: r(M.blockWriteRequests), legendFormat: '{{device}} write' },
            { expr: r(M.blockFlushRequests), legendFormat: '{{device}} flush' },
          ],
          unit: 'iops',
        },
        {
          type: 'timeseries',
          title: 'Disk latency (average per request)',
          targets: [
            { expr: `${r(M.blockReadTime)} / ${r(M.blockReadRequests)}`, legendFormat: '{{device}} read' },
            { expr: `${r(M.blockWriteTime)} / ${r(M.blockWriteRequests)}`, legendFormat: '{{device}} write' },
            { expr: `${r(M.blockFlushTime)} / ${r(M.blockFlushRequests)}`, legendFormat: '{{device}} flush' },
          ],
          unit: 's',
        },
        { type: 'timeseries', title: 'Disk errors', targets: [{ expr: r(M.blockErrors), legendFormat: '{{device}}' }], unit: 'short' },
        {
          type: 'timeseries',
          title: 'Disk capacity and allocation',
          targets: [
            { expr: d(M.blockCapacity), legendFormat: '{{device}} capacity' },
            { expr: d(M.blockAllocation), legendFormat: '{{device}} allocated' },
          ],
          unit: 'bytes',
        },
        { type: 'table', title: 'Block devices', targets: [{ expr: d(M.blockInfo), instant: true, format: 'table' }], hide: ['job', 'uuid'] },
      ],
    },
    {
      title: 'Network interfaces',
      panels: [
        {
          type: 'timeseries',
          title: 'Network throughput',
          targets: [
            { expr: r(M.netRxBytes), legendFormat: '{{interface}} receive' },
            { expr: r(M.netTxBytes), legendFormat: '{{interface}} transmit' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Network packets',
          targets: [
            { expr: r(M.netRxPackets), legendFormat: '{{interface}} receive' },
            { expr: r(M.netTxPackets), legendFormat: '{{interface}} transmit' },
          ],
          unit: 'pps',
        },
        {
          type: 'timeseries',
          title: 'Network errors and drops',
          targets: [
            { expr: r(M.netRxErrors), legendFormat: '{{interface}} receive errors' },
            { expr: r(M.netTxErrors), legendFormat: '{{interface}} transmit errors' },
            { expr: r(M.netRxDrops), legendFormat: '{{interface}} receive drops' },
            { expr: r(M.netTxDrops), legendFormat: '{{interface}} transmit drops' },
          ],
          unit: 'pps',
        },
        { type: 'table', title: 'Network interfaces', targets: [{ expr: d(M.netInfo), instant: true, format: 'table' }], hide: ['job', 'uuid'] },
      ],
    },
  ];
  const variables = [...commonVariables(), queryVariable('domain', 'Domain', `label_values(${M.domainInfo.name}{job=~"$job",instance=~"$instance"}, domain)`, { multi: false, includeAll: false })];
  return dashboard('virt-exporter-domain', 'virt-exporter / Domain', 'CPU, memory, block and network of one domain ($domain).', variables, rows);
}

/** File name -> dashboard JSON text, exactly as committed. */
export function generateDashboards(): Map<string, string> {
  const out = new Map<string, string>();
  out.set('virt-exporter-host.json', JSON.stringify(hostOverview(), null, 2) + '\n');
  out.set('virt-exporter-domain.json', JSON.stringify(domainDetail(), null, 2) + '\n');
  return out;
}

export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboards/', import.meta.url));

function main(argv: string[]): number {
  const check = argv.includes('--check');
  let stale = 0;
  for (const [name, text] of generateDashboards()) {
    const path = DASHBOARD_DIR + name;
    if (check) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing counts as stale
      }
      if (current !== text) {
        console.error(`dashboards/${name} is out of date; run node scripts/gen-dashboards.ts`);
        stale++;
      }
    } else {
      writeFileSync(path, text);
      console.log(`wrote dashboards/${name}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
