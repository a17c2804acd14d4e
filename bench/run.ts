// `npm run bench`: scrape cost of the exporter over the test host at 100, 1,000
// and 10,000 domains (latency p50/p99, exporter CPU per scrape, peak RSS), then
// the real-QEMU benchmarks (bench/qemu.ts, bench/qemu-guests.ts). Writes
// docs/benchmarks.md with the command that produced it.
//
//   node bench/run.ts [--only test|qemu|guests] [--sizes 100,1000,10000] [--scrapes 60]
//   node bench/run.ts --libvirt [--libvirt-sizes 10,30,60]: only the libvirt benchmark (bench/libvirt.ts);
//     its section of docs/benchmarks.md is replaced, the rest kept.
//   node bench/run.ts --compare [--sizes 10,30,60] [--mode paused,running,guest]: only the side-by-side
//     benchmark (bench/compare.ts); likewise its own section, and docs/benchmarks-compare.svg.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateHost } from '../src/drivers/test/default-host.ts';
import { ROOT, startExporter } from '../test/helpers/exporter.ts';

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    libvirt: { type: 'boolean', default: false },
    compare: { type: 'boolean', default: false },
    mode: { type: 'string' },
    repeats: { type: 'string' },
    'guest-max': { type: 'string' },
    'libvirt-sizes': { type: 'string', default: '10,30,60' },
    sizes: { type: 'string', default: '100,1000,10000' },
    scrapes: { type: 'string', default: '60' },
  },
});
if (opts.compare === true) {
  // bench/compare.ts takes its own --sizes and --mode and rewrites only its section (bench/compare-run.ts).
  const { runCompare } = await import('./compare-run.ts');
  await runCompare(process.argv.slice(2).filter((a) => a !== '--compare'));
  process.exit(0);
}
const SIZES = (opts.sizes ?? '').split(',').map(Number);
const SCRAPES = Number(opts.scrapes);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 20_000)) throw new Error(`--sizes must be integers 1..20000, got ${opts.sizes}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 10) throw new Error(`--scrapes must be an integer >= 10, got ${opts.scrapes}`);
const only = opts.only;
if (only !== undefined && !['test', 'qemu', 'guests'].includes(only)) throw new Error(`--only takes test, qemu or guests, got ${only}`);

const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function benchTestHost(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'virt-bench-'));
  const rows = [
    '| domains | series | body | p50 ms (curl) | p99 ms (curl) | p50 ms (fetch) | p99 ms (fetch) | exporter CPU ms/scrape | CPU µs/domain | peak RSS MiB |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  try {
    for (const n of SIZES) {
      const file = join(dir, `host-${n}.json`);
      writeFileSync(file, JSON.stringify(generateHost(n)));
      const exp = await startExporter([`--connect=test://${file}`, '--collect.timeout=30s'], {}, 120_000);
      try {
        const pid = exp.child.pid as number;
        let series = 0;
        let bytes = 0;
        for (let i = 0; i < 5; i++) {
          const text = await (await fetch(`${exp.url}/metrics`)).text();
          series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
          bytes = text.length;
        }
        const scrapes = n >= 10_000 ? Math.max(10, Math.floor(SCRAPES / 3)) : SCRAPES;
        const lat: number[] = [];
        const cpu0 = cpuSeconds(pid);
        for (let i = 0; i < scrapes; i++) {
          const t0 = performance.now();
          const res = await fetch(`${exp.url}/metrics`);
          await res.arrayBuffer();
          lat.push(performance.now() - t0);
        }
        const cpuMs = ((cpuSeconds(pid) - cpu0) * 1000) / scrapes;
        lat.sort((a, b) => a - b);
        // A native client, as Prometheus is: curl's own timer, request to last byte, gzip accepted.
        const curlLat: number[] = [];
        for (let i = 0; i < scrapes; i++) {
          const r = spawnSync('curl', ['-s', '--compressed', '-o', '/dev/null', '-w', '%{time_total}', `${exp.url}/metrics`], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
          curlLat.push(Number(r.stdout) * 1000);
        }
        curlLat.sort((a, b) => a - b);
        rows.push(
          `| ${n} | ${series} | ${(bytes / 1024 / 1024).toFixed(1)} MiB | ${percentile(curlLat, 50).toFixed(1)} | ${percentile(curlLat, 99).toFixed(1)} | ${percentile(lat, 50).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${cpuMs.toFixed(1)} | ${((cpuMs * 1000) / n).toFixed(1)} | ${peakRssMiB(pid).toFixed(0)} |`,
        );
        console.error(rows.at(-1));
      } finally {
        await exp.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows.join('\n');
}

function runChild(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${ROOT}node_modules/.bin/node`, [`${ROOT}${script}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${script} exited ${String(code)}`))));
  });
}

// Measure what an installation runs: the compiled copy under build/.
if (spawnSync('sh', [`${ROOT}scripts/build.sh`], { stdio: 'inherit' }).status !== 0) throw new Error('scripts/build.sh failed');

const LIBVIRT_BEGIN = '<!-- libvirt benchmark: npm run bench -- --libvirt -->';
const LIBVIRT_END = '<!-- end of libvirt benchmark -->';
if (opts.libvirt === true) {
  const table = await runChild('bench/libvirt.ts', ['--sizes', opts['libvirt-sizes'] ?? '10,30,60']);
  const day = new Date().toISOString().slice(0, 10);
  const where = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`;
  const section = `${LIBVIRT_BEGIN}
## libvirt hosts (\`npm run bench -- --libvirt\`)

Produced by \`npm run bench -- ${process.argv.slice(2).join(' ')}\` on ${day} (${where}), on a shared
machine. N real QEMU domains (TCG, no OS, 64 MiB, 1 vCPU, a 16 MiB qcow2 on
virtio, a virtio user-mode NIC, a balloon) under a private libvirtd, scraped
over loopback with curl, virt-exporter's libvirt driver alternating with
Debian's prometheus-libvirt-exporter (kumina 0.2.0, when installed). For
virt-exporter over its own virt-qemud with the same domain shape, see
"Real QEMU, paused domains" above.

${table}

How the libvirt driver plans its reads (one monitor-free stats call for every
domain, the running domains' QEMU-side groups in up to 4 concurrent calls,
paused domains held until an event), what libvirtd does per stats group, and
the side-by-side run against virt-qemud: see the next section and
[libvirt.md](libvirt.md#what-is-read-and-how-often).
${LIBVIRT_END}`;
  const file = `${ROOT}docs/benchmarks.md`;
  const old = readFileSync(file, 'utf8');
  const a = old.indexOf(LIBVIRT_BEGIN);
  const b = old.indexOf(LIBVIRT_END);
  const next = a >= 0 && b > a ? old.slice(0, a) + section + old.slice(b + LIBVIRT_END.length) : `${old.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
  console.error('updated the libvirt section of docs/benchmarks.md');
  console.log(section);
  process.exit(0);
}

const sections: string[] = [];
const when = new Date().toISOString().slice(0, 10);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`;
if (only === undefined || only === 'test') {
  sections.push(`## Test host: scrape cost by number of domains

Each domain has 2 vCPUs on average, 2 disks and 2 NICs (about 60 series). The
exporter runs as its own process (\`bin/virt-exporter --connect test://FILE\`);
latency is measured over loopback for a full \`/metrics\` body by two clients:
curl (a native client, as Prometheus is; its own request-to-last-byte timer)
and Node's fetch in the benchmark process (which also pays for decompressing
in JavaScript on the same two cores). CPU per scrape comes from the exporter's
\`/proc/PID/stat\` (sampled over the fetch scrapes), peak RSS from \`VmHWM\`.
Targets: 1,000 domains under 100 ms p99 and 150 MB RSS; cost linear in domains
(see the CPU µs/domain column). Latency includes gzip on the exporter (on the
libuv pool) and gunzip in the client, as with Prometheus. The exporter runs
its compiled copy (build/, made by npm install; the benchmark rebuilds it
first); about 80 MiB of the RSS is the idle process (Node 22, prom-client,
convict) before any domain is read.

${await benchTestHost()}`);
}
if (only === undefined || only === 'qemu') {
  sections.push(`## Real QEMU, paused domains (\`node bench/qemu.ts\`)

A paused domain's block counters cannot move, so virt-qemud reuses its last
block reading: these figures are the floor. A running domain with disks pays
one \`query-blockstats\` per collection (about 0.2 ms of QEMU CPU each).

${await runChild('bench/qemu.ts', [])}`);
}
if (only === undefined || only === 'guests') {
  sections.push(`## Real QEMU, busy booted guests (\`node bench/qemu-guests.ts\`)

${await runChild('bench/qemu-guests.ts', [])}`);
}

const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
const page = `# Benchmarks

Produced by \`${command}\` on ${when} (${machine}). Figures from a shared
2-core development machine; re-run on your own hardware before relying on them.

${sections.join('\n\n')}
`;
if (only === undefined) {
  // The libvirt section is measured separately (--libvirt): carry it over.
  const old = readFileSync(`${ROOT}docs/benchmarks.md`, 'utf8');
  const a = old.indexOf(LIBVIRT_BEGIN);
  const b = old.indexOf(LIBVIRT_END);
  writeFileSync(`${ROOT}docs/benchmarks.md`, a >= 0 && b > a ? `${page.trimEnd()}\n\n${old.slice(a, b + LIBVIRT_END.length)}\n` : page);
  console.error('wrote docs/benchmarks.md');
}
console.log(page);
