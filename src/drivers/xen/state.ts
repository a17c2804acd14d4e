/**
 * Xen domain info flags (XEN_DOMINF_*) to a DomainState. Each bit is tested
 * on its own, as libxl does (protocols.md §7 pitfall 12): libvirt's old
 * exact match on the low byte sent every combination (paused+blocked,
 * running+blocked, hvm+anything) to NOSTATE.
 *
 * Precedence, most final first:
 *  - shutdown: the guest has stopped; reason crash/watchdog -> crashed,
 *    poweroff/reboot/suspend/soft_reset (or an unknown reason) -> shutoff;
 *  - dying: being destroyed -> shutdown ("being shut down");
 *  - paused: paused by the toolstack, whatever its vCPUs were doing -> paused;
 *  - running: a vCPU is on a physical CPU -> running;
 *  - blocked: every vCPU waits for an event -> blocked;
 *  - none of these: runnable, waiting for a physical CPU -> running.
 * hvm_guest, debugged, xs_domain and hap do not affect the state.
 */
import type { DomainState } from '../types.ts';
import { XEN_DOMINF, XEN_DOMINF_SHUTDOWN_SHIFT, XEN_SHUTDOWN_REASONS } from './types.ts';

export interface XenStateReading {
  state: DomainState;
  /** Why: the shutdown reason name, or the flag that decided (dying, paused, running, blocked, runnable). */
  reason: string;
}

/** The shutdown reason in bits 16-23, by name ("reason-<n>" when Xen adds one we do not know). */
export function xenShutdownReason(flags: number): string {
  const code = (flags >>> XEN_DOMINF_SHUTDOWN_SHIFT) & 0xff;
  return XEN_SHUTDOWN_REASONS[code] ?? `reason-${code}`;
}

export function xenFlagsToState(flags: number): XenStateReading {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new RangeError(`Xen domain flags must be a u32, got ${String(flags)}`);
  const has = (bit: number): boolean => (flags & bit) !== 0;
  if (has(XEN_DOMINF.shutdown)) {
    const reason = xenShutdownReason(flags);
    return { state: reason === 'crash' || reason === 'watchdog' ? 'crashed' : 'shutoff', reason };
  }
  if (has(XEN_DOMINF.dying)) return { state: 'shutdown', reason: 'dying' };
  if (has(XEN_DOMINF.paused)) return { state: 'paused', reason: 'paused' };
  if (has(XEN_DOMINF.running)) return { state: 'running', reason: 'running' };
  if (has(XEN_DOMINF.blocked)) return { state: 'blocked', reason: 'blocked' };
  return { state: 'running', reason: 'runnable' };
}
