/**
 * The Prometheus alerting and recording rules of virt-exporter, built from the
 * metric catalogue like the dashboards. scripts/gen-dashboards.ts writes them
 * to dashboards/rules/virt-exporter.rules.yml, to the Helm chart's
 * files/ (its optional PrometheusRule) and their runbooks to docs/alerts.md.
 *
 * Every alert is `query op threshold`: the tests run `query` on a real
 * Prometheus (it must return series, none NaN) and the whole expression
 * through `promtool test rules` with firing and non-firing series.
 */
import YAML from 'yaml';
import { METRIC_LIST, METRICS, REGISTRY_METRICS, type MetricSpec } from '../src/collectors/catalogue.ts';

const M = METRICS;

/** Which scrape jobs are virt-exporter's (the chart's ServiceMonitor/PodMonitor name them after the release's fullname). */
export const JOB_SELECTOR = 'job=~".*virt-exporter.*"';
/** Default deadline of one collection (--collect.timeout); "slow" is 80% of it. */
export const COLLECT_TIMEOUT_SECONDS = 5;
export const RATE_WINDOW = '5m';

/** The per-domain and per-host rates the dashboards chart, recorded. */
export const DOMAIN_KEY = 'job, instance, domain, uuid';

export interface RecordSpec {
  record: string;
  expr: string;
}

function counter(spec: MetricSpec): string {
  if (spec.type !== 'counter') throw new Error(`${spec.name} is a ${spec.type}`);
  return spec.name;
}
function gauge(spec: MetricSpec): string {
  if (spec.type !== 'gauge') throw new Error(`${spec.name} is a ${spec.type}`);
  return spec.name;
}
const perDomainRate = (spec: MetricSpec): string => `sum by (${DOMAIN_KEY}) (rate(${counter(spec)}[${RATE_WINDOW}]))`;

export const RECORDS = {
  cpuCores: { record: `instance_domain:${M.cpuTime.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.cpuTime) },
  cpuRatio: {
    record: `instance_domain:virt_domain_cpu_usage:ratio_rate${RATE_WINDOW}`,
    expr: `${perDomainRate(M.cpuTime)} / on (${DOMAIN_KEY}) (${gauge(M.vcpus)} > 0)`,
  },
  stealRatio: {
    record: `instance_domain:virt_domain_vcpu_steal:ratio_rate${RATE_WINDOW}`,
    expr: `${perDomainRate(M.vcpuDelay)} / on (${DOMAIN_KEY}) (${gauge(M.vcpus)} > 0)`,
  },
  blockRead: { record: `instance_domain:${M.blockReadBytes.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.blockReadBytes) },
  blockWrite: { record: `instance_domain:${M.blockWriteBytes.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.blockWriteBytes) },
  blockIops: {
    record: `instance_domain:virt_domain_block_requests:rate${RATE_WINDOW}`,
    expr: `${perDomainRate(M.blockReadRequests)} + ${perDomainRate(M.blockWriteRequests)} + ${perDomainRate(M.blockFlushRequests)}`,
  },
  blockErrors: { record: `instance_domain:${M.blockErrors.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.blockErrors) },
  netRx: { record: `instance_domain:${M.netRxBytes.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.netRxBytes) },
  netTx: { record: `instance_domain:${M.netTxBytes.name.replace(/_total$/, '')}:rate${RATE_WINDOW}`, expr: perDomainRate(M.netTxBytes) },
  hostCpuCores: {
    record: `instance:virt_domain_cpu_usage_cores:sum_rate${RATE_WINDOW}`,
    expr: `sum by (job, instance) (rate(${counter(M.cpuTime)}[${RATE_WINDOW}]))`,
  },
} as const satisfies Record<string, RecordSpec>;

export interface AlertSpec {
  alert: string;
  /** The measured quantity; the tests check it returns series on a real Prometheus. */
  query: string;
  op: '>' | '<' | '==';
  threshold: number;
  for: string;
  severity: 'critical' | 'warning' | 'info';
  summary: string;
  description: string;
  /** Runbook in docs/alerts.md: what it means, and what to do. */
  meaning: string;
  actions: string[];
}

/**
 * A catalogue entry by its Prometheus name, wherever in the catalogue it is
 * defined (snapshot metrics or registry counters); throws when it is missing.
 */
export function catalogueMetric(name: string): MetricSpec {
  const spec = [...METRIC_LIST, ...Object.values(REGISTRY_METRICS)].find((m) => m.name === name);
  if (spec === undefined) throw new Error(`${name} is not in src/collectors/catalogue.ts`);
  return spec;
}

/** Counted by the OTLP exporter (collector 'exporter', OTel name virt.otel.export.failures). */
export const OTEL_FAILURES = counter(catalogueMetric('virt_otel_export_failures_total'));

export const ALERTS: readonly AlertSpec[] = [
  {
    alert: 'VirtExporterDown',
    query: `up{${JOB_SELECTOR}}`,
    op: '==',
    threshold: 0,
    for: '5m',
    severity: 'critical',
    summary: 'virt-exporter on {{ $labels.instance }} cannot be scraped.',
    description: 'Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes: no domain metrics come from that host.',
    meaning: 'The scrape of the exporter itself fails: the pod or process is down, the port is not reachable, or TLS/basic auth does not match the scrape configuration.',
    actions: [
      'Check the pod: `kubectl -n NAMESPACE get pods -l app.kubernetes.io/name=virt-exporter -o wide` and its logs.',
      "Look at the target's last error on Prometheus' Targets page (TLS, authentication, timeout).",
      'With `webConfig.enabled`, make sure the ServiceMonitor/PodMonitor `tlsConfig` and `basicAuth` match the web configuration.',
    ],
  },
  {
    alert: 'VirtHypervisorUnreachable',
    query: gauge(M.up),
    op: '==',
    threshold: 0,
    for: '5m',
    severity: 'critical',
    summary: 'virt-exporter on {{ $labels.instance }} cannot reach its {{ $labels.driver }} hypervisor driver.',
    description: 'virt_up has been 0 for 5 minutes on {{ $labels.instance }}: the exporter runs but no collection reaches the hypervisor.',
    meaning: 'The exporter answers scrapes but every read through its connection fails: virt-qemud, virt-proxy, XenStore or the libvirt socket is not there, or permissions deny it.',
    actions: [
      'Read the exporter log for `collector read failed` and its `code` (see docs/errors.md).',
      'qemu: is virt-qemud running on the node and is its read-only socket in `qemu.runtimeDir`? Is the pod in the socket group (`podSecurityContext.supplementalGroups`)?',
      'xen proxy: is `virt-proxy --socket` running and the socket at `xen.proxySocket`? xen hypervisor: is /dev/xen/privcmd there?',
      'libvirt: is the read-only socket (`/run/libvirt/libvirt-sock-ro`, or `virtqemud-sock-ro` with modular daemons) present and readable?',
    ],
  },
  {
    alert: 'VirtCollectorFailing',
    query: gauge(M.collectorSuccess),
    op: '==',
    threshold: 0,
    for: '15m',
    severity: 'warning',
    summary: 'Collector {{ $labels.collector }} on {{ $labels.instance }} fails.',
    description: 'The {{ $labels.collector }} collector has failed or missed the collection deadline for 15 minutes; its metrics are missing while the others still render.',
    meaning: 'One part of the collection fails: the driver cannot read that group of statistics (a missing guest agent or balloon, a device that vanished, a permission) or the read misses the deadline.',
    actions: [
      'See `virt_collection_errors_total{collector="..."}` by `code` on the exporter-health dashboard, and the log lines `collector read failed`.',
      'If the code is a timeout, see VirtCollectionSlow.',
      'Turn the collector off with `--no-collector.NAME` (chart: `collectors.NAME: false`) if the hypervisor cannot provide it.',
    ],
  },
  {
    alert: 'VirtCollectionSlow',
    query: gauge(M.collectionDuration),
    op: '>',
    threshold: COLLECT_TIMEOUT_SECONDS * 0.8,
    for: '15m',
    severity: 'warning',
    summary: 'Collections on {{ $labels.instance }} take {{ $value | humanizeDuration }}.',
    description: `A whole collection has taken more than ${COLLECT_TIMEOUT_SECONDS * 0.8} s (80% of the default ${COLLECT_TIMEOUT_SECONDS} s --collect.timeout) for 15 minutes: scrapes are close to their timeout and parts will start to miss the deadline.`,
    meaning: 'The hypervisor answers slowly (a loaded host, many domains, a slow socket peer) and the collection is close to its deadline and to the scrape timeout.',
    actions: [
      'Compare `virt_collector_duration_seconds` per collector on the exporter-health dashboard to find the slow read.',
      'Raise `--collect.timeout` (chart: `collect.timeout`) and the scrape timeout together, keeping the collection deadline below the scrape timeout.',
      'Reduce the work: `--collect.domain-exclude`, `--no-collect.inactive-domains`, or turn off collectors not needed.',
    ],
  },
  {
    alert: 'VirtDomainCrashed',
    query: `${gauge(M.domainState)}{state="crashed"}`,
    op: '==',
    threshold: 1,
    for: '1m',
    severity: 'critical',
    summary: 'Domain {{ $labels.domain }} on {{ $labels.instance }} has crashed.',
    description: 'Domain {{ $labels.domain }} ({{ $labels.uuid }}) is in the crashed state.',
    meaning: 'The guest or its emulator died: a guest kernel panic with an on_crash=preserve policy, or the QEMU/Xen process ended abnormally.',
    actions: [
      'Read the hypervisor log of the domain (QEMU log under virt-qemud\'s state directory, `xl dmesg` / `/var/log/xen` on Xen).',
      'Restart it through the admin API or the toolstack once the cause is known: `virtctl destroy` then `virtctl start`.',
    ],
  },
  {
    alert: 'VirtDomainPausedLong',
    query: `${gauge(M.domainState)}{state="paused"}`,
    op: '==',
    threshold: 1,
    for: '30m',
    severity: 'warning',
    summary: 'Domain {{ $labels.domain }} on {{ $labels.instance }} has been paused for 30 minutes.',
    description: 'Domain {{ $labels.domain }} ({{ $labels.uuid }}) has been paused for more than 30 minutes.',
    meaning: 'A paused domain keeps its memory but does not run: left over from a suspend, a migration or a snapshot, or paused by the hypervisor on an I/O error (a full disk).',
    actions: [
      'Check whether someone paused it on purpose (admin audit log).',
      'If the hypervisor paused it on an I/O error, free space on its storage first.',
      'Resume with `virtctl resume DOMAIN`.',
    ],
  },
  {
    alert: 'VirtDomainCpuSaturated',
    query: RECORDS.cpuRatio.record,
    op: '>',
    threshold: 0.9,
    for: '15m',
    severity: 'warning',
    summary: 'Domain {{ $labels.domain }} on {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its vCPUs.',
    description: 'Domain {{ $labels.domain }} has used more than 90% of all its vCPUs for 15 minutes.',
    meaning: 'The guest is CPU bound: every vCPU is busy. Its workload is slowed down by its own vCPU count, not by the host.',
    actions: ['Look inside the guest for the busy processes.', 'Give the domain more vCPUs if the host has room (vCPUs allocated vs host CPUs on the host dashboard).'],
  },
  {
    alert: 'VirtDomainHighVcpuSteal',
    query: RECORDS.stealRatio.record,
    op: '>',
    threshold: 0.1,
    for: '15m',
    severity: 'warning',
    summary: 'vCPUs of domain {{ $labels.domain }} on {{ $labels.instance }} wait {{ $value | humanizePercentage }} of the time for a host CPU.',
    description: 'The vCPUs of {{ $labels.domain }} have been runnable but waiting for a host CPU more than 10% of the time for 15 minutes (steal time).',
    meaning: 'The host CPUs are oversubscribed: more vCPUs want to run than there are host CPUs, so guests see steal time and run slower.',
    actions: [
      'Compare host CPU used by domains with the host CPU capacity on the host dashboard.',
      'Move busy domains to other hosts, reduce vCPU overcommit, or pin vCPUs of latency-sensitive domains.',
    ],
  },
  {
    alert: 'VirtHostMemoryOvercommitted',
    query:
      `sum by (job, instance) (${gauge(M.memoryMaximum)} and on (${DOMAIN_KEY}) ${gauge(M.domainState)}{state!="shutoff"} == 1)` +
      ` / on (job, instance) ${gauge(M.hostMemory)}`,
    op: '>',
    threshold: 1,
    for: '15m',
    severity: 'warning',
    summary: 'Domains on {{ $labels.instance }} may use {{ $value | humanizePercentage }} of host memory.',
    description: 'The maximum memory of the domains that are not shut off exceeds the physical memory of {{ $labels.instance }}: if the guests grow to their maximum (balloon deflated) the host runs out of memory.',
    meaning: 'Memory is overcommitted: the sum of the domains\' maximum memory is larger than the host. It works while balloons keep guests small; it fails when they all grow.',
    actions: [
      'Check `virt_host_memory_free_bytes` and the per-domain memory on the host dashboard.',
      'Lower the maximum memory of some domains, or move domains to other hosts.',
    ],
  },
  {
    alert: 'VirtDomainDiskErrors',
    query: `sum by (${DOMAIN_KEY}, device) (increase(${counter(M.blockErrors)}[10m]))`,
    op: '>',
    threshold: 0,
    for: '0m',
    severity: 'warning',
    summary: 'Disk {{ $labels.device }} of domain {{ $labels.domain }} on {{ $labels.instance }} has failed requests.',
    description: '{{ $value | humanize }} requests on {{ $labels.device }} of {{ $labels.domain }} failed in the last 10 minutes.',
    meaning: 'The hypervisor reports failed I/O requests on a virtual disk: the backing storage returns errors (full, gone, read-only, or failing hardware).',
    actions: [
      'Find the backing path in `virt_domain_block_info` (Block devices table of the domain dashboard) and check the storage on the host.',
      'Check the host kernel log and the storage backend (NFS, iSCSI, Ceph) for errors.',
    ],
  },
  {
    alert: 'VirtOtlpExportFailing',
    query: `sum by (job, instance, signal, reason) (rate(${OTEL_FAILURES}[10m]))`,
    op: '>',
    threshold: 0,
    for: '10m',
    severity: 'warning',
    summary: 'OTLP export of {{ $labels.signal }} from {{ $labels.instance }} fails ({{ $labels.reason }}).',
    description: 'virt-exporter on {{ $labels.instance }} has failed to push {{ $labels.signal }} over OTLP for 10 minutes (reason {{ $labels.reason }}).',
    meaning: 'The OpenTelemetry collector at `--telemetry.otlp-endpoint` refuses or does not answer the push: wrong endpoint, TLS or authentication headers, or the collector is down.',
    actions: [
      'Read the exporter log for OTLP export errors.',
      'Check the endpoint and headers (chart: `telemetry.otlpEndpoint`, `telemetry.headersSecret`) and the collector\'s own logs.',
    ],
  },
];

export function alertExpr(a: AlertSpec): string {
  return `${a.query} ${a.op} ${a.threshold}`;
}

export function anchorOf(alert: string): string {
  return alert.toLowerCase();
}

export interface RuleGroups {
  groups: Array<{ name: string; rules: Array<Record<string, unknown>> }>;
}

export function ruleGroups(): RuleGroups {
  return {
    groups: [
      { name: 'virt-exporter.rules', rules: Object.values(RECORDS).map((r) => ({ record: r.record, expr: r.expr })) },
      {
        name: 'virt-exporter.alerts',
        rules: ALERTS.map((a) => ({
          alert: a.alert,
          expr: alertExpr(a),
          ...(a.for !== '0m' ? { for: a.for } : {}),
          labels: { severity: a.severity },
          annotations: {
            summary: a.summary,
            description: a.description,
            runbook: `docs/alerts.md#${anchorOf(a.alert)}`,
          },
        })),
      },
    ],
  };
}

export function rulesYaml(): string {
  return (
    '# Generated by scripts/gen-dashboards.ts from src/collectors/catalogue.ts; do not edit.\n' +
    YAML.stringify(ruleGroups(), { lineWidth: 0 })
  );
}

export function alertsDoc(): string {
  const lines = [
    '# Alerts',
    '',
    '<!-- Generated by scripts/gen-dashboards.ts from scripts/rules.ts; do not edit. -->',
    '',
    'virt-exporter ships Prometheus alerting and recording rules in',
    '`dashboards/rules/virt-exporter.rules.yml` (also the Helm chart\'s optional',
    '`PrometheusRule`: `prometheusRule.enabled=true`). Load the file with',
    '`rule_files:` in prometheus.yml, or let the Prometheus Operator pick up the',
    'PrometheusRule. The exporter-down alert selects scrape jobs matching',
    `\`${JOB_SELECTOR}\`; name your job accordingly or edit the selector (chart: \`prometheusRule.jobSelector\`).`,
    '',
    '## Recording rules',
    '',
    'Per-domain rates over ' + RATE_WINDOW + ', with the labels `' + DOMAIN_KEY + '`:',
    '',
    '| Record | Expression |',
    '|---|---|',
    ...Object.values(RECORDS).map((r) => `| \`${r.record}\` | \`${r.expr.replace(/\|/g, '\\|')}\` |`),
    '',
    '## Alerts',
    '',
    '| Alert | Severity | Expression | For |',
    '|---|---|---|---|',
    ...ALERTS.map((a) => `| [${a.alert}](#${anchorOf(a.alert)}) | ${a.severity} | \`${alertExpr(a).replace(/\|/g, '\\|')}\` | ${a.for} |`),
    '',
    'Each alert has a `summary`, a `description` and a `runbook` annotation',
    'pointing at its section below. Every alert has a `promtool test rules` unit',
    'test with firing and non-firing series (`test/dashboards/alerts.test.yml`).',
    '',
  ];
  for (const a of ALERTS) {
    lines.push(`### ${a.alert}`, '', `Severity **${a.severity}**, fires after ${a.for}: \`${alertExpr(a)}\``, '', a.meaning, '', 'What to do:', '', ...a.actions.map((s) => `- ${s}`), '');
  }
  return lines.join('\n');
}
