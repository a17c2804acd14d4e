import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { COLLECTORS, METRIC_LIST, type CollectorName, type MetricSpec } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import type { Snapshot } from '../../src/collectors/snapshot.ts';
import { renderExposition } from '../../src/http/exposition.ts';
import { startOtlpPush } from '../../src/telemetry/otlp.ts';
import { createLogger } from '../../src/util/logger.ts';
import type { Driver } from '../../src/drivers/driver.ts';
import { connectionFor, open, type Connection } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { parseMetrics } from '../helpers/exporter.ts';
import { startReceiver, type OtlpPoint, type OtlpRequest, type Receiver } from './receiver.ts';

/**
 * The attribute names the push must use for each Prometheus label: the
 * documented mapping (docs/opentelemetry.md), restated here on purpose.
 */
const EXPECTED_ATTRIBUTE = (label: string): string =>
  ({
    domain: 'vm.name',
    uuid: 'vm.id',
    device: 'system.device',
    interface: 'network.interface.name',
    path: 'file.path',
    hostname: 'host.name',
    code: 'error.type',
    nodejs: 'process.runtime.version',
  })[label] ?? label;

const ALL = new Set<CollectorName>(COLLECTORS);

/** A Collection stand-in that records every snapshot handed out (and lets a test rewrite it). */
function recording(real: Collection, rewrite: (s: Snapshot, n: number) => Snapshot = (s) => s) {
  const snapshots: Snapshot[] = [];
  return {
    snapshots,
    collect: async (): Promise<Snapshot> => {
      const s = rewrite(await real.collect(), snapshots.length);
      snapshots.push(s);
      return s;
    },
    get errorCounts() {
      return real.errorCounts;
    },
  };
}

function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

function attrKey(name: string, attrs: Record<string, string>): string {
  return `${name}${JSON.stringify(Object.entries(attrs).sort(([a], [b]) => a.localeCompare(b)))}`;
}

/** Every catalogue sample of a Prometheus render of `snapshot`, keyed as the OTLP point it must become. */
async function expectedPoints(snapshot: Snapshot, collectors: ReadonlySet<CollectorName>, errorCounts: ReadonlyMap<string, number>, version: string) {
  const text = await renderExposition(snapshot, collectors, { version, errorCounts }, undefined, 'text');
  const byName = new Map<string, MetricSpec>(METRIC_LIST.map((m) => [m.name, m]));
  const out = new Map<string, { spec: MetricSpec; value: number; labels: Record<string, string> }>();
  for (const s of parseMetrics(text)) {
    const spec = byName.get(s.name);
    assert.ok(spec !== undefined, `render has ${s.name}, which is not in the catalogue`);
    const attrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.labels)) attrs[EXPECTED_ATTRIBUTE(k)] = v;
    out.set(attrKey(spec.otel.name, attrs), { spec, value: s.value, labels: s.labels });
  }
  return out;
}

function assertMatchesRender(req: OtlpRequest, expected: Awaited<ReturnType<typeof expectedPoints>>): void {
  const seen = new Set<string>();
  for (const p of req.points) {
    const key = attrKey(p.metric, p.attributes);
    const e = expected.get(key);
    assert.ok(e !== undefined, `pushed point ${key} has no counterpart in the Prometheus render`);
    assert.ok(!seen.has(key), `pushed point ${key} twice`);
    seen.add(key);
    assert.equal(p.unit, e.spec.otel.unit, `unit of ${p.metric}`);
    assert.equal(p.kind, e.spec.type === 'counter' ? 'sum' : 'gauge', `kind of ${p.metric}`);
    if (p.kind === 'sum') {
      assert.equal(p.monotonic, true, `${p.metric} is monotonic`);
      assert.equal(p.temporality, 2, `${p.metric} is cumulative`);
    }
    const tolerance = Math.max(1e-9, Math.abs(e.value) * 1e-12);
    assert.ok(Math.abs(p.value - e.value) <= tolerance, `${key}: pushed ${p.value}, rendered ${e.value}`);
  }
  const missing = [...expected.keys()].filter((k) => !seen.has(k));
  assert.deepEqual(missing, [], 'every rendered sample was pushed');
}

const pointsOf = (req: OtlpRequest, metric: string): OtlpPoint[] => req.points.filter((p) => p.metric === metric);

async function refusedUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return `http://127.0.0.1:${port}/v1/metrics`;
}

void describe('OTLP push (startOtlpPush)', () => {
  let conn: Connection;
  let receiver: Receiver;
  before(async () => {
    conn = await open('test:///default', { readOnly: true });
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await conn.close();
  });

  void it('is off (undefined) when no endpoint is configured', async () => {
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const push = await startOtlpPush({ settings: {}, collection, collectors: ALL, logger: memoryLogger().logger, version: '1.2.3' });
    assert.equal(push, undefined);
  });

  void it('pushes the catalogue names, units, attributes and values of one snapshot per cycle', async () => {
    receiver.requests.length = 0;
    const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const collection = recording(real);
    const push = await startOtlpPush({
      settings: {
        'telemetry.otlp-endpoint': receiver.url,
        'telemetry.otlp-interval': '400ms',
        'telemetry.otlp-headers': 'x-api-key=s3cr%20et,x-tenant=a',
        'telemetry.resource-attributes': 'deployment.environment=test',
      },
      collection,
      collectors: ALL,
      logger: memoryLogger().logger,
      version: '1.2.3',
    });
    assert.ok(push !== undefined);
    await receiver.waitFor(2);
    await push.close();
    const requests = [...receiver.requests];
    // One collection per export cycle, the final flush on close included.
    assert.equal(collection.snapshots.length, requests.length, 'one snapshot read per push');
    assert.ok(requests.length >= 3);

    const first = requests[0] as OtlpRequest;
    assert.equal(first.headers['x-api-key'], 's3cr et');
    assert.equal(first.headers['x-tenant'], 'a');
    assert.equal(first.resource['service.name'], 'virt-exporter');
    assert.equal(first.resource['service.version'], '1.2.3');
    assert.equal(first.resource['host.name'], hostname());
    assert.equal(first.resource['deployment.environment'], 'test');
    assert.deepEqual(first.scopes, ['virt-exporter']);

    for (const [i, req] of requests.entries()) {
      const snap = collection.snapshots[i] as Snapshot;
      assertMatchesRender(req, await expectedPoints(snap, ALL, real.errorCounts, '1.2.3'));
    }

    // Same domains as the Prometheus view, under vm.name / vm.id.
    const snap0 = collection.snapshots[0] as Snapshot;
    const names = new Set(pointsOf(first, 'virt.domain.info').map((p) => p.attributes['vm.name']));
    assert.deepEqual(names, new Set(snap0.domains.map((d) => d.info.name)));
    assert.ok(names.size >= 2, 'the test host has several domains');
    for (const p of pointsOf(first, 'virt.domain.cpu.time')) assert.deepEqual(Object.keys(p.attributes).sort(), ['vm.id', 'vm.name']);

    // Cumulative counters never go down between pushes; running domains' CPU time grows.
    const last = requests[requests.length - 1] as OtlpRequest;
    let grew = 0;
    for (const p of last.points.filter((x) => x.kind === 'sum')) {
      const before = first.points.find((q) => q.metric === p.metric && attrKey(q.metric, q.attributes) === attrKey(p.metric, p.attributes));
      if (before === undefined) continue;
      assert.ok(p.value >= before.value, `${p.metric} ${JSON.stringify(p.attributes)} went down: ${before.value} -> ${p.value}`);
      if (p.metric === 'virt.domain.cpu.time' && p.value > before.value) grew++;
    }
    assert.ok(grew >= 1, 'CPU time of a running domain advanced between pushes');
  });

  void it('pushes only the enabled collectors and drops series of domains that vanished', async () => {
    receiver.requests.length = 0;
    const only = new Set<CollectorName>(['domain', 'cpu']);
    const real = new Collection(conn, { collectors: only, timeoutMs: 5000 });
    // From the second read on, the first domain is gone.
    const collection = recording(real, (s, n) => (n === 0 ? s : { ...s, domains: s.domains.slice(1) }));
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '300ms' },
      collection,
      collectors: only,
      logger: memoryLogger().logger,
      version: 'x',
    });
    assert.ok(push !== undefined);
    await receiver.waitFor(2);
    await push.close();
    const [first, second] = receiver.requests as [OtlpRequest, OtlpRequest];
    const metrics = new Set(first.points.map((p) => p.metric));
    assert.ok(metrics.has('virt.domain.state') && metrics.has('virt.domain.cpu.time') && metrics.has('virt.up'));
    for (const m of metrics) {
      const spec = METRIC_LIST.find((s) => s.otel.name === m);
      assert.ok(spec !== undefined && (spec.collector === 'exporter' || only.has(spec.collector)), `${m} comes from an enabled collector`);
    }
    const gone = (collection.snapshots[0] as Snapshot).domains[0]?.info.name;
    assert.ok(gone !== undefined);
    assert.ok(pointsOf(first, 'virt.domain.info').some((p) => p.attributes['vm.name'] === gone));
    assert.ok(!second.points.some((p) => p.attributes['vm.name'] === gone), `series of vanished domain ${gone} are not pushed again`);
    assert.equal(pointsOf(second, 'virt.domains')[0]?.value, (collection.snapshots[1] as Snapshot).domains.length);
  });

  void it('rebuilds its SDK state when vanished series pile up, without losing or repeating data', async () => {
    receiver.requests.length = 0;
    const { logger, lines } = memoryLogger();
    const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    // Every read, every domain is a new one (as on a host that churns through short-lived VMs).
    const collection = recording(real, (s, n) => ({
      ...s,
      domains: s.domains.map((d) => ({ ...d, info: { ...d.info, name: `${d.info.name}-gen${n}`, uuid: `${d.info.uuid.slice(0, -4)}${String(n).padStart(4, '0')}` } })),
    }));
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '200ms' },
      collection,
      collectors: ALL,
      logger,
      version: 'x',
      churnLimit: 50,
    });
    assert.ok(push !== undefined);
    const t0 = Date.now();
    while (!lines.some((l) => l.msg === 'OTLP pipeline rebuilt to forget vanished series') && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    const atRebuild = receiver.requests.length;
    await receiver.waitFor(atRebuild + 2);
    await push.close();
    assert.ok(lines.some((l) => l.msg === 'OTLP pipeline rebuilt to forget vanished series'), 'the pipeline was rebuilt');
    // The retired pipeline pushes nothing more; every push carries exactly the domains of its own read.
    assert.equal(receiver.requests.length, collection.snapshots.length);
    for (const [i, req] of receiver.requests.entries()) {
      const names = new Set(pointsOf(req, 'virt.domain.info').map((p) => p.attributes['vm.name']));
      assert.deepEqual(names, new Set((collection.snapshots[i] as Snapshot).domains.map((d) => d.info.name)), `push ${i}`);
      assert.equal(pointsOf(req, 'virt.up').length, 1, `push ${i} has one virt.up`);
    }
  });

  void it('logs a failing observation once and pushes nothing stale for that cycle', async () => {
    receiver.requests.length = 0;
    const { logger, lines } = memoryLogger();
    const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const good: Snapshot[] = [];
    let calls = 0;
    const collection = {
      collect: async (): Promise<Snapshot> => {
        const n = calls++;
        if (n === 1 || n === 2) throw new Error('collector bug');
        const s = await real.collect();
        good.push(s);
        return s;
      },
      get errorCounts() {
        return real.errorCounts;
      },
    };
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '200ms' },
      collection,
      collectors: ALL,
      logger,
      version: 'x',
    });
    assert.ok(push !== undefined);
    await receiver.waitFor(2);
    await push.close();
    assert.ok(calls >= 4);
    assert.equal(receiver.requests.length, good.length, 'no push for the failed observations');
    const errors = lines.filter((l) => l.msg === 'OTLP observation failed');
    assert.deepEqual(errors.map((l) => l.level), ['error', 'debug']);
    assert.equal(errors[0]?.err, 'collector bug');
  });

  void it('shares the in-flight collection with concurrent Prometheus reads', async () => {
    receiver.requests.length = 0;
    // The test host answers at once; a slow bulk read (as on a busy hypervisor) makes reads overlap.
    let bulkReads = 0;
    const slowDriver = {
      name: 'slow-test',
      hostInfo: (o?: Parameters<Connection['hostInfo']>[0]) => conn.hostInfo(o),
      allDomainStats: async (o: Parameters<Connection['allDomainStats']>[0]) => {
        bulkReads++;
        await new Promise((r) => setTimeout(r, 150));
        return conn.allDomainStats(o);
      },
    } as unknown as Driver;
    const collection = new Collection(connectionFor(parseUri('test:///default'), slowDriver, true), { collectors: ALL, timeoutMs: 5000 });
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '200ms' },
      collection,
      collectors: ALL,
      logger: memoryLogger().logger,
      version: 'x',
    });
    assert.ok(push !== undefined);
    // Scrapes arrive back to back while pushes run.
    let scrapes = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 1200) {
      await collection.collect();
      scrapes++;
    }
    await push.close();
    assert.ok(receiver.requests.length >= 3, `got ${receiver.requests.length} pushes`);
    // Every push found a scrape's read in flight (the loop leaves no gap), so it added no bulk read of its own.
    assert.ok(bulkReads <= scrapes + 1, `${bulkReads} bulk reads for ${scrapes} scrapes and ${receiver.requests.length} pushes`);
  });

  void it('survives an endpoint that refuses connections, logging with backoff, and keeps collecting', async () => {
    const { logger, lines } = memoryLogger();
    const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const collection = recording(real);
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': await refusedUrl(), 'telemetry.otlp-interval': '200ms', 'telemetry.otlp-timeout': '200ms' },
      collection,
      collectors: ALL,
      logger,
      version: 'x',
    });
    assert.ok(push !== undefined);
    const t0 = Date.now();
    while (collection.snapshots.length < 4 && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 100));
    // Prometheus' side is untouched.
    const snap = await real.collect();
    assert.equal(snap.up, true);
    await push.close();
    assert.ok(collection.snapshots.length >= 4, `pushes were attempted (${collection.snapshots.length})`);
    const failures = lines.filter((l) => l.msg === 'OTLP push failed');
    assert.equal(failures.length, 1, `one warning for ${collection.snapshots.length} failed pushes: ${JSON.stringify(failures)}`);
    assert.equal(failures[0]?.level, 'warn');
  });

  void it('logs a rejecting endpoint once, then its recovery, never the header values', async () => {
    const flaky = await startReceiver(503);
    const { logger, lines } = memoryLogger();
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': flaky.url, 'telemetry.otlp-interval': '200ms', 'telemetry.otlp-timeout': '150ms', 'telemetry.otlp-headers': 'authorization=Bearer%20s3cr' },
      collection,
      collectors: ALL,
      logger,
      version: 'x',
    });
    assert.ok(push !== undefined);
    try {
      const t0 = Date.now();
      while (!lines.some((l) => l.msg === 'OTLP push failed') && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
      await flaky.waitFor(3);
      flaky.setStatus(200);
      const t1 = Date.now();
      while (!lines.some((l) => l.msg === 'OTLP push recovered') && Date.now() - t1 < 15_000) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await push.close();
      await flaky.close();
    }
    assert.equal(lines.filter((l) => l.msg === 'OTLP push failed').length, 1, 'a 503 answer is logged once');
    assert.equal(lines.filter((l) => l.msg === 'OTLP push recovered').length, 1, 'recovery is logged');
    assert.equal(flaky.requests[0]?.headers.authorization, 'Bearer s3cr');
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('s3cr')), 'no header value is ever logged');
  });

  void it('refuses bad settings with VIRT_ERR_CONFIG naming the value', async () => {
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const base = { collection, collectors: ALL, logger: memoryLogger().logger, version: 'x' };
    const bad: Array<[Record<string, string>, string]> = [
      [{ 'telemetry.otlp-endpoint': 'collector:4318' }, 'collector:4318'],
      [{ 'telemetry.otlp-endpoint': 'ftp://collector/v1/metrics' }, 'ftp://collector/v1/metrics'],
      [{ 'telemetry.otlp-endpoint': 'not a url' }, 'not a url'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-interval': 'soon' }, 'soon'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-timeout': '-1s' }, '-1s'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.resource-attributes': 'novalue' }, 'novalue'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-headers': 'bad header=1' }, 'bad header'],
    ];
    for (const [settings, named] of bad) {
      await assert.rejects(startOtlpPush({ ...base, settings }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'VIRT_ERR_CONFIG', JSON.stringify(settings));
        assert.ok(err.message.includes(named), `message ${err.message} names ${named}`);
        return true;
      });
    }
    // Header values are sensitive: a malformed one is refused without being echoed.
    for (const headers of ['authorization:Bearer%20hunter2', 'x=1,authorization=Bearer%ZZhunter2', 'x=hunter2\u0000']) {
      await assert.rejects(startOtlpPush({ ...base, settings: { 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-headers': headers } }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'VIRT_ERR_CONFIG');
        assert.ok(!err.message.includes('hunter2'), err.message);
        return true;
      });
    }
    // A password in the URL is refused without being echoed.
    await assert.rejects(startOtlpPush({ ...base, settings: { 'telemetry.otlp-endpoint': 'http://u:hunter2@c:4318/v1/metrics' } }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'VIRT_ERR_CONFIG');
      assert.ok(!err.message.includes('hunter2'));
      return true;
    });
  });
});
