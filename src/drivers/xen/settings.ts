/**
 * The xen.* settings the driver reads (schema: src/config/schema/xen.ts),
 * with the same defaults applied when a key is absent.
 */
import { VirtError } from '../../virt/errors.ts';
import type { OpenContext } from '../driver.ts';
import { PROXY_DEFAULTS, resolveProxyBinary } from './proxy-client.ts';

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

function get(s: OpenContext['settings'], key: string): string | number | boolean | undefined {
  return s[`xen.${key}`];
}

function str(s: OpenContext['settings'], key: string, def: string): string {
  const v = get(s, key);
  if (v === undefined) return def;
  if (typeof v !== 'string') throw new VirtError('VIRT_ERR_CONFIG', `setting xen.${key} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function ms(s: OpenContext['settings'], key: string, def: number): number {
  const v = get(s, key);
  if (v === undefined) return def;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) throw new VirtError('VIRT_ERR_CONFIG', `setting xen.${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export function readXenSettings(s: OpenContext['settings']): XenSettings {
  const privileged = str(s, 'privileged', 'auto');
  if (privileged !== 'auto' && privileged !== 'root' && privileged !== 'user') {
    throw new VirtError('VIRT_ERR_CONFIG', `setting xen.privileged must be auto, root or user, got ${JSON.stringify(privileged)}`);
  }
  return {
    xenstoreSocket: str(s, 'xenstore-socket', ''),
    xendAddress: str(s, 'xend-address', ''),
    timeoutMs: ms(s, 'timeout', 5000),
    xendOpTimeoutMs: ms(s, 'xend-op-timeout', 600_000),
    xendMaxResponseBytes: ms(s, 'xend-max-response-bytes', 4 * 1024 * 1024),
    privileged,
    proxyBinary: resolveProxyBinary(str(s, 'proxy-binary', PROXY_DEFAULTS.binary)),
    proxySocket: str(s, 'proxy-socket', PROXY_DEFAULTS.socket),
    proxyTimeoutMs: ms(s, 'proxy-timeout-ms', PROXY_DEFAULTS.timeoutMs),
    xenctrl: str(s, 'xenctrl', ''),
    sysfsRoot: str(s, 'sysfs-root', '/sys'),
    procNetDev: str(s, 'proc-net-dev', '/proc/net/dev'),
    retryMs: ms(s, 'retry-ms', 1000),
    xlBinary: str(s, 'xl-binary', 'xl'),
    xlChannel: str(s, 'xl-channel', ''),
    libxlConfigDir: str(s, 'libxl-config-dir', '/var/lib/virt-exporter/libxl'),
    inactiveTimeoutMs: ms(s, 'inactive-timeout-ms', 2000),
  };
}

/** auto: root when running as uid 0. */
export function isPrivileged(p: Privilege): boolean {
  if (p === 'root') return true;
  if (p === 'user') return false;
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
