/**
 * The host: its CPU topology and memory, and its CPU frequency in MHz. os.cpus() reports speed 0 on many virtual
 * and some physical machines although /proc/cpuinfo has "cpu MHz"; that
 * line is read first, then cpufreq's maximum, then os.cpus().
 */
import { readFileSync } from 'node:fs';
import { cpus, freemem, hostname, totalmem } from 'node:os';
import type { HostInfo } from '../drivers/types.ts';

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** "cpu MHz : 2596.122" of the first CPU, rounded; undefined when absent. */
export function cpuinfoMhz(cpuinfo: string): number | undefined {
  const m = /^cpu MHz\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*$/m.exec(cpuinfo);
  const v = m?.[1] === undefined ? NaN : Number(m[1]);
  return Number.isFinite(v) && v > 0 ? Math.round(v) : undefined;
}

export function hostCpuMhz(read: (path: string) => string | undefined = readText, osSpeed: number = cpus()[0]?.speed ?? 0): number {
  const fromInfo = cpuinfoMhz(read('/proc/cpuinfo') ?? '');
  if (fromInfo !== undefined) return fromInfo;
  const khz = Number(read('/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq')?.trim());
  if (Number.isFinite(khz) && khz > 0) return Math.round(khz / 1000);
  return osSpeed > 0 ? osSpeed : 0;
}

/** The host as the driver's hostInfo reports it: CPU topology from /proc/cpuinfo, memory, hypervisor (KVM or TCG) and QEMU version. */
export function hostInfo(hypervisor: HostInfo['hypervisor'], hypervisorVersion: string): HostInfo {
  const c = cpus();
  let sockets = 1;
  let cores = c.length;
  let threads = 1;
  const text = readText('/proc/cpuinfo');
  if (text !== undefined) {
    const phys = new Set([...text.matchAll(/^physical id\s*:\s*(\d+)/gm)].map((m) => m[1]));
    const coreIds = new Set([...text.matchAll(/^core id\s*:\s*(\d+)/gm)].map((m) => m[1]));
    if (phys.size > 0) sockets = phys.size;
    if (coreIds.size > 0) cores = coreIds.size;
    threads = Math.max(1, Math.round(c.length / (sockets * cores)));
  }
  return {
    hostname: hostname(),
    model: process.arch === 'x64' ? 'x86_64' : process.arch,
    cpus: c.length,
    mhz: hostCpuMhz(),
    nodes: 1,
    sockets,
    cores,
    threads,
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    hypervisor,
    hypervisorVersion,
  };
}
