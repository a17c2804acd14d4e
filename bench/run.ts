// `npm run bench`: a thin dispatcher over the benchmarks in bench/: the test
// host at 100, 1,000 and 10,000 domains (bench/test-host.ts), then the
// real-QEMU benchmarks (bench/qemu.ts, bench/qemu-guests.ts). Writes
// docs/benchmarks.md with the command that produced it.
//
//   node bench/run.ts [--only test|qemu|guests] [--sizes 100,1000,10000] [--scrapes 60] [--rounds 3]
//     --only test replaces only the test-host section of docs/benchmarks.md.
//   node bench/run.ts --idle [--window 30] [--rounds 3]: only the idle-cost benchmark (bench/idle.ts);
//     its section of docs/benchmarks.md is replaced, the rest kept.
//   node bench/run.ts --libvirt [--libvirt-sizes 10,30,60]: only the libvirt benchmark (bench/libvirt.ts);
//     its section of docs/benchmarks.md is replaced, the rest kept.
//   node bench/run.ts --xen [--xen-sizes 500] [--lab-sizes 1,4,8]: only the Xen benchmarks (bench/xen.ts
//     against the Xend stand-in, bench/xen-lab.ts against the real Xen lab); likewise its own section.
//   node bench/run.ts --compare [--sizes 10,30,60] [--mode paused,running,guest]: only the side-by-side
//     benchmark (bench/compare.ts); likewise its own section, and docs/benchmarks-compare.svg.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/helpers/exporter.ts';
import { replaceSection, runChild } from './doc-section.ts';

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    libvirt: { type: 'boolean', default: false },
    xen: { type: 'boolean', default: false },
    'xen-sizes': { type: 'string', default: '500' },
    'lab-sizes': { type: 'string', default: '1,4,8' },
    idle: { type: 'boolean', default: false },
    window: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '3' },
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
const only = opts.only;
if (only !== undefined && !['test', 'qemu', 'guests'].includes(only)) throw new Error(`--only takes test, qemu or guests, got ${only}`);

// Measure what an installation runs: the compiled copy under build/.
if (spawnSync('sh', [`${ROOT}scripts/build.sh`], { stdio: 'inherit' }).status !== 0) throw new Error('scripts/build.sh failed');

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`;
const when = new Date().toISOString().slice(0, 10);
const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;

const IDLE_BEGIN = '<!-- idle benchmark: npm run bench -- --idle -->';
const IDLE_END = '<!-- end of idle benchmark -->';
if (opts.idle === true) {
  const section = `${IDLE_BEGIN}
## Idle cost: nobody scrapes (\`npm run bench -- --idle\`)

Produced by \`${command}\` on ${when} (${machine}), on a shared machine. Target
(issue 17): exporter plus virt-qemud under 0.5 ms of CPU per second when
nobody scrapes. CPU time of every thread of the process from
\`/proc/PID/task/*/schedstat\` (nanoseconds), \`/proc/PID/stat\` ticks (10 ms) as
a cross-check; wake-ups are context switches of all threads. The first window
after the scrapes often holds V8's memory reducer (one or two full garbage
collections some 30-40 s after the last burst of allocation, about 50 ms of
CPU once): a one-off after activity, not a periodic cost; hence the maxima.

${await runChild('bench/idle.ts', ['--window', opts.window ?? '30', '--rounds', opts.rounds ?? '3'])}
${IDLE_END}`;
  replaceSection(IDLE_BEGIN, IDLE_END, section);
  console.error('updated the idle section of docs/benchmarks.md');
  console.log(section);
  process.exit(0);
}

const XEN_BEGIN = '<!-- xen benchmark: npm run bench -- --xen -->';
const XEN_END = '<!-- end of xen benchmark -->';
if (opts.xen === true) {
  const stand = await runChild('bench/xen.ts', ['--sizes', opts['xen-sizes'] ?? '500', '--scrapes', '40']);
  const labTable = await runChild('bench/xen-lab.ts', ['--sizes', opts['lab-sizes'] ?? '1,4,8', '--scrapes', '30']);
  const section = `${XEN_BEGIN}
## Xen (\`npm run bench -- --xen\`)

Produced by \`${command}\` on ${when} (${machine}), on a shared machine.

**The Xend stand-in** (\`node bench/xen.ts --sizes N\`): the exporter as its own
process on the Xen <= 4.4 path a non-root exporter without virt-proxy takes
(names, state and memory from Xend's running list, shut-off domains from
Xend's halted list with one detail request each, devices from XenStore),
against the project's Xend and XenStore stand-ins in the benchmark process
(N running or paused domains plus 20 shut off); latency is Node's fetch over
loopback for a full \`/metrics\` body. Target (issue 11) at 500 domains: p99
under 100 ms, RSS under 120 MiB.

${stand}

**The real Xen lab** (\`node bench/xen-lab.ts\`): Xen 4.17 under QEMU TCG
(test/fixtures/xen-lab), the real hypercall path (virt-proxy on the real
libxenctrl in dom0) and the real xenstored, reached over the lab's relays as a
non-root exporter reaches them; each domU has a ramdisk vbd and a vif and
reads its disk and pings every 2 s. dom0 is emulated: its CPU figures are
TCG time, many times what the same work costs on hardware.

${labTable}
${XEN_END}`;
  replaceSection(XEN_BEGIN, XEN_END, section);
  console.error('updated the xen section of docs/benchmarks.md');
  console.log(section);
  process.exit(0);
}

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
Debian's prometheus-libvirt-exporter (kumina 0.2.0; required: apt-get install prometheus-libvirt-exporter). For
virt-exporter over its own virt-qemud with the same domain shape, see
"Real QEMU, paused domains" above.

${table}

How the libvirt driver plans its reads (one monitor-free stats call for every
domain, the running domains' QEMU-side groups in up to 4 concurrent calls,
paused domains held until an event), what libvirtd does per stats group, and
the side-by-side run against virt-qemud: see the next section and
[libvirt.md](libvirt.md#what-is-read-and-how-often).
${LIBVIRT_END}`;
  replaceSection(LIBVIRT_BEGIN, LIBVIRT_END, section);
  console.error('updated the libvirt section of docs/benchmarks.md');
  console.log(section);
  process.exit(0);
}

const TEST_BEGIN = '<!-- test-host benchmark: npm run bench -- --only test -->';
const TEST_END = '<!-- end of test-host benchmark -->';
const sections: string[] = [];
if (only === undefined || only === 'test') {
  const args = ['--sizes', opts.sizes ?? '100,1000,10000', '--scrapes', opts.scrapes ?? '60', '--rounds', opts.rounds ?? '3'];
  const section = `${TEST_BEGIN}
## Test host: scrape cost by number of domains

Produced by \`${command}\` on ${when} (${machine}), on a shared machine.
Each domain has 2 vCPUs on average, 2 disks and 2 NICs (about 73 series). The
exporter runs its compiled copy (build/; the benchmark rebuilds it first) as
its own process (\`bin/virt-exporter --connect test://FILE\`), scraped over
loopback by curl (a native client, as Prometheus is: gzip accepted, its own
request-to-last-byte timer). CPU per scrape is the exporter's, every thread
(the main thread and the libuv pool that gzips), from schedstat. Event-loop
delay is measured inside the exporter by \`perf_hooks.monitorEventLoopDelay\`
(1 ms resolution), loaded by the benchmark only (a preload bench/test-host.ts writes) and on
only during its own round of scrapes. Targets (issue 17): 1,000 domains p99
under 40 ms and RSS under 120 MiB; 10,000 domains p99 under 400 ms; CPU per
domain flat from 100 to 10,000.

${await runChild('bench/test-host.ts', args)}
${TEST_END}`;
  if (only === 'test') {
    replaceSection(TEST_BEGIN, TEST_END, section);
    console.error('updated the test-host section of docs/benchmarks.md');
    console.log(section);
    process.exit(0);
  }
  sections.push(section);
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

const page = `# Benchmarks

Each section says which command produced it, when, and on what machine; re-run
on your own hardware before relying on them. This page was produced whole by
\`${command}\` on ${when} (${machine}).

${sections.join('\n\n')}
`;
if (only === undefined) {
  // Everything from the first separately measured section on (libvirt, compare, Xen, idle) is carried over.
  const old = readFileSync(`${ROOT}docs/benchmarks.md`, 'utf8');
  const from = old.indexOf(LIBVIRT_BEGIN);
  const idle = old.indexOf(IDLE_BEGIN);
  const cut = from >= 0 ? from : idle;
  writeFileSync(`${ROOT}docs/benchmarks.md`, cut >= 0 ? `${page.trimEnd()}\n\n${old.slice(cut).trimEnd()}\n` : page);
  console.error('wrote docs/benchmarks.md');
}
console.log(page);
