/**
 * Which lifecycle operation fits which domain state, checked before anything
 * is sent to the toolstack (Xend or xl): a wrong-state operation is
 * VIRT_ERR_OPERATION_INVALID (HTTP 409 at the admin endpoint) and reaches
 * nobody, as libvirt's drivers refuse "domain is not running" / "domain is
 * already active" themselves.
 */
import { VirtError } from '../../virt/errors.ts';
import type { DomainState } from '../types.ts';

export type LifecycleOp = 'start' | 'undefine' | 'shutdown' | 'reboot' | 'destroy' | 'suspend' | 'resume' | 'save';

/** Active: the domain exists in the hypervisor (has a domid) and has not stopped. */
export function isActive(d: { id: number | null; state: DomainState }): boolean {
  return d.id !== null && d.state !== 'shutoff';
}

const RULES: Record<LifecycleOp, { ok: (d: { id: number | null; state: DomainState }) => boolean; why: string }> = {
  start: { ok: (d) => !isActive(d), why: 'it is already active' },
  undefine: { ok: (d) => !isActive(d), why: 'it is active (shut it down or destroy it first)' },
  shutdown: { ok: (d) => isActive(d) && d.state !== 'shutdown', why: 'it is not running' },
  reboot: { ok: (d) => isActive(d) && d.state !== 'shutdown', why: 'it is not running' },
  destroy: { ok: (d) => isActive(d), why: 'it is not active' },
  suspend: { ok: (d) => isActive(d) && d.state !== 'paused' && d.state !== 'shutdown', why: 'it is not running' },
  resume: { ok: (d) => isActive(d) && d.state === 'paused', why: 'it is not paused' },
  save: { ok: (d) => isActive(d) && d.state !== 'shutdown', why: 'it is not running' },
};

/** Throws VIRT_ERR_OPERATION_INVALID when op does not fit d's state. */
export function checkState(op: LifecycleOp, d: { name: string; id: number | null; state: DomainState }, driver: string): void {
  const rule = RULES[op];
  if (!rule.ok(d)) {
    throw new VirtError('VIRT_ERR_OPERATION_INVALID', `cannot ${op} domain ${d.name}: ${rule.why} (state ${d.state})`, { driver, domain: d.name });
  }
}
