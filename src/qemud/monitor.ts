/**
 * The QMP monitor of a running domain: attaching to it, the commands sent on
 * it, and the run-state machine. Every change of a domain's run state goes
 * through `nextState(status, event)`, a pure table of what a QMP event or a
 * lifecycle step does to it (and what must be done in return: quit a QEMU
 * whose guest powered off, ask why QEMU paused it); `apply` is the one place
 * that stores the result and carries those effects out.
 */
import { VirtError, toVirtError } from '../virt/errors.ts';
import type { QemudContext } from './context.ts';
import { SHUT_OFF, invalidState, type Domain, type RunStatus } from './domain.ts';
import { u64 } from './json.ts';
import { pauseReasonOfRunState } from './pause-reason.ts';
import { qemuLogPath, withQemuLog } from './qemu-log.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';
import { parseBalloon, parseCpusFast, parseQueryStatus, runStateToDomain } from './qmp-parse.ts';

/** A STOP this soon after a stopping BLOCK_IO_ERROR is QEMU pausing the guest on that error. */
export const IO_ERROR_STOP_MS = 5000;

/** What happens to a domain: a QMP event (with the time it was received) or a step of a lifecycle operation. */
export type RunEvent =
  | { kind: 'qmp'; event: string; data: Record<string, unknown>; at: number }
  /** QEMU started (paused for an incoming migration stream, or booting). */
  | { kind: 'launched'; incoming: boolean }
  /** A QEMU that outlived a virt-qemud restart was found alive. */
  | { kind: 'recovered' }
  /** The monitor (re)connected and query-status said `status`. */
  | { kind: 'attached'; status: string; balloonBytes?: number }
  /** The query-status asked for after a STOP of the same epoch answered. */
  | { kind: 'pause-status'; status: string; epoch: number }
  | { kind: 'suspended' }
  | { kind: 'resumed' }
  /** Save paused a running guest before writing its image; `failed`: save failed and it runs again. */
  | { kind: 'save-paused' }
  | { kind: 'save-failed' }
  | { kind: 'restored'; running: boolean }
  /** An operation is about to end the process; `ifUnset`: only when no other reason is set. */
  | { kind: 'expect-exit'; reason: string; ifUnset?: boolean }
  | { kind: 'exit-not-expected' }
  /** The process is gone; `reason` overrides what the status expected. */
  | { kind: 'exited'; reason?: string }
  /** An operation that stopped the domain names the outcome (only while shut off). */
  | { kind: 'stopped-as'; reason: string };

export type Effect = { kind: 'quit' } | { kind: 'query-pause-reason'; epoch: number } | { kind: 'io-error'; device: string; operation: string; reason: string; nospace: boolean };

export interface Transition {
  status: RunStatus;
  effects: Effect[];
}

function str(data: Record<string, unknown>, k: string): string {
  const v = data[k];
  return typeof v === 'string' ? v : '';
}

function qmpEvent(s: RunStatus, ev: Extract<RunEvent, { kind: 'qmp' }>): Transition {
  // Any event but a balloon change may move the run state or the block counters.
  const b = ev.event === 'BALLOON_CHANGE' ? s : { ...s, epoch: s.epoch + 1 };
  switch (ev.event) {
    case 'STOP': {
      if (s.state !== 'running') return { status: b, effects: [] };
      if (s.sawShutdown) return { status: { ...b, state: 'paused', reason: 'shutting-down' }, effects: [] };
      const io = s.ioErrorAt !== null && ev.at - s.ioErrorAt < IO_ERROR_STOP_MS;
      return { status: { ...b, state: 'paused', reason: io ? 'ioerror' : 'user', ioErrorAt: null }, effects: [{ kind: 'query-pause-reason', epoch: b.epoch }] };
    }
    case 'BLOCK_IO_ERROR': {
      if (ev.data['action'] !== 'stop') return { status: b, effects: [] };
      const device = str(ev.data, 'device') || str(ev.data, 'node-name').replace(/^fmt-/, '');
      return { status: { ...b, ioErrorAt: ev.at }, effects: [{ kind: 'io-error', device, operation: str(ev.data, 'operation'), reason: str(ev.data, 'reason'), nospace: ev.data['nospace'] === true }] };
    }
    case 'RESUME':
      return { status: { ...b, state: 'running', reason: 'unpaused' }, effects: [] };
    case 'SHUTDOWN':
      if (ev.data['guest'] !== true) return { status: { ...b, sawShutdown: true }, effects: [] };
      // -no-shutdown keeps QEMU alive after a guest poweroff; it is ended so the domain is shut off.
      return { status: { ...b, sawShutdown: true, state: 'shutdown', reason: 'guest', expectingExit: s.expectingExit ?? 'shutdown' }, effects: [{ kind: 'quit' }] };
    case 'GUEST_PANICKED':
      return { status: { ...b, state: 'crashed', reason: 'panicked' }, effects: [] };
    case 'SUSPEND':
      return { status: { ...b, state: 'pmsuspended', reason: 'guest' }, effects: [] };
    case 'WAKEUP':
      return { status: { ...b, state: 'running', reason: 'wakeup' }, effects: [] };
    case 'BALLOON_CHANGE': {
      const actual = u64(ev.data['actual']);
      return { status: actual === undefined ? s : { ...s, balloonBytes: actual }, effects: [] };
    }
    default:
      return { status: b, effects: [] };
  }
}

/** The run-state table: pure, so it is tested on recorded QMP sessions without a QEMU. */
export function nextState(s: RunStatus, ev: RunEvent): Transition {
  const none = (status: RunStatus): Transition => ({ status, effects: [] });
  switch (ev.kind) {
    case 'qmp':
      return qmpEvent(s, ev);
    case 'launched':
      return none({ ...SHUT_OFF, epoch: s.epoch + 1, state: ev.incoming ? 'paused' : 'running', reason: ev.incoming ? 'starting-up' : 'booted' });
    case 'recovered':
      return none({ ...SHUT_OFF, epoch: s.epoch + 1, state: 'running', reason: 'unknown' });
    case 'attached': {
      const rs = runStateToDomain(ev.status);
      // Events may have been missed while no monitor was connected: a new epoch.
      let n: RunStatus = { ...s, epoch: s.epoch + 1, ...(ev.balloonBytes === undefined ? {} : { balloonBytes: ev.balloonBytes }) };
      // A pause whose reason is known (user, save, I/O error) keeps it.
      if (!(s.state === 'paused' && rs.state === 'paused')) n = { ...n, state: rs.state, reason: rs.reason };
      if (n.state !== 'shutdown') return none(n);
      return { status: { ...n, expectingExit: n.expectingExit ?? 'shutdown' }, effects: [{ kind: 'quit' }] };
    }
    case 'pause-status': {
      const reason = pauseReasonOfRunState(ev.status);
      return none(reason !== undefined && s.epoch === ev.epoch && s.state === 'paused' ? { ...s, reason } : s);
    }
    case 'suspended':
      return none({ ...s, state: 'paused', reason: 'user', epoch: s.epoch + 1 });
    case 'resumed':
      return none({ ...s, state: 'running', reason: 'unpaused', epoch: s.epoch + 1 });
    case 'save-paused':
      return none({ ...s, state: 'paused', reason: 'save', epoch: s.epoch + 1 });
    case 'save-failed':
      return none({ ...s, state: 'running', reason: 'save-failed', epoch: s.epoch + 1 });
    case 'restored':
      return none({ ...s, state: ev.running ? 'running' : 'paused', reason: ev.running ? 'restored' : 'user', epoch: s.epoch + 1 });
    case 'expect-exit':
      return none({ ...s, expectingExit: ev.ifUnset === true ? (s.expectingExit ?? ev.reason) : ev.reason });
    case 'exit-not-expected':
      return none({ ...s, expectingExit: null });
    case 'exited':
      return none({ ...SHUT_OFF, epoch: s.epoch + 1, reason: ev.reason ?? s.expectingExit ?? (s.sawShutdown ? 'shutdown' : 'crashed') });
    case 'stopped-as':
      return none(s.state === 'shutoff' ? { ...s, reason: ev.reason } : s);
  }
}

/** Stores the next state of d and carries out what it asks for. */
export function apply(ctx: QemudContext, d: Domain, ev: RunEvent): void {
  const t = nextState(d.status, ev);
  d.status = t.status;
  for (const e of t.effects) {
    const qmp = d.monitor.qmp;
    if (e.kind === 'io-error') {
      ctx.log.warn('guest I/O error stops the domain', { domain: d.name, device: e.device, operation: e.operation, reason: e.reason, nospace: e.nospace, qemuLog: qemuLogPath(ctx.o.paths, d.name) });
    } else if (qmp === null || qmp.closed) {
      continue;
    } else if (e.kind === 'quit') {
      // The monitor closes as QEMU exits; the close handler does the rest.
      qmp.execute('quit', undefined, { timeoutMs: ctx.o.commandTimeoutMs }).catch(() => undefined);
    } else {
      // After a STOP: if QEMU paused the guest itself (I/O or internal error), say so rather than "user".
      qmp.execute('query-status', undefined, { timeoutMs: ctx.o.qmpTimeoutMs }).then(
        (v) => apply(ctx, d, { kind: 'pause-status', status: parseQueryStatus(v), epoch: e.epoch }),
        () => undefined,
      );
    }
  }
}

function onEvent(ctx: QemudContext, d: Domain, ev: QmpEvent): void {
  ctx.log.info('QMP event', { domain: d.name, event: ev.event, reason: typeof ev.data['reason'] === 'string' ? ev.data['reason'] : undefined });
  apply(ctx, d, { kind: 'qmp', event: ev.event, data: ev.data, at: Date.now() });
}

/**
 * Connects d's monitor (once; concurrent callers share the attempt), reads
 * its run state, vCPU threads and balloon size. `onClosed` runs when that
 * monitor later closes (QEMU exiting, or the socket lost).
 */
export function attach(ctx: QemudContext, d: Domain, timeoutMs: number, onClosed: (qmp: QmpClient) => void): Promise<QmpClient> {
  const m = d.monitor;
  if (m.qmp !== null && !m.qmp.closed) return Promise.resolve(m.qmp);
  if (m.attaching !== null) return m.attaching;
  const rec = d.runtime;
  if (rec === null) return Promise.reject(invalidState(d, 'reach', 'it is not running'));
  const p = (async () => {
    const qmp = await QmpClient.connect(rec.qmpSocket, { timeoutMs, logger: ctx.log, onEvent: (ev) => onEvent(ctx, d, ev) });
    qmp.onClose = () => {
      if (m.qmp !== qmp) return;
      detach(d);
      onClosed(qmp);
    };
    let status: string;
    let balloon: number | undefined;
    try {
      const call = { timeoutMs };
      status = parseQueryStatus(await qmp.execute('query-status', undefined, call));
      d.caches.vcpuTids = parseCpusFast(await qmp.execute('query-cpus-fast', undefined, call));
      d.caches.vcpuRefreshedAt = Date.now();
      if (d.config.balloon.enabled) balloon = parseBalloon(await qmp.execute('query-balloon', undefined, call));
    } catch (err) {
      qmp.close();
      throw err;
    }
    if (d.runtime !== rec) {
      qmp.close();
      throw invalidState(d, 'reach', 'it stopped while attaching');
    }
    m.qmp = qmp;
    m.error = null;
    apply(ctx, d, { kind: 'attached', status, ...(balloon === undefined ? {} : { balloonBytes: balloon }) });
    return qmp;
  })();
  m.attaching = p;
  p.catch((err: unknown) => {
    m.error = toVirtError(err, 'VIRT_ERR_RPC');
  }).finally(() => {
    if (m.attaching === p) m.attaching = null;
  });
  return p;
}

/** Forgets d's monitor (closing it). */
export function detach(d: Domain): void {
  const m = d.monitor;
  const q = m.qmp;
  m.qmp = null;
  q?.close();
}

/** Re-reads the vCPU threads in the background (a thread vanished). */
export function refreshVcpus(ctx: QemudContext, d: Domain): void {
  const qmp = d.monitor.qmp;
  const c = d.caches;
  if (qmp === null || c.vcpuRefreshing) return;
  c.vcpuRefreshing = true;
  qmp
    .execute('query-cpus-fast', undefined, { timeoutMs: ctx.o.qmpTimeoutMs })
    .then((v) => {
      c.vcpuTids = parseCpusFast(v);
    })
    .catch((err: unknown) => ctx.log.debug('vCPU refresh failed', { domain: d.name, err }))
    .finally(() => {
      c.vcpuRefreshing = false;
      c.vcpuRefreshedAt = Date.now();
    });
}

/** One QMP command of a lifecycle operation; a failure names the command, the domain and QEMU's log. */
export function command(ctx: QemudContext, d: Domain, cmd: string, args?: Record<string, unknown>): Promise<unknown> {
  const qmp = d.monitor.qmp;
  const log = qemuLogPath(ctx.o.paths, d.name);
  if (qmp === null || qmp.closed) throw new VirtError('VIRT_ERR_OPERATION_FAILED', withQemuLog(`QMP monitor of ${d.name} is not connected`, log), { domain: d.name });
  return qmp.execute(cmd, args, { timeoutMs: ctx.o.commandTimeoutMs }).catch((err: unknown) => {
    const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
    throw new VirtError(e.code, withQemuLog(`${cmd} on domain ${d.name} failed: ${e.message}`, log), { domain: d.name, cause: err });
  });
}
