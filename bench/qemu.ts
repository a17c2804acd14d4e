// Real-QEMU benchmark of virt-exporter over virt-qemud: N identical domains
// (64 MiB, 1 vCPU, a 16 MiB qcow2 on virtio-blk, a virtio NIC on user
// networking, a balloon), TCG (KVM when usable), two kinds:
//   nos   - no OS: the firmware finds nothing to boot and idles;
//   guest - the real-guest fixture's kernel (test/fixtures/guest), direct
//           boot, idling in HLT with its virtio and balloon drivers loaded
//           (it needs 256 MiB: the fixture's minimum).
// For each kind and size the domains are measured paused and running, in
// interleaved rounds (the machine is shared and noisy: the spread across
// rounds is reported). Each measurement: a window with nothing asked (idle
// CPU per second of the exporter, virt-qemud and the QEMUs), bulk reads
// through the qemu driver in this process (allDomainStats, all groups, the
// read-only socket: the collectors' own call), and scrapes of a real
// exporter process with curl (gzip asked for, as Prometheus does). CPU comes
// from /proc: the Node processes' threads' schedstat (nanoseconds), the
// QEMUs' utime+stime (clock ticks, exited threads included), with the idle
// rate subtracted.
//
//   node_modules/.bin/node bench/qemu.ts [--kinds nos,guest] [--sizes 1,10,30,60]
//     [--modes paused,running] [--rounds 3] [--reads 200] [--scrapes 200] [--profile DIR]
//
// --profile DIR: virt-qemud runs under node --cpu-prof and writes its profile there on exit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { STATS_GROUPS } from '../src/drivers/types.ts';
import { CLOCK_TICKS, PAGE_SIZE, readProcStat } from '../src/qemud/proc.ts';
import { open, type Connection } from '../src/virt/connection.ts';
import { buildGuest, GUEST_MIN_MEMORY_MIB, guestCmdline } from '../test/fixtures/guest/index.ts';
import { startExporter, type StartedExporter } from '../test/helpers/exporter.ts';

const { values: opts } = parseArgs({
  // Imported by bench/compare.ts, whose own options are on the command line: none of them is ours.
  args: import.meta.main ? process.argv.slice(2) : [],
  options: {
    kinds: { type: 'string', default: 'nos,guest' },
    sizes: { type: 'string', default: '1,10,30,60' },
    modes: { type: 'string', default: 'paused,running' },
    rounds: { type: 'string', default: '3' },
    reads: { type: 'string', default: '200' },
    scrapes: { type: 'string', default: '200' },
    idle: { type: 'string', default: '3' },
    profile: { type: 'string' },
  },
});
const list = (s: string | undefined): string[] => (s ?? '').split(',').filter((x) => x !== '');
const KINDS = list(opts.kinds);
const SIZES = list(opts.sizes).map(Number).sort((a, b) => a - b);
const MODES = list(opts.modes);
const ROUNDS = Number(opts.rounds);
const READS = Number(opts.reads);
const SCRAPES = Number(opts.scrapes);
const IDLE_S = Number(opts.idle);
if (KINDS.some((k) => k !== 'nos' && k !== 'guest')) throw new Error(`--kinds takes nos and guest, got ${opts.kinds}`);
if (MODES.some((m) => m !== 'paused' && m !== 'running')) throw new Error(`--modes takes paused and running, got ${opts.modes}`);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) throw new Error(`--sizes must be integers 1..200, got ${opts.sizes}`);
for (const [k, v, min] of [['rounds', ROUNDS, 1], ['reads', READS, 10], ['scrapes', SCRAPES, 10], ['idle', IDLE_S, 1]] as const) {
  if (!Number.isInteger(v) || v < min) throw new Error(`--${k} must be an integer >= ${min}`);
}

const MiB = 1024 * 1024;

/** CPU milliseconds of a Node process: its threads' schedstat run time (ns precision). */
function nodeCpuMs(pid: number): number {
  let ns = 0;
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const t of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // thread gone
    }
  }
  return ns / 1e6;
}

/** CPU milliseconds of processes from utime+stime (exited threads included; clock-tick resolution). */
function ticksMs(pids: number[]): number {
  let t = 0;
  for (const p of pids) {
    const s = readProcStat(p);
    if (s !== null) t += s.utimeTicks + s.stimeTicks;
  }
  return (t / CLOCK_TICKS) * 1000;
}

function rssMiB(pid: number): number {
  return ((readProcStat(pid)?.rssPages ?? 0) * PAGE_SIZE) / MiB;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** PID of a domain's QEMU under virt-qemud, from its runtime state file (bench/compare.ts uses it too). */
export function runtimePid(runtimeDir: string, name: string): number {
  return (JSON.parse(readFileSync(join(runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

interface Procs {
  exporter: number;
  qemud: number;
  qemus: number[];
}

interface Cpu {
  exporter: number;
  qemud: number;
  qemu: number;
}

function cpu(p: Procs): Cpu {
  return { exporter: nodeCpuMs(p.exporter), qemud: nodeCpuMs(p.qemud), qemu: ticksMs(p.qemus) };
}

/** CPU used per operation between a and b, minus the idle rate (per second) over the same wall time. */
function perOp(a: Cpu, b: Cpu, idle: Cpu, seconds: number, ops: number): Cpu {
  const f = (k: keyof Cpu): number => Math.max(0, b[k] - a[k] - idle[k] * seconds) / ops;
  return { exporter: f('exporter'), qemud: f('qemud'), qemu: f('qemu') };
}

interface Measure {
  kind: string;
  mode: string;
  domains: number;
  round: number;
  idle: Cpu;
  readP50: number;
  readP99: number;
  read: Cpu;
  scrapeP50: number;
  scrapeP90: number;
  scrapeP99: number;
  scrape: Cpu;
  samples: number;
  qemudRss: number;
  exporterRss: number;
  qemuRss: number;
}

function curl(url: string, gzip: boolean): { ms: number; body: string } {
  const args = ['-s', '-w', '\n%{time_total}', ...(gzip ? ['-H', 'Accept-Encoding: gzip', '-o', '/dev/null'] : []), url];
  const r = spawnSync('curl', args, { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`curl ${url} failed: ${r.stderr}`);
  const nl = r.stdout.lastIndexOf('\n');
  return { ms: Number(r.stdout.slice(nl + 1)) * 1000, body: r.stdout.slice(0, nl) };
}

async function measure(kind: string, mode: string, round: number, n: number, ro: Connection, exporter: StartedExporter, p: Procs): Promise<Measure> {
  // Warm up (re-attach, JIT, caches of both processes).
  for (let i = 0; i < 5; i++) await ro.allDomainStats({ groups: STATS_GROUPS });
  for (let i = 0; i < 3; i++) curl(`${exporter.url}/metrics`, true);
  // Idle window: what every process burns with nobody asking.
  const i0 = cpu(p);
  const w0 = performance.now();
  await sleep(IDLE_S * 1000);
  const idleSeconds = (performance.now() - w0) / 1000;
  const i1 = cpu(p);
  const idle: Cpu = { exporter: (i1.exporter - i0.exporter) / idleSeconds, qemud: (i1.qemud - i0.qemud) / idleSeconds, qemu: (i1.qemu - i0.qemu) / idleSeconds };

  const reads: number[] = [];
  const r0 = cpu(p);
  const t0 = performance.now();
  for (let i = 0; i < READS; i++) {
    const a = performance.now();
    const r = await ro.allDomainStats({ groups: STATS_GROUPS });
    reads.push(performance.now() - a);
    if (r.errors.length > 0) throw new Error(`read errors: ${JSON.stringify(r.errors)}`);
    if (r.domains.length !== n) throw new Error(`expected ${n} domains, got ${r.domains.length}`);
  }
  const read = perOp(r0, cpu(p), idle, (performance.now() - t0) / 1000, READS);
  // This process stands in for the exporter in the bulk reads.
  const scrapes: number[] = [];
  const s0 = cpu(p);
  const t1 = performance.now();
  for (let i = 0; i < SCRAPES; i++) scrapes.push(curl(`${exporter.url}/metrics`, true).ms);
  const scrape = perOp(s0, cpu(p), idle, (performance.now() - t1) / 1000, SCRAPES);
  const body = curl(`${exporter.url}/metrics`, false).body;
  const samples = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  if (!body.includes('virt_domain_block_read_bytes_total{')) throw new Error(`the scrape has no block series: ${body.split('\n').filter((l) => /success|error|timeout/.test(l)).slice(0, 30).join('\n')}`);
  reads.sort((a, b) => a - b);
  scrapes.sort((a, b) => a - b);
  return {
    kind,
    mode,
    domains: n,
    round,
    idle,
    readP50: pct(reads, 50),
    readP99: pct(reads, 99),
    read,
    scrapeP50: pct(scrapes, 50),
    scrapeP90: pct(scrapes, 90),
    scrapeP99: pct(scrapes, 99),
    scrape,
    samples,
    qemudRss: rssMiB(p.qemud),
    exporterRss: rssMiB(p.exporter),
    qemuRss: p.qemus.reduce((a, q) => a + rssMiB(q), 0) / Math.max(1, p.qemus.length),
  };
}

async function runKind(kind: string, out: Measure[]): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'vq-bench-'));
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = base;
  // virt-qemud (auto-started by the first open) writes a CPU profile there when it exits.
  if (opts.profile !== undefined) process.env['NODE_OPTIONS'] = `--cpu-prof --cpu-prof-dir=${opts.profile}`;
  const runtimeDir = join(base, 'qemu');
  const image = kind === 'guest' ? await buildGuest() : undefined;
  // The disks live in the bench's temp dir, the guest kernel in the fixture's cache: allowed explicitly
  // (virt-qemud confines definitions to RUNTIME-DIR/images by default).
  const rw = await open('qemu:///session', { readOnly: false, settings: { 'qemu.image-dirs': image === undefined ? base : `${base},${image.cacheDir}` } });
  const ro = await open('qemu:///session', { readOnly: true });
  delete process.env['NODE_OPTIONS'];
  const qemud = Number(readFileSync(join(runtimeDir, 'virt-qemud.pid'), 'utf8').trim());
  const names: string[] = [];
  let exporter: StartedExporter | undefined;
  try {
    exporter = await startExporter(['--connect', 'qemu:///session'], { VIRT_EXPORTER_RUNTIME_DIR: base });
    for (const n of SIZES) {
      while (names.length < n) {
        const name = `bench-${String(names.length).padStart(3, '0')}`;
        const disk = join(base, `${name}.qcow2`);
        const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`qemu-img failed: ${r.stderr}`);
        await rw.define({
          name,
          vcpus: 1,
          memoryMiB: image === undefined ? 64 : GUEST_MIN_MEMORY_MIB,
          disks: [{ path: disk, format: 'qcow2' }],
          nics: [{ type: 'user' }],
          // Debian's kernel hangs under nested KVM on these machines (as in the real-guest tests): TCG.
          ...(image === undefined ? {} : { accel: 'tcg', kernel: { path: image.kernel, initrd: image.initrd, cmdline: guestCmdline({}) } }),
        });
        await rw.start(name);
        names.push(name);
      }
      if (image !== undefined) await waitBooted(rw, ro, names, runtimeDir);
      const qemus = names.map((x) => runtimePid(runtimeDir, x));
      const procs: Procs = { exporter: exporter.child.pid ?? 0, qemud, qemus };
      for (let round = 1; round <= ROUNDS; round++) {
        for (const mode of round % 2 === 1 ? MODES : [...MODES].reverse()) {
          for (const name of names) {
            const state = (await ro.domainInfo(name)).state;
            if (mode === 'paused' && state === 'running') await rw.suspend(name);
            if (mode === 'running' && state === 'paused') await rw.resume(name);
          }
          process.stderr.write(`${kind} ${mode} ${n} domains, round ${round}/${ROUNDS}...\n`);
          out.push(await measure(kind, mode, round, n, ro, exporter, procs));
        }
      }
    }
  } finally {
    await exporter?.stop().catch(() => undefined);
    for (const name of names) await rw.destroy(name).catch(() => undefined);
    await ro.close();
    await rw.close();
    try {
      process.kill(qemud, 'SIGTERM');
    } catch {
      // gone
    }
    for (let i = 0; i < 100 && readProcStat(qemud) !== null; i++) await sleep(100);
    rmSync(base, { recursive: true, force: true });
  }
}

/**
 * The guests' balloon drivers report once they are up: the kernel booted and
 * loaded its modules. A kernel starved of CPU on a loaded machine may panic
 * early ("IO-APIC + timer doesn't work"): such a guest is started again.
 */
async function waitBooted(rw: Connection, ro: Connection, names: string[], runtimeDir: string): Promise<void> {
  const until = Date.now() + 15 * 60_000;
  for (;;) {
    const r = await ro.allDomainStats({ groups: ['memory'] });
    const pending = r.domains.filter((d) => d.memory?.guest === undefined);
    const waiting = pending.length;
    if (waiting === 0) return;
    for (const d of pending) {
      let log = '';
      try {
        log = readFileSync(join(runtimeDir, 'log', `${d.info.name}.console.log`), 'latin1');
      } catch {
        continue; // no console output yet
      }
      // The console log is appended to across starts: only a panic of the latest boot counts
      // (and a log with no panic at all, or none yet, is a boot still going).
      const panic = log.lastIndexOf('Kernel panic');
      if (panic < 0 || panic < log.lastIndexOf('Linux version')) continue;
      process.stderr.write(`${d.info.name} panicked while booting; starting it again\n`);
      await rw.destroy(d.info.name);
      await rw.start(d.info.name);
    }
    process.stderr.write(`${names.length - waiting} of ${names.length} guests booted\n`);
    if (Date.now() > until) throw new Error(`${waiting} of ${names.length} guests did not boot within 15 minutes`);
    await sleep(2000);
  }
}

function spread(xs: number[], d = 1): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor((s.length - 1) / 2)] ?? NaN;
  return s.length === 1 ? med.toFixed(d) : `${med.toFixed(d)} (${(s[0] ?? NaN).toFixed(d)}–${(s.at(-1) ?? NaN).toFixed(d)})`;
}

function table(rows: Measure[]): string {
  const groups = new Map<string, Measure[]>();
  for (const r of rows) {
    const k = `${r.kind}|${r.mode}|${r.domains}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const lines = [
    `Rounds: ${ROUNDS} per configuration (median, and min–max across rounds in parentheses); ${READS} bulk reads and ${SCRAPES} curl scrapes each.`,
    '',
    '| kind | state | domains | scrape p50 ms | scrape p90 ms | scrape p99 ms | CPU/scrape all ms | exporter | virt-qemud | QEMU (all) | read p99 ms | CPU/read virt-qemud ms | CPU/read QEMU ms | idle CPU ms/s exporter | idle virt-qemud | idle QEMU (all) | samples/domain | virt-qemud RSS MiB | QEMU RSS MiB |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const g of groups.values()) {
    const f = g[0];
    if (f === undefined) continue;
    const m = (sel: (x: Measure) => number, d = 1): string => spread(g.map(sel), d);
    lines.push(
      `| ${f.kind} | ${f.mode} | ${f.domains} | ${m((x) => x.scrapeP50)} | ${m((x) => x.scrapeP90)} | ${m((x) => x.scrapeP99)} | ${m((x) => x.scrape.exporter + x.scrape.qemud + x.scrape.qemu)} | ${m((x) => x.scrape.exporter)} | ${m((x) => x.scrape.qemud)} | ${m((x) => x.scrape.qemu)} | ${m((x) => x.readP99)} | ${m((x) => x.read.qemud, 2)} | ${m((x) => x.read.qemu, 2)} | ${m((x) => x.idle.exporter, 2)} | ${m((x) => x.idle.qemud, 2)} | ${m((x) => x.idle.qemu)} | ${m((x) => x.samples / x.domains, 0)} | ${m((x) => x.qemudRss, 0)} | ${m((x) => x.qemuRss, 0)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const rows: Measure[] = [];
  for (const kind of KINDS) await runKind(kind, rows);
  process.stdout.write(table(rows) + '\n');
  process.stdout.write('\n<!-- raw: ' + JSON.stringify(rows.map((r) => ({ ...r, idle: undefined }))) + ' -->\n');
}

// Imported (bench/compare.ts) rather than run: do nothing.
if (import.meta.main) await main();
