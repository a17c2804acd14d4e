/**
 * Why a domain is paused: an operator (suspend), or QEMU itself on a guest
 * I/O error (a disk with werror/rerror=stop, ENOSPC with the default
 * werror=enospc) or an internal error (e.g. KVM failing to run a vCPU).
 * QEMU's STOP event carries no reason; a BLOCK_IO_ERROR event with action
 * "stop" comes just before it, and query-status names the run state.
 */
import type { QmpEvent } from './qmp.ts';

export interface IoErrorNote {
  device: string;
  operation: string;
  reason: string;
  nospace: boolean;
  at: number;
}

const lastIoError = new WeakMap<object, IoErrorNote>();

/** Remembers a BLOCK_IO_ERROR that stops the guest (action "stop"). */
export function noteBlockIoError(domain: object, ev: QmpEvent): IoErrorNote | undefined {
  if (ev.event !== 'BLOCK_IO_ERROR' || ev.data['action'] !== 'stop') return undefined;
  const s = (k: string): string => { const v = ev.data[k]; return typeof v === 'string' ? v : ''; };
  const note = { device: s('device') || s('node-name').replace(/^fmt-/, ''), operation: s('operation'), reason: s('reason'), nospace: ev.data['nospace'] === true, at: Date.now() };
  lastIoError.set(domain, note);
  return note;
}

/** The reason of a STOP event: "ioerror" right after a stopping BLOCK_IO_ERROR, else "user". */
export function stopReason(domain: object, now = Date.now()): 'ioerror' | 'user' {
  const n = lastIoError.get(domain);
  lastIoError.delete(domain);
  return n !== undefined && now - n.at < 5000 ? 'ioerror' : 'user';
}

/** The pause reason a query-status run state implies, when QEMU paused the guest itself. */
export function pauseReasonOfRunState(status: string): 'ioerror' | 'internal-error' | 'watchdog' | undefined {
  switch (status) {
    case 'io-error':
      return 'ioerror';
    case 'internal-error':
      return 'internal-error';
    case 'watchdog':
      return 'watchdog';
    default:
      return undefined;
  }
}
