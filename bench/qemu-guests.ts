// Real-QEMU benchmark, running-guests variant: 1..N real Linux guests (the
// test fixture, TCG) busy with their workload in a loop (O_DIRECT disk writes
// and reads, pings over a tap), scraped through virt-exporter -> qemu driver ->
// virt-qemud. Prints scrape latency p50/p99 and the CPU one scrape costs in the
// exporter, in virt-qemud and in the QEMU processes (their non-vCPU threads,
// where QMP is answered), each measured from /proc against an equally long
// window without scrapes, so the guests' own work is subtracted.
//
//   node_modules/.bin/node bench/qemu-guests.ts [--max-guests 4] [--scrapes 60]
//
// Needs root (network namespace, taps), qemu-system-x86, busybox-static, cpio.
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { buildGuest, createNetns, guestCmdline, processesOf, qemuSession, waitForConsole, type Netns, type QemuSession } from '../test/fixtures/guest/index.ts';
import { scrape, startExporter, type StartedExporter } from '../test/helpers/exporter.ts';

const { values: opts } = parseArgs({
  options: {
    'max-guests': { type: 'string', default: '4' },
    scrapes: { type: 'string', default: '60' },
  },
});
const MAX_GUESTS = Number(opts['max-guests']);
const SCRAPES = Number(opts.scrapes);
if (!Number.isInteger(MAX_GUESTS) || MAX_GUESTS < 1 || MAX_GUESTS > 16) throw new Error(`--max-guests must be 1..16, got ${opts['max-guests']}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 5) throw new Error(`--scrapes must be an integer >= 5, got ${opts.scrapes}`);

const CLK_TCK = 100;
const MiB = 1024 * 1024;

/** utime+stime in seconds of a process or thread stat file; 0 if gone. */
async function statCpu(file: string): Promise<number> {
  const s = await readFile(file, 'utf8').catch(() => '');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after "(comm)": state is index 0, utime 11, stime 12
  return (Number(rest[11] ?? 0) + Number(rest[12] ?? 0)) / CLK_TCK;
}

/** CPU of a QEMU process outside its vCPU threads (named "CPU n/TCG" or "CPU n/KVM" with debug-threads=on). */
async function qemuNonVcpuCpu(pid: number): Promise<number> {
  const total = await statCpu(`/proc/${pid}/stat`);
  let vcpu = 0;
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const comm = (await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '')).trim();
    if (/^CPU \d+\//.test(comm)) vcpu += await statCpu(`/proc/${pid}/task/${tid}/stat`);
  }
  return total - vcpu;
}

async function rssBytes(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(s);
  return m?.[1] ? Number(m[1]) * 1024 : 0;
}

interface CpuSnapshot {
  exporter: number;
  qemud: number;
  qemu: number;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

async function main(): Promise<void> {
  const image = await buildGuest();
  const dir = await mkdtemp(path.join(tmpdir(), 'vx-bench-guests-'));
  let ns: Netns | undefined;
  let session: QemuSession | undefined;
  let exporter: StartedExporter | undefined;
  const rows: string[] = [];
  try {
    ns = await createNetns('vxbench');
    session = qemuSession(path.join(dir, 'rt'));
    const qemuPids = async (): Promise<number[]> => {
      const out: number[] = [];
      for (const pid of await processesOf(session!.runtimeDir)) {
        const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
        if (comm.startsWith('qemu-system')) out.push(pid);
      }
      return out;
    };
    const qemudPid = async (): Promise<number> => Number((await readFile(path.join(session!.runtimeDir, 'qemu', 'virt-qemud.pid'), 'utf8')).trim());
    const snapshot = async (): Promise<CpuSnapshot> => {
      let qemu = 0;
      for (const pid of await qemuPids()) qemu += await qemuNonVcpuCpu(pid);
      return { exporter: await statCpu(`/proc/${exporter!.child.pid}/stat`), qemud: await statCpu(`/proc/${await qemudPid()}/stat`), qemu };
    };

    for (let n = 1; n <= MAX_GUESTS; n++) {
      const name = `vxbench${n}-${process.pid}`;
      const tap = await ns.addTap(`vxb${n}`, `192.0.2.${n * 8 + 1}/29`);
      const ip = `192.0.2.${n * 8 + 2}`;
      const mac = `52:54:00:76:79:${n.toString(16).padStart(2, '0')}`;
      await ns.addGuestNeighbor(tap.ifname, ip, mac);
      const disk = path.join(dir, `${name}.raw`);
      await writeFile(disk, '');
      await truncate(disk, 16 * MiB);
      const consoleLog = path.join(dir, `${name}.console.log`);
      const def = {
        name,
        accel: 'tcg',
        memoryMiB: 256,
        vcpus: 1,
        kernel: {
          path: image.kernel,
          initrd: image.initrd,
          cmdline: guestCmdline({ diskBytes: MiB, ip: `${ip}/29`, peer: tap.address, peerMac: tap.mac, netPackets: 5, loop: true }),
        },
        disks: [{ path: disk }],
        nics: [{ type: 'tap', ifname: tap.ifname, netns: ns.name, mac }],
        balloon: { statsIntervalSeconds: 5 },
        console: { logFile: consoleLog },
      };
      const file = path.join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(def));
      await session.define(name, file);
      await session.virtctl('start', name);
      await waitForConsole(consoleLog, /^VX-LOOP round=2 /, { timeoutMs: 180_000 });
      exporter ??= await startExporter(['--connect', 'qemu:///session'], session.env());

      // Warm up, then a window without scrapes (the guests' own cost), then the scrapes.
      for (let i = 0; i < 5; i++) await scrape(exporter.url);
      const idle0 = await snapshot();
      const tIdle0 = performance.now();
      await sleep(3000);
      const idle1 = await snapshot();
      const idleSeconds = (performance.now() - tIdle0) / 1000;

      const lat: number[] = [];
      const s0 = await snapshot();
      const t0 = performance.now();
      for (let i = 0; i < SCRAPES; i++) {
        const a = performance.now();
        const body = await scrape(exporter.url);
        lat.push(performance.now() - a);
        if (!body.includes(`domain="${name}"`)) throw new Error(`scrape ${i} has no series for ${name}`);
      }
      const s1 = await snapshot();
      const seconds = (performance.now() - t0) / 1000;
      const perScrapeMs = (k: keyof CpuSnapshot): number => {
        const background = ((idle1[k] - idle0[k]) / idleSeconds) * seconds;
        return (Math.max(0, s1[k] - s0[k] - background) / SCRAPES) * 1000;
      };
      lat.sort((x, y) => x - y);
      const exporterRss = await rssBytes(exporter.child.pid!);
      const qemudRss = await rssBytes(await qemudPid());
      rows.push(
        `| ${n} | ${SCRAPES} | ${percentile(lat, 50).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${perScrapeMs('exporter').toFixed(2)} | ${perScrapeMs('qemud').toFixed(2)} | ${perScrapeMs('qemu').toFixed(2)} | ${(exporterRss / MiB).toFixed(0)} | ${(qemudRss / MiB).toFixed(0)} |`,
      );
      process.stderr.write(`${n} busy guest(s) measured\n`);
    }
  } finally {
    await exporter?.stop().catch(() => undefined);
    await session?.teardown().catch(() => undefined);
    await ns?.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(
    [
      `### Real QEMU, running guests (TCG, each looping O_DIRECT disk I/O and pings)`,
      '',
      '| guests | scrapes | p50 ms | p99 ms | exporter CPU ms/scrape | virt-qemud CPU ms/scrape | QEMU non-vCPU CPU ms/scrape | exporter RSS MiB | virt-qemud RSS MiB |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      'CPU per scrape: /proc utime+stime during the scrapes minus the same processes\' rate in a 3 s window without scrapes; ' +
        '10 ms clock ticks, so small values are approximate.',
      '',
    ].join('\n'),
  );
}

await main();
