import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type DataPoint, type MetricData } from '@opentelemetry/sdk-metrics';
import { COLLECTORS, METRICS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import type { Snapshot } from '../../src/collectors/snapshot.ts';
import { SnapshotMetricProducer } from '../../src/telemetry/producer.ts';
import { open, type Connection } from '../../src/virt/connection.ts';

const ALL = new Set<CollectorName>(COLLECTORS);
const ms = (t: readonly [number, number]): number => t[0] * 1000 + t[1] / 1e6;

function points(data: MetricData[], name: string, attrs: Record<string, string> = {}): DataPoint<number>[] {
  const m = data.find((d) => d.descriptor.name === name);
  if (m === undefined || (m.dataPointType !== DataPointType.SUM && m.dataPointType !== DataPointType.GAUGE)) return [];
  return m.dataPoints.filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
}

void describe('SnapshotMetricProducer', () => {
  let conn: Connection;
  let snap: Snapshot;
  before(async () => {
    conn = await open('test:///default', { readOnly: true });
    snap = await new Collection(conn, { collectors: ALL, timeoutMs: 5000 }).collect();
    // These cases give (or withhold) start times themselves: drop the ones the test driver knows.
    snap = { ...snap, domains: snap.domains.map((d) => ({ ...d, info: { ...d.info, startTimeSeconds: undefined } })) };
  });
  after(() => conn.close());

  const producer = (clock: { now: number }, delta = false) =>
    new SnapshotMetricProducer({
      collection: { collect: () => Promise.resolve(snap), errorCounts: new Map([['block\0VIRT_ERR_X', 2]]) },
      collectors: ALL,
      version: 'x',
      scope: { name: 'virt-exporter', version: 'x' },
      processStartMs: 1_000_000,
      now: () => clock.now,
      temporality: () => (delta ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE),
    });

  void it("starts counters at the domain's start and the device's attach time when the driver reports them", () => {
    const running = snap.domains.find((d) => d.info.state === 'running' && (d.block?.length ?? 0) >= 2);
    assert.ok(running !== undefined, 'a running domain with two disks on the test host');
    const clock = { now: 2_000_000_000_000 };
    const domainStart = clock.now / 1000 - 3600;
    const attach = clock.now / 1000 - 60;
    const [d0, d1] = running.block as [NonNullable<typeof running.block>[number], NonNullable<typeof running.block>[number]];
    const withStarts: Snapshot = {
      ...snap,
      domains: snap.domains.map((d) => (d === running ? { ...d, info: { ...d.info, startTimeSeconds: domainStart }, block: [{ ...d0, attachTimeSeconds: attach }, d1, ...(d.block ?? []).slice(2)] } : d)),
    };
    const p = producer(clock);
    const data = p.toMetricData(withStarts);
    const id = { 'vm.id': running.info.uuid };
    assert.equal(ms(points(data, METRICS.cpuTime.otel.name, id)[0]?.startTime ?? [0, 0]), domainStart * 1000);
    assert.equal(ms(points(data, 'virt.domain.disk.io', { ...id, 'system.device': d0.device, 'disk.io.direction': 'read' })[0]?.startTime ?? [0, 0]), attach * 1000);
    assert.equal(ms(points(data, 'virt.domain.disk.io', { ...id, 'system.device': d1.device, 'disk.io.direction': 'read' })[0]?.startTime ?? [0, 0]), domainStart * 1000);
    // The exporter's own counters start with the process; a domain the driver gives no start starts now.
    assert.equal(ms(points(data, METRICS.collectionErrors.otel.name)[0]?.startTime ?? [0, 0]), 1_000_000);
    const other = snap.domains.find((d) => d !== running && d.info.state === 'running');
    assert.ok(other !== undefined);
    assert.equal(ms(points(data, METRICS.cpuTime.otel.name, { 'vm.id': other.info.uuid })[0]?.startTime ?? [0, 0]), clock.now);

    // Delta: a first observation with a known start is the increase since that start.
    const dp = producer({ now: clock.now }, true).toMetricData(withStarts);
    const first = points(dp, METRICS.cpuTime.otel.name, id)[0];
    assert.equal(first?.value, running.info.cpuTimeSeconds);
    assert.equal(points(dp, METRICS.cpuTime.otel.name, { 'vm.id': other.info.uuid }).length, 0, 'unknown start: no delta yet');
  });

  void it('treats a counter that goes down as reset: new start at the previous observation; delta sends the value since the reset', () => {
    const clock = { now: 2_000_000_000_000 };
    const running = snap.domains.find((d) => d.info.state === 'running');
    assert.ok(running !== undefined);
    const at = (cpu: number): Snapshot => ({ ...snap, domains: snap.domains.map((d) => (d === running ? { ...d, info: { ...d.info, cpuTimeSeconds: cpu } } : d)) });
    const id = { 'vm.id': running.info.uuid };
    for (const delta of [false, true]) {
      const p = producer(clock, delta);
      clock.now = 2_000_000_000_000;
      p.toMetricData(at(100));
      clock.now += 10_000;
      const a = points(p.toMetricData(at(150)), METRICS.cpuTime.otel.name, id)[0];
      clock.now += 10_000;
      const b = points(p.toMetricData(at(7)), METRICS.cpuTime.otel.name, id)[0];
      clock.now += 10_000;
      const c = points(p.toMetricData(at(9)), METRICS.cpuTime.otel.name, id)[0];
      if (delta) {
        assert.deepEqual([a?.value, b?.value, c?.value], [50, 7, 2]);
        assert.equal(ms(b?.startTime ?? [0, 0]), 2_000_000_010_000);
      } else {
        assert.deepEqual([a?.value, b?.value, c?.value], [150, 7, 9]);
        assert.equal(ms(a?.startTime ?? [0, 0]), 2_000_000_000_000, 'the first observation');
        assert.equal(ms(b?.startTime ?? [0, 0]), 2_000_000_010_000, 'reset: starts again at the previous observation');
        assert.equal(ms(c?.startTime ?? [0, 0]), 2_000_000_010_000);
      }
    }
  });

  void it('sends virt.domain.info with configured metadata labels too (a variant of the catalogue spec)', () => {
    const labelled: Snapshot = { ...snap, domains: snap.domains.map((d) => ({ ...d, info: { ...d.info, labels: { project_id: `p-${d.info.name}`, flavor: 'm1.small' } } })) };
    const data = producer({ now: 2_000_000_000_000 }).toMetricData(labelled);
    const info = points(data, METRICS.domainInfo.otel.name);
    assert.equal(info.length, snap.domains.length);
    const first = snap.domains[0];
    assert.ok(first !== undefined);
    assert.ok(info.some((p) => p.attributes['vm.id'] === first.info.uuid && p.attributes['project_id'] === `p-${first.info.name}` && p.attributes['flavor'] === 'm1.small'), JSON.stringify(info[0]?.attributes));
  });

  void it('remembers only the series of the latest snapshot, and sends counts as integers', () => {
    const clock = { now: 2_000_000_000_000 };
    const p = producer(clock);
    const data = p.toMetricData(snap);
    const all = p.seriesCount;
    assert.ok(all > 0);
    p.toMetricData({ ...snap, domains: [] });
    assert.ok(p.seriesCount < all && p.seriesCount <= 5, `${p.seriesCount} series left with no domains`);
    for (const m of data) assert.equal(m.descriptor.valueType === ValueType.DOUBLE, ['s', 'Hz'].includes(m.descriptor.unit), `${m.descriptor.name} (${m.descriptor.unit})`);
  });
});
