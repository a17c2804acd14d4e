/**
 * Why a domain is paused: an operator (suspend), or QEMU itself on a guest
 * I/O error (a disk with werror/rerror=stop, ENOSPC with the default
 * werror=enospc) or an internal error (e.g. KVM failing to run a vCPU).
 * QEMU's STOP event carries no reason; a BLOCK_IO_ERROR event with action
 * "stop" comes just before it (the run-state table in monitor.ts pairs them),
 * and query-status names the run state.
 */

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
