import type { HostTopology, NetCounters } from '../types.ts';

/**
 * Readings from the hypervisor path (virt-proxy, over --stdio or its socket).
 * Raw Xen units are converted by the proxy client: pages -> bytes, ns -> s.
 * Shared contract between the proxy client (proxy-client.ts) and the xen
 * driver's sub-drivers.
 */

/** Xen domain info flags (XEN_DOMINF_*), as getdomaininfolist reports them. */
export const XEN_DOMINF = {
  dying: 1 << 0,
  hvm_guest: 1 << 1,
  shutdown: 1 << 2,
  paused: 1 << 3,
  blocked: 1 << 4,
  running: 1 << 5,
  debugged: 1 << 6,
  xs_domain: 1 << 7,
  hap: 1 << 8,
} as const;
/** Shutdown reason sits in bits 16-23 when the shutdown flag is set. */
export const XEN_DOMINF_SHUTDOWN_SHIFT = 16;
export const XEN_SHUTDOWN_REASONS = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset'] as const;

export interface XenDomainReading {
  domid: number;
  /** Lower-case canonical UUID from the domain handle. */
  uuid: string;
  flags: number;
  currentBytes: number;
  maximumBytes: number;
  cpuTimeSeconds: number;
  onlineVcpus: number;
  /** Highest vCPU id in use; -1 when the domain has no vCPUs (Xen's ~0). */
  maxVcpuId: number;
  /** max_pages was "unlimited" (>= 2^32-1 pages, dom0); maximumBytes then equals currentBytes. */
  maxMemoryUnlimited?: boolean;
  /**
   * Optional per-device counters the proxy read from sysfs / /proc/net/dev.
   * vbds: device is the Linux-style name decoded from the Xen vbd number
   * (xvda, hdb, sdc1; the number itself when it does not decode), devid the
   * raw number; errors is oo_req (requests refused for lack of ring slots).
   */
  vbds?: Array<{ device: string; devid?: number; readRequests: number; writeRequests: number; readSectors: number; writeSectors: number; errors?: number }>;
  /** vifs: already the guest's point of view (the proxy client swapped the host's RX/TX); interface is vif<domid>.<n>. */
  vifs?: Array<NetCounters & { interface: string }>;
  /**
   * Per-vCPU readings (XEN_DOMCTL_getvcpuinfo, vCPU ids 0..maxVcpuId, at most
   * 512), when the proxy was asked for them; cpu is the host CPU it runs on.
   */
  vcpus?: XenVcpuReading[];
}

export interface XenVcpuReading {
  id: number;
  online: boolean;
  blocked: boolean;
  running: boolean;
  cpu: number;
  timeSeconds: number;
}

export interface XenHostReading extends HostTopology {
  totalBytes: number;
  freeBytes: number;
  xenVersion: string;
}
