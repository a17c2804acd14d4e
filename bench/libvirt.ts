// libvirt benchmark: N real QEMU domains (TCG, no OS, 64 MiB, 1 vCPU, 16 MiB
// qcow2 on virtio, a virtio user NIC, a balloon) under a private libvirtd
// (test/drivers/libvirt/daemon.ts), paused and then running. For each state
// it scrapes, alternating in one run, virt-exporter's libvirt driver and
// Debian's prometheus-libvirt-exporter (kumina 0.2.0) when installed, and
// prints per exporter: curl latency p50/p99, CPU per scrape of exporter +
// libvirtd + QEMU (from /proc, minus the same daemon's and QEMUs' CPU over an
// equally long idle window), exporter RSS and samples per domain.
//
//   node_modules/.bin/node bench/libvirt.ts [--sizes 10,30,60] [--scrapes 40] [--states paused,running]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startExporter, type StartedExporter } from '../test/helpers/exporter.ts';
import { domainXml, PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,30,60' },
    scrapes: { type: 'string', default: '40' },
    states: { type: 'string', default: 'paused,running' },
  },
});
const SIZES = (opts.sizes ?? '').split(',').map(Number);
const SCRAPES = Number(opts.scrapes);
const STATES = (opts.states ?? '').split(',');
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) throw new Error(`--sizes must be integers 1..200, got ${opts.sizes}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 10) throw new Error(`--scrapes must be an integer >= 10, got ${opts.scrapes}`);
if (STATES.some((s) => s !== 'paused' && s !== 'running')) throw new Error(`--states takes paused and/or running, got ${opts.states}`);

const KUMINA = '/usr/bin/prometheus-libvirt-exporter';
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function curl(url: string): { ms: number; body: string } {
  const r = spawnSync('curl', ['-s', '-w', '\n%{time_total}', url], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const i = r.stdout.lastIndexOf('\n');
  return { ms: Number(r.stdout.slice(i + 1)) * 1000, body: r.stdout.slice(0, i) };
}

interface Target {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startKumina(lv: PrivateLibvirtd): Promise<Target | undefined> {
  if (!existsSync(KUMINA)) return undefined;
  const port = await freePort();
  const child: ChildProcess = spawn(KUMINA, [`--web.listen-address=127.0.0.1:${port}`, `--libvirt.uri=qemu+unix:///system?socket=${lv.rwSocket}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/metrics`;
  for (let i = 0; i < 200; i++) {
    if (spawnSync('curl', ['-sf', '-o', '/dev/null', url]).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'prometheus-libvirt-exporter 0.2.0 (kumina, Debian)',
    url,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function startOurs(lv: PrivateLibvirtd): Promise<Target> {
  const exp: StartedExporter = await startExporter([`--connect=libvirt+qemu:///system?socket=${lv.rwSocket}`, '--collect.timeout=30s'], {}, 60_000);
  return { name: 'virt-exporter, libvirt driver', url: `${exp.url}/metrics`, pid: exp.child.pid ?? 0, stop: async () => void (await exp.stop()) };
}

function qemuPids(lv: PrivateLibvirtd): number[] {
  const dir = join(lv.dir, 'run', 'qemu');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(dir, f), 'utf8').trim())).filter((p) => p > 1);
}

const lv = await PrivateLibvirtd.start();
const rows: string[] = [
  '| domains | state | exporter | p50 ms | p99 ms | CPU ms/scrape (exporter + libvirtd + QEMU) | of which exporter | RSS MiB | samples/domain |',
  '|---:|---|---|---:|---:|---:|---:|---:|---:|',
];
try {
  let defined = 0;
  for (const n of SIZES) {
    for (; defined < n; defined++) {
      const name = `bench-${defined}`;
      const file = join(lv.dir, `${name}.xml`);
      writeFileSync(file, domainXml({ name, disk: await lv.qemuImg(`${name}.qcow2`), userNic: true }));
      await lv.virsh(['define', file]);
      await lv.virsh(['start', '--paused', name]);
    }
    for (const state of STATES) {
      for (let i = 0; i < n; i++) await lv.virsh([state === 'running' ? 'resume' : 'suspend', `bench-${i}`]).catch(() => undefined);
      const targets = [await startOurs(lv), await startKumina(lv)].filter((t): t is Target => t !== undefined);
      const qemus = qemuPids(lv);
      const sideTicks = (): number => ticks(lv.pid) + qemus.reduce((a, p) => a + ticks(p), 0);
      for (const t of targets) for (let i = 0; i < 3; i++) curl(t.url); // warm-up (caches, connections)
      const stats = targets.map(() => ({ ms: [] as number[], own: 0, side: 0, wall: 0, samples: 0 }));
      for (let i = 0; i < SCRAPES; i++) {
        targets.forEach((t, k) => {
          const s = stats[k] as (typeof stats)[number];
          const o0 = ticks(t.pid);
          const s0 = sideTicks();
          const w0 = performance.now();
          const r = curl(t.url);
          s.wall += performance.now() - w0;
          s.own += ticks(t.pid) - o0;
          s.side += sideTicks() - s0;
          s.ms.push(r.ms);
          if (i === 0) s.samples = r.body.split('\n').filter((l) => !l.startsWith('#') && /domain="bench-/.test(l)).length / n;
        });
      }
      // Idle window as long as all the scrapes: what libvirtd and the QEMUs burn anyway.
      const idleMs = stats.reduce((a, s) => a + s.wall, 0);
      const i0 = sideTicks();
      await new Promise((r) => setTimeout(r, idleMs));
      const idlePerMs = (sideTicks() - i0) / idleMs;
      targets.forEach((t, k) => {
        const s = stats[k] as (typeof stats)[number];
        const sorted = [...s.ms].sort((a, b) => a - b);
        const side = Math.max(0, s.side - idlePerMs * s.wall);
        const cpu = ((s.own + side) / TICK / SCRAPES) * 1000;
        rows.push(`| ${n} | ${state} | ${t.name} | ${pct(sorted, 50).toFixed(1)} | ${pct(sorted, 99).toFixed(1)} | ${cpu.toFixed(1)} | ${((s.own / TICK / SCRAPES) * 1000).toFixed(1)} | ${rssMiB(t.pid).toFixed(0)} | ${s.samples.toFixed(1)} |`);
      });
      for (const t of targets) await t.stop();
      process.stderr.write(`libvirt bench: ${n} domains ${state} done\n`);
    }
  }
} finally {
  await lv.stop();
}
process.stdout.write(`${rows.join('\n')}\n\n${SCRAPES} scrapes per exporter and state, alternating between the exporters in one run; CPU from /proc in clock ticks (${1000 / TICK} ms), libvirtd's and the QEMUs' share minus an equally long idle window.\n`);
