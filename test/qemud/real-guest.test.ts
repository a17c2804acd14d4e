// Real guests through the whole stack: two Linux guests (the fixture in
// test/fixtures/guest) defined and started by virt-qemud through virtctl, doing
// known disk, network and memory work; an exporter scrape of qemu:///session
// must show exactly that work, from the guest's point of view.
//
// Guest "busy": waits for the test's baseline scrape, writes/reads disk with
// O_DIRECT, pings the host side of its tap, allocates memory, then spins its
// vCPU. Guest "plain": same kind of disk and network work, but its balloon
// driver is not loaded (the device is there), so guest memory figures must be
// absent, not zero. Both NICs are taps in a private network namespace with
// static neighbours both ways, so packet counts are exact.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { METRICS } from '../../src/collectors/catalogue.ts';
import {
  buildGuest,
  createNetns,
  guestCmdline,
  guestErrors,
  ICMP_FRAME_OVERHEAD,
  waitForConsole,
  waitForReport,
  qemuSession,
  type GuestImage,
  type GuestReport,
  type GuestWorkload,
  type Netns,
  type QemuSession,
  type Tap,
} from '../fixtures/guest/index.ts';
import { parseMetrics, scrape, startExporter, type ParsedSample, type StartedExporter } from '../helpers/exporter.ts';

const MiB = 1024 * 1024;
const MEMORY_MIB = 256;
/** The guests' pause before their workload, during which the baseline is scraped. */
const WAIT_SECONDS = 10;

interface Guest {
  name: string;
  tap: Tap;
  mac: string;
  ip: string;
  disk: string;
  consoleLog: string;
  workload: GuestWorkload;
  balloonDriver: boolean;
}

let dir = '';
let ns: Netns | undefined;
let session: QemuSession | undefined;
let exporter: StartedExporter | undefined;

function samplesFor(samples: ParsedSample[], metric: string, domain: string): ParsedSample[] {
  return samples.filter((s) => s.name === metric && s.labels.domain === domain);
}

/** The one sample of a per-device metric for a domain (each guest has one disk and one NIC). */
function one(samples: ParsedSample[], metric: string, domain: string): number {
  const hits = samplesFor(samples, metric, domain);
  assert.equal(hits.length, 1, `one ${metric} sample for ${domain}, got ${JSON.stringify(hits)}`);
  return hits[0]!.value;
}

async function scrapeSamples(): Promise<ParsedSample[]> {
  assert.ok(exporter);
  return parseMetrics(await scrape(exporter.url));
}

void describe('real guests under virt-qemud, seen through a scrape', { timeout: 240_000 }, () => {
  let image: GuestImage;
  const guests: Guest[] = [];
  const reports = new Map<string, GuestReport>();
  /** Per guest: a scrape taken while that guest waited, before its workload. */
  const baselines = new Map<string, ParsedSample[]>();
  let afterWork: ParsedSample[] = [];

  before(async () => {
    image = await buildGuest();
    dir = await mkdtemp(path.join(tmpdir(), 'vx-real-guest-'));
    session = qemuSession(path.join(dir, 'rt'));
    ns = await createNetns('vxrg');
    const specs: { name: string; n: number; balloonDriver: boolean; busy: boolean; packets: number; blackhole: number; payload: number; diskBytes: number; memMiB: number }[] = [
      { name: `vxbusy-${process.pid}`, n: 1, balloonDriver: true, busy: true, packets: 20, blackhole: 9, payload: 300, diskBytes: 8 * MiB, memMiB: 32 },
      { name: `vxplain-${process.pid}`, n: 2, balloonDriver: false, busy: false, packets: 7, blackhole: 4, payload: 1000, diskBytes: 2 * MiB, memMiB: 0 },
    ];
    for (const s of specs) {
      // One /29 per guest: host side .1, guest .2, blackhole .3.
      const tap = await ns.addTap(`vxrg${s.n}`, `192.0.2.${s.n * 8 + 1}/29`);
      const ip = `192.0.2.${s.n * 8 + 2}`;
      const mac = `52:54:00:76:78:${s.n.toString(16).padStart(2, '0')}`;
      await ns.addGuestNeighbor(tap.ifname, ip, mac);
      const disk = path.join(dir, `${s.name}.raw`);
      await writeFile(disk, '');
      await truncate(disk, 32 * MiB);
      guests.push({
        name: s.name,
        tap,
        mac,
        ip,
        disk,
        consoleLog: path.join(dir, `${s.name}.console.log`),
        balloonDriver: s.balloonDriver,
        workload: {
          waitSeconds: WAIT_SECONDS,
          diskBytes: s.diskBytes,
          ip: `${ip}/29`,
          peer: tap.address,
          peerMac: tap.mac,
          netPackets: s.packets,
          blackhole: `192.0.2.${s.n * 8 + 3}`,
          blackholePackets: s.blackhole,
          netPayload: s.payload,
          memMiB: s.memMiB,
          memHoldSeconds: s.memMiB > 0 ? 1 : 0,
          balloonDriver: s.balloonDriver,
          busy: s.busy,
        },
      });
    }
  });

  after(async () => {
    await exporter?.stop().catch(() => undefined);
    await session?.teardown();
    await ns?.destroy().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  void it('defines and starts both guests through virtctl and the exporter serves qemu:///session', async () => {
    for (const g of guests) {
      const def = {
        name: g.name,
        accel: 'tcg', // Debian's kernel hangs under nested KVM on these machines
        memoryMiB: MEMORY_MIB,
        vcpus: 1,
        kernel: { path: image.kernel, initrd: image.initrd, cmdline: guestCmdline(g.workload) },
        disks: [{ path: g.disk, format: 'raw', bus: 'virtio' }],
        nics: [{ type: 'tap', ifname: g.tap.ifname, netns: ns!.name, mac: g.mac }],
        balloon: { enabled: true, statsIntervalSeconds: 1 },
        console: { logFile: g.consoleLog },
      };
      const file = path.join(dir, `${g.name}.json`);
      await writeFile(file, JSON.stringify(def));
      await session!.define(g.name, file);
    }
    exporter = await startExporter(['--connect', 'qemu:///session'], { VIRT_EXPORTER_RUNTIME_DIR: session!.runtimeDir });
    for (const g of guests) await session!.virtctl('start', g.name);
    const list = await session!.virtctl('list');
    for (const g of guests) assert.match(list, new RegExp(`${g.name}\\s+running`), list);
  });

  void it('the guests boot and the baseline is read before their workload starts', async () => {
    for (const g of guests) {
      await waitForConsole(g.consoleLog, /^VX-EVENT waiting/, { timeoutMs: 120_000 });
      baselines.set(g.name, await scrapeSamples());
      const text = await readFile(g.consoleLog, 'utf8');
      assert.ok(!/^VX-EVENT go/m.test(text), `${g.name} started its workload before the baseline scrape finished (${WAIT_SECONDS} s window)`);
    }
  });

  void it('the guests finish their workload and report no error', async () => {
    for (const g of guests) {
      const r = await waitForReport(g.consoleLog, { timeoutMs: 120_000 });
      assert.deepEqual(guestErrors(await readFile(g.consoleLog, 'utf8')), [], g.name);
      assert.equal(r.errors, 0);
      assert.equal(r.netPingReceived, g.workload.netPackets, `${g.name}: every ping answered`);
      reports.set(g.name, r);
    }
    afterWork = await scrapeSamples();
  });

  void it('block bytes and requests grew by the guest workload, plus at most a small overhead', (t) => {
    for (const g of guests) {
      const r = reports.get(g.name);
      assert.ok(r, `report of ${g.name}`);
      const delta = (metric: string): number => one(afterWork, metric, g.name) - one(baselines.get(g.name) ?? [], metric, g.name);
      const wb = delta(METRICS.blockWriteBytes.name);
      const rb = delta(METRICS.blockReadBytes.name);
      const wr = delta(METRICS.blockWriteRequests.name);
      const rr = delta(METRICS.blockReadRequests.name);
      t.diagnostic(`${g.name}: block write +${wb} B/+${wr} req, read +${rb} B/+${rr} req; guest ${r.diskWriteBytes} B in ${r.diskGuestWriteIos} writes, ${r.diskReadBytes} B in ${r.diskGuestReadIos} reads`);
      assert.equal(r.diskWriteBytes, g.workload.diskBytes);
      assert.equal(r.diskReadBytes, g.workload.diskBytes);
      assert.ok(wb >= r.diskWriteBytes && wb <= r.diskWriteBytes + 256 * 1024, `${g.name}: write bytes grew by ${wb}, guest wrote ${r.diskWriteBytes}`);
      assert.ok(rb >= r.diskReadBytes && rb <= r.diskReadBytes + 256 * 1024, `${g.name}: read bytes grew by ${rb}, guest read ${r.diskReadBytes}`);
      assert.ok(wr >= r.diskGuestWriteIos && wr <= r.diskGuestWriteIos + 8, `${g.name}: write requests grew by ${wr}, guest issued ${r.diskGuestWriteIos}`);
      assert.ok(rr >= r.diskGuestReadIos && rr <= r.diskGuestReadIos + 8, `${g.name}: read requests grew by ${rr}, guest issued ${r.diskGuestReadIos}`);
    }
  });

  void it("tap packets and bytes are exactly the guest's traffic, in the guest's direction", async (t) => {
    for (const g of guests) {
      const r = reports.get(g.name);
      assert.ok(r);
      const packets = g.workload.netPackets ?? 0;
      const sent = packets + (g.workload.blackholePackets ?? 0);
      const frame = ICMP_FRAME_OVERHEAD + (g.workload.netPayload ?? 0);
      // The guest's own NIC counters: exactly the pings plus the unanswered
      // blackholed requests (so TX > RX), no ARP, no IPv6.
      assert.equal(r.netBlackholeSent, g.workload.blackholePackets);
      assert.equal(r.netTxPackets, sent);
      assert.equal(r.netTxBytes, sent * frame);
      assert.equal(r.netRxPackets, packets);
      assert.equal(r.netRxBytes, packets * frame);
      const delta = (metric: string): number => one(afterWork, metric, g.name) - one(baselines.get(g.name) ?? [], metric, g.name);
      assert.equal(delta(METRICS.netTxPackets.name), r.netTxPackets, `${g.name} transmit packets`);
      assert.equal(delta(METRICS.netTxBytes.name), r.netTxBytes, `${g.name} transmit bytes`);
      assert.equal(delta(METRICS.netRxPackets.name), r.netRxPackets, `${g.name} receive packets`);
      assert.equal(delta(METRICS.netRxBytes.name), r.netRxBytes, `${g.name} receive bytes`);
      // And the exporter's absolute values are the tap's own counters, swapped.
      const tap = await ns!.tapStats(g.tap.ifname);
      t.diagnostic(`${g.name}: transmit +${delta(METRICS.netTxPackets.name)} pkt/+${delta(METRICS.netTxBytes.name)} B, receive +${delta(METRICS.netRxPackets.name)} pkt/+${delta(METRICS.netRxBytes.name)} B; tap ${JSON.stringify(tap)}`);
      assert.equal(one(afterWork, METRICS.netTxPackets.name, g.name), tap.rxPackets);
      assert.equal(one(afterWork, METRICS.netTxBytes.name, g.name), tap.rxBytes);
      assert.equal(one(afterWork, METRICS.netRxPackets.name, g.name), tap.txPackets);
      assert.equal(one(afterWork, METRICS.netRxBytes.name, g.name), tap.txBytes);
    }
  });

  void it('balloon figures are real for the guest with a driver and absent (not zero) for the one without', async (t) => {
    const [busy, plain] = guests;
    assert.ok(busy && plain);
    const r = reports.get(busy.name);
    assert.ok(r);
    // Stats are polled every second: give the first poll a few seconds.
    let samples = afterWork;
    for (let i = 0; i < 20 && samplesFor(samples, METRICS.memoryGuestTotal.name, busy.name).length === 0; i++) {
      await sleep(500);
      samples = await scrapeSamples();
    }
    const total = one(samples, METRICS.memoryGuestTotal.name, busy.name);
    const free = one(samples, METRICS.memoryGuestFree.name, busy.name);
    const avail = one(samples, METRICS.memoryGuestAvailable.name, busy.name);
    t.diagnostic(`${busy.name}: guest total ${total} B, free ${free} B, available ${avail} B; guest MemTotal ${r.memTotalKiB} KiB`);
    assert.ok(Math.abs(total - r.memTotalKiB * 1024) <= 4 * MiB, `guest total ${total} B vs the guest's MemTotal ${r.memTotalKiB} KiB`);
    assert.ok(total <= MEMORY_MIB * MiB && total >= 0.7 * MEMORY_MIB * MiB, `guest total ${total} B close to the defined ${MEMORY_MIB} MiB`);
    assert.ok(free > 0 && free < total, `guest free ${free} below total ${total}`);
    assert.ok(avail >= free && avail <= total, `guest available ${avail}`);
    assert.equal(one(samples, METRICS.memoryMaximum.name, busy.name), MEMORY_MIB * MiB);
    assert.equal(one(samples, METRICS.memoryBalloon.name, busy.name), MEMORY_MIB * MiB);

    // The other guest has the balloon device but never loaded its driver.
    assert.equal(one(samples, METRICS.memoryBalloon.name, plain.name), MEMORY_MIB * MiB);
    for (const m of [METRICS.memoryGuestTotal, METRICS.memoryGuestFree, METRICS.memoryGuestAvailable, METRICS.memoryMajorFaults, METRICS.memorySwapIn]) {
      assert.deepEqual(samplesFor(samples, m.name, plain.name), [], `${m.name} absent for ${plain.name}`);
    }
  });

  void it('per-vCPU time grows while the guest works', async (t) => {
    const [busy, plain] = guests;
    assert.ok(busy && plain);
    await waitForConsole(busy.consoleLog, /^VX-EVENT busy/, { timeoutMs: 10_000 });
    const vcpu = (s: ParsedSample[], d: string): number => {
      const hits = samplesFor(s, METRICS.vcpuTime.name, d).filter((x) => x.labels.vcpu === '0');
      assert.equal(hits.length, 1, `vcpu 0 time of ${d}`);
      return hits[0]!.value;
    };
    const s1 = await scrapeSamples();
    const t1 = Date.now();
    await sleep(3000);
    const s2 = await scrapeSamples();
    const wall = (Date.now() - t1) / 1000;
    const busyGrowth = vcpu(s2, busy.name) - vcpu(s1, busy.name);
    const plainGrowth = vcpu(s2, plain.name) - vcpu(s1, plain.name);
    t.diagnostic(`vCPU 0 time over ${wall} s: busy guest +${busyGrowth} s, idle guest +${plainGrowth} s`);
    assert.ok(busyGrowth >= 0.1 * wall, `busy guest's vCPU 0 ran ${busyGrowth} s in ${wall} s`);
    assert.ok(busyGrowth <= wall + 0.5, `vCPU time ${busyGrowth} s cannot exceed wall time ${wall} s`);
    assert.ok(busyGrowth > plainGrowth, `busy guest's vCPU (${busyGrowth} s) ran more than the idle one's (${plainGrowth} s)`);
    const cpu = (s: ParsedSample[]): number => one(s, METRICS.cpuTime.name, busy.name);
    assert.ok(cpu(s2) - cpu(s1) >= busyGrowth - 0.05, 'domain CPU time includes its vCPU time');
  });
});
