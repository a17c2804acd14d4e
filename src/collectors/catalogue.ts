/**
 * The metric catalogue: the one place where every metric's name, help, type,
 * unit, labels, controlling collector and OpenTelemetry name are defined.
 * Collectors, the Prometheus renderer, the OTLP exporter and the generated
 * docs/metrics.md all read it.
 */
export const COLLECTORS = ['domain', 'cpu', 'vcpu', 'memory', 'block', 'network', 'host'] as const;
export type CollectorName = (typeof COLLECTORS)[number];

export type MetricType = 'gauge' | 'counter';

export interface MetricSpec {
  /** Prometheus name (counters end in _total). */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  /** Base unit ('' for dimensionless). */
  readonly unit: '' | 'seconds' | 'bytes' | 'hertz';
  readonly labels: readonly string[];
  /** Collector that produces it; 'exporter' ones are always on. */
  readonly collector: CollectorName | 'exporter';
  /** OpenTelemetry instrument name and UCUM unit. */
  readonly otel: OtelSpec;
}

/** How a metric is sent over OTLP. Several catalogue metrics may share one OTel name, told apart by constant attributes. */
export interface OtelSpec {
  readonly name: string;
  /** UCUM unit. */
  readonly unit: string;
  /** Integer points (asInt): counts, bytes, states; durations and frequencies are doubles. */
  readonly int: boolean;
  /** Attributes every point of this metric carries (e.g. disk.io.direction=read), semantic-convention style. */
  readonly attributes: Readonly<Record<string, string>>;
  /** Description of the OTel metric (when several catalogue metrics share the name); else the help. */
  readonly description: string;
}

/** Optional OTel details of a catalogue metric. */
interface OtelExtra {
  attributes?: Record<string, string>;
  description?: string;
}

const DOM = ['domain', 'uuid'] as const;

function m(
  collector: MetricSpec['collector'],
  name: string,
  type: MetricType,
  unit: MetricSpec['unit'],
  labels: readonly string[],
  help: string,
  otelName: string,
  otelUnit: string,
  extra: OtelExtra = {},
): MetricSpec {
  const otel: OtelSpec = Object.freeze({
    name: otelName,
    unit: otelUnit,
    int: otelUnit !== 's' && otelUnit !== 'Hz',
    attributes: Object.freeze({ ...extra.attributes }),
    description: extra.description ?? help,
  });
  return Object.freeze({ name, help, type, unit, labels: Object.freeze([...labels]), collector, otel });
}

const CPU_MODE = 'Host CPU time of the domain\'s process, by cpu.mode, where the driver knows it.';
const SWAP = 'Bytes the guest swapped, by system.paging.direction, as its balloon driver reports it.';
const FAULTS = 'Page faults in the guest, by system.paging.fault.type.';
const DISK_IO = 'Bytes transferred by the block device, by disk.io.direction.';
const DISK_OPS = 'Requests completed on the block device, by disk.io.direction.';
const DISK_TIME = 'Time spent on requests of the block device, by disk.io.direction.';
const NET_IO = 'Bytes the guest transferred on the interface, by network.io.direction.';
const NET_PACKETS = 'Packets the guest transferred on the interface, by network.io.direction.';
const NET_ERRORS = 'Errors on the interface, by network.io.direction.';
const NET_DROPS = 'Packets dropped on the interface, by network.io.direction.';
const dir = (key: string, value: string, description: string): OtelExtra => ({ attributes: { [key]: value }, description });

export const METRICS = {
  // exporter self-monitoring
  up: m('exporter', 'virt_up', 'gauge', '', ['driver'], 'Whether the last collection reached the hypervisor driver (1) or not (0).', 'virt.up', '1'),
  collectorSuccess: m('exporter', 'virt_collector_success', 'gauge', '', ['collector'], 'Whether the collector succeeded in the last collection (1) or failed or missed the deadline (0).', 'virt.collector.success', '1'),
  collectorDuration: m('exporter', 'virt_collector_duration_seconds', 'gauge', 'seconds', ['collector'], 'What the collector cost in the last collection: the driver read it alone needed plus turning the snapshot into its samples (a read shared by several collectors counts in virt_collection_duration_seconds).', 'virt.collector.duration', 's'),
  collectionErrors: m('exporter', 'virt_collection_errors_total', 'counter', '', ['collector', 'code'], 'Read errors by collector and stable error code since start.', 'virt.collection.errors', '{error}'),
  collectionDuration: m('exporter', 'virt_collection_duration_seconds', 'gauge', 'seconds', [], 'Wall time of the last whole collection.', 'virt.collection.duration', 's'),
  otelExportFailures: m('exporter', 'virt_otel_export_failures_total', 'counter', '', ['signal', 'reason'], 'OTLP exports that failed, by signal (metrics, traces) and reason (unreachable, timeout, rejected, other).', 'virt.otel.export.failures', '{failure}'),
  buildInfo: m('exporter', 'virt_exporter_build_info', 'gauge', '', ['version', 'revision', 'branch', 'nodejs', 'v8'], 'Build information of virt-exporter (version, git revision and branch, Node.js and V8 runtime versions); the value is always 1.', 'virt.exporter.build.info', '1'),

  // domain
  domains: m('domain', 'virt_domains', 'gauge', '', [], 'Number of domains reported (after include/exclude filters).', 'virt.domains', '{domain}'),
  domainInfo: m('domain', 'virt_domain_info', 'gauge', '', [...DOM, 'os_type', 'arch', 'machine'], 'Descriptive attributes of a domain; the value is always 1.', 'virt.domain.info', '1'),
  domainReadTimeouts: m('domain', 'virt_domain_read_timeouts_total', 'counter', '', DOM, 'Reads of this domain that missed their deadline (a stuck monitor or process) since the exporter started.', 'virt.domain.read.timeouts', '{timeout}'),
  domainState: m('domain', 'virt_domain_state', 'gauge', '', [...DOM, 'state'], 'Domain state as a state set: 1 for the current state, 0 for the others.', 'virt.domain.state', '1'),

  // cpu
  cpuTime: m('cpu', 'virt_domain_cpu_time_seconds_total', 'counter', 'seconds', DOM, 'CPU time consumed by the domain (all vCPUs and emulation).', 'virt.domain.cpu.time', 's'),
  cpuUser: m('cpu', 'virt_domain_cpu_user_seconds_total', 'counter', 'seconds', DOM, 'User-mode CPU time of the domain\'s process on the host, where the driver knows it.', 'virt.domain.process.cpu.time', 's', dir('cpu.mode', 'user', CPU_MODE)),
  cpuSystem: m('cpu', 'virt_domain_cpu_system_seconds_total', 'counter', 'seconds', DOM, 'Kernel-mode CPU time of the domain\'s process on the host, where the driver knows it.', 'virt.domain.process.cpu.time', 's', dir('cpu.mode', 'system', CPU_MODE)),

  // vcpu
  vcpus: m('vcpu', 'virt_domain_vcpus', 'gauge', '', DOM, 'Number of vCPUs of the domain.', 'virt.domain.vcpu.count', '{vcpu}'),
  vcpuTime: m('vcpu', 'virt_domain_vcpu_time_seconds_total', 'counter', 'seconds', [...DOM, 'vcpu'], 'CPU time consumed by one vCPU.', 'virt.domain.vcpu.time', 's'),
  vcpuDelay: m('vcpu', 'virt_domain_vcpu_delay_seconds_total', 'counter', 'seconds', [...DOM, 'vcpu'], 'Time one vCPU was runnable but waiting for a host CPU (steal time as the guest sees it).', 'virt.domain.vcpu.delay', 's'),

  // memory
  memoryMaximum: m('memory', 'virt_domain_memory_maximum_bytes', 'gauge', 'bytes', DOM, 'Maximum memory the domain may be given.', 'virt.domain.memory.limit', 'By'),
  memoryCurrent: m('memory', 'virt_domain_memory_current_bytes', 'gauge', 'bytes', DOM, 'Memory currently allocated to the domain (0 when shut off).', 'virt.domain.memory.allocated', 'By'),
  memoryBalloon: m('memory', 'virt_domain_memory_balloon_bytes', 'gauge', 'bytes', DOM, 'Guest-visible memory after ballooning, as the hypervisor sees it.', 'virt.domain.memory.balloon', 'By'),
  memoryRss: m('memory', 'virt_domain_memory_rss_bytes', 'gauge', 'bytes', DOM, 'Resident memory of the domain\'s process on the host.', 'virt.domain.memory.rss', 'By'),
  memoryGuestTotal: m('memory', 'virt_domain_memory_guest_total_bytes', 'gauge', 'bytes', DOM, 'Total memory as the guest\'s balloon driver reports it.', 'virt.domain.memory.guest.total', 'By'),
  memoryGuestFree: m('memory', 'virt_domain_memory_guest_free_bytes', 'gauge', 'bytes', DOM, 'Memory left unused by the guest, as its balloon driver reports it.', 'virt.domain.memory.guest.free', 'By'),
  memoryGuestAvailable: m('memory', 'virt_domain_memory_guest_available_bytes', 'gauge', 'bytes', DOM, 'Memory available to guest programs without swapping, as its balloon driver reports it.', 'virt.domain.memory.guest.available', 'By'),
  memoryGuestCaches: m('memory', 'virt_domain_memory_guest_disk_caches_bytes', 'gauge', 'bytes', DOM, 'Guest memory used for disk caches that can be reclaimed.', 'virt.domain.memory.guest.disk_caches', 'By'),
  memorySwapIn: m('memory', 'virt_domain_memory_swap_in_bytes_total', 'counter', 'bytes', DOM, 'Bytes the guest swapped in, as its balloon driver reports it.', 'virt.domain.memory.swap.io', 'By', dir('system.paging.direction', 'in', SWAP)),
  memorySwapOut: m('memory', 'virt_domain_memory_swap_out_bytes_total', 'counter', 'bytes', DOM, 'Bytes the guest swapped out, as its balloon driver reports it.', 'virt.domain.memory.swap.io', 'By', dir('system.paging.direction', 'out', SWAP)),
  memoryMajorFaults: m('memory', 'virt_domain_memory_major_faults_total', 'counter', '', DOM, 'Major page faults in the guest.', 'virt.domain.memory.paging.faults', '{fault}', dir('system.paging.fault.type', 'major', FAULTS)),
  memoryMinorFaults: m('memory', 'virt_domain_memory_minor_faults_total', 'counter', '', DOM, 'Minor page faults in the guest.', 'virt.domain.memory.paging.faults', '{fault}', dir('system.paging.fault.type', 'minor', FAULTS)),

  // block
  blockInfo: m('block', 'virt_domain_block_info', 'gauge', '', [...DOM, 'device', 'path'], 'Block device of a domain and its backing path; the value is always 1.', 'virt.domain.disk.info', '1'),
  blockReadBytes: m('block', 'virt_domain_block_read_bytes_total', 'counter', 'bytes', [...DOM, 'device'], 'Bytes read from the block device.', 'virt.domain.disk.io', 'By', dir('disk.io.direction', 'read', DISK_IO)),
  blockWriteBytes: m('block', 'virt_domain_block_write_bytes_total', 'counter', 'bytes', [...DOM, 'device'], 'Bytes written to the block device.', 'virt.domain.disk.io', 'By', dir('disk.io.direction', 'write', DISK_IO)),
  blockReadRequests: m('block', 'virt_domain_block_read_requests_total', 'counter', '', [...DOM, 'device'], 'Read requests completed on the block device.', 'virt.domain.disk.operations', '{operation}', dir('disk.io.direction', 'read', DISK_OPS)),
  blockWriteRequests: m('block', 'virt_domain_block_write_requests_total', 'counter', '', [...DOM, 'device'], 'Write requests completed on the block device.', 'virt.domain.disk.operations', '{operation}', dir('disk.io.direction', 'write', DISK_OPS)),
  blockFlushRequests: m('block', 'virt_domain_block_flush_requests_total', 'counter', '', [...DOM, 'device'], 'Flush requests completed on the block device.', 'virt.domain.disk.flush.operations', '{operation}'),
  blockReadTime: m('block', 'virt_domain_block_read_time_seconds_total', 'counter', 'seconds', [...DOM, 'device'], 'Time spent on read requests.', 'virt.domain.disk.operation.time', 's', dir('disk.io.direction', 'read', DISK_TIME)),
  blockWriteTime: m('block', 'virt_domain_block_write_time_seconds_total', 'counter', 'seconds', [...DOM, 'device'], 'Time spent on write requests.', 'virt.domain.disk.operation.time', 's', dir('disk.io.direction', 'write', DISK_TIME)),
  blockFlushTime: m('block', 'virt_domain_block_flush_time_seconds_total', 'counter', 'seconds', [...DOM, 'device'], 'Time spent on flush requests.', 'virt.domain.disk.flush.time', 's'),
  blockErrors: m('block', 'virt_domain_block_errors_total', 'counter', '', [...DOM, 'device'], 'Failed requests on the block device.', 'virt.domain.disk.errors', '{error}'),
  blockCapacity: m('block', 'virt_domain_block_capacity_bytes', 'gauge', 'bytes', [...DOM, 'device'], 'Logical size of the block device.', 'virt.domain.disk.capacity', 'By'),
  blockAllocation: m('block', 'virt_domain_block_allocation_bytes', 'gauge', 'bytes', [...DOM, 'device'], 'Host storage allocated to the block device.', 'virt.domain.disk.allocation', 'By'),

  // network (guest's point of view)
  netInfo: m('network', 'virt_domain_network_info', 'gauge', '', [...DOM, 'interface', 'mac'], 'Network interface of a domain and its MAC address; the value is always 1.', 'virt.domain.network.info', '1'),
  netRxBytes: m('network', 'virt_domain_network_receive_bytes_total', 'counter', 'bytes', [...DOM, 'interface'], 'Bytes received by the guest on the interface.', 'virt.domain.network.io', 'By', dir('network.io.direction', 'receive', NET_IO)),
  netRxPackets: m('network', 'virt_domain_network_receive_packets_total', 'counter', '', [...DOM, 'interface'], 'Packets received by the guest on the interface.', 'virt.domain.network.packet.count', '{packet}', dir('network.io.direction', 'receive', NET_PACKETS)),
  netRxErrors: m('network', 'virt_domain_network_receive_errors_total', 'counter', '', [...DOM, 'interface'], 'Receive errors on the interface.', 'virt.domain.network.errors', '{error}', dir('network.io.direction', 'receive', NET_ERRORS)),
  netRxDrops: m('network', 'virt_domain_network_receive_drops_total', 'counter', '', [...DOM, 'interface'], 'Received packets dropped on the interface.', 'virt.domain.network.packet.dropped', '{packet}', dir('network.io.direction', 'receive', NET_DROPS)),
  netTxBytes: m('network', 'virt_domain_network_transmit_bytes_total', 'counter', 'bytes', [...DOM, 'interface'], 'Bytes sent by the guest on the interface.', 'virt.domain.network.io', 'By', dir('network.io.direction', 'transmit', NET_IO)),
  netTxPackets: m('network', 'virt_domain_network_transmit_packets_total', 'counter', '', [...DOM, 'interface'], 'Packets sent by the guest on the interface.', 'virt.domain.network.packet.count', '{packet}', dir('network.io.direction', 'transmit', NET_PACKETS)),
  netTxErrors: m('network', 'virt_domain_network_transmit_errors_total', 'counter', '', [...DOM, 'interface'], 'Transmit errors on the interface.', 'virt.domain.network.errors', '{error}', dir('network.io.direction', 'transmit', NET_ERRORS)),
  netTxDrops: m('network', 'virt_domain_network_transmit_drops_total', 'counter', '', [...DOM, 'interface'], 'Sent packets dropped on the interface.', 'virt.domain.network.packet.dropped', '{packet}', dir('network.io.direction', 'transmit', NET_DROPS)),

  // host
  hostInfo: m('host', 'virt_host_info', 'gauge', '', ['hostname', 'model', 'hypervisor', 'hypervisor_version'], 'Host and hypervisor attributes; the value is always 1.', 'virt.host.info', '1'),
  hostCpus: m('host', 'virt_host_cpus', 'gauge', '', [], 'Logical CPUs of the host.', 'virt.host.cpu.count', '{cpu}'),
  hostCpuFrequency: m('host', 'virt_host_cpu_frequency_hertz', 'gauge', 'hertz', [], 'Nominal CPU frequency of the host.', 'virt.host.cpu.frequency', 'Hz'),
  hostNumaNodes: m('host', 'virt_host_numa_nodes', 'gauge', '', [], 'NUMA nodes of the host.', 'virt.host.numa.nodes', '{node}'),
  hostMemory: m('host', 'virt_host_memory_bytes', 'gauge', 'bytes', [], 'Physical memory of the host.', 'virt.host.memory.total', 'By'),
  hostMemoryFree: m('host', 'virt_host_memory_free_bytes', 'gauge', 'bytes', [], 'Physical memory of the host not given to domains or the hypervisor.', 'virt.host.memory.free', 'By'),
} as const satisfies Record<string, MetricSpec>;

/**
 * Metrics kept in the prom-client registry because they count events rather
 * than read a snapshot; defined here so names and help live in one place.
 */
export const REGISTRY_METRICS = {
  adminRequests: m('exporter', 'virt_admin_requests_total', 'counter', '', ['action', 'outcome'], 'Admin API requests by action and outcome, allowed and refused.', 'virt.admin.requests', '{request}'),
} as const satisfies Record<string, MetricSpec>;

const infoVariants = new Map<string, MetricSpec>();
/**
 * virt_domain_info with extra labels chosen by configuration (libvirt
 * <metadata> rules); one frozen spec per label set, so renderers can key on it.
 */
export function domainInfoWith(extra: readonly string[]): MetricSpec {
  if (extra.length === 0) return METRICS.domainInfo;
  const key = extra.join('\0');
  let spec = infoVariants.get(key);
  if (spec === undefined) {
    const base = METRICS.domainInfo;
    spec = Object.freeze({ ...base, labels: Object.freeze([...base.labels, ...extra]) });
    infoVariants.set(key, spec);
  }
  return spec;
}

export type MetricId = keyof typeof METRICS;
export const METRIC_LIST: readonly MetricSpec[] = Object.values(METRICS);

