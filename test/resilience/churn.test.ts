// Churn: domains defined, started, destroyed and undefined without pause
// under a real virt-qemud while the exporter is scraped as fast as it answers.
// No scrape fails, no series is duplicated, a domain is gone from every scrape
// that starts after its undefine returned, and the exporter's and virt-qemud's
// RSS and fd counts stay flat. Bounded: VIRT_SOAK_SECONDS (default 25 s here;
// `npm run soak` runs it for 5 minutes and prints the same figures).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../src/virt/connection.ts';
import { parseMetrics, startExporter, type StartedExporter } from '../helpers/exporter.ts';
import { daemonPid, requireBinaries, sandbox, type Sandbox } from '../qemud/helpers.ts';

const SECONDS = Number(process.env['VIRT_SOAK_SECONDS'] ?? '') || 25;
const STEADY = ['steady-a', 'steady-b'];

let sb: Sandbox;
let conn: Connection;
let exporter: StartedExporter;

interface Usage {
  rssMiB: number;
  fds: number;
}

function usage(pid: number): Usage {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 'NaN');
  return { rssMiB: Math.round((rssKiB / 1024) * 10) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
}

before(async () => {
  requireBinaries('qemu-system-x86_64');
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  conn = await open('qemu:///session', { readOnly: false });
  for (const name of STEADY) {
    await conn.define({ name, memoryMiB: 64, vcpus: 1 });
    await conn.start(name);
  }
  exporter = await startExporter(['--connect', 'qemu:///session', '--collect.timeout=3s'], sb.env);
});

after(async () => {
  await exporter.stop();
  await conn.close();
  await sb.cleanup();
});

void describe(`churn for ${SECONDS} s`, { timeout: (SECONDS + 120) * 1000 }, () => {
  void it('scrapes stay whole and truthful while domains come and go; memory and fds stay flat', async (t) => {
    const exporterPid = exporter.child.pid as number;
    const qemudPid = daemonPid(sb.runtimeDir) as number;
    // Warm up both processes so their steady state is what we compare against.
    for (let i = 0; i < 20; i++) await (await fetch(`${exporter.url}/metrics`)).text();
    const start = { exporter: usage(exporterPid), qemud: usage(qemudPid) };
    const peak = { exporter: { ...start.exporter }, qemud: { ...start.qemud } };
    let mid: typeof start | undefined;
    const midAt = Date.now() + (SECONDS * 1000) / 2;
    const gone = new Map<string, number>(); // domain -> when its undefine returned
    const until = Date.now() + SECONDS * 1000;
    // The exporter's own live heap, from its nodejs_heap_size_used_bytes: the
    // minimum over a stretch of scrapes filters out garbage not yet collected.
    const heapMiB: { at: number; v: number }[] = [];
    let cycles = 0;
    let scrapes = 0;
    let partial = 0;
    const problems: string[] = [];

    const churn = async (): Promise<void> => {
      while (Date.now() < until) {
        const name = `churn-${cycles}`;
        await conn.define({ name, uuid: randomUUID(), memoryMiB: 64, vcpus: 1 });
        await conn.start(name);
        await conn.destroy(name);
        await conn.undefine(name);
        gone.set(name, Date.now());
        cycles++;
      }
    };

    const scrapeLoop = async (): Promise<void> => {
      while (Date.now() < until) {
        const startedAt = Date.now();
        const res = await fetch(`${exporter.url}/metrics`);
        const text = await res.text();
        scrapes++;
        if (res.status !== 200) {
          problems.push(`scrape ${scrapes}: HTTP ${res.status}`);
          continue;
        }
        const samples = parseMetrics(text);
        const seen = new Set<string>();
        for (const s of samples) {
          const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
          if (seen.has(key)) problems.push(`scrape ${scrapes}: duplicate series ${key}`);
          seen.add(key);
          const d = s.labels['domain'];
          const goneAt = d === undefined ? undefined : gone.get(d);
          if (goneAt !== undefined && goneAt < startedAt) problems.push(`scrape ${scrapes}: ${d} still reported ${startedAt - goneAt} ms after its undefine returned`);
        }
        if (!samples.some((s) => s.name === 'virt_up' && s.value === 1)) problems.push(`scrape ${scrapes}: virt_up is not 1`);
        for (const name of STEADY) {
          if (!samples.some((s) => s.name === 'virt_domain_state' && s.labels['domain'] === name && s.labels['state'] === 'running' && s.value === 1)) problems.push(`scrape ${scrapes}: steady domain ${name} missing or not running`);
        }
        if (samples.some((s) => s.name === 'virt_collector_success' && s.value === 0)) partial++;
        // Without the young generation: what it holds is garbage not yet scavenged, and how much depends on how far
        // V8 grew the nursery under the load of the machine (up to 12 MiB with bin/'s --max-semi-space-size=4).
        const heap = samples.find((x) => x.name === 'nodejs_heap_size_used_bytes')?.value;
        const young = samples.filter((x) => x.name === 'nodejs_heap_space_size_used_bytes' && (x.labels['space'] === 'new' || x.labels['space'] === 'new_large_object')).reduce((n, x) => n + x.value, 0);
        if (heap !== undefined) heapMiB.push({ at: Date.now(), v: (heap - young) / 1048576 });
        if (mid === undefined && Date.now() >= midAt) mid = { exporter: usage(exporterPid), qemud: usage(qemudPid) };
        for (const [who, pid] of [['exporter', exporterPid], ['qemud', qemudPid]] as const) {
          const u = usage(pid);
          peak[who].rssMiB = Math.max(peak[who].rssMiB, u.rssMiB);
          peak[who].fds = Math.max(peak[who].fds, u.fds);
        }
      }
    };

    await Promise.all([churn(), scrapeLoop()]);
    // Let the last connections close before the final reading.
    await new Promise((r) => setTimeout(r, 500));
    const end = { exporter: usage(exporterPid), qemud: usage(qemudPid) };
    const figures = `churn ${SECONDS} s: ${cycles} define/start/destroy/undefine cycles, ${scrapes} scrapes (${partial} with a collector reporting 0 while a domain was mid-change); ` +
      `exporter RSS ${start.exporter.rssMiB}/${mid?.exporter.rssMiB}/${peak.exporter.rssMiB}/${end.exporter.rssMiB} MiB, fds ${start.exporter.fds}/${peak.exporter.fds}/${end.exporter.fds}; ` +
      `virt-qemud RSS ${start.qemud.rssMiB}/${mid?.qemud.rssMiB}/${peak.qemud.rssMiB}/${end.qemud.rssMiB} MiB, fds ${start.qemud.fds}/${peak.qemud.fds}/${end.qemud.fds} (RSS start/half-time/peak/end, fds start/peak/end)`;
    const quarter = (SECONDS * 1000) / 4;
    const t0 = heapMiB[0]?.at ?? 0;
    const minIn = (from: number, to: number): number => Math.min(...heapMiB.filter((h) => h.at - t0 >= from && h.at - t0 < to).map((h) => h.v));
    // The second quarter, not the first: the first holds the warm-up (compiled code, lazily loaded modules,
    // the first bodies' buffers), which on a loaded machine alone can reach the bound; a leak that scales with
    // the cycles still grows between the second and the last quarter.
    const heapFirst = minIn(quarter, 2 * quarter);
    const heapLast = minIn(3 * quarter, Infinity);
    const heapFigures = `exporter live heap outside the young generation (minimum per quarter): ${heapFirst.toFixed(1)} MiB in the second, ${heapLast.toFixed(1)} MiB in the last`;
    t.diagnostic(figures);
    t.diagnostic(heapFigures);
    if (process.env['VIRT_SOAK_PRINT'] === '1') process.stdout.write(`${figures}\n${heapFigures}\n`);

    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} problems`);
    assert.ok(cycles >= 5, `only ${cycles} churn cycles ran`);
    assert.ok(scrapes >= 50, `only ${scrapes} scrapes ran`);
    // Flat: no growth that scales with the number of cycles. RSS alone is a
    // poor leak signal (V8 and malloc keep what they grew to), so the exporter
    // is judged on its live heap; virt-qemud, which has no metrics endpoint, on
    // RSS in the second half, once its spaces have grown to the load.
    assert.ok(mid !== undefined && Number.isFinite(heapFirst) && Number.isFinite(heapLast), 'heap and half-time readings were taken');
    assert.ok(heapLast <= heapFirst + 8, heapFigures);
    for (const who of ['exporter', 'qemud'] as const) {
      assert.ok(end[who].fds <= start[who].fds + 2, `${who} fds ${start[who].fds} -> ${end[who].fds}`);
      assert.ok(end[who].rssMiB <= start[who].rssMiB + 96, `${who} RSS ${start[who].rssMiB} -> ${end[who].rssMiB} MiB`);
    }
    assert.ok(end.qemud.rssMiB <= mid.qemud.rssMiB + 24, `virt-qemud RSS ${mid.qemud.rssMiB} MiB at half time -> ${end.qemud.rssMiB} MiB at the end`);
  });
});
