// Scrape cost of the exporter over the Xend stand-in (the Xen <= 4.4 path:
// non-root, no virt-proxy, names and state from Xend, devices from XenStore)
// with N domains: latency p50/p99 (fetch), exporter CPU per scrape, peak RSS.
// Prints one markdown table row per size.
//   node bench/xen.ts [--sizes 500] [--scrapes 40] [--cpu-prof DIR]
// --cpu-prof DIR writes the exporter's V8 CPU profile there (node --cpu-prof).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startFakeXen } from '../test/fake-xen/index.ts';
import { startExporter } from '../test/helpers/exporter.ts';

const { values: opts } = parseArgs({ options: { sizes: { type: 'string', default: '500' }, scrapes: { type: 'string', default: '40' }, 'cpu-prof': { type: 'string' } } });
const profEnv: NodeJS.ProcessEnv = opts['cpu-prof'] !== undefined ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${opts['cpu-prof']}` } : {};
const SIZES = (opts.sizes ?? '500').split(',').map(Number);
const SCRAPES = Number(opts.scrapes);
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(x[11]) + Number(x[12])) / TICK;
};
const peakRss = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const pct = (s: number[], p: number): number => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;

console.log('| domains (Xend stand-in) | p50 ms | p99 ms | max ms | exporter CPU ms/scrape | peak RSS MiB |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const n of SIZES) {
  const dir = mkdtempSync(join(tmpdir(), 'virt-bench-xen-'));
  const fx = await startFakeXen({ dir });
  try {
    for (let i = fx.host.domains.length; i < n; i++) {
      const d = fx.host.create({ name: `vm${i}`, memoryMiB: 256, vcpus: 2, disks: [{ dev: 'xvda', uname: `file:/srv/vm${i}.img` }], nics: [{}] });
      if (i % 10 === 0) fx.host.pause(d.name);
    }
    for (let i = 0; i < 20; i++) fx.host.define({ name: `off${i}`, memoryMiB: 128, vcpus: 1 });
    fx.host.changed();
    await fx.host.flushed();
    const flags = ['--connect=xen:///', '--collect.timeout=10s', `--xen.privileged=user`, `--xen.proxy-socket=${join(dir, 'none.sock')}`, `--xen.xend-address=${fx.paths.xendSocket}`, `--xen.xenstore-socket=${fx.paths.xenstoreSocket}`, '--xen.xl-binary=/nonexistent/xl'];
    const exp = await startExporter(flags, profEnv, 120_000);
    try {
      const pid = exp.child.pid as number;
      for (let i = 0; i < 3; i++) await (await fetch(`${exp.url}/metrics`)).text();
      const lat: number[] = [];
      const cpu0 = cpuSeconds(pid);
      for (let i = 0; i < SCRAPES; i++) {
        // fetch, not curl through spawnSync: the Xend stand-in runs in this process and must keep answering.
        const t0 = performance.now();
        await (await fetch(`${exp.url}/metrics`)).arrayBuffer();
        lat.push(performance.now() - t0);
      }
      const cpuMs = ((cpuSeconds(pid) - cpu0) * 1000) / SCRAPES;
      lat.sort((a, b) => a - b);
      console.log(`| ${n} | ${pct(lat, 50).toFixed(0)} | ${pct(lat, 99).toFixed(0)} | ${(lat.at(-1) ?? NaN).toFixed(0)} | ${cpuMs.toFixed(0)} | ${peakRss(pid).toFixed(0)} |`);
    } finally {
      await exp.stop();
    }
  } finally {
    await fx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
