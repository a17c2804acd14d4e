// Side by side in one run (issue 17): the same N domains (TCG, 64 MiB, 1 vCPU,
// a 16 MiB qcow2 on virtio, a virtio user-mode NIC, a balloon) under
// virt-qemud and under a private libvirtd (test/drivers/libvirt/daemon.ts:
// QEMU as root, namespaces = [], cgroup_controllers = []), scraped with curl
// in interleaved rounds by three stacks:
//   virt-exporter -> virt-qemud, virt-exporter -> libvirtd (libvirt driver),
//   Debian's prometheus-libvirt-exporter 0.2.0 (kumina) -> libvirtd.
// Modes: paused and running no-OS domains, and "guest": the real-guest
// fixture's kernel (test/fixtures/guest, direct boot, idling with HLT; 256 MiB,
// the least it boots with). Per stack: p50/p90/p99 latency, CPU per scrape of
// exporter, daemon and QEMU (QEMU outside its vCPU threads; each minus its own
// idle rate), idle CPU per second, RSS, samples per scrape and per domain,
// plain and gzip; every configuration repeated, the spread reported. Prints
// markdown and writes an SVG chart (p99 and CPU per scrape against domains).
//
//   node_modules/.bin/node bench/compare.ts [--sizes 10,30,60] [--mode paused,running,guest]
//     [--scrapes 30] [--repeats 3] [--guest-max 10] [--svg docs/benchmarks-compare.svg]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open, type Connection } from '../src/virt/connection.ts';
import { domainXml, PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';
import { buildGuest, guestCmdline, GUEST_MIN_MEMORY_MIB, type GuestImage } from '../test/fixtures/guest/index.ts';
import { ROOT } from '../test/helpers/exporter.ts';
import { chart, type Series } from './compare-svg.ts';
import { curl, libvirtQemuPids, median, pct, qemuTicks, rssMiB, startKumina, startVirtExporter, TICK, ticks, type Target } from './compare-stacks.ts';
import { runtimePid } from './qemu.ts';

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,30,60' },
    mode: { type: 'string', default: 'paused,running,guest' },
    scrapes: { type: 'string', default: '30' },
    repeats: { type: 'string', default: '3' },
    'guest-max': { type: 'string', default: '10' },
    svg: { type: 'string', default: `${ROOT}docs/benchmarks-compare.svg` },
  },
});
const SIZES = (opts.sizes ?? '').split(',').map(Number).sort((a, b) => a - b);
const MODES = (opts.mode ?? '').split(',') as Mode[];
const SCRAPES = Number(opts.scrapes);
const REPEATS = Number(opts.repeats);
const GUEST_MAX = Number(opts['guest-max']);
type Mode = 'paused' | 'running' | 'guest';
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) throw new Error(`--sizes must be integers 1..200, got ${opts.sizes}`);
if (MODES.some((m) => !['paused', 'running', 'guest'].includes(m))) throw new Error(`--mode takes paused, running and/or guest, got ${opts.mode}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 5) throw new Error(`--scrapes must be an integer >= 5, got ${opts.scrapes}`);
if (!Number.isInteger(REPEATS) || REPEATS < 1) throw new Error(`--repeats must be a positive integer, got ${opts.repeats}`);
const log = (s: string): void => void process.stderr.write(`compare: ${s}\n`);
const ms = (t: number): number => (t / TICK) * 1000;

/** One daemon with its domains. */
interface Host {
  daemonPid(): number;
  qemuPids(): number[];
  /** Brings the domains to n of the given kind (no-OS or the guest kernel), in the given state. */
  ensure(n: number, kind: 'noos' | 'guest', state: 'paused' | 'running'): Promise<void>;
  stop(): Promise<void>;
}

const name = (i: number): string => `cmp-${String(i).padStart(3, '0')}`;

async function qemudHost(guest: () => Promise<GuestImage>): Promise<Host & { env: NodeJS.ProcessEnv }> {
  const base = mkdtempSync(join(tmpdir(), 'vx-cmp-'));
  const env = { VIRT_EXPORTER_RUNTIME_DIR: base };
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = base;
  // The disks live in the bench's temp dir, the guest kernels under .cache/guest: allowed explicitly (virt-qemud confines definitions to RUNTIME-DIR/images by default).
  const rw: Connection = await open('qemu:///session', { readOnly: false, settings: { 'qemu.image-dirs': `${base},${join(ROOT, '.cache', 'guest')}` } });
  const runtimeDir = join(base, 'qemu');
  let kind: 'noos' | 'guest' = 'noos';
  let names: string[] = [];
  const daemonPid = (): number => Number(readFileSync(join(runtimeDir, 'virt-qemud.pid'), 'utf8').trim());
  return {
    env,
    daemonPid,
    qemuPids: () => names.map((x) => runtimePid(runtimeDir, x)),
    ensure: async (n, k, state) => {
      if (k !== kind) {
        for (const x of names) {
          await rw.destroy(x).catch(() => undefined);
          await rw.undefine(x).catch(() => undefined);
        }
        names = [];
        kind = k;
      }
      const img = k === 'guest' ? await guest() : undefined;
      while (names.length < n) {
        const x = name(names.length);
        const disk = join(base, `${x}.qcow2`);
        const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`qemu-img failed: ${r.stderr}`);
        await rw.define({
          name: x,
          memoryMiB: img === undefined ? 64 : GUEST_MIN_MEMORY_MIB,
          vcpus: 1,
          accel: 'tcg', // as libvirt's type='qemu' domains
          disks: [{ path: disk, format: 'qcow2' }],
          nics: [{ type: 'user' }],
          ...(img === undefined ? {} : { kernel: { path: img.kernel, initrd: img.initrd, cmdline: guestCmdline() } }),
        });
        await rw.start(x);
        names.push(x);
      }
      for (const x of names) {
        const st = (await rw.domainInfo(x)).state;
        if (state === 'paused' && st === 'running') await rw.suspend(x);
        if (state === 'running' && st === 'paused') await rw.resume(x);
      }
    },
    stop: async () => {
      for (const x of names) await rw.destroy(x).catch(() => undefined);
      await rw.close();
      try {
        process.kill(daemonPid(), 'SIGTERM');
      } catch {
        // gone
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

function libvirtHost(lv: PrivateLibvirtd, guest: () => Promise<GuestImage>): Host {
  let kind: 'noos' | 'guest' = 'noos';
  let count = 0;
  return {
    daemonPid: () => lv.pid,
    qemuPids: () => libvirtQemuPids(lv),
    ensure: async (n, k, state) => {
      if (k !== kind) {
        for (let i = 0; i < count; i++) {
          await lv.virsh(['destroy', name(i)]).catch(() => undefined);
          await lv.virsh(['undefine', name(i)]).catch(() => undefined);
        }
        count = 0;
        kind = k;
      }
      const img = k === 'guest' ? await guest() : undefined;
      for (; count < n; count++) {
        const x = name(count);
        const file = join(lv.dir, `${x}.xml`);
        const kernel = img === undefined ? undefined : { path: img.kernel, initrd: img.initrd, cmdline: guestCmdline() };
        writeFileSync(file, domainXml({ name: x, disk: await lv.qemuImg(`${x}-${k}.qcow2`), userNic: true, memoryMiB: img === undefined ? 64 : GUEST_MIN_MEMORY_MIB, ...(kernel === undefined ? {} : { kernel }) }));
        await lv.virsh(['define', file]);
        await lv.virsh(['start', x]);
      }
      const st = await lv.virsh(['list', '--name', state === 'paused' ? '--state-running' : '--state-paused']);
      for (const x of st.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('cmp-'))) await lv.virsh([state === 'paused' ? 'suspend' : 'resume', x]);
    },
    stop: () => lv.stop(),
  };
}

interface Stack {
  key: string;
  target: Target;
  host: Host;
}

interface Round {
  lat: number[];
  own: number;
  daemon: number;
  qemu: number;
  wall: number;
}

interface Row {
  n: number;
  mode: Mode;
  stack: string;
  plain: Summary;
  gzip: Summary;
  idle: { exporter: number; daemon: number; qemu: number };
  rss: { exporter: number; daemon: number; qemu: number };
  samples: number;
  perDomain: number;
  bytes: number;
  gzBytes: number;
}

interface Summary {
  p50: number[];
  p90: number[];
  p99: number[];
  cpu: number[];
  own: number[];
  daemon: number[];
  qemu: number[];
}

/** Stable idle rates (ticks per ms) of every process, over one window. */
async function idleRates(stacks: Stack[], windowMs: number): Promise<Map<string, { own: number; daemon: number; qemu: number }>> {
  const sample = (s: Stack): [number, number, number] => [ticks(s.target.pid), ticks(s.host.daemonPid()), s.host.qemuPids().reduce((a, p) => a + qemuTicks(p), 0)];
  const before = stacks.map(sample);
  await new Promise((r) => setTimeout(r, windowMs));
  const after = stacks.map(sample);
  return new Map(stacks.map((s, i) => {
    const b = before[i] as [number, number, number];
    const a = after[i] as [number, number, number];
    return [s.key, { own: (a[0] - b[0]) / windowMs, daemon: (a[1] - b[1]) / windowMs, qemu: (a[2] - b[2]) / windowMs }];
  }));
}

async function measure(n: number, mode: Mode, stacks: Stack[]): Promise<Row[]> {
  for (const s of stacks) for (let i = 0; i < 3; i++) curl(s.target.url, true); // warm-up: connections, caches, JIT
  const idle = await idleRates(stacks, 5000);
  const sums = new Map(stacks.map((s) => [s.key, { plain: emptySummary(), gzip: emptySummary() }]));
  for (let rep = 0; rep < REPEATS; rep++) {
    for (const gzip of [false, true]) {
      const rounds = new Map<string, Round>(stacks.map((s) => [s.key, { lat: [], own: 0, daemon: 0, qemu: 0, wall: 0 }]));
      for (let i = 0; i < SCRAPES; i++) {
        for (const s of stacks) {
          const r = rounds.get(s.key) as Round;
          const qemus = s.host.qemuPids();
          const o0 = ticks(s.target.pid);
          const d0 = ticks(s.host.daemonPid());
          const q0 = qemus.reduce((a, p) => a + qemuTicks(p), 0);
          const w0 = performance.now();
          r.lat.push(curl(s.target.url, gzip).ms);
          r.wall += performance.now() - w0;
          r.own += ticks(s.target.pid) - o0;
          r.daemon += ticks(s.host.daemonPid()) - d0;
          r.qemu += qemus.reduce((a, p) => a + qemuTicks(p), 0) - q0;
        }
      }
      for (const s of stacks) {
        const r = rounds.get(s.key) as Round;
        const id = idle.get(s.key) as { own: number; daemon: number; qemu: number };
        const sorted = [...r.lat].sort((a, b) => a - b);
        const sum = (sums.get(s.key) as { plain: Summary; gzip: Summary })[gzip ? 'gzip' : 'plain'];
        const own = ms(Math.max(0, r.own - id.own * r.wall)) / SCRAPES;
        const daemon = ms(Math.max(0, r.daemon - id.daemon * r.wall)) / SCRAPES;
        const qemu = ms(Math.max(0, r.qemu - id.qemu * r.wall)) / SCRAPES;
        sum.p50.push(pct(sorted, 50));
        sum.p90.push(pct(sorted, 90));
        sum.p99.push(pct(sorted, 99));
        sum.own.push(own);
        sum.daemon.push(daemon);
        sum.qemu.push(qemu);
        sum.cpu.push(own + daemon + qemu);
      }
      log(`${n} ${mode}: repeat ${rep + 1}/${REPEATS}${gzip ? ' gzip' : ''} done`);
    }
  }
  return stacks.map((s) => {
    const plain = curl(s.target.url);
    const gz = curl(s.target.url, true);
    const lines = plain.body.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    const qemus = s.host.qemuPids();
    const id = idle.get(s.key) as { own: number; daemon: number; qemu: number };
    const sum = sums.get(s.key) as { plain: Summary; gzip: Summary };
    return {
      n,
      mode,
      stack: s.target.name,
      plain: sum.plain,
      gzip: sum.gzip,
      idle: { exporter: ms(id.own * 1000), daemon: ms(id.daemon * 1000), qemu: ms(id.qemu * 1000) },
      rss: { exporter: rssMiB(s.target.pid), daemon: rssMiB(s.host.daemonPid()), qemu: qemus.reduce((a, p) => a + rssMiB(p), 0) / Math.max(1, qemus.length) },
      samples: lines.length,
      perDomain: lines.filter((l) => /domain="cmp-/.test(l)).length / n,
      bytes: plain.bytes,
      gzBytes: gz.bytes,
    };
  });
}

function emptySummary(): Summary {
  return { p50: [], p90: [], p99: [], cpu: [], own: [], daemon: [], qemu: [] };
}

/** Median of the repeats, with their range when there are several. */
function spread(xs: number[], digits = 1): string {
  const m = median(xs).toFixed(digits);
  if (xs.length < 2) return m;
  return `${m} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

const guestImage = (() => {
  let p: Promise<GuestImage> | undefined;
  return () => (p ??= buildGuest());
})();

const rows: Row[] = [];
const failed: string[] = [];
const lv = await PrivateLibvirtd.start();
const hosts: Host[] = [];
try {
  const qh = await qemudHost(guestImage);
  hosts.push(qh);
  const lh = libvirtHost(lv, guestImage);
  hosts.push(lh);
  // Size by size for the no-OS modes (they share their domains), then the guest kernels.
  const configs: Array<[Mode, number]> = [
    ...SIZES.flatMap((n) => MODES.filter((m) => m !== 'guest').map((m): [Mode, number] => [m, n])),
    ...(MODES.includes('guest') ? SIZES.map((n): [Mode, number] => ['guest', n]) : []),
  ];
  for (const [mode, n] of configs) {
    {
      if (mode === 'guest' && n > GUEST_MAX) {
        log(`guest mode skipped at ${n} domains (--guest-max ${GUEST_MAX}: 256 MiB each, twice)`);
        continue;
      }
      const kind = mode === 'guest' ? 'guest' : 'noos';
      const state = mode === 'paused' ? 'paused' : 'running';
      // One configuration failing (a domain that does not start in time on a loaded machine) costs only itself.
      try {
        log(`${n} domains ${mode}: starting them under virt-qemud and libvirtd`);
        await qh.ensure(n, kind, state);
        await lh.ensure(n, kind, state);
        if (mode === 'guest') await new Promise((r) => setTimeout(r, 20_000 + n * 3000)); // let the kernels boot and settle into idle
        const targets: Stack[] = [
          { key: 'qemud', target: await startVirtExporter('virt-exporter → virt-qemud', 'qemu:///session', qh.env), host: qh },
          { key: 'libvirt', target: await startVirtExporter('virt-exporter → libvirtd', `libvirt+qemu:///system?socket=${lv.rwSocket}`), host: lh },
        ];
        const kumina = await startKumina(lv);
        kumina.name = 'prometheus-libvirt-exporter 0.2.0 → libvirtd';
        targets.push({ key: 'kumina', target: kumina, host: lh });
        try {
          rows.push(...(await measure(n, mode, targets)));
        } finally {
          for (const t of targets) await t.target.stop();
        }
      } catch (err) {
        log(`${n} domains ${mode}: not measured: ${String(err).split('\n')[0] ?? ''}`);
        failed.push(`${n} domains ${mode} (${String(err).split('\n')[0]?.slice(0, 160) ?? ''})`);
      }
    }
  }
} finally {
  // The libvirt host stops the private libvirtd; until it exists, stop that directly.
  if (hosts.length < 2) await lv.stop().catch((e: unknown) => log(`cleanup: ${String(e)}`));
  for (const h of hosts.reverse()) await h.stop().catch((e: unknown) => log(`cleanup: ${String(e)}`));
}

// --- output ----------------------------------------------------------------
const f1 = (x: number): string => x.toFixed(1);
const out: string[] = [];
out.push('| domains | mode | stack | p50 ms | p90 ms | p99 ms | CPU ms/scrape, all | exporter | daemon | QEMU | gzip p99 ms | gzip CPU ms/scrape |');
out.push('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  out.push(`| ${r.n} | ${r.mode} | ${r.stack} | ${spread(r.plain.p50)} | ${spread(r.plain.p90)} | ${spread(r.plain.p99)} | ${spread(r.plain.cpu)} | ${f1(median(r.plain.own))} | ${f1(median(r.plain.daemon))} | ${f1(median(r.plain.qemu))} | ${spread(r.gzip.p99)} | ${spread(r.gzip.cpu)} |`);
}
out.push('');
out.push('| domains | mode | stack | idle CPU ms/s exporter / daemon / QEMUs | RSS MiB exporter / daemon / QEMU (avg) | samples/scrape | samples/domain | body KiB (gzip) |');
out.push('|---:|---|---|---|---|---:|---:|---:|');
for (const r of rows) {
  out.push(`| ${r.n} | ${r.mode} | ${r.stack} | ${f1(r.idle.exporter)} / ${f1(r.idle.daemon)} / ${f1(r.idle.qemu)} | ${r.rss.exporter.toFixed(0)} / ${r.rss.daemon.toFixed(0)} / ${f1(r.rss.qemu)} | ${r.samples} | ${f1(r.perDomain)} | ${(r.bytes / 1024).toFixed(0)} (${(r.gzBytes / 1024).toFixed(0)}) |`);
}
out.push('');
if (failed.length > 0) out.push(`Not measured in this run: ${failed.join('; ')}.`, '');
out.push(`${SCRAPES} scrapes per stack, configuration and repeat, ${REPEATS} repeats (median, with the range over the repeats in brackets), the stacks interleaved scrape by scrape. CPU from /proc in clock ticks (${1000 / TICK} ms) around each scrape, each process's own idle rate (measured over 5 s without scrapes) subtracted; QEMU counts its threads outside the vCPUs.`);

// The chart: p99 and CPU per scrape against domains, one line per stack, one row of panels per mode.
const series: Series[] = [];
for (const mode of MODES) {
  for (const stack of [...new Set(rows.map((r) => r.stack))]) {
    const pts = rows.filter((r) => r.mode === mode && r.stack === stack);
    if (pts.length === 0) continue;
    series.push({ mode, stack, points: pts.map((r) => ({ n: r.n, p99: median(r.plain.p99), cpu: median(r.plain.cpu) })) });
  }
}
if (opts.svg !== undefined && opts.svg !== '') {
  writeFileSync(opts.svg, chart(series, `Measured ${new Date().toISOString().slice(0, 10)} on a shared 2-core machine (bench/compare.ts)`));
  log(`wrote ${opts.svg}`);
}
process.stdout.write(`${out.join('\n')}\n`);
