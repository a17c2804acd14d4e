// Stuck backends under real QEMU and a real virt-qemud: a QEMU stopped with
// SIGSTOP (its monitor never answers) and virt-qemud itself stopped. Whatever
// the collection deadline, every scrape finishes within it, healthy domains
// stay whole, the stuck part is visible, and after SIGCONT the next scrape is
// whole again with no file descriptor left behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../src/virt/connection.ts';
import { parseMetrics, startExporter, type ParsedSample, type StartedExporter } from '../helpers/exporter.ts';
import { daemonPid, killPid, requireBinaries, sandbox, waitFor, type Sandbox } from '../qemud/helpers.ts';

const DOMAINS = ['stuck-a', 'stuck-b', 'stuck-c'];
const STUCK = 'stuck-b';
// Rendering and the HTTP round trip on top of the collection deadline.
const SLACK_MS = 400;

let sb: Sandbox;
let conn: Connection;

function pidOf(name: string): number {
  return (JSON.parse(readFileSync(join(sb.runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The fd count once the last scrape's connection has been closed on the server side too. */
async function fds(pid: number): Promise<number> {
  let last = fdCount(pid);
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = fdCount(pid);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** One scrape with curl (a fresh connection each time, as Prometheus makes), timed. */
function timedScrape(url: string): { ms: number; samples: ParsedSample[] } {
  const t0 = Date.now();
  const r = spawnSync('curl', ['-sS', '--fail', '--max-time', '30', '-H', 'Connection: close', `${url}/metrics`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 0, `curl failed: ${r.stderr}`);
  return { ms, samples: parseMetrics(r.stdout) };
}

function get(samples: ParsedSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function assertWhole(samples: ParsedSample[], what: string): void {
  for (const c of ['domain', 'cpu', 'block', 'memory']) assert.equal(get(samples, 'virt_collector_success', { collector: c }), 1, `${what}: collector ${c}`);
  assert.equal(get(samples, 'virt_domains'), DOMAINS.length, `${what}: virt_domains`);
  for (const d of DOMAINS) assert.ok(get(samples, 'virt_domain_block_read_requests_total', { domain: d, device: 'vda' }) !== undefined, `${what}: block counters of ${d}`);
}

before(async () => {
  requireBinaries('qemu-system-x86_64', 'qemu-img', 'curl');
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  conn = await open('qemu:///session', { readOnly: false });
  for (const name of DOMAINS) {
    const disk = join(sb.base, `${name}.qcow2`);
    const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await conn.define({ name, memoryMiB: 64, vcpus: 1, disks: [{ path: disk, format: 'qcow2' }] });
    await conn.start(name);
  }
});

after(async () => {
  await conn.close();
  await sb.cleanup();
});

for (const deadline of ['2s', '700ms']) {
  const deadlineMs = deadline.endsWith('ms') ? Number(deadline.slice(0, -2)) : Number(deadline.slice(0, -1)) * 1000;

  void describe(`with --collect.timeout=${deadline}`, { timeout: 120_000 }, () => {
    let exporter: StartedExporter;
    before(async () => {
      exporter = await startExporter(['--connect', 'qemu:///session', `--collect.timeout=${deadline}`], sb.env);
    });
    after(async () => {
      await exporter.stop();
    });

    void it('a QEMU stopped with SIGSTOP costs only its own block read; SIGCONT makes the next scrape whole', async () => {
      assertWhole(timedScrape(exporter.url).samples, 'before SIGSTOP');
      const exporterPid = exporter.child.pid as number;
      const qemudPid = daemonPid(sb.runtimeDir) as number;
      const fdsBefore = [await fds(exporterPid), await fds(qemudPid)];
      const qemu = pidOf(STUCK);
      process.kill(qemu, 'SIGSTOP');
      try {
        let lastTimeouts = get(timedScrape(exporter.url).samples, 'virt_domain_read_timeouts_total', { domain: STUCK }) ?? -1;
        for (let i = 0; i < 3; i++) {
          const { ms, samples } = timedScrape(exporter.url);
          assert.ok(ms <= deadlineMs + SLACK_MS, `scrape ${i} took ${ms} ms with a ${deadlineMs} ms deadline`);
          assert.equal(get(samples, 'virt_up', { driver: 'qemu' }), 1);
          assert.equal(get(samples, 'virt_collector_success', { collector: 'block' }), 0, 'the stuck part is visible');
          for (const c of ['cpu', 'memory']) assert.equal(get(samples, 'virt_collector_success', { collector: c }), 1, `collector ${c} is unaffected`);
          for (const d of DOMAINS.filter((x) => x !== STUCK)) {
            assert.ok(get(samples, 'virt_domain_block_read_requests_total', { domain: d, device: 'vda' }) !== undefined, `healthy ${d} keeps its block counters`);
          }
          // The stuck domain is still listed, with its state and CPU, minus what it could not answer.
          assert.equal(get(samples, 'virt_domain_state', { domain: STUCK, state: 'running' }), 1);
          assert.ok(get(samples, 'virt_domain_cpu_time_seconds_total', { domain: STUCK }) !== undefined);
          assert.equal(get(samples, 'virt_domain_block_read_requests_total', { domain: STUCK }), undefined);
          assert.equal(get(samples, 'virt_domains'), DOMAINS.length);
          const timeouts = get(samples, 'virt_domain_read_timeouts_total', { domain: STUCK }) ?? -1;
          assert.ok(timeouts > lastTimeouts, `read timeouts of ${STUCK} rise: ${lastTimeouts} -> ${timeouts}`);
          lastTimeouts = timeouts;
          assert.equal(get(samples, 'virt_domain_read_timeouts_total', { domain: 'stuck-a' }), 0);
        }
      } finally {
        process.kill(qemu, 'SIGCONT');
      }
      assertWhole(timedScrape(exporter.url).samples, 'the first scrape after SIGCONT');
      const fdsAfter = [await fds(exporterPid), await fds(qemudPid)];
      assert.ok(fdsAfter.every((n, i) => n <= (fdsBefore[i] ?? 0)), `file descriptors of the exporter and virt-qemud: ${fdsBefore.join(', ')} before, ${fdsAfter.join(', ')} after`);
    });

    void it('virt-qemud stopped with SIGSTOP: scrapes still answer within the deadline and say the domains are unknown, not zero', async () => {
      assertWhole(timedScrape(exporter.url).samples, 'before SIGSTOP');
      const exporterPid = exporter.child.pid as number;
      const fdsBefore = await fds(exporterPid);
      const qemud = daemonPid(sb.runtimeDir) as number;
      process.kill(qemud, 'SIGSTOP');
      try {
        for (let i = 0; i < 2; i++) {
          const { ms, samples } = timedScrape(exporter.url);
          assert.ok(ms <= deadlineMs + SLACK_MS, `scrape ${i} took ${ms} ms with a ${deadlineMs} ms deadline`);
          assert.equal(get(samples, 'virt_up', { driver: 'qemu' }), 0);
          assert.equal(get(samples, 'virt_collector_success', { collector: 'domain' }), 0);
          assert.equal(get(samples, 'virt_domains'), undefined, 'no confident virt_domains 0 while the list is unknown');
          assert.ok((get(samples, 'virt_collection_errors_total', { collector: 'domain', code: 'VIRT_ERR_OPERATION_TIMEOUT' }) ?? 0) >= 1);
        }
      } finally {
        process.kill(qemud, 'SIGCONT');
      }
      await waitFor(() => get(timedScrape(exporter.url).samples, 'virt_up', { driver: 'qemu' }) === 1, 10_000, 'virt-qemud to answer again');
      assertWhole(timedScrape(exporter.url).samples, 'after SIGCONT');
      const fdsAfter = await fds(exporterPid);
      assert.ok(fdsAfter <= fdsBefore, `file descriptors of the exporter: ${fdsBefore} before, ${fdsAfter} after`);
    });
  });
}

void describe('a domain that vanished', { timeout: 60_000 }, () => {
  void it('is gone from the very next scrape, timeout counter included', async () => {
    const exporter = await startExporter(['--connect', 'qemu:///session', '--collect.timeout=2s'], sb.env);
    try {
      assertWhole(timedScrape(exporter.url).samples, 'before');
      const qemu = pidOf('stuck-c');
      await conn.destroy('stuck-c');
      await conn.undefine('stuck-c');
      const { samples } = timedScrape(exporter.url);
      assert.equal(get(samples, 'virt_domains'), DOMAINS.length - 1);
      assert.ok(!samples.some((s) => s.labels['domain'] === 'stuck-c'), 'no series of stuck-c remains');
      killPid(qemu);
    } finally {
      await exporter.stop();
    }
  });
});
