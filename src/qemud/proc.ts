/**
 * /proc readers: CPU time, RSS and liveness of QEMU processes and their vCPU
 * threads, and network device counters as seen from a process's namespace.
 * Synchronous on purpose: /proc reads are microseconds and a threadpool hop
 * per file would cost more than the read. The files read on every bulk read
 * are held open (ProcFile) and re-read in one system call each.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import type { NetCounters } from '../drivers/types.ts';

function sysconf(name: string, fallback: number): number {
  try {
    const r = spawnSync('getconf', [name], { encoding: 'utf8', timeout: 2000 });
    const n = Number(r.stdout.trim());
    return Number.isInteger(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

export const CLOCK_TICKS = sysconf('CLK_TCK', 100);
export const PAGE_SIZE = sysconf('PAGESIZE', 4096);

export interface ProcStat {
  /** R, S, D, Z, T, ... */
  state: string;
  utimeTicks: number;
  stimeTicks: number;
  /** Start time in clock ticks after boot, as text (guards against pid reuse). */
  startTime: string;
  rssPages: number;
  processor: number;
}

/** Parses the text of /proc/PID/stat (the comm field may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields after comm start at field 3 (state).
  const f = text.slice(close + 2).trim().split(' ');
  const at = (field: number): string => f[field - 3] ?? '';
  const state = at(3);
  if (state === '') return null;
  return {
    state,
    utimeTicks: Number(at(14)),
    stimeTicks: Number(at(15)),
    startTime: at(22),
    rssPages: Number(at(24)),
    processor: Number(at(39)),
  };
}

/** Stat of a process (or one of its threads); null when it does not exist. */
export function readProcStat(pid: number, tid?: number): ProcStat | null {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return null;
  }
  return parseProcStat(text);
}

/** /proc/PID/task/TID/schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting, timeslices. */
export function parseSchedstat(text: string): { runSeconds: number; delaySeconds: number } | null {
  const m = /^(\d+) (\d+) (\d+)\s*$/.exec(text);
  return m === null ? null : { runSeconds: Number(m[1]) / 1e9, delaySeconds: Number(m[2]) / 1e9 };
}

export function readSchedstat(pid: number, tid: number): { runSeconds: number; delaySeconds: number } | null {
  try {
    return parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1'));
  } catch {
    return null;
  }
}

export function cpuSeconds(s: ProcStat): number {
  return (s.utimeTicks + s.stimeTicks) / CLOCK_TICKS;
}

/** Alive: exists, is not a zombie, and (when known) started at the same tick. */
export function processAlive(pid: number, startTime?: string): boolean {
  const s = readProcStat(pid);
  return isLive(s, startTime);
}

export function isLive(s: ProcStat | null, startTime?: string): boolean {
  if (s === null || s.state === 'Z' || s.state === 'X' || s.state === 'x') return false;
  return startTime === undefined || s.startTime === startTime;
}

/** Interface counters as /proc/net/dev has them (the host's point of view). */
export type DevCounters = NetCounters;

/** Parses /proc/net/dev text into per-interface counters (host's point of view). */
export function parseNetDev(text: string): Map<string, DevCounters> {
  const out = new Map<string, DevCounters>();
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const n = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (n.length < 16 || n.some((x) => !Number.isFinite(x))) continue;
    out.set(name, {
      rxBytes: n[0] ?? 0,
      rxPackets: n[1] ?? 0,
      rxErrors: n[2] ?? 0,
      rxDrops: n[3] ?? 0,
      txBytes: n[8] ?? 0,
      txPackets: n[9] ?? 0,
      txErrors: n[10] ?? 0,
      txDrops: n[11] ?? 0,
    });
  }
  return out;
}

/** Interfaces in the network namespace of a process (its /proc/PID/net/dev). */
export function readNetDev(pid: number): Map<string, DevCounters> | null {
  try {
    return parseNetDev(readFileSync(`/proc/${pid}/net/dev`, 'latin1'));
  } catch {
    return null;
  }
}

/** Soft limit on open files (/proc/self/limits), for the budget of held /proc files. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return m?.[1] === undefined ? 1024 : m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch {
    return 1024;
  }
}

/** At most a quarter of the open-file limit goes to held /proc files; the rest stays for sockets, images, clients. */
const HELD_BUDGET = Math.floor(openFileLimit() / 4);
let held = 0;
const scratch = Buffer.alloc(4096);

/**
 * A /proc file of one process (or thread) held open and re-read with pread
 * at offset 0: one system call per reading instead of a path walk, open,
 * fstat, read and close. The descriptor stays bound to the process it was
 * opened on, so a reused pid can never answer for it: once that process is
 * gone, the reading is null. Past the budget of held descriptors it reads
 * by path as before.
 */
export class ProcFile {
  readonly path: string;
  #fd: number | null = null;

  private constructor(path: string, fd: number | null) {
    this.path = path;
    this.#fd = fd;
  }

  /** Opens the file; null when it does not exist (the process or thread is gone). */
  static open(path: string): ProcFile | null {
    if (held >= HELD_BUDGET) return existsSync(path) ? new ProcFile(path, null) : null;
    try {
      const fd = openSync(path, 'r');
      held++;
      return new ProcFile(path, fd);
    } catch {
      return null;
    }
  }

  /** The file's text now; null once its process is gone. */
  read(): string | null {
    if (this.#fd === null) {
      try {
        return readFileSync(this.path, 'latin1');
      } catch {
        return null;
      }
    }
    try {
      const n = readSync(this.#fd, scratch, 0, scratch.length, 0);
      return n === 0 ? null : scratch.toString('latin1', 0, n);
    } catch {
      return null;
    }
  }

  close(): void {
    if (this.#fd === null) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
    this.#fd = null;
    held--;
  }
}
