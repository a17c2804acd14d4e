/**
 * The heart of virt-qemud: domain definitions, the QEMU processes started
 * from them, one QMP monitor per process, and the reads and lifecycle
 * operations the driver asks for. Run state, vCPU threads and balloon size
 * are kept current from QMP events (and refreshed rarely) so that a bulk read
 * costs at most one QMP command per domain; CPU, RSS and tap counters come
 * from /proc.
 */
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, freemem, hostname, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { BlockReading, BulkStats, DomainInfo, DomainRef, DomainStats, HostInfo, MemoryReading, NetReading, ReadError, StatsGroup, VcpuReading } from '../drivers/types.ts';
import type { Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { domainNetns, safeDefinition, validateDefinition, type DomainDefinition } from './definition.ts';
import { Domain, invalidState } from './domain.ts';
import { guestView } from '../drivers/net.ts';
import { hostCpuMhz } from './host-cpu.ts';
import { noteBlockIoError, pauseReasonOfRunState, stopReason } from './pause-reason.ts';
import { qemuLogPath, rotateQemuLog, withQemuLog } from './qemu-log.ts';
import { checkDefinitionPaths, checkImagePath, imageVirtualSize } from './images.ts';
import { receiveInto, sendFrom, type Receiver } from './migration-stream.ts';
import { killQuiet, qemuPidsFor, readPid, runCommand, sleep, startQemu, type CommandResult } from './spawn.ts';
import { withTimeout } from '../util/deadline.ts';
import { u64 } from './json.ts';
import type { QemudPaths } from './paths.ts';
import type { RestoreOptions } from '../drivers/types.ts';
import { CLOCK_TICKS, cpuSeconds, readSchedstat, isLive, PAGE_SIZE, processAlive, readNetDev, readProcStat, type ProcStat } from './proc.ts';
import { BALLOON_QOM_PATH, buildCommand, diskNodeName, kvmUsable } from './qemu-args.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';
import { parseBalloon, parseBlockstats, parseCpusFast, parseGuestStats, parseQueryMigrate, parseQueryStatus, runStateToDomain } from './qmp-parse.ts';
import { createSaveFile, definitionDifferences, loadSaveKey, openSaveFile, readSaveHeader, writeSaveHeader } from './save-image.ts';
import { Store, unlinkQuiet, type RuntimeRecord, type SaveRecord } from './store.ts';
import { labelFiles, restoreLabels, type QemuUser } from './dac.ts';

export interface SupervisorOptions {
  paths: QemudPaths;
  logger: Logger;
  /** Deadline of one QMP command on the read path. */
  qmpTimeoutMs: number;
  /** Deadline of one QMP command in a lifecycle operation. */
  commandTimeoutMs: number;
  shutdownGraceSeconds: number;
  balloonStatsIntervalSeconds: number;
  vcpuRefreshSeconds: number;
  startTimeoutMs: number;
  saveTimeoutMs: number;
  emulator?: string;
  /** Directories disks, kernels, initrds and console logs must lie in; empty or absent: anywhere. */
  imageDirs?: readonly string[];
  /** User QEMU runs as; absent: the daemon's own. */
  qemuUser?: QemuUser;
}

const MiB = 1024 * 1024;

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #log: Logger;
  readonly #store: Store;
  readonly #domains = new Map<string, Domain>();
  #nextId = 1;
  #qemuVersion: string | undefined;
  #closed = false;
  #saveKey: Buffer | undefined;

  constructor(opts: SupervisorOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#store = new Store(opts.paths, opts.logger);
  }

  get paths(): QemudPaths {
    return this.#o.paths;
  }

  /** Loads definitions and re-attaches to every QEMU that is still running. */
  init(): void {
    this.#store.init();
    this.#saveKey = loadSaveKey(this.#o.paths.stateDir);
    for (const def of this.#store.loadDefinitions()) {
      const d = new Domain(def);
      d.save = this.#store.loadSave(def.name);
      this.#domains.set(def.name, d);
    }
    for (const d of this.#domains.values()) {
      const rec = this.#store.loadRuntime(d.def.name);
      if (rec === null) continue;
      if (rec.id >= this.#nextId) this.#nextId = rec.id + 1;
      this.#recover(d, rec);
    }
  }

  #recover(d: Domain, rec: RuntimeRecord & { definition?: DomainDefinition }): void {
    let pid = rec.pid;
    const startTime = rec.pidStartTime;
    if (rec.phase === 'starting') {
      // Killed in the middle of a start: the start never completed, so any QEMU
      // it left (the daemonizing parent or its child) is ended, not adopted.
      for (let pass = 0; pass < 2; pass++) {
        for (const orphan of qemuPidsFor(d.def.uuid)) {
          this.#log.warn('ending the QEMU of an interrupted start', { domain: d.def.name, pid: orphan });
          killQuiet(orphan, 'SIGKILL');
        }
      }
      pid = undefined;
    }
    if (pid === undefined || !processAlive(pid, startTime === '' ? undefined : startTime)) {
      const st = pid === undefined ? null : readProcStat(pid);
      this.#log.warn('QEMU of domain is gone; reporting it shut off', { domain: d.def.name, pid, procState: st?.state, startTime: st?.startTime, recordedStartTime: startTime });
      this.#cleanupRuntime(rec);
      d.state = 'shutoff';
      d.reason = rec.phase === 'starting' ? 'failed' : 'crashed';
      return;
    }
    const full: RuntimeRecord & { definition?: DomainDefinition } = { ...rec, phase: 'running', pid, pidStartTime: startTime ?? '' };
    if (rec.phase === 'starting') this.#store.saveRuntime(full);
    d.rec = full;
    d.live = rec.definition !== undefined ? safeDefinition(rec.definition) ?? d.def : d.def;
    d.state = 'running';
    d.reason = 'unknown';
    this.#log.info('re-attaching to running QEMU', { domain: d.def.name, pid });
    this.#attach(d, this.#o.qmpTimeoutMs).catch((err: unknown) => {
      this.#log.warn('re-attach to QMP monitor failed; will retry on the next read', { domain: d.def.name, err });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const d of this.#domains.values()) {
      if (d.guestTimer !== undefined) clearInterval(d.guestTimer);
      d.qmp?.close();
    }
    await Promise.resolve();
  }

  // ---------------------------------------------------------------- lookups

  #find(key: string): Domain {
    if (typeof key !== 'string' || key === '') throw new VirtError('VIRT_ERR_INVALID_ARG', 'a domain name, UUID or id is required');
    const byName = this.#domains.get(key);
    if (byName !== undefined) return byName;
    const lower = key.toLowerCase();
    for (const d of this.#domains.values()) if (d.def.uuid === lower) return d;
    if (/^\d+$/.test(key)) {
      const id = Number(key);
      for (const d of this.#domains.values()) if (d.rec?.id === id) return d;
    }
    throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain with name, UUID or id ${JSON.stringify(key)}`, { domain: key });
  }

  lookupDomain(key: string): DomainRef {
    const d = this.#find(key);
    this.#checkAlive(d);
    return d.ref();
  }

  listDomains(opts: { active?: boolean; inactive?: boolean } = {}): DomainRef[] {
    const active = opts.active ?? true;
    const inactive = opts.inactive ?? true;
    const out: DomainRef[] = [];
    for (const d of this.#sorted()) {
      this.#checkAlive(d);
      if (d.active ? active : inactive) out.push(d.ref());
    }
    return out;
  }

  domainDefinition(key: string): DomainDefinition {
    return this.#find(key).def;
  }

  #sorted(): Domain[] {
    return [...this.#domains.values()].sort((a, b) => a.def.name.localeCompare(b.def.name));
  }

  async domainInfo(key: string, signal?: AbortSignal): Promise<DomainInfo> {
    const d = this.#find(key);
    let stat = this.#checkAlive(d);
    if (d.active && (d.qmp === null || d.qmp.closed)) {
      await this.#reattach(d, this.#o.qmpTimeoutMs, signal);
      stat = this.#checkAlive(d);
    }
    return this.#info(d, stat);
  }

  /**
   * Reconnects a lost monitor. A QEMU on its way out (after quit, a guest
   * poweroff or a kill) closes its monitor before the process is gone: when
   * the connect fails and the process then dies within a moment, the domain
   * is simply shut off, not an error.
   */
  async #reattach(d: Domain, ms: number, signal?: AbortSignal, settleMs = 500): Promise<void> {
    if (d.expectingExit !== null && (await this.#settlesDead(d, settleMs))) return;
    try {
      await withTimeout(this.#attach(d, this.#o.qmpTimeoutMs), ms, `QMP monitor of ${d.def.name}`, signal);
    } catch (err) {
      if (await this.#settlesDead(d, settleMs)) return;
      throw err;
    }
  }

  async #settlesDead(d: Domain, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      if (this.#checkAlive(d) === null) return true;
      if (Date.now() >= until) return false;
      await sleep(25);
    }
  }

  #info(d: Domain, stat: ProcStat | null): DomainInfo {
    const cfg = d.config;
    const max = cfg.memoryMiB * MiB;
    const info: DomainInfo = {
      ...d.ref(),
      state: d.state,
      stateReason: d.reason,
      maxMemoryBytes: max,
      memoryBytes: d.active ? (d.balloonActual ?? max) : 0,
      vcpus: cfg.vcpus,
      cpuTimeSeconds: d.active && stat !== null ? cpuSeconds(stat) : 0,
      osType: 'hvm',
      arch: cfg.arch,
      machine: cfg.machine,
      autostart: false,
      persistent: true,
      managedSave: d.save !== null,
    };
    // QEMU's counters (and the process's CPU time) count from its start.
    const started = d.active && d.rec !== null ? Date.parse(d.rec.startedAt) / 1000 : NaN;
    if (Number.isFinite(started)) info.startTimeSeconds = started;
    return info;
  }

  /**
   * Liveness check from /proc; a QEMU that is gone (or a zombie) turns its
   * domain shut off at once. Returns the process stat when alive.
   */
  #checkAlive(d: Domain): ProcStat | null {
    if (d.rec === null || d.rec.pid === undefined) return null;
    const stat = readProcStat(d.rec.pid);
    if (isLive(stat, d.rec.pidStartTime === '' ? undefined : d.rec.pidStartTime)) return stat;
    this.#markStopped(d, d.expectingExit ?? (d.sawShutdown ? 'shutdown' : 'crashed'));
    return null;
  }

  #markStopped(d: Domain, reason: string): void {
    if (d.rec !== null) {
      this.#log.info('domain stopped', { domain: d.def.name, pid: d.rec.pid, reason });
      this.#cleanupRuntime(d.rec);
    }
    if (d.guestTimer !== undefined) clearInterval(d.guestTimer);
    d.guestTimer = undefined;
    const q = d.qmp;
    d.qmp = null;
    q?.close();
    d.rec = null;
    d.live = null;
    d.state = 'shutoff';
    d.reason = reason;
    d.expectingExit = null;
    d.sawShutdown = false;
    d.balloonActual = undefined;
    d.guest = undefined;
    d.vcpuTids = [];
    d.monitorError = null;
    d.blockCache = null;
    d.capacity.clear();
    d.epoch++;
    const waiters = d.stopWaiters;
    d.stopWaiters = [];
    for (const w of waiters) w();
  }

  #cleanupRuntime(rec: RuntimeRecord): void {
    // Give the domain's files back before forgetting which they were.
    if (rec.labels !== undefined) restoreLabels(rec.labels);
    if (rec.privDir !== undefined) rmSync(rec.privDir, { recursive: true, force: true });
    this.#store.removeRuntime(rec.name);
    unlinkQuiet(rec.qmpSocket);
    unlinkQuiet(rec.pidFile);
  }

  // ---------------------------------------------------------------- QMP

  #attach(d: Domain, timeoutMs: number): Promise<QmpClient> {
    if (d.qmp !== null && !d.qmp.closed) return Promise.resolve(d.qmp);
    if (d.attaching !== null) return d.attaching;
    const rec = d.rec;
    if (rec === null) return Promise.reject(invalidState(d, 'reach', 'it is not running'));
    const p = (async () => {
      const qmp = await QmpClient.connect(rec.qmpSocket, {
        timeoutMs,
        logger: this.#log,
        onEvent: (ev) => this.#onEvent(d, ev),
      });
      qmp.onClose = () => this.#onMonitorClosed(d, qmp);
      try {
        const call = { timeoutMs };
        const rs = runStateToDomain(parseQueryStatus(await qmp.execute('query-status', undefined, call)));
        if (!(d.state === 'paused' && rs.state === 'paused')) {
          d.state = rs.state;
          d.reason = rs.reason;
        }
        d.vcpuTids = parseCpusFast(await qmp.execute('query-cpus-fast', undefined, call));
        d.vcpuRefreshedAt = Date.now();
        if (d.config.balloon.enabled) d.balloonActual = parseBalloon(await qmp.execute('query-balloon', undefined, call));
      } catch (err) {
        qmp.close();
        throw err;
      }
      if (d.rec !== rec) {
        qmp.close();
        throw invalidState(d, 'reach', 'it stopped while attaching');
      }
      d.qmp = qmp;
      d.monitorError = null;
      this.#startGuestPolling(d);
      if (d.state === 'shutdown') this.#quitAfterGuestShutdown(d);
      return qmp;
    })();
    d.attaching = p;
    p.catch((err: unknown) => {
      d.monitorError = toVirtError(err, 'VIRT_ERR_RPC');
    }).finally(() => {
      if (d.attaching === p) d.attaching = null;
    });
    return p;
  }

  #onMonitorClosed(d: Domain, qmp: QmpClient): void {
    if (d.qmp !== qmp) return;
    d.qmp = null;
    if (d.guestTimer !== undefined) clearInterval(d.guestTimer);
    d.guestTimer = undefined;
    // The socket closes when QEMU exits; give the kernel a moment to finish the process off.
    const rec = d.rec;
    const check = async (): Promise<void> => {
      for (let i = 0; i < 50 && d.rec === rec; i++) {
        if (this.#checkAlive(d) === null) return;
        await sleep(100);
      }
      if (d.rec === rec) this.#log.warn('QMP monitor closed but QEMU still runs; will reconnect on the next read', { domain: d.def.name });
    };
    void check();
  }

  #onEvent(d: Domain, ev: QmpEvent): void {
    if (ev.event !== 'BALLOON_CHANGE') d.epoch++;
    this.#log.info('QMP event', { domain: d.def.name, event: ev.event, reason: typeof ev.data['reason'] === 'string' ? ev.data['reason'] : undefined });
    switch (ev.event) {
      case 'STOP':
        if (d.state === 'running') {
          d.state = 'paused';
          d.reason = d.sawShutdown ? 'shutting-down' : stopReason(d);
          if (!d.sawShutdown) this.#refinePauseReason(d);
        }
        break;
      case 'BLOCK_IO_ERROR': {
        const note = noteBlockIoError(d, ev);
        if (note !== undefined) this.#log.warn('guest I/O error stops the domain', { domain: d.def.name, device: note.device, operation: note.operation, reason: note.reason, nospace: note.nospace, qemuLog: qemuLogPath(this.#o.paths, d.def.name) });
        break;
      }
      case 'RESUME':
        d.state = 'running';
        d.reason = 'unpaused';
        break;
      case 'SHUTDOWN':
        d.sawShutdown = true;
        if (ev.data['guest'] === true) {
          d.state = 'shutdown';
          d.reason = 'guest';
          this.#quitAfterGuestShutdown(d);
        }
        break;
      case 'GUEST_PANICKED':
        d.state = 'crashed';
        d.reason = 'panicked';
        break;
      case 'SUSPEND':
        d.state = 'pmsuspended';
        d.reason = 'guest';
        break;
      case 'WAKEUP':
        d.state = 'running';
        d.reason = 'wakeup';
        break;
      case 'BALLOON_CHANGE': {
        const actual = u64(ev.data['actual']);
        if (actual !== undefined) d.balloonActual = actual;
        break;
      }
      default:
        break;
    }
  }

  /** After a STOP: if QEMU paused the guest itself (I/O or internal error), say so rather than "user". */
  #refinePauseReason(d: Domain): void {
    const qmp = d.qmp;
    if (qmp === null || qmp.closed) return;
    const epoch = d.epoch;
    qmp.execute('query-status', undefined, { timeoutMs: this.#o.qmpTimeoutMs }).then(
      (v) => {
        const reason = pauseReasonOfRunState(parseQueryStatus(v));
        if (reason !== undefined && d.epoch === epoch && d.state === 'paused') d.reason = reason;
      },
      () => undefined,
    );
  }

  /** -no-shutdown keeps QEMU alive after a guest poweroff; we end it so the domain is shut off. */
  #quitAfterGuestShutdown(d: Domain): void {
    d.expectingExit ??= 'shutdown';
    const qmp = d.qmp;
    if (qmp === null) return;
    qmp.execute('quit', undefined, { timeoutMs: this.#o.commandTimeoutMs }).catch(() => {
      // The monitor closes as QEMU exits; the close handler does the rest.
    });
  }

  #startGuestPolling(d: Domain): void {
    const cfg = d.config;
    if (!cfg.balloon.enabled || d.guestTimer !== undefined) return;
    const iv = cfg.balloon.statsIntervalSeconds ?? this.#o.balloonStatsIntervalSeconds;
    if (iv <= 0) return;
    const poll = (): void => {
      const qmp = d.qmp;
      if (qmp === null || d.state !== 'running') return;
      qmp
        .execute('qom-get', { path: BALLOON_QOM_PATH, property: 'guest-stats' }, { timeoutMs: this.#o.qmpTimeoutMs })
        .then((v) => {
          d.guest = parseGuestStats(v);
        })
        .catch((err: unknown) => this.#log.debug('guest-stats poll failed', { domain: d.def.name, err }));
    };
    d.guestTimer = setInterval(poll, iv * 1000);
    d.guestTimer.unref();
    poll();
  }

  #refreshVcpus(d: Domain): void {
    const qmp = d.qmp;
    if (qmp === null || d.vcpuRefreshing) return;
    d.vcpuRefreshing = true;
    qmp
      .execute('query-cpus-fast', undefined, { timeoutMs: this.#o.qmpTimeoutMs })
      .then((v) => {
        d.vcpuTids = parseCpusFast(v);
      })
      .catch((err: unknown) => this.#log.debug('vCPU refresh failed', { domain: d.def.name, err }))
      .finally(() => {
        d.vcpuRefreshing = false;
        d.vcpuRefreshedAt = Date.now();
      });
  }

  #cmd(d: Domain, command: string, args?: Record<string, unknown>): Promise<unknown> {
    const qmp = d.qmp;
    const log = qemuLogPath(this.#o.paths, d.def.name);
    if (qmp === null || qmp.closed) throw new VirtError('VIRT_ERR_OPERATION_FAILED', withQemuLog(`QMP monitor of ${d.def.name} is not connected`, log), { domain: d.def.name });
    return qmp.execute(command, args, { timeoutMs: this.#o.commandTimeoutMs }).catch((err: unknown) => {
      const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
      throw new VirtError(e.code, withQemuLog(`${command} on domain ${d.def.name} failed: ${e.message}`, log), { domain: d.def.name, cause: err });
    });
  }

  // ---------------------------------------------------------------- bulk reads

  async allDomainStats(opts: { groups: readonly StatsGroup[]; inactive?: boolean; timeoutMs?: number }, signal?: AbortSignal): Promise<BulkStats> {
    const groups = new Set(opts.groups);
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    const errors: ReadError[] = [];
    const results = await Promise.all(
      this.#sorted().map(async (d): Promise<DomainStats | null> => {
        try {
          return await this.#domainStats(d, groups, opts.inactive ?? false, deadline, errors, signal);
        } catch (err) {
          const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
          errors.push({ domain: d.def.name, code: e.code, message: e.message });
          return null;
        }
      }),
    );
    return { domains: results.filter((r) => r !== null), errors };
  }

  async #domainStats(d: Domain, groups: Set<StatsGroup>, inactive: boolean, deadline: number, errors: ReadError[], signal?: AbortSignal): Promise<DomainStats | null> {
    let stat = this.#checkAlive(d);
    if (!d.active) return inactive ? { info: this.#info(d, null) } : null;
    const budget = (): number => Math.max(1, Math.min(this.#o.qmpTimeoutMs, deadline - Date.now()));
    if (d.qmp === null || d.qmp.closed) {
      await this.#reattach(d, budget(), signal, Math.min(500, Math.max(0, deadline - Date.now() - this.#o.qmpTimeoutMs)));
      stat = this.#checkAlive(d);
      if (!d.active) return inactive ? { info: this.#info(d, null) } : null;
    }
    const cfg = d.config;
    const pid = d.rec?.pid as number;
    const out: DomainStats = { info: this.#info(d, stat) };
    if (stat !== null && groups.has('cpu')) {
      out.cpu = { userSeconds: stat.utimeTicks / CLOCK_TICKS, systemSeconds: stat.stimeTicks / CLOCK_TICKS };
    }
    if (groups.has('vcpu')) {
      const vcpus: VcpuReading[] = [];
      let stale = Date.now() - d.vcpuRefreshedAt > Math.max(10, this.#o.vcpuRefreshSeconds) * 1000;
      for (let i = 0; i < cfg.vcpus; i++) {
        const tid = d.vcpuTids[i];
        const t = tid === undefined ? null : readProcStat(pid, tid);
        if (t === null) {
          stale = true;
          vcpus.push({ id: i, state: 'offline' });
          continue;
        }
        const sched = readSchedstat(pid, tid as number);
        vcpus.push({
          id: i,
          state: d.state === 'running' ? 'running' : 'blocked',
          timeSeconds: cpuSeconds(t),
          cpu: t.processor,
          ...(sched === null ? {} : { delaySeconds: sched.delaySeconds }),
        });
      }
      // A vanished thread asks for a refresh, but never more than every 10 s (it runs outside the read).
      if (stale && Date.now() - d.vcpuRefreshedAt > 10_000) this.#refreshVcpus(d);
      out.vcpus = vcpus;
    }
    if (groups.has('memory')) {
      const max = cfg.memoryMiB * MiB;
      const mem: MemoryReading = { maximumBytes: max, currentBytes: d.balloonActual ?? max };
      if (d.balloonActual !== undefined) mem.balloonBytes = d.balloonActual;
      if (d.guest !== undefined) mem.guest = { ...d.guest };
      if (stat !== null) mem.rssBytes = stat.rssPages * PAGE_SIZE;
      out.memory = mem;
    }
    if (groups.has('net')) {
      const dev = cfg.nics.some((n) => n.type === 'tap') ? readNetDev(pid) : null;
      out.net = cfg.nics.map((n, i): NetReading => {
        if (n.type === 'user') return { interface: `nic${i}`, mac: n.mac, counters: null };
        const c = dev?.get(n.ifname ?? '');
        // Host tap counters are the guest's reversed: what the host receives, the guest sent.
        return {
          interface: n.ifname ?? `nic${i}`,
          mac: n.mac,
          counters:
            c === undefined
              ? null
              : guestView(c),
        };
      });
    }
    if (groups.has('block') && cfg.disks.length > 0 && d.state === 'paused' && d.blockCache?.epoch === d.epoch) {
      // Stopping the vCPUs drains all I/O: a paused domain's counters stand still, no QMP needed.
      out.block = this.#withDiskSizes(d, d.blockCache.readings);
    } else if (groups.has('block') && cfg.disks.length > 0) {
      // The one QMP command of this collection for this domain.
      try {
        const epoch = d.epoch;
        const wasPaused = d.state === 'paused';
        const qmp = d.qmp;
        if (qmp === null) throw new VirtError('VIRT_ERR_RPC', `QMP monitor of ${d.def.name} is not connected`);
        const byNode = new Map(cfg.disks.map((x) => [diskNodeName(x.target), x]));
        const v = await qmp.execute('query-blockstats', undefined, { timeoutMs: budget(), signal });
        const block: BlockReading[] = parseBlockstats(v, (node) => byNode.get(node)?.target);
        for (const b of block) {
          const disk = cfg.disks.find((x) => x.target === b.device);
          if (disk !== undefined) b.path = disk.path;
        }
        d.blockCache = wasPaused && d.state === 'paused' && d.epoch === epoch ? { epoch, readings: block } : null;
        out.block = this.#withDiskSizes(d, block);
      } catch (err) {
        const e = toVirtError(err, 'VIRT_ERR_RPC');
        // A monitor that does not answer makes this domain's read fail, not the others'.
        errors.push({ domain: d.def.name, group: 'block', code: e.code, message: e.message });
        // A broken monitor leaves the domain's state in doubt; a slow one does not:
        // it stays reported (state, CPU, memory from /proc) with its block part missing.
        if (e.code === 'VIRT_ERR_RPC') return null;
      }
    } else if (groups.has('block')) {
      out.block = [];
    }
    return out;
  }

  /** Copies readings and adds capacity (image virtual size) and allocation (host blocks) from the files. */
  #withDiskSizes(d: Domain, readings: BlockReading[]): BlockReading[] {
    const cfg = d.config;
    return readings.map((b) => {
      const r: BlockReading = { ...b };
      const disk = cfg.disks.find((x) => x.target === b.device);
      if (disk === undefined) return r;
      let cap = d.capacity.get(disk.target);
      if (cap === undefined) {
        cap = imageVirtualSize(disk.path, disk.format);
        if (cap !== undefined) d.capacity.set(disk.target, cap);
      }
      if (cap !== undefined) r.capacityBytes = cap;
      try {
        const st = statSync(disk.path);
        r.allocationBytes = st.blocks * 512;
      } catch {
        // image gone from under QEMU: leave allocation out
      }
      return r;
    });
  }

  // ---------------------------------------------------------------- host

  async version(): Promise<string> {
    if (this.#qemuVersion === undefined) {
      const emulator = this.#o.emulator !== undefined && this.#o.emulator !== '' ? this.#o.emulator : 'qemu-system-x86_64';
      const r = await runCommand(emulator, ['--version'], 10_000);
      const m = /version (\d+\.\d+\.\d+)/.exec(r.stdout);
      if (m?.[1] === undefined) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot read the version of ${emulator}: ${r.stderr.trim() || r.stdout.trim()}`);
      this.#qemuVersion = m[1];
    }
    return this.#qemuVersion;
  }

  async hostInfo(): Promise<HostInfo> {
    const c = cpus();
    let sockets = 1;
    let cores = c.length;
    let threads = 1;
    try {
      const text = readFileSync('/proc/cpuinfo', 'latin1');
      const phys = new Set([...text.matchAll(/^physical id\s*:\s*(\d+)/gm)].map((m) => m[1]));
      const coreIds = new Set([...text.matchAll(/^core id\s*:\s*(\d+)/gm)].map((m) => m[1]));
      if (phys.size > 0) sockets = phys.size;
      if (coreIds.size > 0) cores = coreIds.size;
      threads = Math.max(1, Math.round(c.length / (sockets * cores)));
    } catch {
      // keep the flat defaults
    }
    return {
      hostname: hostname(),
      model: process.arch === 'x64' ? 'x86_64' : process.arch,
      cpus: c.length,
      mhz: hostCpuMhz(),
      nodes: 1,
      sockets,
      cores,
      threads,
      memoryBytes: totalmem(),
      freeMemoryBytes: freemem(),
      hypervisor: kvmUsable() ? 'QEMU/KVM' : 'QEMU/TCG',
      hypervisorVersion: await this.version(),
    };
  }

  // ---------------------------------------------------------------- lifecycle

  #locked<T>(d: Domain, fn: () => Promise<T>): Promise<T> {
    const run = d.lock.then(fn, fn);
    d.lock = run.catch(() => undefined);
    return run;
  }

  define(input: unknown): DomainRef {
    const raw = input as Record<string, unknown> | null;
    const def = validateDefinition(input);
    checkDefinitionPaths(def, this.#o.imageDirs ?? []);
    const existing = this.#domains.get(def.name);
    const hadUuid = raw !== null && typeof raw === 'object' && raw['uuid'] !== undefined;
    if (existing !== undefined) {
      if (existing.save !== null) {
        // As libvirt: a managed save image holds the old configuration; redefining under it would be silently undone by start.
        throw new VirtError(
          'VIRT_ERR_OPERATION_INVALID',
          `domain ${def.name} has a managed save image (${existing.save.file}); remove it first (managedSaveRemove) or restore and stop the domain, then redefine`,
          { domain: def.name },
        );
      }
      if (!hadUuid) def.uuid = existing.def.uuid;
      if (def.uuid !== existing.def.uuid) {
        throw new VirtError('VIRT_ERR_DOM_EXIST', `domain ${def.name} already exists with UUID ${existing.def.uuid}`, { domain: def.name });
      }
      // Redefinition: MACs derived from the UUID stay as they were.
      if (!hadUuid) def.nics = validateDefinition({ ...(input as object), uuid: def.uuid }).nics;
    }
    for (const d of this.#domains.values()) {
      if (d.def.uuid === def.uuid && d.def.name !== def.name) {
        throw new VirtError('VIRT_ERR_DOM_EXIST', `UUID ${def.uuid} is already used by domain ${d.def.name}`, { domain: def.name });
      }
    }
    this.#store.saveDefinition(def);
    let d = existing;
    if (d !== undefined) d.def = def;
    else {
      d = new Domain(def);
      this.#domains.set(def.name, d);
    }
    this.#log.info('domain defined', { domain: def.name, uuid: def.uuid });
    return d.ref();
  }

  undefine(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, () => {
      this.#checkAlive(d);
      if (d.active) return Promise.reject(invalidState(d, 'undefine', 'it is running; destroy or shut it down first'));
      this.#store.removeDefinition(d.def.name);
      this.#store.removeSave(d.def.name);
      this.#domains.delete(d.def.name);
      this.#log.info('domain undefined', { domain: d.def.name });
      return Promise.resolve();
    });
  }

  /** Discards a domain's managed save record (the image file itself is left alone), as virsh managedsave-remove. */
  managedSaveRemove(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, () => {
      if (d.save === null) return Promise.reject(invalidState(d, 'remove the managed save of', 'it has none'));
      this.#log.info('managed save removed', { domain: d.def.name, file: d.save.file });
      this.#store.removeSave(d.def.name);
      d.save = null;
      return Promise.resolve();
    });
  }

  start(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      this.#checkAlive(d);
      if (d.active) throw invalidState(d, 'start', 'it is already running');
      if (d.save !== null && existsSync(d.save.file)) {
        // A managed save image exists: starting resumes from it, as libvirt does.
        await this.#restoreInto(d, d.save.file);
        return;
      }
      await this.#launch(d, d.def, false);
    });
  }

  async #launch(d: Domain, def: DomainDefinition, incoming: boolean): Promise<void> {
    // Again at start: a file may have been swapped for a device node or a link out since the definition.
    checkDefinitionPaths(def, this.#o.imageDirs ?? []);
    let accel: 'kvm' | 'tcg';
    if (def.accel === 'auto') accel = kvmUsable() ? 'kvm' : 'tcg';
    else if (def.accel === 'kvm' && !kvmUsable()) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `domain ${def.name} requires KVM but /dev/kvm is not usable`, { domain: def.name });
    else accel = def.accel;
    const p = this.#o.paths;
    const user = this.#o.qemuUser;
    if (user !== undefined && domainNetns(def) !== undefined) {
      throw new VirtError('VIRT_ERR_CONFIG', `domain ${def.name} names a network namespace; entering it needs root, so it cannot run as qemu-user ${user.name}`, { domain: def.name });
    }
    // An unprivileged QEMU gets a private directory of its own for its monitor socket, pid file and migration sockets.
    const privDir = user === undefined ? undefined : join(p.runtimeDir, 'priv', def.uuid);
    const rec: RuntimeRecord & { definition: DomainDefinition } = {
      name: def.name,
      uuid: def.uuid,
      id: this.#nextId++,
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
      this.#store.saveRuntime(rec);
      rec.labels = labelFiles(files, user);
    }
    this.#store.saveRuntime(rec);
    const cmd = buildCommand(def, {
      qmpSocket: rec.qmpSocket,
      pidFile: rec.pidFile,
      consoleLog: rec.consoleLog,
      accel,
      incoming,
      balloonStatsIntervalSeconds: this.#o.balloonStatsIntervalSeconds,
      ...(this.#o.emulator !== undefined ? { emulator: this.#o.emulator } : {}),
    });
    // QEMU's stderr goes to its per-domain log (startQemu opens it); the previous run's is kept as .1.
    const qemuLog = qemuLogPath(p, def.name);
    rotateQemuLog(qemuLog);
    this.#log.info('starting QEMU', { domain: def.name, accel, command: [cmd.file, ...cmd.args].join(' ') });
    let r: CommandResult;
    try {
      r = await startQemu(cmd.file, cmd.args, { pidFile: rec.pidFile, qmpSocket: rec.qmpSocket, stderrLog: qemuLog, timeoutMs: this.#o.startTimeoutMs, ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }) });
    } catch (err) {
      this.#cleanupRuntime(rec);
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot run ${cmd.file}: ${(err as Error).message}`, { domain: def.name, cause: err });
    }
    const pid = readPid(rec.pidFile);
    if (r.code !== 0 || pid === undefined) {
      if (pid !== undefined) killQuiet(pid);
      this.#cleanupRuntime(rec);
      const msg = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('warning:')).join('; ') || `exit code ${String(r.code)}`;
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `QEMU for domain ${def.name} failed to start: ${msg}`, { domain: def.name });
    }
    rec.phase = 'running';
    rec.pid = pid;
    rec.pidStartTime = readProcStat(pid)?.startTime ?? '';
    this.#store.saveRuntime(rec);
    d.rec = rec;
    d.live = def;
    d.state = incoming ? 'paused' : 'running';
    d.reason = incoming ? 'starting-up' : 'booted';
    d.expectingExit = null;
    d.sawShutdown = false;
    try {
      await this.#attach(d, this.#o.commandTimeoutMs);
    } catch (err) {
      killQuiet(pid);
      this.#markStopped(d, 'failed');
      // QEMU runs undaemonized (the sandbox forbids -daemonize) with its stderr in its log: name it, and quote why.
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', withQemuLog(`QEMU for domain ${def.name} failed to start: ${(err as Error).message}`, qemuLog), { domain: def.name, cause: err });
    }
    this.#log.info('domain started', { domain: def.name, pid, accel });
  }

  #requireMonitor(d: Domain, op: string): Promise<QmpClient> {
    this.#checkAlive(d);
    if (!d.active) return Promise.reject(invalidState(d, op, 'it is not running'));
    return this.#attach(d, this.#o.commandTimeoutMs);
  }

  suspend(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await this.#requireMonitor(d, 'suspend');
      if (d.state !== 'running') throw invalidState(d, 'suspend', 'it is not running');
      await this.#cmd(d, 'stop');
      d.state = 'paused';
      d.reason = 'user';
      d.epoch++;
    });
  }

  resume(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await this.#requireMonitor(d, 'resume');
      if (d.state !== 'paused') throw invalidState(d, 'resume', 'it is not paused');
      await this.#cmd(d, 'cont');
      d.state = 'running';
      d.reason = 'unpaused';
      d.epoch++;
    });
  }

  reboot(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await this.#requireMonitor(d, 'reboot');
      if (d.state !== 'running' && d.state !== 'paused') throw invalidState(d, 'reboot', 'it is neither running nor paused');
      await this.#cmd(d, 'system_reset');
    });
  }

  /** Resolves true once the domain is shut off, false after ms. */
  #waitStopped(d: Domain, ms: number): Promise<boolean> {
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
        if (this.#checkAlive(d) === null) finish(true);
      }, 50);
      d.stopWaiters.push(() => finish(true));
    });
  }

  shutdown(key: string, opts: { force?: boolean; graceSeconds?: number } = {}): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await this.#requireMonitor(d, 'shut down');
      const grace = opts.graceSeconds ?? this.#o.shutdownGraceSeconds;
      d.expectingExit = 'shutdown';
      await this.#cmd(d, 'system_powerdown');
      if (await this.#waitStopped(d, grace * 1000)) return;
      if (opts.force === true) {
        this.#log.warn('guest ignored the ACPI power button; destroying it', { domain: d.def.name, graceSeconds: grace });
        await this.#kill(d, 'destroyed');
        return;
      }
      if (d.active) d.expectingExit = null;
      throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `domain ${d.def.name} did not stop within ${grace} s of the ACPI power-button press; the guest may ignore ACPI (use force to destroy it)`, {
        domain: d.def.name,
      });
    });
  }

  destroy(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      this.#checkAlive(d);
      if (!d.active) throw invalidState(d, 'destroy', 'it is not running');
      await this.#kill(d, 'destroyed');
    });
  }

  async #kill(d: Domain, reason: string): Promise<void> {
    const rec = d.rec;
    if (rec?.pid === undefined) return;
    d.expectingExit = reason;
    killQuiet(rec.pid, 'SIGKILL');
    if (!(await this.#waitStopped(d, 10_000))) {
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `QEMU pid ${rec.pid} of domain ${d.def.name} did not exit after SIGKILL`, { domain: d.def.name });
    }
    if (d.rec === null) d.reason = reason;
  }

  get #key(): Buffer {
    if (this.#saveKey === undefined) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', 'the supervisor was not initialised');
    return this.#saveKey;
  }

  #migrationSocket(d: Domain, what: string): string {
    const priv = d.rec?.privDir;
    return priv !== undefined ? join(priv, `${what}.sock`) : join(this.#o.paths.qmpDir, `${what}-${d.def.uuid}.sock`);
  }

  save(key: string, file: string): Promise<void> {
    const d = this.#find(key);
    checkImagePath(file, true);
    return this.#locked(d, async () => {
      await this.#requireMonitor(d, 'save');
      if (d.state !== 'running' && d.state !== 'paused') throw invalidState(d, 'save', 'it is neither running nor paused');
      const prior: 'running' | 'paused' = d.state === 'running' ? 'running' : 'paused';
      const cfg = d.config;
      // Created here, exclusively and without following a link, before the guest is paused.
      const fd = createSaveFile(file);
      let receiver: Receiver | undefined;
      if (prior === 'running') {
        await this.#cmd(d, 'stop');
        d.state = 'paused';
        d.reason = 'save';
      }
      try {
        const offset = writeSaveHeader(fd, { definition: cfg, state: prior, savedAt: new Date().toISOString() }, this.#key);
        this.#log.info('saving domain', { domain: d.def.name, file, offset });
        const sock = this.#migrationSocket(d, 'save');
        receiver = await receiveInto(sock, fd, offset, this.#o.qemuUser);
        // QEMU 7.2 caps migration at 32 MiB/s by default; a local file needs no cap.
        await this.#cmd(d, 'migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
        await this.#cmd(d, 'migrate', { uri: `unix:${sock}` });
        await this.#waitMigration(d, 'save');
        await withTimeout(receiver.done, this.#o.saveTimeoutMs, `writing save image ${file}`);
      } catch (err) {
        receiver?.close();
        closeSync(fd);
        unlinkQuiet(file);
        if (prior === 'running' && d.active) {
          await this.#cmd(d, 'cont').catch(() => undefined);
          d.state = 'running';
          d.reason = 'save-failed';
        }
        throw toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
      }
      closeSync(fd);
      d.expectingExit = 'saved';
      await this.#cmd(d, 'quit').catch(() => undefined);
      if (!(await this.#waitStopped(d, 10_000))) await this.#kill(d, 'saved');
      const rec: SaveRecord = { file, state: prior, savedAt: new Date().toISOString() };
      this.#store.saveSave(d.def.name, rec);
      d.save = rec;
      d.reason = 'saved';
    });
  }

  async #waitMigration(d: Domain, what: string): Promise<void> {
    const until = Date.now() + this.#o.saveTimeoutMs;
    for (;;) {
      const st = parseQueryMigrate(await this.#cmd(d, 'query-migrate'));
      if (st.status === 'completed') return;
      if (st.status === 'failed' || st.status === 'cancelled') {
        throw new VirtError('VIRT_ERR_OPERATION_FAILED', `${what} of domain ${d.def.name} failed: ${st.error ?? st.status}`, { domain: d.def.name });
      }
      if (Date.now() > until) throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what} of domain ${d.def.name} did not finish within ${this.#o.saveTimeoutMs} ms`, { domain: d.def.name });
      await sleep(50);
    }
  }

  /**
   * Restores a domain from a save image. Only a domain that is defined now
   * comes back, with its current definition; an image whose header disagrees
   * with that definition, or whose MAC does not verify, is refused
   * (VIRT_ERR_SAVE_INVALID). `domain` names the domain the caller means (the
   * image must be of it); `define` allows re-creating a domain that is no
   * longer defined from the image (the admin API gives it to admins only).
   */
  async restore(file: string, opts: RestoreOptions = {}): Promise<DomainRef> {
    checkImagePath(file, false);
    const fd = openSaveFile(file);
    let hdef: DomainDefinition;
    try {
      hdef = readSaveHeader(fd, file, this.#key).header.definition;
    } finally {
      closeSync(fd);
    }
    let dom = [...this.#domains.values()].find((x) => x.def.uuid === hdef.uuid);
    if (opts.domain !== undefined) {
      const want = opts.domain;
      const named = this.#findOrNull(want);
      if (named !== null && named !== dom) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), not of ${named.def.name} (${named.def.uuid})`, { domain: named.def.name });
      }
      if (named === null && hdef.name !== want && hdef.uuid !== want.toLowerCase()) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), not of ${JSON.stringify(want)}`, { domain: hdef.name });
      }
    }
    if (dom === undefined) {
      if (opts.define !== true) {
        throw new VirtError('VIRT_ERR_NO_DOMAIN', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), which is not defined; re-creating a domain from a save image needs the define option`, { domain: hdef.name });
      }
      const clash = this.#domains.get(hdef.name);
      if (clash !== undefined) throw new VirtError('VIRT_ERR_DOM_EXIST', `domain ${hdef.name} exists with another UUID (${clash.def.uuid}) than the save image (${hdef.uuid})`, { domain: hdef.name });
      this.define(hdef);
      this.#log.warn('domain re-created from a save image', { domain: hdef.name, uuid: hdef.uuid, file });
      dom = this.#find(hdef.name);
    }
    const target = dom;
    await this.#locked(target, async () => {
      this.#checkAlive(target);
      if (target.active) throw invalidState(target, 'restore', 'it is running; destroy it first');
      await this.#restoreInto(target, file);
    });
    return target.ref();
  }

  #findOrNull(key: string): Domain | null {
    try {
      return this.#find(key);
    } catch {
      return null;
    }
  }

  async #restoreInto(d: Domain, file: string): Promise<void> {
    const fd = openSaveFile(file);
    try {
      const { header, offset } = readSaveHeader(fd, file, this.#key);
      if (header.definition.uuid !== d.def.uuid) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${header.definition.name} (${header.definition.uuid}), not of ${d.def.name}`, { domain: d.def.name });
      }
      const diff = definitionDifferences(d.def, header.definition);
      if (diff.length > 0) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} does not match the current definition of ${d.def.name} (differs in ${diff.join(', ')}); it is not restored`, { domain: d.def.name });
      }
      // The current definition, never the image's copy of it.
      await this.#launch(d, d.def, true);
      try {
        const sock = this.#migrationSocket(d, 'restore');
        await this.#cmd(d, 'migrate-incoming', { uri: `unix:${sock}` });
        await sendFrom(sock, fd, offset);
        unlinkQuiet(sock);
        await this.#waitIncoming(d);
        if (header.state === 'running') {
          await this.#cmd(d, 'cont');
          d.state = 'running';
          d.reason = 'restored';
        } else {
          d.state = 'paused';
          d.reason = 'user';
        }
      } catch (err) {
        await this.#kill(d, 'failed').catch(() => undefined);
        throw toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
      }
    } finally {
      closeSync(fd);
    }
    if (d.save?.file === file) {
      this.#store.removeSave(d.def.name);
      d.save = null;
    }
    this.#log.info('domain restored', { domain: d.def.name, file, state: d.state });
  }

  /** Incoming migration ends when QEMU leaves "inmigrate". */
  async #waitIncoming(d: Domain): Promise<void> {
    const until = Date.now() + this.#o.saveTimeoutMs;
    for (;;) {
      const st = parseQueryMigrate(await this.#cmd(d, 'query-migrate'));
      if (st.status === 'failed' || st.status === 'cancelled') {
        throw new VirtError('VIRT_ERR_OPERATION_FAILED', `restore of domain ${d.def.name} failed: ${st.error ?? st.status}`, { domain: d.def.name });
      }
      if (st.status === 'completed') {
        const status = parseQueryStatus(await this.#cmd(d, 'query-status'));
        if (status !== 'inmigrate') return;
      }
      if (Date.now() > until) throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `restore of domain ${d.def.name} did not finish within ${this.#o.saveTimeoutMs} ms`, { domain: d.def.name });
      await sleep(50);
    }
  }
}
