/**
 * The xen.* settings the driver reads, typed and validated by the area's
 * table (src/config/schema/xen.ts), which also gives their defaults.
 */
import { XEN } from '../../config/schema/xen.ts';
import type { OpenContext } from '../driver.ts';
import { resolveProxyBinary } from './proxy-client.ts';

export type Privilege = 'auto' | 'root' | 'user';

export interface XenSettings {
  xenstoreSocket: string;
  xendAddress: string;
  timeoutMs: number;
  xendOpTimeoutMs: number;
  xendMaxResponseBytes: number;
  privileged: Privilege;
  proxyBinary: string;
  proxySocket: string;
  proxyTimeoutMs: number;
  xenctrl: string;
  sysfsRoot: string;
  procNetDev: string;
  /** First wait before a backend that failed to open is tried again (doubling, up to 60 s). */
  retryMs: number;
  xlBinary: string;
  xlChannel: string;
  libxlConfigDir: string;
  inactiveTimeoutMs: number;
}

/** VIRT_ERR_CONFIG naming the key and value for a bad one. */
export function readXenSettings(settings: OpenContext['settings']): XenSettings {
  const s = XEN.read(settings);
  return {
    xenstoreSocket: s['xenstore-socket'],
    xendAddress: s['xend-address'],
    timeoutMs: s.timeout,
    xendOpTimeoutMs: s['xend-op-timeout'],
    xendMaxResponseBytes: s['xend-max-response-bytes'],
    privileged: s.privileged,
    proxyBinary: resolveProxyBinary(s['proxy-binary']),
    proxySocket: s['proxy-socket'],
    proxyTimeoutMs: s['proxy-timeout-ms'],
    xenctrl: s.xenctrl,
    sysfsRoot: s['sysfs-root'],
    procNetDev: s['proc-net-dev'],
    retryMs: s['retry-ms'],
    xlBinary: s['xl-binary'],
    xlChannel: s['xl-channel'],
    libxlConfigDir: s['libxl-config-dir'],
    inactiveTimeoutMs: s['inactive-timeout-ms'],
  };
}

/** auto: root when running as uid 0. */
export function isPrivileged(p: Privilege): boolean {
  if (p === 'root') return true;
  if (p === 'user') return false;
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
