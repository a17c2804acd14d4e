// libvirt benchmark: N real QEMU domains (TCG, no OS, 64 MiB, 1 vCPU, 16 MiB
// qcow2 on virtio, a virtio user NIC, a balloon) under a private libvirtd
// (test/drivers/libvirt/daemon.ts), paused and then running. For each state
// it scrapes, alternating in one run, virt-exporter's libvirt driver and
// Debian's prometheus-libvirt-exporter (kumina 0.2.0; required), and
// prints per exporter: curl latency p50/p99, CPU per scrape of exporter +
// libvirtd + QEMU (from /proc, minus the same daemon's and QEMUs' CPU over an
// equally long idle window), exporter RSS and samples per domain.
//
//   node_modules/.bin/node bench/libvirt.ts [--sizes 10,30,60] [--scrapes 40] [--states paused,running]
import { parseArgs } from 'node:util';
import { PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';
import { curl, libvirtQemuPids, pct, rssMiB, startKumina, startNoOsDomain, startOurs, ticks, TICK, type Target } from './compare-stacks.ts';

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

const lv = await PrivateLibvirtd.start();
const rows: string[] = [
  '| domains | state | exporter | p50 ms | p99 ms | CPU ms/scrape (exporter + libvirtd + QEMU) | of which exporter | RSS MiB | samples/domain |',
  '|---:|---|---|---:|---:|---:|---:|---:|---:|',
];
try {
  let defined = 0;
  for (const n of SIZES) {
    for (; defined < n; defined++) {
      await startNoOsDomain(lv, `bench-${defined}`, true);
    }
    for (const state of STATES) {
      for (let i = 0; i < n; i++) await lv.virsh([state === 'running' ? 'resume' : 'suspend', `bench-${i}`]).catch(() => undefined);
      const targets: Target[] = [await startOurs(lv), await startKumina(lv)];
      const qemus = libvirtQemuPids(lv);
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
