/**
 * Typed readings that drivers return. Units are base units throughout:
 * bytes, seconds, hertz. Drivers convert from their backend's units
 * (KiB, pages, ns, MiB, float seconds) before anything leaves them.
 */

export const DOMAIN_STATES = [
  'nostate',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
] as const;
export type DomainState = (typeof DOMAIN_STATES)[number];

/** States in which a domain has a live process/vCPUs (it accrues CPU time). */
export const ACTIVE_STATES: ReadonlySet<DomainState> = new Set(['running', 'blocked', 'paused', 'shutdown', 'pmsuspended']);

export interface DomainRef {
  name: string;
  /** Lower-case canonical 8-4-4-4-12 UUID. */
  uuid: string;
  /** Hypervisor id while active; null when shut off. */
  id: number | null;
}

export interface DomainInfo extends DomainRef {
  state: DomainState;
  /** Free-form reason from the backend, e.g. "user", "crashed", "migrated". */
  stateReason?: string;
  maxMemoryBytes: number;
  memoryBytes: number;
  vcpus: number;
  cpuTimeSeconds: number;
  /** Descriptive attributes for virt_domain_info (os_type, arch, machine, ...). */
  osType?: string;
  arch?: string;
  machine?: string;
  autostart?: boolean;
  persistent?: boolean;
  /**
   * Extra virt_domain_info labels chosen by configuration (the libvirt driver's
   * <metadata> rules), by label name; '' when the element is missing. Every
   * domain of one reading has the same names. Never put on other series.
   */
  labels?: Readonly<Record<string, string>>;
  /** A managed-save image exists: the next start resumes from it. */
  managedSave?: boolean;
  /**
   * When the counters of the domain's current run started (seconds since the
   * epoch; the QEMU process start, say), where the driver knows it: the
   * OpenTelemetry start time of its cumulative counters.
   */
  startTimeSeconds?: number;
}

export const VCPU_STATES = ['offline', 'running', 'blocked'] as const;
export type VcpuState = (typeof VCPU_STATES)[number];

export interface VcpuReading {
  id: number;
  state: VcpuState;
  timeSeconds?: number;
  /** Time runnable but waiting for a host CPU: the guest's steal time. */
  delaySeconds?: number;
  /** Physical CPU it last ran on; undefined when unknown/offline. */
  cpu?: number;
}

export interface MemoryReading {
  maximumBytes: number;
  currentBytes: number;
  /** Balloon size as the hypervisor sees it (QMP query-balloon actual). */
  balloonBytes?: number;
  /** Guest-reported figures; absent (not zero) when no balloon driver reports them. */
  guest?: {
    totalBytes?: number;
    freeBytes?: number;
    availableBytes?: number;
    diskCachesBytes?: number;
    swapInBytes?: number;
    swapOutBytes?: number;
    majorFaults?: number;
    minorFaults?: number;
    /** Seconds since the epoch of the guest's last report. */
    lastUpdateSeconds?: number;
  };
  /** Resident set of the backing process (QEMU) on the host. */
  rssBytes?: number;
}

export interface BlockReading {
  /** Stable device name (target dev, qdev id or xen vbd name). */
  device: string;
  path?: string;
  readBytes: number;
  writeBytes: number;
  readRequests: number;
  writeRequests: number;
  flushRequests?: number;
  readTimeSeconds?: number;
  writeTimeSeconds?: number;
  flushTimeSeconds?: number;
  errors?: number;
  capacityBytes?: number;
  allocationBytes?: number;
}

export interface NetCounters {
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDrops: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDrops: number;
}

/**
 * Host-side counters of a guest's backend interface (tap, vif) turned to the
 * guest's point of view: what the host receives, the guest sent. Not for
 * macvtap, whose counters are already the guest's.
 */
export function guestView(host: NetCounters): NetCounters {
  return {
    rxBytes: host.txBytes,
    rxPackets: host.txPackets,
    rxErrors: host.txErrors,
    rxDrops: host.txDrops,
    txBytes: host.rxBytes,
    txPackets: host.rxPackets,
    txErrors: host.rxErrors,
    txDrops: host.rxDrops,
  };
}

export interface NetReading {
  /** Interface name on the host side (vnet0, vif3.0) or the guest device id. */
  interface: string;
  mac?: string;
  /** Guest's point of view (host tap counters already swapped). null: no counters exist (user-mode NIC). */
  counters: NetCounters | null;
}

export const STATS_GROUPS = ['state', 'cpu', 'vcpu', 'memory', 'block', 'net'] as const;
export type StatsGroup = (typeof STATS_GROUPS)[number];

export interface DomainStats {
  info: DomainInfo;
  vcpus?: VcpuReading[];
  memory?: MemoryReading;
  block?: BlockReading[];
  net?: NetReading[];
  /** CPU time split, when the backend knows it. */
  cpu?: { userSeconds?: number; systemSeconds?: number };
}

/** A failure to read one domain or one group; the rest of the bulk read stands. */
export interface ReadError {
  group?: StatsGroup;
  domain?: string;
  code: string;
  message: string;
}

export interface BulkStats {
  domains: DomainStats[];
  errors: ReadError[];
}

/** CPU topology of a host, as libvirt's virNodeInfo has it. */
export interface HostTopology {
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

export interface HostInfo extends HostTopology {
  hostname: string;
  model: string;
  memoryBytes: number;
  freeMemoryBytes?: number;
  hypervisor: string;
  hypervisorVersion: string;
}

export interface ReadOptions {
  /** Aborted when the collection's deadline passes. */
  signal?: AbortSignal;
}

export interface BulkReadOptions extends ReadOptions {
  groups: readonly StatsGroup[];
  /** Include shut-off (defined, inactive) domains. */
  inactive?: boolean;
  /**
   * Epoch milliseconds by which the whole read must have answered (the
   * collection's deadline). Drivers fit their own per-domain timeouts inside
   * it, so that a stuck domain costs only itself instead of the whole read.
   */
  deadline?: number;
}

export interface ListOptions extends ReadOptions {
  active?: boolean;
  inactive?: boolean;
}

export interface RestoreOptions {
  /** The domain the caller means: the image must be of it. */
  domain?: string;
  /** Allow re-creating a domain that is no longer defined from the image (admin-only in the admin API). */
  define?: boolean;
}

export interface ShutdownOptions {
  /** Destroy if the guest does not stop within the grace period. */
  force?: boolean;
}
