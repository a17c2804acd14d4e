// A scrape of qemu:///session with two running real QEMU domains: it passes
// promtool, its CPU seconds agree with /proc for each QEMU process, maximum
// memory is the definition's; and it survives a SIGKILL of virt-qemud.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuSeconds, readProcStat } from '../../src/qemud/proc.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { parseMetrics, scrape, startExporter, type ParsedSample, type StartedExporter } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';
import { alive, killDaemon, requireBinaries, sandbox, waitFor, type Sandbox } from './helpers.ts';

let sb: Sandbox;
let conn: Connection;
let exporter: StartedExporter | undefined;
const DOMAINS = [
  { name: 'scrape-a', memoryMiB: 80, vcpus: 2 },
  { name: 'scrape-b', memoryMiB: 112, vcpus: 1 },
];

function pidOf(name: string): number {
  return (JSON.parse(readFileSync(join(sb.runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

function procCpu(pid: number): number {
  const s = readProcStat(pid);
  assert.ok(s !== null, `QEMU pid ${pid} has no /proc entry`);
  return cpuSeconds(s);
}

function value(samples: ParsedSample[], name: string, domain: string): number {
  const s = samples.find((x) => x.name === name && x.labels['domain'] === domain);
  assert.ok(s !== undefined, `no ${name} for ${domain}`);
  return s.value;
}

before(async () => {
  requireBinaries('qemu-system-x86_64', 'promtool');
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  conn = await open('qemu:///session', { readOnly: false });
  for (const d of DOMAINS) {
    await conn.define(d);
    await conn.start(d.name);
  }
  exporter = await startExporter(['--connect', 'qemu:///session'], sb.env);
});

after(async () => {
  await exporter?.stop();
  await conn.close();
  await sb.cleanup();
});

void describe('scraping qemu:///session with two running domains', { timeout: 120_000 }, () => {
  void it('passes promtool check metrics', async () => {
    await promtoolCheck(await scrape(exporter?.url ?? ''));
  });

  void it('reports CPU seconds within 10% of /proc for each QEMU process at the same moment, and the defined maximum memory', async () => {
    // Let the domains accrue some CPU time so 10% is more than a clock tick.
    await waitFor(() => DOMAINS.every((d) => procCpu(pidOf(d.name)) >= 0.3), 30_000, 'the domains to use 0.3 s of CPU');
    const before = new Map(DOMAINS.map((d) => [d.name, procCpu(pidOf(d.name))]));
    const text = await scrape(exporter?.url ?? '');
    const afterCpu = new Map(DOMAINS.map((d) => [d.name, procCpu(pidOf(d.name))]));
    const samples = parseMetrics(text);
    for (const d of DOMAINS) {
      const cpu = value(samples, 'virt_domain_cpu_time_seconds_total', d.name);
      const lo = (before.get(d.name) ?? 0) * 0.9;
      const hi = (afterCpu.get(d.name) ?? 0) * 1.1;
      assert.ok(cpu >= lo && cpu <= hi, `${d.name}: scraped CPU ${cpu} s, /proc said ${before.get(d.name)}..${afterCpu.get(d.name)} s`);
      assert.equal(value(samples, 'virt_domain_memory_maximum_bytes', d.name), d.memoryMiB * 1024 * 1024);
      assert.equal(value(samples, 'virt_domain_vcpus', d.name), d.vcpus);
      // Steal time per vCPU, from each vCPU thread's schedstat.
      const delays = samples.filter((x) => x.name === 'virt_domain_vcpu_delay_seconds_total' && x.labels['domain'] === d.name);
      assert.equal(delays.length, d.vcpus);
      assert.ok(delays.every((x) => x.value >= 0 && x.value <= (afterCpu.get(d.name) ?? 0) + 60), JSON.stringify(delays));
      const running = samples.find((x) => x.name === 'virt_domain_state' && x.labels['domain'] === d.name && x.labels['state'] === 'running');
      assert.equal(running?.value, 1);
    }
    assert.equal(samples.find((x) => x.name === 'virt_up')?.value, 1);
  });

  void it('after SIGKILL of virt-qemud the next scrape still has both domains, same pids', async () => {
    const pids = DOMAINS.map((d) => pidOf(d.name));
    const old = killDaemon(sb.runtimeDir);
    assert.ok(old !== undefined);
    await waitFor(() => !alive(old), 5000, 'virt-qemud to die');
    // The exporter's read-only connection restarts the supervisor, which re-attaches.
    let samples: ParsedSample[] = [];
    await waitFor(
      async () => {
        samples = parseMetrics(await scrape(exporter?.url ?? ''));
        return DOMAINS.every((d) => samples.some((x) => x.name === 'virt_domain_cpu_time_seconds_total' && x.labels['domain'] === d.name));
      },
      20_000,
      'a scrape with both domains',
    );
    assert.deepEqual(DOMAINS.map((d) => pidOf(d.name)), pids);
    assert.ok(pids.every(alive));
    for (const d of DOMAINS) {
      const running = samples.find((x) => x.name === 'virt_domain_state' && x.labels['domain'] === d.name && x.labels['state'] === 'running');
      assert.equal(running?.value, 1);
    }
  });
});
