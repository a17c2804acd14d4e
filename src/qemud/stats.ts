/**
 * Bulk statistics of one domain. `buildStats` is a pure function of the
 * domain (definition, run state, what earlier reads left), one /proc reading
 * of its QEMU and the QMP replies of this read, so it is tested on recorded
 * replies without a QEMU; `readStats` gathers those inputs: /proc first, then
 * at most one QMP command per domain and read (query-blockstats; none for a
 * paused domain, whose block counters cannot have moved), plus the balloon
 * driver's guest statistics only when QEMU can have newer ones than the last
 * read (its polling interval has passed since their last update). Nothing is
 * polled between reads.
 */
import { statSync } from 'node:fs';
import type { BlockReading, DomainInfo, DomainStats, MemoryReading, NetReading, ReadError, StatsGroup, VcpuReading } from '../drivers/types.ts';
import { guestView } from '../drivers/types.ts';
import { toVirtError, VirtError } from '../virt/errors.ts';
import type { QemudContext } from './context.ts';
import type { Domain } from './domain.ts';
import { imageVirtualSize } from './images.ts';
import { refreshVcpus } from './monitor.ts';
import { CLOCK_TICKS, cpuSeconds, PAGE_SIZE, parseProcStat, parseSchedstat, ProcFile, readNetDev, type DevCounters, type ProcStat } from './proc.ts';
import { checkAlive, reattach } from './process.ts';
import { BALLOON_QOM_PATH, diskNodeName } from './qemu-args.ts';
import { parseBlockstats, parseGuestStats } from './qmp-parse.ts';

const MiB = 1024 * 1024;

/** What /proc and the image files said about one domain's QEMU in this read. */
export interface ProcReading {
  /** /proc/PID/stat of the QEMU process; null when it is gone. */
  stat: ProcStat | null;
  /** Per vCPU index: its thread's stat and scheduler delay; null when that thread is not there. */
  vcpus: Array<{ stat: ProcStat; delaySeconds?: number } | null>;
  /** The interfaces of QEMU's network namespace (/proc/PID/net/dev), when a tap NIC needs them. */
  netDev: Map<string, DevCounters> | null;
  /** Per disk target: virtual size of the image and bytes it takes on the host. */
  disks: Map<string, { capacityBytes?: number; allocationBytes?: number }>;
}

/** The query-blockstats of this read: its reply (with the epoch and pause it was sent in), its failure, or none (a paused domain's last reading stands). */
export type BlockReply = { reply: unknown; epoch: number; wasPaused: boolean } | { error: unknown } | { cached: true };

/** The QMP replies of one read of one domain; a reply not asked for is absent. */
export interface QmpReplies {
  block?: BlockReply;
  /** qom-get of the balloon's guest-stats. */
  guestStats?: { reply: unknown } | { error: unknown };
}

export interface StatsResult {
  /** null: the domain is left out of this read (its monitor is broken, so even its state is in doubt). */
  stats: DomainStats | null;
  errors: ReadError[];
  /** The block reading to keep for the next read (null: keep none), or undefined to leave the kept one. */
  blockCache?: { epoch: number; readings: BlockReading[] } | null;
  /** A vCPU thread was not found: the thread ids need a refresh. */
  vcpuMissing: boolean;
  /** Guest statistics read in this read (undefined inside: the guest has no balloon driver reporting). */
  guest?: { stats: MemoryReading['guest'] };
}

/** The domain's info record (pure: from the domain and its process stat). */
export function domainInfo(d: Domain, stat: ProcStat | null): DomainInfo {
  const cfg = d.config;
  const max = cfg.memoryMiB * MiB;
  const info: DomainInfo = {
    ...d.ref(),
    state: d.state,
    stateReason: d.reason,
    maxMemoryBytes: max,
    memoryBytes: d.active ? (d.status.balloonBytes ?? max) : 0,
    vcpus: cfg.vcpus,
    cpuTimeSeconds: d.active && stat !== null ? cpuSeconds(stat) : 0,
    osType: 'hvm',
    arch: cfg.arch,
    machine: cfg.machine,
    autostart: false,
    persistent: true,
    managedSave: d.managedSave !== null,
  };
  // QEMU's counters (and the process's CPU time) count from its start.
  const started = d.active && d.runtime !== null ? Date.parse(d.runtime.startedAt) / 1000 : NaN;
  if (Number.isFinite(started)) info.startTimeSeconds = started;
  return info;
}

function withDiskSizes(d: Domain, readings: readonly BlockReading[], proc: ProcReading): BlockReading[] {
  return readings.map((b) => {
    const r: BlockReading = { ...b };
    const disk = d.config.disks.find((x) => x.target === b.device);
    if (disk === undefined) return r;
    r.path = disk.path;
    const sizes = proc.disks.get(disk.target);
    if (sizes?.capacityBytes !== undefined) r.capacityBytes = sizes.capacityBytes;
    if (sizes?.allocationBytes !== undefined) r.allocationBytes = sizes.allocationBytes;
    return r;
  });
}

/** The statistics of a running domain from one /proc reading and this read's QMP replies. Pure. */
export function buildStats(d: Domain, groups: ReadonlySet<StatsGroup>, proc: ProcReading, qmp: QmpReplies): StatsResult {
  const cfg = d.config;
  const { stat } = proc;
  const { block } = qmp;
  const out: DomainStats = { info: domainInfo(d, stat) };
  const errors: ReadError[] = [];
  let vcpuMissing = false;
  let guest: StatsResult['guest'];
  if (qmp.guestStats !== undefined && 'reply' in qmp.guestStats) {
    try {
      guest = { stats: parseGuestStats(qmp.guestStats.reply) };
    } catch {
      // a malformed reply leaves the last statistics standing, as a failed one does
    }
  }
  if (stat !== null && groups.has('cpu')) {
    out.cpu = { userSeconds: stat.utimeTicks / CLOCK_TICKS, systemSeconds: stat.stimeTicks / CLOCK_TICKS };
  }
  if (groups.has('vcpu')) {
    const vcpus: VcpuReading[] = [];
    for (let i = 0; i < cfg.vcpus; i++) {
      const t = proc.vcpus[i] ?? null;
      if (t === null) {
        vcpuMissing = true;
        vcpus.push({ id: i, state: 'offline' });
        continue;
      }
      vcpus.push({
        id: i,
        state: d.state === 'running' ? 'running' : 'blocked',
        timeSeconds: cpuSeconds(t.stat),
        cpu: t.stat.processor,
        ...(t.delaySeconds === undefined ? {} : { delaySeconds: t.delaySeconds }),
      });
    }
    out.vcpus = vcpus;
  }
  if (groups.has('memory')) {
    const max = cfg.memoryMiB * MiB;
    const balloon = d.status.balloonBytes;
    const mem: MemoryReading = { maximumBytes: max, currentBytes: balloon ?? max };
    if (balloon !== undefined) mem.balloonBytes = balloon;
    const g = guest === undefined ? d.caches.guest : guest.stats;
    if (g !== undefined) mem.guest = { ...g };
    if (stat !== null) mem.rssBytes = stat.rssPages * PAGE_SIZE;
    out.memory = mem;
  }
  if (groups.has('net')) {
    out.net = cfg.nics.map((n, i): NetReading => {
      if (n.type === 'user') return { interface: `nic${i}`, mac: n.mac, counters: null };
      const c = proc.netDev?.get(n.ifname ?? '');
      // Host tap counters are the guest's reversed: what the host receives, the guest sent.
      return { interface: n.ifname ?? `nic${i}`, mac: n.mac, counters: c === undefined ? null : guestView(c) };
    });
  }
  const result: StatsResult = { stats: out, errors, vcpuMissing, ...(guest === undefined ? {} : { guest }) };
  if (!groups.has('block')) return result;
  if (cfg.disks.length === 0 || block === undefined) {
    out.block = [];
    return result;
  }
  if ('cached' in block) {
    // Stopping the vCPUs drains all I/O: a paused domain's counters stand still.
    out.block = withDiskSizes(d, d.caches.block?.readings ?? [], proc);
    return result;
  }
  try {
    if ('error' in block) throw block.error;
    const byNode = new Map(cfg.disks.map((x) => [diskNodeName(x.target), x.target]));
    const readings = parseBlockstats(block.reply, (node) => byNode.get(node));
    result.blockCache = block.wasPaused && d.state === 'paused' && d.status.epoch === block.epoch ? { epoch: block.epoch, readings } : null;
    out.block = withDiskSizes(d, readings, proc);
  } catch (err) {
    const e = toVirtError(err, 'VIRT_ERR_RPC');
    // A monitor that does not answer makes this domain's read fail, not the others'.
    errors.push({ domain: d.name, group: 'block', code: e.code, message: e.message });
    // A broken monitor leaves the domain's state in doubt; a slow one does not:
    // it stays reported (state, CPU, memory from /proc) with its block part missing.
    if (e.code === 'VIRT_ERR_RPC') result.stats = null;
  }
  return result;
}

/** Reads /proc (and the image files) for buildStats. */
function readProc(d: Domain, groups: ReadonlySet<StatsGroup>, stat: ProcStat | null): ProcReading {
  const cfg = d.config;
  const pid = d.runtime?.pid as number;
  const proc: ProcReading = { stat, vcpus: [], netDev: null, disks: new Map() };
  if (groups.has('vcpu')) {
    const c = d.caches;
    for (let i = 0; i < cfg.vcpus; i++) {
      const tid = c.vcpuTids[i];
      let files = tid === undefined ? undefined : c.threads.get(tid);
      if (tid !== undefined && files === undefined) {
        const stat = ProcFile.open(`/proc/${pid}/task/${tid}/stat`);
        if (stat !== null) c.threads.set(tid, (files = { stat, sched: ProcFile.open(`/proc/${pid}/task/${tid}/schedstat`) }));
      }
      const text = files?.stat.read() ?? null;
      const t = text === null ? null : parseProcStat(text);
      if (t === null) {
        proc.vcpus.push(null);
        continue;
      }
      const schedText = files?.sched?.read() ?? null;
      const sched = schedText === null ? null : parseSchedstat(schedText);
      proc.vcpus.push({ stat: t, ...(sched === null ? {} : { delaySeconds: sched.delaySeconds }) });
    }
    // Threads no longer among the vCPUs (gone, or re-read by a refresh) are let go.
    for (const [tid, f] of c.threads) {
      if (c.vcpuTids.includes(tid) && proc.vcpus[c.vcpuTids.indexOf(tid)] !== null) continue;
      f.stat.close();
      f.sched?.close();
      c.threads.delete(tid);
    }
  }
  if (groups.has('net') && cfg.nics.some((n) => n.type === 'tap')) proc.netDev = readNetDev(pid);
  if (groups.has('block')) {
    for (const disk of cfg.disks) {
      let cap = d.caches.capacity.get(disk.target);
      if (cap === undefined) {
        cap = imageVirtualSize(disk.path, disk.format);
        if (cap !== undefined) d.caches.capacity.set(disk.target, cap);
      }
      let allocationBytes: number | undefined;
      try {
        allocationBytes = statSync(disk.path).blocks * 512;
      } catch {
        // image gone from under QEMU: leave allocation out
      }
      proc.disks.set(disk.target, { ...(cap === undefined ? {} : { capacityBytes: cap }), ...(allocationBytes === undefined ? {} : { allocationBytes }) });
    }
  }
  return proc;
}

/** The balloon's guest statistics polling interval QEMU was started with, in seconds (0: none). */
function guestStatsInterval(ctx: QemudContext, d: Domain): number {
  const b = d.config.balloon;
  return b.enabled ? (b.statsIntervalSeconds ?? ctx.o.balloonStatsIntervalSeconds) : 0;
}

/**
 * Whether QEMU may hold newer guest statistics than the kept ones: the
 * guest must be running (a paused one cannot answer), and either the
 * interval since their last update has passed or the run state changed
 * (a reset or resume makes a new driver report at once).
 */
function guestStatsDue(ctx: QemudContext, d: Domain): boolean {
  if (d.state !== 'running' || guestStatsInterval(ctx, d) <= 0) return false;
  const f = d.caches.guestFresh;
  return f.epoch !== d.status.epoch || Date.now() >= f.until;
}

/** One domain's part of a bulk read; null when it is left out (shut off without `inactive`, or its monitor is broken). */
export async function readStats(ctx: QemudContext, d: Domain, groups: ReadonlySet<StatsGroup>, inactive: boolean, deadline: number, errors: ReadError[], signal?: AbortSignal): Promise<DomainStats | null> {
  let stat = checkAlive(ctx, d);
  if (!d.active) return inactive ? { info: domainInfo(d, null) } : null;
  const budget = (): number => Math.max(1, Math.min(ctx.o.qmpTimeoutMs, deadline - Date.now()));
  if (d.monitor.qmp === null || d.monitor.qmp.closed) {
    await reattach(ctx, d, budget(), signal, Math.min(500, Math.max(0, deadline - Date.now() - ctx.o.qmpTimeoutMs)));
    stat = checkAlive(ctx, d);
    if (!d.active) return inactive ? { info: domainInfo(d, null) } : null;
  }
  const proc = readProc(d, groups, stat);
  const qmp = d.monitor.qmp;
  const epochAsked = d.status.epoch;
  const call = { timeoutMs: budget(), ...(signal === undefined ? {} : { signal }) };
  // Both commands go out before either reply is awaited (and every domain's before any: the caller reads them all at once).
  const guestPending = groups.has('memory') && guestStatsDue(ctx, d) && qmp !== null ? qmp.execute('qom-get', { path: BALLOON_QOM_PATH, property: 'guest-stats' }, call) : undefined;
  guestPending?.catch(() => undefined);
  let block: BlockReply | undefined;
  if (groups.has('block') && d.config.disks.length > 0) {
    if (d.state === 'paused' && d.caches.block?.epoch === d.status.epoch) block = { cached: true };
    else {
      // The one QMP command of this collection for this domain.
      const epoch = d.status.epoch;
      const wasPaused = d.state === 'paused';
      try {
        if (qmp === null) throw new VirtError('VIRT_ERR_RPC', `QMP monitor of ${d.name} is not connected`);
        block = { reply: await qmp.execute('query-blockstats', undefined, call), epoch, wasPaused };
      } catch (error) {
        block = { error };
      }
    }
  }
  let guestStats: QmpReplies['guestStats'];
  if (guestPending !== undefined) {
    try {
      guestStats = { reply: await guestPending };
    } catch (error) {
      guestStats = { error };
      ctx.log.debug('guest-stats read failed', { domain: d.name, err: error });
    }
  }
  const r = buildStats(d, groups, proc, { ...(block === undefined ? {} : { block }), ...(guestStats === undefined ? {} : { guestStats }) });
  errors.push(...r.errors);
  const c = d.caches;
  if (r.blockCache !== undefined) c.block = r.blockCache;
  if (guestStats !== undefined) {
    // QEMU asks the guest again one interval after its last answer: until then nothing newer can exist.
    const iv = guestStatsInterval(ctx, d) * 1000;
    const last = r.guest?.stats?.lastUpdateSeconds;
    if (r.guest !== undefined) c.guest = r.guest.stats;
    c.guestFresh = { until: last === undefined ? Date.now() + iv : Math.max((last * 1000) + iv, Date.now() + 1000), epoch: epochAsked };
  }
  // A vanished thread asks for a refresh, but never more than every 10 s (it runs outside the read).
  const stale = r.vcpuMissing || Date.now() - c.vcpuRefreshedAt > Math.max(10, ctx.o.vcpuRefreshSeconds) * 1000;
  if (groups.has('vcpu') && stale && Date.now() - c.vcpuRefreshedAt > 10_000) refreshVcpus(ctx, d);
  return r.stats;
}
