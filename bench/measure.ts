// What the benchmarks read from /proc about a process (all its threads), and
// small statistics helpers. Used by bench/idle.ts and bench/test-host.ts.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** utime + stime of the whole process in seconds (clock ticks: 10 ms steps). */
export function cpuTicksSeconds(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === undefined) return NaN;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

export interface ProcSample {
  /** CPU time of all live threads from schedstat (nanosecond resolution), seconds. */
  cpuSeconds: number;
  /** utime + stime from /proc/PID/stat (includes exited threads), seconds. */
  tickSeconds: number;
  /** Context switches (voluntary + involuntary) of all live threads: how often the process woke. */
  switches: number;
}

export function sample(pid: number): ProcSample {
  let cpu = 0;
  let switches = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone
  }
  for (const tid of tasks) {
    const s = read(`/proc/${pid}/task/${tid}/schedstat`);
    if (s !== undefined) cpu += Number(s.split(' ')[0]) / 1e9;
    const st = read(`/proc/${pid}/task/${tid}/status`) ?? '';
    switches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
  }
  return { cpuSeconds: cpu, tickSeconds: cpuTicksSeconds(pid), switches };
}

/** Peak (VmHWM) or current (VmRSS) resident memory in MiB. */
export function rssMiB(pid: number, which: 'VmHWM' | 'VmRSS' = 'VmHWM'): number {
  const m = new RegExp(`${which}:\\s+(\\d+) kB`).exec(read(`/proc/${pid}/status`) ?? '');
  return Number(m?.[1] ?? 0) / 1024;
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** "median (min–max)" of repeated measurements, with `digits` decimals. */
export function spread(values: readonly number[], digits = 1): string {
  const s = [...values].sort((a, b) => a - b);
  const med = percentile(s, 50);
  if (s.length < 2) return med.toFixed(digits);
  return `${med.toFixed(digits)} (${(s[0] ?? NaN).toFixed(digits)}–${(s.at(-1) ?? NaN).toFixed(digits)})`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
