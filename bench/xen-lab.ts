// Scrape cost of the exporter against the real Xen lab (test/fixtures/xen-lab:
// Xen 4.17 under QEMU TCG, PV dom0, tiny PV domUs each with a ramdisk vbd and
// a vif): the real hypercall path (virt-proxy on the real libxenctrl) and the
// real xenstored, reached over the lab's relays, as a non-root exporter would.
// For 1, 4 and 8 running domUs: latency p50/p99 (fetch over loopback), the
// exporter's CPU per scrape (schedstat, all threads), dom0's virt-proxy and
// xenstored CPU per scrape (clock ticks inside the emulated dom0, its idle rate
// subtracted), peak RSS, samples per scrape. Prints one markdown table.
//   node bench/xen-lab.ts [--sizes 1,4,8] [--scrapes 30]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bootXenLab, type XenLab } from '../test/fixtures/xen-lab/lab.ts';
import { startExporter } from '../test/helpers/exporter.ts';
import { percentile, rssMiB, sample, sleep } from './measure.ts';

const { values: opts } = parseArgs({ options: { sizes: { type: 'string', default: '1,4,8' }, scrapes: { type: 'string', default: '30' } } });
const SIZES = (opts.sizes ?? '1,4,8').split(',').map(Number);
const SCRAPES = Number(opts.scrapes);
for (const n of SIZES) if (!Number.isInteger(n) || n < 1 || n > 8) throw new Error(`--sizes: 1 to 8 domUs each (the lab has 8 ramdisks), got ${n}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 5) throw new Error(`--scrapes: at least 5, got ${opts.scrapes}`);

/** utime+stime of virt-proxy and xenstored in dom0, seconds (dom0's USER_HZ is 100). */
async function dom0Cpu(lab: XenLab): Promise<number> {
  const out = await lab.ok('for p in $(pidof virt-proxy) $(cat /run/xenstored.pid); do cat /proc/$p/stat; done');
  let ticks = 0;
  for (const line of out.split('\n').filter((l) => l !== '')) {
    const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

const lab = await bootXenLab({ memoryMiB: 2304, dom0MiB: 768, bootTimeoutMs: 400_000 });
const rows: string[] = [];
try {
  const settings = { ...lab.settings, 'xen.libxl-config-dir': join(lab.dir, 'libxl-store') };
  const flags = ['--connect=xen:///', '--collect.timeout=20s', ...Object.entries(settings).map(([k, v]) => `--${k}=${v}`)];
  let made = 0;
  for (const n of SIZES) {
    while (made < n) await lab.createDomU(`bench${made++}`, { nic: true });
    for (let i = 0; i < made; i++) await lab.booted(`bench${i}`);
    const exp = await startExporter(flags, {}, 120_000);
    try {
      const pid = exp.child.pid as number;
      let samples = 0;
      for (let i = 0; i < 3; i++) samples = (await (await fetch(`${exp.url}/metrics`)).text()).split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      // dom0's own background (the domUs' disk and network loops wake the backends, not these two) over 10 s.
      const idle0 = await dom0Cpu(lab);
      const t0 = performance.now();
      await sleep(10_000);
      const idleRate = (await dom0Cpu(lab) - idle0) / ((performance.now() - t0) / 1000);
      const lat: number[] = [];
      const before = sample(pid).cpuSeconds;
      const d0 = await dom0Cpu(lab);
      const w0 = performance.now();
      for (let i = 0; i < SCRAPES; i++) {
        const s = performance.now();
        await (await fetch(`${exp.url}/metrics`)).arrayBuffer();
        lat.push(performance.now() - s);
      }
      const wall = (performance.now() - w0) / 1000;
      const exporterMs = ((sample(pid).cpuSeconds - before) * 1000) / SCRAPES;
      const dom0Ms = (Math.max(0, (await dom0Cpu(lab)) - d0 - idleRate * wall) * 1000) / SCRAPES;
      lat.sort((a, b) => a - b);
      rows.push(`| ${n} (+ Domain-0) | ${percentile(lat, 50).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${exporterMs.toFixed(1)} | ${dom0Ms.toFixed(1)} | ${rssMiB(pid).toFixed(0)} | ${samples} |`);
      process.stderr.write(`xen lab: ${n} domUs measured\n`);
    } finally {
      await exp.stop();
    }
  }
} finally {
  await lab.stop();
}
console.log(`${SCRAPES} scrapes per size, one at a time, after 3 warm-up scrapes.

| domUs | p50 ms | p99 ms | exporter CPU ms/scrape | dom0 CPU ms/scrape (virt-proxy + xenstored, emulated) | exporter peak RSS MiB | samples/scrape |
|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}`);
