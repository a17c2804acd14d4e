// Bulk statistics (src/qemud/stats.ts buildStats) from a domain, a /proc
// reading and the QMP replies of recorded real QEMU 7.2 sessions
// (test/fixtures/qmp/), without a QEMU.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STATS_GROUPS, type StatsGroup } from '../../src/drivers/types.ts';
import { validateDefinition } from '../../src/qemud/definition.ts';
import { Domain, SHUT_OFF } from '../../src/qemud/domain.ts';
import { nextState } from '../../src/qemud/monitor.ts';
import { CLOCK_TICKS, PAGE_SIZE, parseProcStat, type ProcStat } from '../../src/qemud/proc.ts';
import { parseBalloon, parseCpusFast, parseGuestStats, parseQueryStatus } from '../../src/qemud/qmp-parse.ts';
import { buildStats, domainInfo, type BlockReply, type ProcReading } from '../../src/qemud/stats.ts';
import { VirtError } from '../../src/virt/errors.ts';
import { loadSession, replyTo } from './qmp-session.ts';

const MiB = 1024 * 1024;
const guest = loadSession('guest-poweroff-7.2.jsonl');
const nos = loadSession('lifecycle-nos-7.2.jsonl');

// /proc/PID/stat of a QEMU and of its vCPU thread (fields as Linux 6.1 writes them).
const qemuStat = stat('4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 30000 0 12 0 250 75 0 0 20 0 9 0 1035350 1200000000 9216 18446744073709551615 1 1 0 0 0 0 0 4096 17987 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0');
const vcpuStat = stat('4250 (CPU 0/TCG) R 1 4242 4242 0 -1 4194624 100 0 0 0 200 10 0 0 20 0 9 0 1035360 1200000000 9216 18446744073709551615 1 1 0 0 0 0 0 4096 17987 0 0 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0');

function stat(text: string): ProcStat {
  const s = parseProcStat(text);
  assert.ok(s !== null);
  return s;
}

/** A running domain as virt-qemud would hold it after attaching to the session's QEMU. */
function running(session: typeof guest, def: Record<string, unknown>): Domain {
  const d = new Domain(validateDefinition({ name: 'vm1', uuid: '6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab', vcpus: 1, ...def }));
  d.running = d.stored;
  d.runtime = { name: 'vm1', uuid: d.stored.uuid, id: 7, phase: 'running', pid: 4242, pidStartTime: '1035350', pidFile: '/x.pid', qmpSocket: '/x.sock', consoleLog: '/x.log', accel: 'tcg', startedAt: '2026-12-02T03:00:00.000Z' };
  d.status = nextState(nextState(SHUT_OFF, { kind: 'launched', incoming: false }).status, {
    kind: 'attached',
    status: parseQueryStatus(replyTo(session, 'query-status')),
    balloonBytes: parseBalloon(replyTo(session, 'query-balloon')),
  }).status;
  d.caches.vcpuTids = parseCpusFast(replyTo(session, 'query-cpus-fast'));
  return d;
}

const disk = { path: '/images/vm1.qcow2', format: 'qcow2' };

function proc(extra: Partial<ProcReading> = {}): ProcReading {
  return { stat: qemuStat, vcpus: [{ stat: vcpuStat, delaySeconds: 0.125 }], netDev: null, disks: new Map([['vda', { capacityBytes: 16 * MiB, allocationBytes: 200704 }]]), ...extra };
}

const all = new Set<StatsGroup>(STATS_GROUPS);

void describe('bulk statistics from a /proc reading and recorded QMP replies', () => {
  void it('a running guest: block counters of its query-blockstats, memory from balloon and guest stats, CPU and vCPUs from /proc', () => {
    const d = running(guest, { memoryMiB: 256, disks: [disk], nics: [{ type: 'user' }] });
    d.caches.guest = parseGuestStats(replyTo(guest, 'qom-get', 1));
    const r = buildStats(d, all, proc(), { block: { reply: replyTo(guest, 'query-blockstats'), epoch: d.status.epoch, wasPaused: false } });
    assert.deepEqual(r.errors, []);
    assert.equal(r.vcpuMissing, false);
    // A running domain's block reading is never kept: its counters move.
    assert.equal(r.blockCache, null);
    const s = r.stats;
    assert.ok(s !== null);
    assert.equal(s.info.state, 'running');
    assert.equal(s.info.id, 7);
    assert.equal(s.info.cpuTimeSeconds, (250 + 75) / CLOCK_TICKS);
    assert.equal(s.info.startTimeSeconds, Date.parse('2026-12-02T03:00:00.000Z') / 1000);
    assert.deepEqual(s.cpu, { userSeconds: 250 / CLOCK_TICKS, systemSeconds: 75 / CLOCK_TICKS });
    assert.deepEqual(s.vcpus, [{ id: 0, state: 'running', timeSeconds: 210 / CLOCK_TICKS, cpu: 0, delaySeconds: 0.125 }]);
    const b = s.block?.[0];
    assert.equal(s.block?.length, 1);
    assert.equal(b?.device, 'vda');
    assert.equal(b?.path, disk.path);
    // What the guest's 1 MiB write and its read-back left in QEMU's counters.
    assert.equal(b?.writeBytes, 1048576);
    assert.equal(b?.readBytes, 1061376);
    assert.equal(b?.capacityBytes, 16 * MiB);
    assert.equal(b?.allocationBytes, 200704);
    assert.equal(s.memory?.maximumBytes, 256 * MiB);
    assert.equal(s.memory?.balloonBytes, 256 * MiB);
    assert.equal(s.memory?.rssBytes, 9216 * PAGE_SIZE);
    assert.equal(s.memory?.guest?.freeBytes, 185241600);
    assert.deepEqual(s.net, [{ interface: 'nic0', mac: d.config.nics[0]?.mac, counters: null }]);
  });

  void it('guest statistics: read in this read when asked, else the kept ones; none before the balloon driver reports', () => {
    const d = running(guest, { memoryMiB: 256, disks: [disk] });
    // Before the guest's driver reported (last-update 0): nothing, and that is what is kept.
    const early = buildStats(d, all, proc(), { guestStats: { reply: replyTo(guest, 'qom-get', 0) } });
    assert.equal(early.stats?.memory?.guest, undefined);
    assert.deepEqual(early.guest, { stats: undefined });
    const later = buildStats(d, all, proc(), { guestStats: { reply: replyTo(guest, 'qom-get', 1) } });
    assert.equal(later.stats?.memory?.guest?.totalBytes, 215797760);
    assert.equal(later.guest?.stats?.availableBytes, 188547072);
    assert.ok((later.guest?.stats?.lastUpdateSeconds ?? 0) > 1.7e9);
    // Not asked, failed or malformed: the kept statistics stand and nothing new is returned.
    d.caches.guest = later.guest?.stats;
    for (const q of [{}, { guestStats: { error: new VirtError('VIRT_ERR_OPERATION_TIMEOUT', 'slow') } }, { guestStats: { reply: [] } }]) {
      const r = buildStats(d, all, proc(), q);
      assert.equal(r.guest, undefined);
      assert.equal(r.stats?.memory?.guest?.freeBytes, 185241600);
    }
  });

  void it('a paused domain: its fresh reading is kept for the epoch, then reused without QMP', () => {
    const d = running(nos, { memoryMiB: 64, disks: [disk] });
    d.status = nextState(d.status, { kind: 'suspended' }).status;
    const fresh = buildStats(d, all, proc(), { block: { reply: replyTo(nos, 'query-blockstats', 1), epoch: d.status.epoch, wasPaused: true } });
    assert.equal(fresh.blockCache?.epoch, d.status.epoch);
    assert.equal(fresh.stats?.vcpus?.[0]?.state, 'blocked');
    const kept = fresh.blockCache;
    assert.ok(kept !== null && kept !== undefined);
    d.caches.block = kept;
    const again = buildStats(d, all, proc({ disks: new Map([['vda', { capacityBytes: 16 * MiB, allocationBytes: 4096 }]]) }), { block: { cached: true } });
    assert.equal(again.blockCache, undefined);
    assert.deepEqual(again.stats?.block?.map((x) => ({ ...x, allocationBytes: 0 })), fresh.stats?.block?.map((x) => ({ ...x, allocationBytes: 0 })));
    // Allocation is read again each time, even from a kept reading.
    assert.equal(again.stats?.block?.[0]?.allocationBytes, 4096);
    // A reply that left while the domain was paused is not kept if it resumed meanwhile.
    const resumed = running(nos, { memoryMiB: 64, disks: [disk] });
    assert.equal(buildStats(resumed, all, proc(), { block: { reply: replyTo(nos, 'query-blockstats', 1), epoch: resumed.status.epoch, wasPaused: true } }).blockCache, null);
  });

  void it('a broken monitor leaves the domain out; a slow one keeps it without its block part', () => {
    const d = running(nos, { memoryMiB: 64, disks: [disk] });
    const broken = buildStats(d, all, proc(), { block: { error: new VirtError('VIRT_ERR_RPC', 'QMP monitor connection closed') } });
    assert.equal(broken.stats, null);
    assert.deepEqual(broken.errors.map((e) => [e.domain, e.group, e.code]), [['vm1', 'block', 'VIRT_ERR_RPC']]);
    const slow = buildStats(d, all, proc(), { block: { error: new VirtError('VIRT_ERR_OPERATION_TIMEOUT', 'QMP query-blockstats got no reply within 1 ms') } });
    assert.equal(slow.stats?.block, undefined);
    assert.equal(slow.stats?.info.state, 'running');
    assert.deepEqual(slow.errors.map((e) => e.code), ['VIRT_ERR_OPERATION_TIMEOUT']);
    // A malformed reply is the monitor's fault.
    assert.equal(buildStats(d, all, proc(), { block: { reply: { not: 'a list' }, epoch: 0, wasPaused: false } }).stats, null);
  });

  void it('only the groups asked for; a vanished vCPU thread is offline and asks for a refresh; a tap NIC reads as the guest sees it', () => {
    const d = running(nos, { memoryMiB: 64, vcpus: 2, disks: [disk], nics: [{ type: 'user' }, { type: 'tap', ifname: 'vnet9' }] });
    const r = buildStats(d, new Set<StatsGroup>(['vcpu', 'net']), proc({
      vcpus: [{ stat: vcpuStat }, null],
      netDev: new Map([['vnet9', { rxBytes: 10, rxPackets: 1, rxErrors: 0, rxDrops: 0, txBytes: 20, txPackets: 2, txErrors: 0, txDrops: 3 }]]),
    }), {});
    assert.equal(r.vcpuMissing, true);
    const s = r.stats;
    assert.deepEqual(Object.keys(s ?? {}).sort(), ['info', 'net', 'vcpus']);
    assert.deepEqual(s?.vcpus?.[1], { id: 1, state: 'offline' });
    assert.equal(s?.vcpus?.[0]?.delaySeconds, undefined);
    assert.deepEqual(s?.net?.[1]?.counters, { rxBytes: 20, rxPackets: 2, rxErrors: 0, rxDrops: 3, txBytes: 10, txPackets: 1, txErrors: 0, txDrops: 0 });
    // Without disks the block group is an empty list, without any QMP.
    const diskless = running(nos, { memoryMiB: 64 });
    assert.deepEqual(buildStats(diskless, new Set<StatsGroup>(['block']), proc(), {}).stats?.block, []);
  });

  void it('the info of a shut-off domain: no memory, no CPU time, no start time, managed save known', () => {
    const d = new Domain(validateDefinition({ name: 'off', memoryMiB: 64, vcpus: 1 }));
    d.managedSave = { file: '/saves/off.img', state: 'paused', savedAt: '2026-12-02T03:00:00.000Z' };
    const info = domainInfo(d, qemuStat);
    assert.equal(info.state, 'shutoff');
    assert.equal(info.id, null);
    assert.equal(info.memoryBytes, 0);
    assert.equal(info.cpuTimeSeconds, 0);
    assert.equal(info.startTimeSeconds, undefined);
    assert.equal(info.managedSave, true);
  });

  void it('is pure: the domain is not changed by building its statistics', () => {
    const d = running(guest, { memoryMiB: 256, disks: [disk] });
    const before = JSON.stringify({ s: d.status, c: { ...d.caches, capacity: [...d.caches.capacity] } });
    const block: BlockReply = { reply: replyTo(guest, 'query-blockstats'), epoch: d.status.epoch, wasPaused: false };
    buildStats(d, all, proc(), { block, guestStats: { reply: replyTo(guest, 'qom-get', 1) } });
    assert.equal(JSON.stringify({ s: d.status, c: { ...d.caches, capacity: [...d.caches.capacity] } }), before);
  });
});
