/**
 * The pid file contract between virt-qemud and its clients: a running
 * supervisor holds PATHS.pidFile with its pid; a clean stop removes it with
 * both sockets; a supervisor that died leaves it behind.
 */
import { readFileSync } from 'node:fs';
import type { QemudPaths } from './paths.ts';

/** Whether a process exists and is not a zombie (state Z or X in /proc/PID/stat). */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z' && state !== 'X' && state !== 'x';
}

/** Whether a supervisor died here: its pid file is still there and names no live process. */
export function supervisorDied(paths: QemudPaths): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(paths.pidFile, 'utf8').trim());
  } catch {
    return false;
  }
  return Number.isInteger(pid) && pid > 0 && !pidAlive(pid);
}
