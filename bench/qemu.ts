// Real-QEMU benchmark, paused domains: 1, 10, 30 and 60 KVM (or TCG) domains,
// each with a qcow2 disk and a user-mode NIC, started then paused so guest
// CPU does not drown the figures. For each size it runs a series of bulk
// reads (allDomainStats, every group, over the read-only socket: exactly the
// collectors' path) through the qemu driver and prints latency p50/p99, the
// CPU one read costs in this process (the exporter's share), in virt-qemud and
// in the QEMU processes (each from /proc, minus an equally long idle window),
// and RSS.
//
//   node_modules/.bin/node bench/qemu.ts [--sizes 1,10,30,60] [--reads 200]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { STATS_GROUPS } from '../src/drivers/types.ts';
import { CLOCK_TICKS, PAGE_SIZE, readProcStat } from '../src/qemud/proc.ts';
import { open, type Connection } from '../src/virt/connection.ts';

const { values: opts } = parseArgs({
  // Imported by bench/compare.ts, whose own options are on the command line: none of them is ours.
  args: import.meta.main ? process.argv.slice(2) : [],
  options: {
    sizes: { type: 'string', default: '1,10,30,60' },
    reads: { type: 'string', default: '200' },
  },
});
const SIZES = (opts.sizes ?? '').split(',').map(Number);
const READS = Number(opts.reads);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) throw new Error(`--sizes must be integers 1..200, got ${opts.sizes}`);
if (!Number.isInteger(READS) || READS < 10) throw new Error(`--reads must be an integer >= 10, got ${opts.reads}`);

const MiB = 1024 * 1024;

function ticks(pid: number): number {
  const s = readProcStat(pid);
  return s === null ? 0 : s.utimeTicks + s.stimeTicks;
}

function rss(pid: number): number {
  return (readProcStat(pid)?.rssPages ?? 0) * PAGE_SIZE;
}

function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** PID of a domain's QEMU under virt-qemud, from its runtime state file (bench/compare.ts uses it too). */
export function runtimePid(runtimeDir: string, name: string): number {
  return (JSON.parse(readFileSync(join(runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

interface Row {
  domains: number;
  p50: number;
  p99: number;
  exporterMs: number;
  qemudMs: number;
  qemuMs: number;
  qemudRss: number;
  qemuRss: number;
}

async function measure(ro: Connection, daemonPid: number, qemuPids: number[]): Promise<Omit<Row, 'domains'>> {
  // Warm up (re-attach, JIT).
  for (let i = 0; i < 10; i++) await ro.allDomainStats({ groups: STATS_GROUPS });
  const qemuTicks = (): number => qemuPids.reduce((a, p) => a + ticks(p), 0);

  // Idle window: what the processes burn without reads, over the same wall time.
  const lat: number[] = [];
  const s0 = selfCpuSeconds();
  const d0 = ticks(daemonPid);
  const q0 = qemuTicks();
  const t0 = performance.now();
  for (let i = 0; i < READS; i++) {
    const a = performance.now();
    const r = await ro.allDomainStats({ groups: STATS_GROUPS });
    lat.push(performance.now() - a);
    if (r.errors.length > 0) throw new Error(`read errors: ${JSON.stringify(r.errors)}`);
    if (r.domains.length !== qemuPids.length) throw new Error(`expected ${qemuPids.length} domains, got ${r.domains.length}`);
  }
  const wall = performance.now() - t0;
  const selfBusy = selfCpuSeconds() - s0;
  const dBusy = (ticks(daemonPid) - d0) / CLOCK_TICKS;
  const qBusy = (qemuTicks() - q0) / CLOCK_TICKS;

  const d1 = ticks(daemonPid);
  const q1 = qemuTicks();
  await new Promise((r) => setTimeout(r, wall));
  const dIdle = (ticks(daemonPid) - d1) / CLOCK_TICKS;
  const qIdle = (qemuTicks() - q1) / CLOCK_TICKS;

  lat.sort((a, b) => a - b);
  return {
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    exporterMs: (selfBusy / READS) * 1000,
    qemudMs: (Math.max(0, dBusy - dIdle) / READS) * 1000,
    qemuMs: (Math.max(0, qBusy - qIdle) / READS) * 1000,
    qemudRss: rss(daemonPid),
    qemuRss: qemuPids.reduce((a, p) => a + rss(p), 0) / Math.max(1, qemuPids.length),
  };
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'vq-bench-'));
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = base;
  const runtimeDir = join(base, 'qemu');
  const rw = await open('qemu:///session', { readOnly: false });
  const ro = await open('qemu:///session', { readOnly: true });
  const daemonPid = Number(readFileSync(join(runtimeDir, 'virt-qemud.pid'), 'utf8').trim());
  const rows: Row[] = [];
  const names: string[] = [];
  try {
    const max = Math.max(...SIZES);
    for (const n of [...SIZES].sort((a, b) => a - b)) {
      while (names.length < n) {
        const name = `bench-${String(names.length).padStart(3, '0')}`;
        const disk = join(base, `${name}.qcow2`);
        const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`qemu-img failed: ${r.stderr}`);
        await rw.define({ name, memoryMiB: 48, vcpus: 1, disks: [{ path: disk, format: 'qcow2' }], nics: [{ type: 'user' }] });
        await rw.start(name);
        await rw.suspend(name);
        names.push(name);
      }
      process.stderr.write(`measuring ${n} of ${max} paused domains...\n`);
      rows.push({ domains: n, ...(await measure(ro, daemonPid, names.map((x) => runtimePid(runtimeDir, x)))) });
    }
  } finally {
    for (const name of names) await rw.destroy(name).catch(() => undefined);
    await ro.close();
    await rw.close();
    try {
      process.kill(daemonPid, 'SIGTERM');
    } catch {
      // gone
    }
    rmSync(base, { recursive: true, force: true });
  }
  const f = (x: number, d = 2): string => x.toFixed(d);
  const lines = [
    `### qemu: bulk read of paused domains (${READS} reads per size, allDomainStats, all groups, read-only socket)`,
    '',
    '| domains | p50 ms | p99 ms | CPU/read exporter ms | CPU/read virt-qemud ms | CPU/read QEMU (all) ms | virt-qemud RSS MiB | QEMU RSS MiB (avg) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.domains} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.exporterMs, 3)} | ${f(r.qemudMs, 3)} | ${f(r.qemuMs, 3)} | ${f(r.qemudRss / MiB, 1)} | ${f(r.qemuRss / MiB, 1)} |`),
    '',
    'Targets (issue 3): 30 domains under 20 ms p99, 60 domains under 35 ms p99. CPU from /proc in clock ticks (10 ms), minus an equally long idle window.',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

// Imported (bench/compare.ts) rather than run: do nothing.
if (import.meta.main) await main();
