import { DOMAIN_STATES } from '../drivers/types.ts';
import { METRICS, type CollectorName, type MetricId, type MetricSpec } from './catalogue.ts';
import type { Snapshot } from './snapshot.ts';

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
  // libvirt's "available" is the guest's total; its "usable" what programs can still get.
  memoryGuestTotal: 'libvirt_domain_memory_stats_available_bytes',
  memoryGuestAvailable: 'libvirt_domain_memory_stats_usable_bytes',
  memoryMajorFaults: 'libvirt_domain_memory_stats_major_fault_total',
  memoryMinorFaults: 'libvirt_domain_memory_stats_minor_fault_total',
  blockCapacity: 'libvirt_domain_block_stats_capacity_bytes',
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

/**
 * Series of that exporter with no one-to-one native counterpart: computed from
 * the same snapshot (state codes, info series with its label names, the
 * guest's used percentage, second names of one native value).
 */
export interface CompatFamily {
  spec: MetricSpec;
  /** Served while this collector is on ('exporter': always). */
  collector: CollectorName | 'exporter';
  collect(snap: Snapshot, emit: (labels: readonly string[], value: number) => void): void;
}

function fam(collector: CompatFamily['collector'], name: string, type: MetricSpec['type'], unit: MetricSpec['unit'], labels: readonly string[], help: string, collect: CompatFamily['collect']): CompatFamily {
  const spec: MetricSpec = Object.freeze({ name, help: `${help} (--compat=libvirt-exporter)`, type, unit, labels: Object.freeze([...labels]), collector, otel: Object.freeze({ name: '', unit: '', int: false, attributes: Object.freeze({}), description: '' }) });
  return { spec, collector, collect };
}

/** prometheus-libvirt-exporter's state_desc texts, by libvirt state code. */
const STATE_DESC = [
  'no state',
  'the domain is running',
  'the domain is blocked on resource',
  'the domain is paused by user',
  'the domain is being shut down',
  'the domain is shut off',
  'the domain is crashed',
  'the domain is suspended by guest power management',
];

const LIBVIRT_EXPORTER_FAMILIES: readonly CompatFamily[] = [
  fam('exporter', 'libvirt_up', 'gauge', '', [], 'Whether the last collection reached libvirt (1) or not (0).', (snap, emit) => emit([], snap.up ? 1 : 0)),
  fam('domain', 'libvirt_domains', 'gauge', '', [], 'Number of domains.', (snap, emit) => emit([], snap.domains.length)),
  fam('domain', 'libvirt_domain_info', 'gauge', '', ['domain', 'os_type', 'os_type_arch', 'os_type_machine'], 'Metadata labels for the domain; the value is always 1.', (snap, emit) => {
    for (const { info } of snap.domains) emit([info.name, info.osType ?? '', info.arch ?? '', info.machine ?? ''], 1);
  }),
  fam('domain', 'libvirt_domain_openstack_info', 'gauge', '', ['domain', 'instance_name', 'instance_id', 'flavor_name', 'user_name', 'user_id', 'project_name', 'project_id'], 'OpenStack Nova metadata of the domain (with --libvirt.metadata-preset=nova-1.0 or nova-1.1); the value is always 1.', (snap, emit) => {
    for (const { info } of snap.domains) {
      const l = info.labels;
      if (l?.['instance_name'] === undefined) continue;
      emit([info.name, l['instance_name'], info.uuid, l['flavor'] ?? '', l['user_name'] ?? '', l['user_id'] ?? '', l['project_name'] ?? '', l['project_id'] ?? ''], 1);
    }
  }),
  fam('domain', 'libvirt_domain_info_state', 'gauge', '', ['domain', 'state_desc'], 'Code of the domain state (libvirt\'s virDomainState).', (snap, emit) => {
    for (const { info } of snap.domains) {
      const code = DOMAIN_STATES.indexOf(info.state);
      emit([info.name, STATE_DESC[code] ?? ''], code);
    }
  }),
  fam('vcpu', 'libvirt_domain_vcpu_current', 'gauge', '', ['domain'], 'Number of current online vCPUs.', (snap, emit) => {
    for (const { info } of snap.domains) emit([info.name], info.vcpus);
  }),
  fam('memory', 'libvirt_domain_memory_stats_maximum_bytes', 'gauge', 'bytes', ['domain'], 'Maximum memory of the domain.', (snap, emit) => {
    for (const d of snap.domains) if (d.memory !== undefined) emit([d.info.name], d.memory.maximumBytes);
  }),
  fam('memory', 'libvirt_domain_memory_stats_swap_in_bytes', 'gauge', 'bytes', ['domain'], 'Bytes the guest swapped in.', (snap, emit) => {
    for (const d of snap.domains) if (d.memory?.guest?.swapInBytes !== undefined) emit([d.info.name], d.memory.guest.swapInBytes);
  }),
  fam('memory', 'libvirt_domain_memory_stats_swap_out_bytes', 'gauge', 'bytes', ['domain'], 'Bytes the guest swapped out.', (snap, emit) => {
    for (const d of snap.domains) if (d.memory?.guest?.swapOutBytes !== undefined) emit([d.info.name], d.memory.guest.swapOutBytes);
  }),
  fam('memory', 'libvirt_domain_memory_stats_used_percent', 'gauge', '', ['domain'], 'Memory in use by the guest, in percent of its total (from the balloon driver\'s total and unused figures).', (snap, emit) => {
    for (const d of snap.domains) {
      const g = d.memory?.guest;
      if (g?.totalBytes !== undefined && g.freeBytes !== undefined && g.totalBytes > 0) emit([d.info.name], ((g.totalBytes - g.freeBytes) / g.totalBytes) * 100);
    }
  }),
  fam('block', 'libvirt_domain_block_stats_info', 'gauge', '', ['domain', 'disk_type', 'target_bus', 'driver_name', 'driver_type', 'driver_cache', 'driver_discard', 'source_file', 'source_protocol', 'target_device', 'serial'], 'Metadata on block devices (attributes unknown to the driver are empty); the value is always 1.', (snap, emit) => {
    for (const d of snap.domains) for (const b of d.block ?? []) emit([d.info.name, '', '', '', '', '', '', b.path ?? '', '', b.device, ''], 1);
  }),
  fam('network', 'libvirt_domain_interface_stats_info', 'gauge', '', ['domain', 'interface_type', 'source_bridge', 'target_device', 'mac_address', 'model_type', 'mtu_size'], 'Metadata on network interfaces (attributes unknown to the driver are empty); the value is always 1.', (snap, emit) => {
    for (const d of snap.domains) for (const n of d.net ?? []) emit([d.info.name, '', '', n.interface, n.mac ?? '', '', ''], 1);
  }),
];

/** The computed families of a compat set ('' = none). */
export function compatFamilies(set: CompatSet): readonly CompatFamily[] {
  return set === 'libvirt-exporter' ? LIBVIRT_EXPORTER_FAMILIES : [];
}
