/**
 * The host's CPU frequency in MHz. os.cpus() reports speed 0 on many virtual
 * and some physical machines although /proc/cpuinfo has "cpu MHz"; that
 * line is read first, then cpufreq's maximum, then os.cpus().
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

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
