// Test-host scale (issue 17 item 3): the exporter as its own process
// (bin/virt-exporter --connect test://FILE) over 100, 1,000 and 10,000
// generated domains, scraped over loopback by curl (gzip accepted, as
// Prometheus does; curl's own request-to-last-byte timer). Per size: a few
// rounds of scrapes, each giving p50/p99 and the exporter's CPU per scrape
// (schedstat of all its threads: the main thread and the libuv pool that
// gzips); then one more round with event-loop delay measured inside the
// exporter (ELD_PRELOAD below, only during that round); series, bytes per
// scrape (plain and gzip), RSS after the scrapes and peak RSS (VmHWM).
// Prints a Markdown table on stdout.
//
//   node bench/test-host.ts [--sizes 100,1000,10000] [--scrapes 60] [--rounds 3]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateHost } from '../src/drivers/test/default-host.ts';
import { startExporter, type StartedExporter } from '../test/helpers/exporter.ts';
import { percentile, rssMiB, sample, sleep, spread } from './measure.ts';

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,10000' },
    scrapes: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
  },
});
const SIZES = (opts.sizes ?? '').split(',').map(Number);
const SCRAPES = Number(opts.scrapes);
const ROUNDS = Number(opts.rounds);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 20_000)) throw new Error(`--sizes must be integers 1..20000, got ${opts.sizes}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 10) throw new Error(`--scrapes must be an integer >= 10, got ${opts.scrapes}`);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got ${opts.rounds}`);

/**
 * Loaded into the exporter with NODE_OPTIONS=--import, for this benchmark only:
 * event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) over a
 * window opened and closed with SIGUSR2; closing writes the window's figures
 * (nanoseconds) to $VIRT_BENCH_ELD_FILE. Nothing runs outside a window, so the
 * CPU rounds are measured without it. Plain JavaScript written to the temporary
 * directory: a .ts preload would load Node's type stripper into the exporter
 * and inflate its RSS.
 */
const ELD_PRELOAD = `import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.VIRT_BENCH_ELD_FILE;
if (file !== undefined && file !== '') {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let on = false;
  let seq = 0;
  process.on('SIGUSR2', () => {
    if (!on) {
      h.reset();
      h.enable();
      on = true;
    } else {
      h.disable();
      on = false;
    }
    seq++;
    const stats = on ? {} : { count: h.count, max: h.max, mean: h.mean, p50: h.percentile(50), p99: h.percentile(99) };
    writeFileSync(\`\${file}.tmp\`, JSON.stringify({ seq, on, ...stats }));
    renameSync(\`\${file}.tmp\`, file);
  });
}
`;

interface Curl {
  ms: number;
  bytes: number;
}

function curl(url: string, gzip: boolean): Curl {
  const r = spawnSync('curl', ['-s', ...(gzip ? ['--compressed'] : []), '-o', '/dev/null', '-w', '%{time_total} %{size_download} %{http_code}', url], { encoding: 'utf8' });
  const [t, size, code] = r.stdout.split(' ');
  if (r.status !== 0 || code !== '200') throw new Error(`curl ${url} failed (${String(r.status)}, HTTP ${String(code)}): ${r.stderr}`);
  return { ms: Number(t) * 1000, bytes: Number(size) };
}

interface Round {
  p50: number;
  p99: number;
  cpuMs: number;
}

function round(exp: StartedExporter, scrapes: number): Round {
  const pid = exp.child.pid as number;
  const lat: number[] = [];
  const a = sample(pid);
  for (let i = 0; i < scrapes; i++) lat.push(curl(`${exp.url}/metrics`, true).ms);
  const b = sample(pid);
  lat.sort((x, y) => x - y);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), cpuMs: ((b.cpuSeconds - a.cpuSeconds) * 1000) / scrapes };
}

/** Opens (or closes) the preload's event-loop delay window and waits until the exporter has acted on it. */
async function eldToggle(pid: number, file: string): Promise<{ seq: number; on: boolean; count?: number; max?: number; p99?: number }> {
  const before = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { seq: number }).seq : 0;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 500; i++) {
    if (existsSync(file)) {
      const s = JSON.parse(readFileSync(file, 'utf8')) as { seq: number; on: boolean };
      if (s.seq > before) return s;
    }
    await sleep(10);
  }
  throw new Error('the exporter did not answer SIGUSR2 (the event-loop delay preload not loaded?)');
}

const rows = [
  '| domains | series | bytes/scrape (plain / gzip) | p50 ms | p99 ms | exporter CPU ms/scrape | CPU µs/domain | event-loop delay max / p99 ms | RSS after MiB | peak RSS MiB |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];
const dir = mkdtempSync(join(tmpdir(), 'virt-bench-'));
const preload = join(dir, 'eld-preload.mjs');
writeFileSync(preload, ELD_PRELOAD);
try {
  for (const n of SIZES) {
    const file = join(dir, `host-${n}.json`);
    writeFileSync(file, JSON.stringify(generateHost(n)));
    const eldFile = join(dir, `eld-${n}.json`);
    const exp = await startExporter([`--connect=test://${file}`, '--collect.timeout=30s'], { NODE_OPTIONS: `--import=${preload}`, VIRT_BENCH_ELD_FILE: eldFile }, 120_000);
    try {
      const pid = exp.child.pid as number;
      const text = await (await fetch(`${exp.url}/metrics`, { headers: { 'accept-encoding': 'identity' } })).text();
      const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      for (let i = 0; i < 4; i++) curl(`${exp.url}/metrics`, true);
      const plain = curl(`${exp.url}/metrics`, false).bytes;
      const gz = curl(`${exp.url}/metrics`, true).bytes;
      const scrapes = n >= 10_000 ? Math.max(10, Math.floor(SCRAPES / 3)) : SCRAPES;
      const rs: Round[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        rs.push(round(exp, scrapes));
        process.stderr.write(`  ${n} domains, round ${r + 1}/${ROUNDS}: p50 ${rs.at(-1)?.p50.toFixed(1)} p99 ${rs.at(-1)?.p99.toFixed(1)} ms, ${rs.at(-1)?.cpuMs.toFixed(1)} ms CPU/scrape\n`);
      }
      await eldToggle(pid, eldFile);
      round(exp, scrapes);
      const eld = await eldToggle(pid, eldFile);
      const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(2)} MiB`;
      rows.push(
        `| ${n} | ${series} | ${mib(plain)} / ${mib(gz)} | ${spread(rs.map((r) => r.p50))} | ${spread(rs.map((r) => r.p99))} | ${spread(rs.map((r) => r.cpuMs))} | ${spread(rs.map((r) => (r.cpuMs * 1000) / n))} | ${((eld.max ?? NaN) / 1e6).toFixed(1)} / ${((eld.p99 ?? NaN) / 1e6).toFixed(1)} | ${rssMiB(pid, 'VmRSS').toFixed(0)} | ${rssMiB(pid).toFixed(0)} |`,
      );
      process.stderr.write(`${rows.at(-1)}\n`);
    } finally {
      await exp.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  `${rows.join('\n')}\n\n${ROUNDS} rounds of ${SCRAPES} scrapes (${Math.max(10, Math.floor(SCRAPES / 3))} at 10,000 domains) per size, one scrape at a time; latency and CPU as median (min–max) over the rounds. Event-loop delay over one further round.\n`,
);
