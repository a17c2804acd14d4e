// Idle cost (issue 17's target: exporter plus virt-qemud under 0.5 ms of CPU
// per second when nobody scrapes). The exporter runs as its own process
// (bin/virt-exporter), is scraped a few times (so everything lazy has been
// set up, as after a Prometheus scrape), then left alone; over each window
// the CPU time of all its threads (schedstat, ns resolution; /proc/PID/stat
// ticks as a cross-check) and its wake-ups (context switches) are read.
// Cases: test:///default, and qemu:///session with a few real, paused QEMU
// domains (virt-qemud measured alongside; the exporter holds only its
// read-only connection during the window).
//
//   node bench/idle.ts [--only test|qemu] [--window 30] [--rounds 3] [--domains 3]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from '../src/virt/connection.ts';
import { startExporter, type StartedExporter } from '../test/helpers/exporter.ts';
import { sample, sleep, spread, type ProcSample } from './measure.ts';

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    window: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '3' },
    domains: { type: 'string', default: '3' },
  },
});
const WINDOW_S = Number(opts.window);
const ROUNDS = Number(opts.rounds);
const DOMAINS = Number(opts.domains);
if (!(WINDOW_S >= 5 && WINDOW_S <= 600)) throw new Error(`--window must be 5..600 seconds, got ${opts.window}`);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got ${opts.rounds}`);
if (!Number.isInteger(DOMAINS) || DOMAINS < 1 || DOMAINS > 20) throw new Error(`--domains must be 1..20, got ${opts.domains}`);
if (opts.only !== undefined && opts.only !== 'test' && opts.only !== 'qemu') throw new Error(`--only takes test or qemu, got ${opts.only}`);

interface Idle {
  /** CPU ms per second (schedstat). */
  cpu: number;
  /** CPU ms per second (ticks). */
  ticks: number;
  /** Wake-ups per second. */
  wakeups: number;
}

function rate(a: ProcSample, b: ProcSample, seconds: number): Idle {
  return {
    cpu: ((b.cpuSeconds - a.cpuSeconds) * 1000) / seconds,
    ticks: ((b.tickSeconds - a.tickSeconds) * 1000) / seconds,
    wakeups: (b.switches - a.switches) / seconds,
  };
}

async function warm(exp: StartedExporter): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${exp.url}/metrics`, { headers: { 'accept-encoding': 'gzip' } });
    if (res.status !== 200) throw new Error(`scrape answered ${res.status}`);
    await res.arrayBuffer();
  }
  // Let what a scrape leaves behind (sockets closing, a late GC) settle before measuring.
  await sleep(3000);
}

/** ROUNDS windows of WINDOW_S seconds over the given processes, measured together. */
async function windows(pids: readonly number[]): Promise<Idle[][]> {
  const out: Idle[][] = pids.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    const a = pids.map(sample);
    const t0 = performance.now();
    await sleep(WINDOW_S * 1000);
    const s = (performance.now() - t0) / 1000;
    const b = pids.map(sample);
    pids.forEach((_, i) => out[i]?.push(rate(a[i] as ProcSample, b[i] as ProcSample, s)));
    process.stderr.write(`  round ${r + 1}/${ROUNDS}: ${out.map((x) => x.at(-1)?.cpu.toFixed(3)).join(', ')} ms/s\n`);
  }
  return out;
}

function row(what: string, m: readonly Idle[]): string {
  return `| ${what} | ${spread(m.map((x) => x.cpu), 3)} | ${spread(m.map((x) => x.ticks), 2)} | ${spread(m.map((x) => x.wakeups), 2)} |`;
}

async function testCase(): Promise<string[]> {
  process.stderr.write('idle: exporter on test:///default\n');
  const exp = await startExporter(['--connect=test:///default']);
  try {
    await warm(exp);
    const [m = []] = await windows([exp.child.pid as number]);
    return [row('exporter, test:///default', m)];
  } finally {
    await exp.stop();
  }
}

async function qemuCase(): Promise<string[]> {
  const base = mkdtempSync(join(tmpdir(), 'virt-idle-'));
  const env = { VIRT_EXPORTER_RUNTIME_DIR: base };
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = base;
  const names: string[] = [];
  let daemonPid = 0;
  let exp: StartedExporter | undefined;
  try {
    process.stderr.write(`idle: exporter on qemu:///session with ${DOMAINS} paused domains\n`);
    // The disks live in the bench's temp dir: allowed explicitly (virt-qemud confines definitions to RUNTIME-DIR/images).
    const rw = await open('qemu:///session', { readOnly: false, settings: { 'qemu.image-dirs': base } });
    daemonPid = Number(readFileSync(join(base, 'qemu', 'virt-qemud.pid'), 'utf8').trim());
    try {
      for (let i = 0; i < DOMAINS; i++) {
        const name = `idle-${i}`;
        const disk = join(base, `${name}.qcow2`);
        const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`qemu-img failed: ${r.stderr}`);
        await rw.define({ name, memoryMiB: 48, vcpus: 1, disks: [{ path: disk, format: 'qcow2' }], nics: [{ type: 'user' }] });
        await rw.start(name);
        await rw.suspend(name);
        names.push(name);
      }
    } finally {
      // Only the exporter's read-only connection stays open while measuring, as in production.
      await rw.close();
    }
    exp = await startExporter(['--connect=qemu:///session'], env);
    await warm(exp);
    const [e = [], d = []] = await windows([exp.child.pid as number, daemonPid]);
    const both = e.map((x, i) => ({ cpu: x.cpu + (d[i]?.cpu ?? 0), ticks: x.ticks + (d[i]?.ticks ?? 0), wakeups: x.wakeups + (d[i]?.wakeups ?? 0) }));
    return [row(`exporter, qemu:///session, ${DOMAINS} paused`, e), row(`virt-qemud, ${DOMAINS} paused`, d), row('exporter + virt-qemud', both)];
  } finally {
    await exp?.stop();
    if (names.length > 0) {
      const rw = await open('qemu:///session', { readOnly: false }).catch(() => undefined);
      for (const name of names) await rw?.destroy(name).catch(() => undefined);
      await rw?.close();
    }
    if (daemonPid > 0) {
      try {
        process.kill(daemonPid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    rmSync(base, { recursive: true, force: true });
  }
}

const rows: string[] = [];
if (opts.only !== 'qemu') rows.push(...(await testCase()));
if (opts.only !== 'test') rows.push(...(await qemuCase()));
process.stdout.write(
  [
    `${ROUNDS} windows of ${WINDOW_S} s without scrapes, after 3 scrapes and 3 s to settle; median (min–max) over the windows.`,
    '',
    '| process | CPU ms/s (schedstat) | CPU ms/s (ticks) | wake-ups/s |',
    '|---|---:|---:|---:|',
    ...rows,
  ].join('\n') + '\n',
);
