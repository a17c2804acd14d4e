/**
 * Generates the Grafana dashboards in dashboards/ with Grafana's own
 * TypeScript SDK (@grafana/grafana-foundation-sdk), and the Prometheus rules
 * (scripts/rules.ts) into dashboards/rules/, the Helm chart's files/ and
 * docs/alerts.md, and the chart's README from its values.yaml. Every selector is built from a metric catalogue entry, so a
 * renamed or removed metric breaks generation (and the staleness test)
 * instead of silently emptying a panel. Counters only through rate()/increase().
 *
 *   node scripts/gen-dashboards.ts          write the generated files
 *   node scripts/gen-dashboards.ts --check  exit 1 when a committed file differs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as common from '@grafana/grafana-foundation-sdk/common';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  VariableSort,
  type DashboardLink,
  type DataSourceRef,
  type ValueMapping,
} from '@grafana/grafana-foundation-sdk/dashboard';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { METRICS, REGISTRY_METRICS, type MetricId, type MetricSpec } from '../src/collectors/catalogue.ts';
import { chartReadme } from './gen-chart-readme.ts';
import { OTEL_FAILURES, alertsDoc, catalogueMetric, rulesYaml } from './rules.ts';

export const DS: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };
const RATE_WINDOW = '$__rate_interval';

/** Catalogue metrics deliberately left off the dashboards, with the reason. Every other one must be charted. */
export const NOT_CHARTED: Partial<Record<MetricId, string>> = {};

/**
 * Metrics the dashboards use that are not virt-exporter's catalogue: series
 * Prometheus adds to every scrape, and prom-client's default process metrics.
 */
export const EXTERNAL_METRICS: Record<string, { type: 'gauge' | 'counter'; source: string }> = {
  up: { type: 'gauge', source: 'Prometheus (scrape health)' },
  scrape_duration_seconds: { type: 'gauge', source: 'Prometheus (scrape duration)' },
  scrape_samples_scraped: { type: 'gauge', source: 'Prometheus (samples in the scrape)' },
  scrape_series_added: { type: 'gauge', source: 'Prometheus (new series in the scrape)' },
  process_cpu_seconds_total: { type: 'counter', source: 'prom-client default metrics' },
  process_resident_memory_bytes: { type: 'gauge', source: 'prom-client default metrics' },
  process_open_fds: { type: 'gauge', source: 'prom-client default metrics' },
  process_max_fds: { type: 'gauge', source: 'prom-client default metrics' },
  nodejs_eventloop_lag_p99_seconds: { type: 'gauge', source: 'prom-client default metrics' },
  nodejs_heap_size_used_bytes: { type: 'gauge', source: 'prom-client default metrics' },
};

/** Units Grafana shows "per second" (and cores: CPU seconds per second). Every chart of a plain rate uses one. */
export const PER_SECOND_UNITS = new Set(['Bps', 'binBps', 'iops', 'pps', 'ops', 'reqps', 'rps', 'wps', 'cps', 'suffix: cores', 'suffix: errors/s', 'suffix: faults/s']);

// ---- PromQL building: selectors only from catalogue entries --------------------------------

type Scope = 'all' | 'host' | 'domain';

function matchers(scope: Scope, extra: string): string {
  const base = scope === 'all' ? ['job=~"$job"'] : ['job=~"$job"', 'instance=~"$instance"'];
  if (scope === 'domain') base.push('domain="$domain"');
  if (extra !== '') base.push(extra);
  return `{${base.join(',')}}`;
}

type Spec = MetricSpec | { name: string; type: 'gauge' | 'counter' };
const ext = (name: string): Spec => {
  const e = EXTERNAL_METRICS[name];
  if (e === undefined) throw new Error(`${name} is not an external metric`);
  return { name, type: e.type };
};

/** A gauge selector; refuses counters, which only make sense as rates. */
function g(spec: Spec, scope: Scope, extra = ''): string {
  if (spec.type !== 'gauge') throw new Error(`${spec.name} is a ${spec.type}; chart it with rate()`);
  return `${spec.name}${matchers(scope, extra)}`;
}

/** rate() of a counter over Grafana's rate interval; refuses gauges. */
function rate(spec: Spec, scope: Scope, extra = ''): string {
  if (spec.type !== 'counter') throw new Error(`${spec.name} is a ${spec.type}; rate() needs a counter`);
  return `rate(${spec.name}${matchers(scope, extra)}[${RATE_WINDOW}])`;
}

/** An average per request: rate(time) / rate(requests), blank rather than NaN when there were no requests. */
function perRequest(time: MetricSpec, requests: MetricSpec, scope: Scope): string {
  return `${rate(time, scope)} / (${rate(requests, scope)} > 0)`;
}

/**
 * A per-instance zero for counters that may not exist yet (nothing happened):
 * `expr or on (instance) zeroPerInstance(...)` reads 0 instead of "No data"
 * on the hosts where nothing happened, and only there.
 */
function zeroPerInstance(scope: Scope, labels: Record<string, string>): string {
  let out = `sum by (instance) (0 * ${g(M.up, scope)})`;
  for (const [k, v] of Object.entries(labels)) out = `label_replace(${out}, "${k}", "${v}", "", "")`;
  return out;
}

// ---- panels -------------------------------------------------------------------------------------

interface Target {
  expr: string;
  legend: string;
  instant?: boolean;
  table?: boolean;
}

interface PanelSpec {
  type: 'timeseries' | 'stat' | 'table' | 'bargauge';
  title: string;
  description: string;
  targets: Target[];
  unit?: string;
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  stacked?: boolean;
  /** Stat panels: show the series name (e.g. the state) rather than the value. */
  showName?: boolean;
  mappings?: ValueMapping[];
  /** Table columns to hide. */
  hide?: string[];
  /** Top-N panels: each bar links to the domain dashboard with its domain and instance. */
  drillDown?: boolean;
}

interface Row {
  title: string;
  panels: PanelSpec[];
}

export const DOMAIN_UID = 'virt-exporter-domain';
export const DRILL_DOWN_URL = `/d/${DOMAIN_UID}/virt-exporter-domain?\${datasource:queryparam}&var-job=\${__field.labels.job}&var-instance=\${__field.labels.instance}&var-domain=\${__field.labels.domain}&\${__url_time_range}`;

function dataLink(title: string, url: string): cog.Builder<DashboardLink> {
  // Field data links are {title, url}; the SDK types them as dashboard links.
  return { build: () => ({ title, url }) as unknown as DashboardLink };
}

type AnyPanelBuilder = timeseries.PanelBuilder | stat.PanelBuilder | table.PanelBuilder | bargauge.PanelBuilder;

function buildPanel(p: PanelSpec, id: number, x: number, y: number): AnyPanelBuilder {
  let b: AnyPanelBuilder;
  switch (p.type) {
    case 'timeseries': {
      const t = new timeseries.PanelBuilder()
        .lineWidth(1)
        .fillOpacity(p.stacked === true ? 30 : 10)
        .showPoints(common.VisibilityMode.Never)
        .stacking(new common.StackingConfigBuilder().mode(p.stacked === true ? common.StackingMode.Normal : common.StackingMode.None).group('A'))
        .legend(new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Bottom).calcs(['mean', 'max', 'lastNotNull']).showLegend(true))
        .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
      b = t;
      break;
    }
    case 'stat':
      b = new stat.PanelBuilder()
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
        .textMode(p.showName === true ? common.BigValueTextMode.Name : common.BigValueTextMode.Auto)
        .colorMode(p.showName === true ? common.BigValueColorMode.None : common.BigValueColorMode.Value)
        .graphMode(common.BigValueGraphMode.None);
      break;
    case 'bargauge':
      b = new bargauge.PanelBuilder()
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
        .displayMode(common.BarGaugeDisplayMode.Gradient)
        .orientation(common.VizOrientation.Horizontal)
        .showUnfilled(true);
      break;
    case 'table':
      b = new table.PanelBuilder()
        .showHeader(true)
        .cellHeight(common.TableCellHeight.Sm)
        .withTransformation({ id: 'organize', options: { excludeByName: Object.fromEntries(['Time', '__name__', 'Value', ...(p.hide ?? [])].map((k) => [k, true])) } });
      break;
  }
  b.id(id)
    .title(p.title)
    .description(p.description)
    .datasource(DS)
    .gridPos({ h: p.h ?? 8, w: p.w ?? 12, x, y })
    .unit(p.unit ?? 'short');
  if (p.min !== undefined) b.min(p.min);
  if (p.max !== undefined) b.max(p.max);
  if (p.mappings !== undefined) b.mappings(p.mappings);
  if (p.drillDown === true) b.dataLinks([dataLink('Domain ${__field.labels.domain} on ${__field.labels.instance}', DRILL_DOWN_URL)]);
  p.targets.forEach((t, i) => {
    const q = new prometheus.DataqueryBuilder().datasource(DS).refId(String.fromCharCode(65 + i)).expr(t.expr).legendFormat(t.legend);
    if (t.instant === true) q.instant();
    else q.range();
    if (t.table === true) q.format(prometheus.PromQueryFormat.Table);
    b.withTarget(q);
  });
  return b;
}

function queryVariable(name: string, label: string, query: string, opts: { multi: boolean; includeAll: boolean }): QueryVariableBuilder {
  const v = new QueryVariableBuilder(name)
    .label(label)
    .datasource(DS)
    .query({ query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 })
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(opts.multi)
    .includeAll(opts.includeAll);
  if (opts.includeAll) v.allValue('.*');
  return v;
}

function dashboard(uid: string, title: string, description: string, variables: QueryVariableBuilder[], rows: Row[]): Record<string, unknown> {
  const d = new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['virt-exporter'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .refresh('30s')
    .time({ from: 'now-6h', to: 'now' })
    .timezone('')
    .link(new DashboardLinkBuilder('virt-exporter dashboards').type(DashboardLinkType.Dashboards).tags(['virt-exporter']).asDropdown(true).includeVars(true).keepTime(true))
    .withVariable(new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'));
  for (const v of variables) d.withVariable(v);
  let id = 1;
  let y = 0;
  for (const row of rows) {
    d.withRow(new RowBuilder(row.title).id(id++).gridPos({ h: 1, w: 24, x: 0, y }));
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
      d.withPanel(buildPanel(p, id++, x, y));
      x += w;
      rowH = Math.max(rowH, p.h ?? 8);
    }
    y += rowH;
  }
  return d.build() as unknown as Record<string, unknown>;
}

const M = METRICS;
const R = REGISTRY_METRICS;
const UP_MAPPINGS: ValueMapping[] = [
  { type: 'value', options: { '0': { text: 'DOWN', color: 'red', index: 0 }, '1': { text: 'UP', color: 'green', index: 1 } } } as ValueMapping,
];

function commonVariables(): QueryVariableBuilder[] {
  return [
    queryVariable('job', 'Job', `label_values(${M.up.name}, job)`, { multi: true, includeAll: true }),
    queryVariable('instance', 'Instance', `label_values(${M.up.name}{job=~"$job"}, instance)`, { multi: true, includeAll: true }),
  ];
}

function hostOverview(): Record<string, unknown> {
  const h = (spec: Spec, extra = ''): string => g(spec, 'host', extra);
  const r = (spec: Spec, extra = ''): string => rate(spec, 'host', extra);
  const top = (expr: string): string => `topk(10, ${expr})`;
  const rows: Row[] = [
    {
      title: 'Exporter health',
      panels: [
        { type: 'stat', title: 'Hypervisor reachable', description: 'Whether the last collection reached the hypervisor driver (virt_up).', targets: [{ expr: h(M.up), legend: '{{instance}} ({{driver}})' }], w: 6, h: 4, mappings: UP_MAPPINGS },
        {
          type: 'stat',
          title: 'Failing collectors',
          description: 'Collectors that failed or missed the deadline in the last collection, per host (0 when all succeed).',
          targets: [{ expr: `count by (instance) (${h(M.collectorSuccess)} == 0) or sum by (instance) (0 * ${h(M.up)})`, legend: '{{instance}}' }],
          w: 6,
          h: 4,
        },
        { type: 'stat', title: 'Domains', description: 'Domains reported per host, after the include/exclude filters.', targets: [{ expr: h(M.domains), legend: '{{instance}}' }], w: 6, h: 4 },
        {
          type: 'stat',
          title: 'Read errors (last hour)',
          description: 'Driver read errors per host in the last hour (0 when none).',
          targets: [{ expr: `sum by (instance) (increase(${M.collectionErrors.name}${matchers('host', '')}[1h])) or sum by (instance) (0 * ${h(M.up)})`, legend: '{{instance}}' }],
          w: 6,
          h: 4,
        },
      ],
    },
    {
      title: 'Domains',
      panels: [
        {
          type: 'timeseries',
          title: 'Domains by state',
          description: 'Number of domains in each state, per host.',
          targets: [{ expr: `sum by (instance, state) (${h(M.domainState)}) > 0`, legend: '{{instance}} {{state}}' }],
          stacked: true,
        },
        {
          type: 'bargauge',
          title: 'Top domains by CPU (cores)',
          description: 'The 10 domains using the most CPU, in cores (CPU seconds per second). Click a bar for the domain dashboard.',
          targets: [{ expr: top(`sum by (job, instance, domain) (${r(M.cpuTime)})`), legend: '{{domain}} ({{instance}})', instant: true }],
          unit: 'suffix: cores',
          drillDown: true,
        },
        {
          type: 'bargauge',
          title: 'Top domains by memory',
          description: 'The 10 domains with the most memory allocated on the host. Click a bar for the domain dashboard.',
          targets: [{ expr: top(h(M.memoryCurrent)), legend: '{{domain}} ({{instance}})', instant: true }],
          unit: 'bytes',
          drillDown: true,
        },
        {
          type: 'bargauge',
          title: 'Top domains by disk throughput',
          description: 'The 10 domains reading and writing the most bytes per second on their disks. Click a bar for the domain dashboard.',
          targets: [{ expr: top(`sum by (job, instance, domain) (${r(M.blockReadBytes)} + ${r(M.blockWriteBytes)})`), legend: '{{domain}} ({{instance}})', instant: true }],
          unit: 'Bps',
          drillDown: true,
        },
        {
          type: 'bargauge',
          title: 'Top domains by network throughput',
          description: 'The 10 domains receiving and sending the most bytes per second. Click a bar for the domain dashboard.',
          targets: [{ expr: top(`sum by (job, instance, domain) (${r(M.netRxBytes)} + ${r(M.netTxBytes)})`), legend: '{{domain}} ({{instance}})', instant: true }],
          unit: 'Bps',
          drillDown: true,
        },
        {
          type: 'timeseries',
          title: 'Disk IOPS by domain',
          description: 'Read, write and flush requests per second of each domain, all disks together.',
          targets: [{ expr: `sum by (instance, domain) (${r(M.blockReadRequests)} + ${r(M.blockWriteRequests)} + ${r(M.blockFlushRequests)})`, legend: '{{domain}} ({{instance}})' }],
          unit: 'iops',
        },
      ],
    },
    {
      title: 'Host',
      panels: [
        { type: 'stat', title: 'Host CPUs', description: 'Logical CPUs of each host.', targets: [{ expr: h(M.hostCpus), legend: '{{instance}}' }], w: 6, h: 4 },
        { type: 'stat', title: 'CPU frequency', description: 'Nominal CPU frequency of each host.', targets: [{ expr: h(M.hostCpuFrequency), legend: '{{instance}}' }], w: 6, h: 4, unit: 'hertz' },
        { type: 'stat', title: 'NUMA nodes', description: 'NUMA nodes of each host.', targets: [{ expr: h(M.hostNumaNodes), legend: '{{instance}}' }], w: 6, h: 4 },
        { type: 'stat', title: 'Host memory', description: 'Physical memory of each host.', targets: [{ expr: h(M.hostMemory), legend: '{{instance}}' }], w: 6, h: 4, unit: 'bytes' },
        {
          type: 'timeseries',
          title: 'Host CPU used by domains (cores)',
          description: 'CPU used by all domains of a host, in cores, against the host CPUs.',
          targets: [
            { expr: `sum by (instance) (${r(M.cpuTime)})`, legend: '{{instance}} used' },
            { expr: h(M.hostCpus), legend: '{{instance}} capacity' },
          ],
          unit: 'suffix: cores',
        },
        {
          type: 'timeseries',
          title: 'vCPUs allocated vs host CPUs',
          description: 'vCPUs of all domains of a host against its logical CPUs (above 1:1 the host CPUs are overcommitted).',
          targets: [
            { expr: `sum by (instance) (${h(M.vcpus)})`, legend: '{{instance}} vCPUs' },
            { expr: h(M.hostCpus), legend: '{{instance}} host CPUs' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Host memory',
          description: 'Physical memory of each host: total, free, and allocated to domains.',
          targets: [
            { expr: h(M.hostMemory), legend: '{{instance}} total' },
            { expr: h(M.hostMemoryFree), legend: '{{instance}} free' },
            { expr: `sum by (instance) (${h(M.memoryCurrent)})`, legend: '{{instance}} allocated to domains' },
          ],
          unit: 'bytes',
        },
        { type: 'table', title: 'Host and hypervisor', description: 'Host name, CPU model and hypervisor version of each host.', targets: [{ expr: h(M.hostInfo), legend: '{{instance}}', instant: true, table: true }], hide: ['job'] },
      ],
    },
  ];
  return dashboard('virt-exporter-host', 'virt-exporter / Host overview', 'Domains and host capacity of virt-exporter hosts.', commonVariables(), rows);
}

function domainDetail(): Record<string, unknown> {
  const d = (spec: Spec, extra = ''): string => g(spec, 'domain', extra);
  const r = (spec: Spec, extra = ''): string => rate(spec, 'domain', extra);
  const rows: Row[] = [
    {
      title: 'Domain',
      panels: [
        { type: 'stat', title: 'State', description: 'Current state of the domain.', targets: [{ expr: `${d(M.domainState)} == 1`, legend: '{{state}} ({{instance}})' }], w: 4, h: 4, showName: true },
        { type: 'stat', title: 'vCPUs', description: 'Number of vCPUs of the domain.', targets: [{ expr: d(M.vcpus), legend: '{{instance}}' }], w: 4, h: 4 },
        { type: 'stat', title: 'Maximum memory', description: 'Maximum memory the domain may be given.', targets: [{ expr: d(M.memoryMaximum), legend: '{{instance}}' }], w: 4, h: 4, unit: 'bytes' },
        { type: 'table', title: 'Definition', description: 'OS type, architecture and machine type of the domain.', targets: [{ expr: d(M.domainInfo), legend: '{{instance}}', instant: true, table: true }], w: 12, h: 4, hide: ['job'] },
      ],
    },
    {
      title: 'CPU',
      panels: [
        {
          type: 'timeseries',
          title: 'CPU usage (cores)',
          description: 'CPU used by the domain in cores (CPU seconds per second): all vCPUs and emulation, and the user/system split of its host process where known.',
          targets: [
            { expr: r(M.cpuTime), legend: '{{instance}} total' },
            { expr: r(M.cpuUser), legend: '{{instance}} user' },
            { expr: r(M.cpuSystem), legend: '{{instance}} system' },
          ],
          unit: 'suffix: cores',
        },
        { type: 'timeseries', title: 'CPU usage per vCPU (cores)', description: 'CPU used by each vCPU, in cores.', targets: [{ expr: r(M.vcpuTime), legend: '{{instance}} vCPU {{vcpu}}' }], unit: 'suffix: cores' },
        {
          type: 'timeseries',
          title: 'vCPU steal (waiting for a host CPU, cores)',
          description: 'Time each vCPU was runnable but waiting for a host CPU, per second (steal time as the guest sees it).',
          targets: [{ expr: r(M.vcpuDelay), legend: '{{instance}} vCPU {{vcpu}}' }],
          unit: 'suffix: cores',
        },
      ],
    },
    {
      title: 'Memory',
      panels: [
        {
          type: 'timeseries',
          title: 'Memory allocation (host view)',
          description: 'Maximum and current memory of the domain, its balloon target and the resident memory of its host process.',
          targets: [
            { expr: d(M.memoryMaximum), legend: '{{instance}} maximum' },
            { expr: d(M.memoryCurrent), legend: '{{instance}} current' },
            { expr: d(M.memoryBalloon), legend: '{{instance}} balloon' },
            { expr: d(M.memoryRss), legend: '{{instance}} host RSS' },
          ],
          unit: 'bytes',
        },
        {
          type: 'timeseries',
          title: 'Guest memory (balloon stats)',
          description: 'Reported by the guest balloon driver; needs a balloon with a stats period on the domain, otherwise empty.',
          targets: [
            { expr: d(M.memoryGuestTotal), legend: '{{instance}} total' },
            { expr: `${d(M.memoryGuestTotal)} - ${d(M.memoryGuestFree)}`, legend: '{{instance}} used' },
            { expr: d(M.memoryGuestAvailable), legend: '{{instance}} available' },
            { expr: d(M.memoryGuestCaches), legend: '{{instance}} disk caches' },
            { expr: d(M.memoryGuestFree), legend: '{{instance}} free' },
          ],
          unit: 'bytes',
        },
        {
          type: 'timeseries',
          title: 'Guest swap',
          description: 'Bytes per second the guest swaps in and out, from its balloon driver.',
          targets: [
            { expr: r(M.memorySwapIn), legend: '{{instance}} swap in' },
            { expr: r(M.memorySwapOut), legend: '{{instance}} swap out' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Guest page faults',
          description: 'Major and minor page faults per second in the guest, from its balloon driver.',
          targets: [
            { expr: r(M.memoryMajorFaults), legend: '{{instance}} major' },
            { expr: r(M.memoryMinorFaults), legend: '{{instance}} minor' },
          ],
          unit: 'suffix: faults/s',
        },
      ],
    },
    {
      title: 'Block devices',
      panels: [
        {
          type: 'timeseries',
          title: 'Disk throughput',
          description: 'Bytes per second read from and written to each disk.',
          targets: [
            { expr: r(M.blockReadBytes), legend: '{{instance}} {{device}} read' },
            { expr: r(M.blockWriteBytes), legend: '{{instance}} {{device}} write' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Disk IOPS',
          description: 'Read, write and flush requests per second on each disk.',
          targets: [
            { expr: r(M.blockReadRequests), legend: '{{instance}} {{device}} read' },
            { expr: r(M.blockWriteRequests), legend: '{{instance}} {{device}} write' },
            { expr: r(M.blockFlushRequests), legend: '{{instance}} {{device}} flush' },
          ],
          unit: 'iops',
        },
        {
          type: 'timeseries',
          title: 'Disk latency (average per request)',
          description: 'Average time per read, write and flush request over the interval; blank (not NaN) while a disk has no requests of that kind.',
          targets: [
            { expr: perRequest(M.blockReadTime, M.blockReadRequests, 'domain'), legend: '{{instance}} {{device}} read' },
            { expr: perRequest(M.blockWriteTime, M.blockWriteRequests, 'domain'), legend: '{{instance}} {{device}} write' },
            { expr: perRequest(M.blockFlushTime, M.blockFlushRequests, 'domain'), legend: '{{instance}} {{device}} flush' },
          ],
          unit: 's',
        },
        { type: 'timeseries', title: 'Disk errors', description: 'Failed requests per second on each disk (0 when none).', targets: [{ expr: r(M.blockErrors), legend: '{{instance}} {{device}}' }], unit: 'suffix: errors/s' },
        {
          type: 'timeseries',
          title: 'Disk capacity and allocation',
          description: 'Logical size of each disk and the host storage allocated to it.',
          targets: [
            { expr: d(M.blockCapacity), legend: '{{instance}} {{device}} capacity' },
            { expr: d(M.blockAllocation), legend: '{{instance}} {{device}} allocated' },
          ],
          unit: 'bytes',
        },
        { type: 'table', title: 'Block devices', description: 'Disks of the domain and their backing paths.', targets: [{ expr: d(M.blockInfo), legend: '{{instance}}', instant: true, table: true }], hide: ['job', 'uuid'] },
      ],
    },
    {
      title: 'Network interfaces',
      panels: [
        {
          type: 'timeseries',
          title: 'Network throughput',
          description: 'Bytes per second received and sent by the guest on each interface.',
          targets: [
            { expr: r(M.netRxBytes), legend: '{{instance}} {{interface}} receive' },
            { expr: r(M.netTxBytes), legend: '{{instance}} {{interface}} transmit' },
          ],
          unit: 'Bps',
        },
        {
          type: 'timeseries',
          title: 'Network packets',
          description: 'Packets per second received and sent by the guest on each interface.',
          targets: [
            { expr: r(M.netRxPackets), legend: '{{instance}} {{interface}} receive' },
            { expr: r(M.netTxPackets), legend: '{{instance}} {{interface}} transmit' },
          ],
          unit: 'pps',
        },
        {
          type: 'timeseries',
          title: 'Network errors and drops',
          description: 'Errors and dropped packets per second on each interface (0 when none).',
          targets: [
            { expr: r(M.netRxErrors), legend: '{{instance}} {{interface}} receive errors' },
            { expr: r(M.netTxErrors), legend: '{{instance}} {{interface}} transmit errors' },
            { expr: r(M.netRxDrops), legend: '{{instance}} {{interface}} receive drops' },
            { expr: r(M.netTxDrops), legend: '{{instance}} {{interface}} transmit drops' },
          ],
          unit: 'pps',
        },
        { type: 'table', title: 'Network interfaces', description: 'Interfaces of the domain and their MAC addresses.', targets: [{ expr: d(M.netInfo), legend: '{{instance}}', instant: true, table: true }], hide: ['job', 'uuid'] },
      ],
    },
  ];
  const variables = [...commonVariables(), queryVariable('domain', 'Domain', `label_values(${M.domainInfo.name}{job=~"$job",instance=~"$instance"}, domain)`, { multi: false, includeAll: false })];
  return dashboard(DOMAIN_UID, 'virt-exporter / Domain', 'CPU, memory, block and network of one domain ($domain).', variables, rows);
}

function exporterHealth(): Record<string, unknown> {
  const h = (spec: Spec, extra = ''): string => g(spec, 'host', extra);
  const r = (spec: Spec, extra = ''): string => rate(spec, 'host', extra);
  const rows: Row[] = [
    {
      title: 'Collection',
      panels: [
        { type: 'stat', title: 'Scrape target up', description: "Whether Prometheus' last scrape of the exporter succeeded (up).", targets: [{ expr: h(ext('up')), legend: '{{instance}}' }], w: 8, h: 4, mappings: UP_MAPPINGS },
        { type: 'stat', title: 'Hypervisor reachable', description: 'Whether the last collection reached the hypervisor driver (virt_up).', targets: [{ expr: h(M.up), legend: '{{instance}} ({{driver}})' }], w: 8, h: 4, mappings: UP_MAPPINGS },
        { type: 'table', title: 'Exporter build', description: 'Version of virt-exporter and Node.js on each host.', targets: [{ expr: h(M.buildInfo), legend: '{{instance}}', instant: true, table: true }], w: 8, h: 4, hide: ['job'] },
        { type: 'timeseries', title: 'Collector success', description: 'Whether each collector succeeded in the last collection (1) or failed or missed the deadline (0).', targets: [{ expr: h(M.collectorSuccess), legend: '{{instance}} {{collector}}' }], min: 0, max: 1 },
        {
          type: 'timeseries',
          title: 'Collection duration',
          description: 'Wall time of the whole collection and of each collector\'s driver read; close to --collect.timeout means parts are about to miss the deadline.',
          targets: [
            { expr: h(M.collectionDuration), legend: '{{instance}} whole collection' },
            { expr: h(M.collectorDuration), legend: '{{instance}} {{collector}}' },
          ],
          unit: 's',
        },
        {
          type: 'timeseries',
          title: 'Read errors',
          description: 'Driver read errors per second by collector and stable error code (docs/errors.md); 0 when none.',
          targets: [
            {
              expr: `sum by (instance, collector, code) (${r(M.collectionErrors)}) or on (instance) ${zeroPerInstance('host', { collector: 'all', code: 'none' })}`,
              legend: '{{instance}} {{collector}} {{code}}',
            },
          ],
          unit: 'suffix: errors/s',
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Stuck domains',
          description: 'Domain reads per second that missed their deadline (a stuck monitor or process), by domain: the domain stays listed, only its stuck part is missing (virt_domain_read_timeouts_total).',
          targets: [{ expr: `sum by (instance, domain) (${r(M.domainReadTimeouts)})`, legend: '{{instance}} {{domain}}' }],
          unit: 'suffix: errors/s',
          w: 12,
        },
      ],
    },
    {
      title: 'Scrapes',
      panels: [
        {
          type: 'timeseries',
          title: 'Scrape duration',
          description: 'How long Prometheus\' scrapes of the exporter take (scrape_duration_seconds); compare with the scrape timeout.',
          targets: [{ expr: h(ext('scrape_duration_seconds')), legend: '{{instance}}' }],
          unit: 's',
        },
        {
          type: 'timeseries',
          title: 'Scrape size',
          description: 'Samples in each scrape and new series it added (scrape_samples_scraped, scrape_series_added).',
          targets: [
            { expr: h(ext('scrape_samples_scraped')), legend: '{{instance}} samples' },
            { expr: h(ext('scrape_series_added')), legend: '{{instance}} new series' },
          ],
        },
      ],
    },
    {
      title: 'Admin API and OpenTelemetry',
      panels: [
        {
          type: 'timeseries',
          title: 'Admin requests',
          description: 'Admin API requests per second by action and outcome (allowed and refused); 0 when none or when the admin endpoint is off.',
          targets: [
            {
              expr: `sum by (instance, action, outcome) (${r(R.adminRequests)}) or on (instance) ${zeroPerInstance('host', { action: 'all', outcome: 'none' })}`,
              legend: '{{instance}} {{action}} {{outcome}}',
            },
          ],
          unit: 'reqps',
        },
        {
          type: 'timeseries',
          title: 'OTLP export failures',
          description: 'OTLP push failures per second by signal and reason; 0 when none or when OTLP push is off.',
          targets: [
            {
              expr: `sum by (instance, signal, reason) (${r(catalogueMetric(OTEL_FAILURES))}) or on (instance) ${zeroPerInstance('host', { signal: 'all', reason: 'none' })}`,
              legend: '{{instance}} {{signal}} {{reason}}',
            },
          ],
          unit: 'suffix: errors/s',
        },
      ],
    },
    {
      title: 'Process',
      panels: [
        { type: 'timeseries', title: 'CPU', description: 'CPU used by the exporter process, in cores.', targets: [{ expr: r(ext('process_cpu_seconds_total')), legend: '{{instance}}' }], unit: 'suffix: cores' },
        {
          type: 'timeseries',
          title: 'Memory',
          description: 'Resident memory of the exporter process and its JavaScript heap in use.',
          targets: [
            { expr: h(ext('process_resident_memory_bytes')), legend: '{{instance}} resident' },
            { expr: h(ext('nodejs_heap_size_used_bytes')), legend: '{{instance}} heap used' },
          ],
          unit: 'bytes',
        },
        {
          type: 'timeseries',
          title: 'File descriptors',
          description: 'Open file descriptors of the exporter process against its limit.',
          targets: [
            { expr: h(ext('process_open_fds')), legend: '{{instance}} open' },
            { expr: h(ext('process_max_fds')), legend: '{{instance}} limit' },
          ],
        },
        { type: 'timeseries', title: 'Event loop lag (p99)', description: '99th percentile of the Node.js event loop lag: high values delay scrapes.', targets: [{ expr: h(ext('nodejs_eventloop_lag_p99_seconds')), legend: '{{instance}}' }], unit: 's' },
      ],
    },
  ];
  return dashboard('virt-exporter-health', 'virt-exporter / Exporter health', 'The exporter\'s own health: collectors, scrapes, admin requests, OTLP push and the process.', commonVariables(), rows);
}

export const RULES_FILE = 'dashboards/rules/virt-exporter.rules.yml';

/** Path relative to the repository -> generated text, exactly as committed. */
export function generateAll(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, text] of generateDashboards()) out.set(`dashboards/${name}`, text);
  const rules = rulesYaml();
  out.set(RULES_FILE, rules);
  out.set('helm/virt-exporter/files/virt-exporter.rules.yml', rules);
  out.set('docs/alerts.md', alertsDoc());
  out.set('helm/virt-exporter/README.md', chartReadme());
  return out;
}

/** File name in dashboards/ -> dashboard JSON text, exactly as committed. */
export function generateDashboards(): Map<string, string> {
  const out = new Map<string, string>();
  out.set('virt-exporter-host.json', JSON.stringify(hostOverview(), null, 2) + '\n');
  out.set('virt-exporter-domain.json', JSON.stringify(domainDetail(), null, 2) + '\n');
  out.set('virt-exporter-health.json', JSON.stringify(exporterHealth(), null, 2) + '\n');
  return out;
}

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboards/', import.meta.url));

function main(argv: string[]): number {
  const check = argv.includes('--check');
  let stale = 0;
  for (const [name, text] of generateAll()) {
    const path = ROOT + name;
    if (check) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing counts as stale
      }
      if (current !== text) {
        console.error(`${name} is out of date; run node scripts/gen-dashboards.ts`);
        stale++;
      }
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${name}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
