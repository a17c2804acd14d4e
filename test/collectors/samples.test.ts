import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLLECTORS, METRIC_LIST, METRICS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { COLLECTOR_DEFS, defaultOn } from '../../src/collectors/index.ts';
import { groupsOf, registerCollector } from '../../src/collectors/registry.ts';
import { collectSamples } from '../../src/collectors/samples.ts';
import type { Driver } from '../../src/drivers/driver.ts';
import { STATS_GROUPS, type StatsGroup } from '../../src/drivers/types.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import { renderExposition } from '../../src/http/exposition.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { parseMetrics } from '../helpers/exporter.ts';

const ALL = new Set<CollectorName>(COLLECTORS);

function collection(collectors: ReadonlySet<CollectorName>, driver?: Driver): Collection {
  const d = driver ?? createTestDriver(new TestHost(structuredClone(DEFAULT_HOST)));
  return new Collection(connectionFor(parseUri('test:///default'), d, true), { collectors, timeoutMs: 5000 });
}

const key = (name: string, labels: Record<string, string>): string => `${name}${JSON.stringify(Object.entries(labels).sort())}`;

void describe('collector registry', () => {
  void it('every catalogue collector registered itself once, in catalogue order, with the stats groups it reads', () => {
    assert.deepEqual(
      COLLECTOR_DEFS.map((d) => d.name),
      [...COLLECTORS],
    );
    for (const d of COLLECTOR_DEFS) {
      for (const g of groupsOf(d)) assert.ok((STATS_GROUPS as readonly StatsGroup[]).includes(g), `${d.name} reads a known group (${g})`);
      assert.equal(defaultOn(d.name), d.defaultOn);
    }
    assert.deepEqual(groupsOf(COLLECTOR_DEFS.find((d) => d.name === 'network')!), ['net']);
    assert.equal(COLLECTOR_DEFS.find((d) => d.name === 'host')?.reads, 'host');
    for (const m of METRIC_LIST) assert.ok(m.collector === 'exporter' || COLLECTOR_DEFS.some((d) => d.name === m.collector), `${m.name}'s collector ${m.collector} is registered`);
  });

  void it('refuses a second registration of a name and a name the catalogue does not know', () => {
    assert.throws(() => registerCollector({ name: 'cpu', reads: { domains: ['cpu'] }, defaultOn: true, collect: () => undefined }), /twice/);
    assert.throws(() => registerCollector({ name: 'gpu' as CollectorName, reads: { domains: [] }, defaultOn: false, collect: () => undefined }), /catalogue/);
  });
});

void describe('one samples path', () => {
  void it('/metrics renders exactly the samples collectSamples gives (the OTLP producer reads the same path)', async () => {
    const c = collection(ALL);
    const snap = await c.collect();
    const samples = new Map<string, number>();
    collectSamples(snap, (metric, labels, value) => {
      samples.set(key(metric.name, Object.fromEntries(metric.labels.map((l, i) => [l, labels[i] ?? '']))), value);
    });
    const rendered = parseMetrics(await renderExposition(snap, undefined, {}, undefined, 'text'));
    assert.equal(rendered.length, samples.size);
    for (const s of rendered) assert.equal(samples.get(key(s.name, s.labels)), s.value, `${s.name} ${JSON.stringify(s.labels)}`);
  });

  void it('the snapshot carries its enabled collectors and the error counts as of its collection', async () => {
    const host = new TestHost(structuredClone(DEFAULT_HOST));
    const failing: Driver = { ...createTestDriver(host), hostInfo: () => Promise.reject(Object.assign(new Error('boom'), { code: 'VIRT_ERR_OPERATION_FAILED' })) };
    const enabled = new Set<CollectorName>(['domain', 'host']);
    const c = collection(enabled, failing);
    const first = await c.collect();
    const second = await c.collect();
    assert.equal(first.collectors, enabled);
    assert.deepEqual([...(first.errorCounts ?? [])], [['host\0VIRT_ERR_OPERATION_FAILED', 1]]);
    assert.deepEqual([...(second.errorCounts ?? [])], [['host\0VIRT_ERR_OPERATION_FAILED', 2]]);
    // Rendered without any state from outside: the counts come from the snapshot.
    const text = await renderExposition(first, undefined, {}, undefined, 'text');
    assert.match(text, /^virt_collection_errors_total\{collector="host",code="VIRT_ERR_OPERATION_FAILED"\} 1$/m);
    assert.doesNotMatch(text, /^virt_domain_cpu_time_seconds_total/m, 'only the enabled collectors');
  });

  const READ_MS = 400;
  void it("per-collector duration is what the collector cost, not the shared read's duration copied to each", async () => {
    // A bulk read that takes a while: shared by the domain collectors, it is the collection's cost.
    const host = new TestHost(structuredClone(DEFAULT_HOST));
    const base = createTestDriver(host);
    const read = base.allDomainStats?.bind(base);
    assert.ok(read !== undefined, 'the test driver has a bulk read');
    const slow: Driver = {
      ...base,
      allDomainStats: async (o) => {
        await new Promise((r) => setTimeout(r, READ_MS));
        return read(o);
      },
    };
    const durations = async (enabled: ReadonlySet<CollectorName>): Promise<Map<string, number>> => {
      const snap = await collection(enabled, slow).collect();
      const out = new Map<string, number>();
      collectSamples(snap, (metric, labels, value) => {
        if (metric === METRICS.collectorDuration) out.set(labels[0] ?? '', value);
      });
      assert.ok(snap.durationSeconds >= (READ_MS * 0.9) / 1000, 'the collection took the read');
      return out;
    };
    const shared = await durations(ALL);
    for (const c of ['domain', 'cpu', 'vcpu', 'memory', 'block', 'network']) {
      const v = shared.get(c);
      // Half the read: a collector's own work is far below it, even on a loaded CI machine.
      assert.ok(v !== undefined && v >= 0 && v < READ_MS / 2000, `${c}: ${String(v)} s, its own work only`);
    }
    // The only collector on the bulk read: the read is its cost.
    const alone = await durations(new Set<CollectorName>(['cpu']));
    // Within 10 %: a timer is armed from libuv's cached loop time, so it can fire a little before
    // READ_MS by performance.now() (399.9 ms was seen in CI).
    assert.ok((alone.get('cpu') ?? 0) >= (READ_MS * 0.9) / 1000, `cpu alone: ${String(alone.get('cpu'))} s`);
  });
});
