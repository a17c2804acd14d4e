import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { METRICS } from '../../src/collectors/catalogue.ts';
import { COLLECTOR_FNS } from '../../src/collectors/index.ts';
import type { Sample, Snapshot } from '../../src/collectors/snapshot.ts';
import type { BulkStats } from '../../src/drivers/types.ts';

/**
 * A bulk read recorded from a real QEMU domain through virt-qemud
 * (`virtctl --connect qemu:///session --json domstats`: 2 vCPUs, 128 MiB,
 * a qcow2 disk, a user-mode NIC, paused), only its disk path normalised.
 */
const RECORDED = JSON.parse(readFileSync(new URL('../fixtures/qemu-domstats.json', import.meta.url), 'utf8')) as BulkStats;

function snapshot(bulk: BulkStats): Snapshot {
  return { driver: 'qemu', startedAt: 0, durationSeconds: 0, up: true, host: undefined, domains: bulk.domains, parts: {} };
}

function run(name: keyof typeof COLLECTOR_FNS, snap: Snapshot): Sample[] {
  const out: Sample[] = [];
  COLLECTOR_FNS[name](snap, (metric, labels, value) => out.push({ metric, labels, value }));
  return out;
}

function find(samples: Sample[], metric: { name: string }, ...extra: string[]): number | undefined {
  return samples.find((s) => s.metric.name === metric.name && extra.every((v, i) => s.labels[2 + i] === v))?.value;
}

void describe('collectors on a recorded QEMU reading', () => {
  const snap = snapshot(RECORDED);
  const d = RECORDED.domains[0]!;

  void it('domain: info and a state set with exactly one state on', () => {
    const s = run('domain', snap);
    assert.equal(find(s, METRICS.domains), 1);
    const states = s.filter((x) => x.metric === METRICS.domainState);
    assert.equal(states.length, 8);
    assert.deepEqual(states.filter((x) => x.value === 1).map((x) => x.labels[2]), ['paused']);
    const info = s.find((x) => x.metric === METRICS.domainInfo);
    assert.deepEqual(info?.labels, ['rec-1', d.info.uuid, 'hvm', 'x86_64', 'pc']);
  });

  void it('cpu and vcpu: seconds as the driver read them, one series per vCPU', () => {
    assert.equal(find(run('cpu', snap), METRICS.cpuTime), d.info.cpuTimeSeconds);
    assert.equal(find(run('cpu', snap), METRICS.cpuSystem), d.cpu?.systemSeconds);
    const v = run('vcpu', snap);
    assert.equal(find(v, METRICS.vcpus), 2);
    assert.deepEqual(v.filter((x) => x.metric === METRICS.vcpuTime).map((x) => x.labels[2]), ['0', '1']);
  });

  void it('memory: bytes; guest figures absent (not zero) without a balloon driver', () => {
    const m = run('memory', snap);
    assert.equal(find(m, METRICS.memoryMaximum), 128 * 1024 * 1024);
    assert.equal(find(m, METRICS.memoryBalloon), 128 * 1024 * 1024);
    assert.ok((find(m, METRICS.memoryRss) ?? 0) > 0);
    assert.equal(find(m, METRICS.memoryGuestFree), undefined);
    assert.equal(find(m, METRICS.memoryGuestTotal), undefined);
  });

  void it('block: per device, keyed by its stable name, times in seconds', () => {
    const b = run('block', snap);
    assert.equal(find(b, METRICS.blockReadBytes, 'vda'), 512);
    assert.equal(find(b, METRICS.blockReadRequests, 'vda'), 1);
    assert.ok((find(b, METRICS.blockReadTime, 'vda') ?? 1) < 1, 'nanoseconds were converted');
    assert.equal(find(b, METRICS.blockCapacity, 'vda'), 64 * 1024 * 1024);
    assert.equal(b.find((x) => x.metric === METRICS.blockInfo)?.labels[3], '/var/lib/virt-exporter/images/rec-1.qcow2');
  });

  void it('network: a user-mode NIC has an info series and no counters', () => {
    const n = run('network', snap);
    assert.equal(n.filter((x) => x.metric === METRICS.netInfo).length, 1);
    assert.equal(n.filter((x) => x.metric.name.endsWith('_total')).length, 0);
  });

  void it('a tap NIC reports all eight counters; duplicate devices and a shut-off domain are handled', () => {
    const tap = structuredClone(RECORDED);
    const dom = tap.domains[0]!;
    dom.net = [{ interface: 'vnet3', counters: { rxBytes: 10, rxPackets: 1, rxErrors: 0, rxDrops: 0, txBytes: 20, txPackets: 2, txErrors: 0, txDrops: 0 } }];
    dom.block = [...(dom.block ?? []), ...(dom.block ?? [])];
    const n = run('network', snapshot(tap));
    assert.equal(n.filter((x) => x.metric.name.endsWith('_total')).length, 8);
    assert.equal(find(n, METRICS.netTxBytes, 'vnet3'), 20);
    assert.equal(run('block', snapshot(tap)).filter((x) => x.metric === METRICS.blockReadBytes).length, 1);
    dom.info.state = 'shutoff';
    assert.equal(run('cpu', snapshot(tap)).length, 0, 'no CPU counter for a shut-off domain');
  });
});
