/**
 * The QEMU process of a domain: launching it, recovering it after a
 * virt-qemud restart, noticing that it is gone, killing it, and waiting for
 * it to stop. Liveness comes from /proc (pid and start time, so a reused pid
 * is not mistaken for the domain's QEMU).
 */
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { withTimeout } from '../util/deadline.ts';
import { VirtError } from '../virt/errors.ts';
import type { QemudContext } from './context.ts';
import { labelFiles, restoreLabels } from './dac.ts';
import { domainNetns, safeDefinition, type DomainDefinition } from './definition.ts';
import { closeCaches, freshCaches, invalidState, type Domain } from './domain.ts';
import { checkDefinitionPaths } from './images.ts';
import { apply, attach, detach } from './monitor.ts';
import { isLive, parseProcStat, processAlive, ProcFile, readProcStat, type ProcStat } from './proc.ts';
import { buildCommand, kvmUsable } from './qemu-args.ts';
import { qemuLogPath, rotateQemuLog, withQemuLog } from './qemu-log.ts';
import type { QmpClient } from './qmp.ts';
import { killQuiet, qemuPidsFor, readPid, sleep, startQemu, type CommandResult } from './spawn.ts';
import { unlinkQuiet, type RuntimeRecord } from './store.ts';

/**
 * Liveness check from /proc; a QEMU that is gone (or a zombie) turns its
 * domain shut off at once. Returns the process stat when alive.
 */
export function checkAlive(ctx: QemudContext, d: Domain): ProcStat | null {
  const rec = d.runtime;
  if (rec === null || rec.pid === undefined) return null;
  const c = d.caches;
  c.procStat ??= ProcFile.open(`/proc/${rec.pid}/stat`);
  const text = c.procStat?.read() ?? null;
  const stat = text === null ? null : parseProcStat(text);
  if (isLive(stat, rec.pidStartTime === '' ? undefined : rec.pidStartTime)) return stat;
  markStopped(ctx, d);
  return null;
}

/** The domain is shut off: its runtime files go, its monitor closes, its waiters are told. `reason` overrides the expected one. */
export function markStopped(ctx: QemudContext, d: Domain, reason?: string): void {
  if (d.runtime !== null) {
    ctx.log.info('domain stopped', { domain: d.name, pid: d.runtime.pid, reason: reason ?? d.status.expectingExit ?? (d.status.sawShutdown ? 'shutdown' : 'crashed') });
    cleanupRuntime(ctx, d.runtime);
  }
  detach(d);
  d.runtime = null;
  d.running = null;
  d.monitor.error = null;
  closeCaches(d.caches);
  d.caches = freshCaches();
  apply(ctx, d, reason === undefined ? { kind: 'exited' } : { kind: 'exited', reason });
  const waiters = d.stopWaiters;
  d.stopWaiters = [];
  for (const w of waiters) w();
}

export function cleanupRuntime(ctx: QemudContext, rec: RuntimeRecord): void {
  // Give the domain's files back before forgetting which they were.
  if (rec.labels !== undefined) restoreLabels(rec.labels);
  if (rec.privDir !== undefined) rmSync(rec.privDir, { recursive: true, force: true });
  ctx.store.removeRuntime(rec.name);
  unlinkQuiet(rec.qmpSocket);
  unlinkQuiet(rec.pidFile);
}

/** Attaches d's monitor; when it later closes, QEMU is watched for a moment to see whether it is exiting. */
export function connect(ctx: QemudContext, d: Domain, timeoutMs: number): Promise<QmpClient> {
  const rec = d.runtime;
  return attach(ctx, d, timeoutMs, () => {
    // The socket closes when QEMU exits; give the kernel a moment to finish the process off.
    void (async () => {
      for (let i = 0; i < 50 && d.runtime === rec; i++) {
        if (checkAlive(ctx, d) === null) return;
        await sleep(100);
      }
      if (d.runtime === rec) ctx.log.warn('QMP monitor closed but QEMU still runs; will reconnect on the next read', { domain: d.name });
    })();
  });
}

/** The monitor of a running domain, for a lifecycle operation. */
export function requireMonitor(ctx: QemudContext, d: Domain, op: string): Promise<QmpClient> {
  checkAlive(ctx, d);
  if (!d.active) return Promise.reject(invalidState(d, op, 'it is not running'));
  return connect(ctx, d, ctx.o.commandTimeoutMs);
}

/**
 * Reconnects a lost monitor. A QEMU on its way out (after quit, a guest
 * poweroff or a kill) closes its monitor before the process is gone: when
 * the connect fails and the process then dies within a moment, the domain
 * is simply shut off, not an error.
 */
export async function reattach(ctx: QemudContext, d: Domain, ms: number, signal?: AbortSignal, settleMs = 500): Promise<void> {
  if (d.status.expectingExit !== null && (await settlesDead(ctx, d, settleMs))) return;
  try {
    await withTimeout(connect(ctx, d, ctx.o.qmpTimeoutMs), ms, `QMP monitor of ${d.name}`, signal);
  } catch (err) {
    if (await settlesDead(ctx, d, settleMs)) return;
    throw err;
  }
}

async function settlesDead(ctx: QemudContext, d: Domain, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (checkAlive(ctx, d) === null) return true;
    if (Date.now() >= until) return false;
    await sleep(25);
  }
}

/** At virt-qemud start: adopts a QEMU that outlived the previous virt-qemud, or reports its domain shut off. */
export function recover(ctx: QemudContext, d: Domain, rec: RuntimeRecord & { definition?: DomainDefinition }): void {
  let pid = rec.pid;
  const startTime = rec.pidStartTime;
  if (rec.phase === 'starting') {
    // Killed in the middle of a start: the start never completed, so any QEMU
    // it left (the daemonizing parent or its child) is ended, not adopted.
    for (let pass = 0; pass < 2; pass++) {
      for (const orphan of qemuPidsFor(d.stored.uuid)) {
        ctx.log.warn('ending the QEMU of an interrupted start', { domain: d.name, pid: orphan });
        killQuiet(orphan, 'SIGKILL');
      }
    }
    pid = undefined;
  }
  if (pid === undefined || !processAlive(pid, startTime === '' ? undefined : startTime)) {
    const st = pid === undefined ? null : readProcStat(pid);
    ctx.log.warn('QEMU of domain is gone; reporting it shut off', { domain: d.name, pid, procState: st?.state, startTime: st?.startTime, recordedStartTime: startTime });
    cleanupRuntime(ctx, rec);
    apply(ctx, d, { kind: 'exited', reason: rec.phase === 'starting' ? 'failed' : 'crashed' });
    return;
  }
  const full: RuntimeRecord & { definition?: DomainDefinition } = { ...rec, phase: 'running', pid, pidStartTime: startTime ?? '' };
  if (rec.phase === 'starting') ctx.store.saveRuntime(full);
  d.runtime = full;
  d.running = rec.definition !== undefined ? safeDefinition(rec.definition) ?? d.stored : d.stored;
  apply(ctx, d, { kind: 'recovered' });
  ctx.log.info('re-attaching to running QEMU', { domain: d.name, pid });
  connect(ctx, d, ctx.o.qmpTimeoutMs).catch((err: unknown) => {
    ctx.log.warn('re-attach to QMP monitor failed; will retry on the next read', { domain: d.name, err });
  });
}

/** A fresh runtime record for starting def, with the files an unprivileged QEMU gets handed. */
function prepareRuntime(ctx: QemudContext, def: DomainDefinition, accel: 'kvm' | 'tcg'): RuntimeRecord & { definition: DomainDefinition } {
  const p = ctx.o.paths;
  const user = ctx.o.qemuUser;
  // An unprivileged QEMU gets a private directory of its own for its monitor socket, pid file and migration sockets.
  const privDir = user === undefined ? undefined : join(p.runtimeDir, 'priv', def.uuid);
  const rec: RuntimeRecord & { definition: DomainDefinition } = {
    name: def.name,
    uuid: def.uuid,
    id: ctx.allocateId(),
    phase: 'starting',
    pidFile: privDir === undefined ? join(p.runDir, `${def.name}.pid`) : join(privDir, 'qemu.pid'),
    qmpSocket: privDir === undefined ? join(p.qmpDir, `${def.uuid}.sock`) : join(privDir, 'qmp.sock'),
    consoleLog: def.console?.logFile ?? join(p.logDir, `${def.name}.console.log`),
    accel,
    startedAt: new Date().toISOString(),
    definition: def,
    ...(privDir === undefined ? {} : { privDir }),
  };
  unlinkQuiet(rec.qmpSocket);
  unlinkQuiet(rec.pidFile);
  if (user !== undefined && privDir !== undefined) {
    rmSync(privDir, { recursive: true, force: true });
    // The parent is searchable (0711, not listable), each domain's directory its QEMU user's alone (0700).
    mkdirSync(dirname(privDir), { recursive: true, mode: 0o711 });
    chmodSync(dirname(privDir), 0o711);
    mkdirSync(privDir, { mode: 0o700 });
    chownSync(privDir, user.uid, user.gid);
    // The console log must exist to be handed over; the log directory must be searchable (not listable) for it.
    chmodSync(p.logDir, 0o711);
    closeSync(openSync(rec.consoleLog, 'a', 0o600));
    // Recorded before the change, so a crash in between still gives the files back.
    const files = [...def.disks.map((x) => x.path), ...(def.kernel === undefined ? [] : [def.kernel.path, ...(def.kernel.initrd === undefined ? [] : [def.kernel.initrd])]), rec.consoleLog];
    ctx.store.saveRuntime(rec);
    rec.labels = labelFiles(files, user);
  }
  ctx.store.saveRuntime(rec);
  return rec;
}

/** Starts QEMU for def (paused for an incoming migration stream when `incoming`) and attaches its monitor. */
export async function launch(ctx: QemudContext, d: Domain, def: DomainDefinition, incoming: boolean): Promise<void> {
  // Again at start: a file may have been swapped for a device node or a link out since the definition.
  checkDefinitionPaths(def, ctx.o.imageDirs ?? []);
  let accel: 'kvm' | 'tcg';
  if (def.accel === 'auto') accel = kvmUsable() ? 'kvm' : 'tcg';
  else if (def.accel === 'kvm' && !kvmUsable()) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `domain ${def.name} requires KVM but /dev/kvm is not usable`, { domain: def.name });
  else accel = def.accel;
  const user = ctx.o.qemuUser;
  if (user !== undefined && domainNetns(def) !== undefined) {
    throw new VirtError('VIRT_ERR_CONFIG', `domain ${def.name} names a network namespace; entering it needs root, so it cannot run as qemu-user ${user.name}`, { domain: def.name });
  }
  const rec = prepareRuntime(ctx, def, accel);
  const cmd = buildCommand(def, {
    qmpSocket: rec.qmpSocket,
    pidFile: rec.pidFile,
    consoleLog: rec.consoleLog,
    accel,
    incoming,
    balloonStatsIntervalSeconds: ctx.o.balloonStatsIntervalSeconds,
    ...(ctx.o.emulator !== undefined ? { emulator: ctx.o.emulator } : {}),
  });
  // QEMU's stderr goes to its per-domain log (startQemu opens it); the previous run's is kept as .1.
  const qemuLog = qemuLogPath(ctx.o.paths, def.name);
  rotateQemuLog(qemuLog);
  ctx.log.info('starting QEMU', { domain: def.name, accel, command: [cmd.file, ...cmd.args].join(' ') });
  let r: CommandResult;
  try {
    r = await startQemu(cmd.file, cmd.args, { pidFile: rec.pidFile, qmpSocket: rec.qmpSocket, stderrLog: qemuLog, timeoutMs: ctx.o.startTimeoutMs, ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }) });
  } catch (err) {
    cleanupRuntime(ctx, rec);
    throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot run ${cmd.file}: ${(err as Error).message}`, { domain: def.name, cause: err });
  }
  const pid = readPid(rec.pidFile);
  if (r.code !== 0 || pid === undefined) {
    if (pid !== undefined) killQuiet(pid);
    cleanupRuntime(ctx, rec);
    const msg = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('warning:')).join('; ') || `exit code ${String(r.code)}`;
    throw new VirtError('VIRT_ERR_OPERATION_FAILED', `QEMU for domain ${def.name} failed to start: ${msg}`, { domain: def.name });
  }
  rec.phase = 'running';
  rec.pid = pid;
  rec.pidStartTime = readProcStat(pid)?.startTime ?? '';
  ctx.store.saveRuntime(rec);
  d.runtime = rec;
  d.running = def;
  apply(ctx, d, { kind: 'launched', incoming });
  try {
    await connect(ctx, d, ctx.o.commandTimeoutMs);
  } catch (err) {
    killQuiet(pid);
    markStopped(ctx, d, 'failed');
    // QEMU runs undaemonized (the sandbox forbids -daemonize) with its stderr in its log: name it, and quote why.
    throw new VirtError('VIRT_ERR_OPERATION_FAILED', withQemuLog(`QEMU for domain ${def.name} failed to start: ${(err as Error).message}`, qemuLog), { domain: def.name, cause: err });
  }
  ctx.log.info('domain started', { domain: def.name, pid, accel });
}

/** Resolves true once the domain is shut off, false after ms. */
export function waitStopped(ctx: QemudContext, d: Domain, ms: number): Promise<boolean> {
  if (!d.active) return Promise.resolve(true);
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      resolve(v);
    };
    const timer = setTimeout(() => finish(false), ms);
    // Events close the monitor, but a kernel that is slow to reap is caught by polling /proc.
    const poll = setInterval(() => {
      if (checkAlive(ctx, d) === null) finish(true);
    }, 50);
    d.stopWaiters.push(() => finish(true));
  });
}

/** SIGKILLs d's QEMU and waits for it to be gone; the domain ends shut off with `reason`. */
export async function kill(ctx: QemudContext, d: Domain, reason: string): Promise<void> {
  const rec = d.runtime;
  if (rec?.pid === undefined) return;
  apply(ctx, d, { kind: 'expect-exit', reason });
  killQuiet(rec.pid, 'SIGKILL');
  if (!(await waitStopped(ctx, d, 10_000))) {
    throw new VirtError('VIRT_ERR_OPERATION_FAILED', `QEMU pid ${rec.pid} of domain ${d.name} did not exit after SIGKILL`, { domain: d.name });
  }
  apply(ctx, d, { kind: 'stopped-as', reason });
}
