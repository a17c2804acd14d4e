/**
 * QEMU's own log per domain, as libvirt keeps /var/log/libvirt/qemu/NAME.log:
 * log/NAME.qemu.log under the runtime directory. QEMU runs undaemonized (its
 * sandbox forbids -daemonize) with its stderr on that file, so it holds what
 * QEMU says while it runs (block errors, warnings, its reason for exiting).
 * Each start truncates it; the previous run's log is kept as NAME.qemu.log.1.
 */
import { closeSync, openSync, readSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { QemudPaths } from '../qemud-shared/paths.ts';

export function qemuLogPath(paths: QemudPaths, name: string): string {
  return join(paths.logDir, `${name}.qemu.log`);
}

/** Keeps the previous run's log as FILE.1 (QEMU would truncate it). */
export function rotateQemuLog(file: string): void {
  try {
    if (statSync(file).size > 0) renameSync(file, `${file}.1`);
  } catch {
    // no previous log
  }
}

/** The last few non-empty lines of the log (at most 4 KiB read), joined with "; ". */
export function qemuLogTail(file: string, maxLines = 3): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(file).size;
    const len = Math.min(size, 4096);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(-maxLines).join('; ');
  } finally {
    closeSync(fd);
  }
}

/** An error message that names QEMU's log file (and quotes its last lines). */
export function withQemuLog(message: string, file: string): string {
  const tail = qemuLogTail(file);
  return `${message} (QEMU log ${file}${tail === '' ? '' : `: ${tail}`})`;
}
