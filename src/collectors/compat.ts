import { METRICS, type MetricId, type MetricSpec } from './catalogue.ts';

/**
 * Optional aliases under the names of the most used libvirt exporter
 * (prometheus-libvirt-exporter), so its dashboards and alerts keep working
 * during a migration (--compat=libvirt-exporter). An alias repeats the native
 * series with the `uuid` label dropped and `device`/`interface` renamed
 * `target_device`. Only metrics whose meaning and unit match are aliased.
 */
export const COMPAT_SETS = ['', 'libvirt-exporter'] as const;
export type CompatSet = (typeof COMPAT_SETS)[number];

const LIBVIRT_EXPORTER: Partial<Record<MetricId, string>> = {
  cpuTime: 'libvirt_domain_info_cpu_time_seconds_total',
  vcpus: 'libvirt_domain_info_virtual_cpus',
  memoryMaximum: 'libvirt_domain_info_maximum_memory_bytes',
  memoryCurrent: 'libvirt_domain_info_memory_usage_bytes',
  vcpuTime: 'libvirt_domain_vcpu_time_seconds_total',
  vcpuDelay: 'libvirt_domain_vcpu_delay_seconds_total',
  memoryBalloon: 'libvirt_domain_memory_stats_actual_balloon_bytes',
  memoryRss: 'libvirt_domain_memory_stats_rss_bytes',
  memoryGuestFree: 'libvirt_domain_memory_stats_unused_bytes',
  memoryGuestAvailable: 'libvirt_domain_memory_stats_available_bytes',
  blockReadBytes: 'libvirt_domain_block_stats_read_bytes_total',
  blockWriteBytes: 'libvirt_domain_block_stats_write_bytes_total',
  blockReadRequests: 'libvirt_domain_block_stats_read_requests_total',
  blockWriteRequests: 'libvirt_domain_block_stats_write_requests_total',
  blockFlushRequests: 'libvirt_domain_block_stats_flush_requests_total',
  blockReadTime: 'libvirt_domain_block_stats_read_time_seconds_total',
  blockWriteTime: 'libvirt_domain_block_stats_write_time_seconds_total',
  blockFlushTime: 'libvirt_domain_block_stats_flush_time_seconds_total',
  netRxBytes: 'libvirt_domain_interface_stats_receive_bytes_total',
  netRxPackets: 'libvirt_domain_interface_stats_receive_packets_total',
  netRxErrors: 'libvirt_domain_interface_stats_receive_errors_total',
  netRxDrops: 'libvirt_domain_interface_stats_receive_drops_total',
  netTxBytes: 'libvirt_domain_interface_stats_transmit_bytes_total',
  netTxPackets: 'libvirt_domain_interface_stats_transmit_packets_total',
  netTxErrors: 'libvirt_domain_interface_stats_transmit_errors_total',
  netTxDrops: 'libvirt_domain_interface_stats_transmit_drops_total',
};

export interface CompatAlias {
  spec: MetricSpec;
  /** Picks the alias's label values out of the native ones. */
  pick: (labels: readonly string[]) => string[];
}

function alias(native: MetricSpec, name: string): CompatAlias {
  // Native domain series are labelled domain, uuid, then device/interface/vcpu.
  const extra = native.labels.slice(2).map((l) => (l === 'device' || l === 'interface' ? 'target_device' : l));
  return {
    spec: Object.freeze({
      ...native,
      name,
      help: `${native.help} Alias of ${native.name} (--compat=libvirt-exporter).`,
      labels: Object.freeze(['domain', ...extra]),
    }),
    pick: (labels) => [labels[0] ?? '', ...labels.slice(2)],
  };
}

/** Native metric -> its alias, for a compat set ('' = none). */
export function compatAliases(set: CompatSet): ReadonlyMap<MetricSpec, CompatAlias> {
  const out = new Map<MetricSpec, CompatAlias>();
  if (set === 'libvirt-exporter') {
    for (const [id, name] of Object.entries(LIBVIRT_EXPORTER) as Array<[MetricId, string]>) out.set(METRICS[id], alias(METRICS[id], name));
  }
  return out;
}
