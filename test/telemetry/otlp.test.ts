import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { COLLECTORS, METRIC_LIST, METRICS, type CollectorName, type MetricSpec } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import type { Snapshot } from '../../src/collectors/snapshot.ts';
import { renderExposition } from '../../src/http/exposition.ts';
import { startOtlpPush, type OtlpPush, type OtlpPushOptions } from '../../src/telemetry/otlp.ts';
import { createLogger } from '../../src/util/logger.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
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
const OTEL_VARS = Object.keys(process.env).filter((k) => k.startsWith('OTEL_'));
for (const k of OTEL_VARS) delete process.env[k];

/** Runs fn with these OTEL_* variables set (the SDK reads process.env), restoring them after. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  for (const [k, v] of Object.entries(vars)) process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(vars)) delete process.env[k];
  }
}

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
  const out = new Map<string, { spec: MetricSpec; value: number }>();
  for (const s of parseMetrics(text)) {
    const spec = byName.get(s.name);
    assert.ok(spec !== undefined, `render has ${s.name}, which is not in the catalogue`);
    const attrs: Record<string, string> = { ...spec.otel.attributes };
    for (const [k, v] of Object.entries(s.labels)) attrs[EXPECTED_ATTRIBUTE(k)] = v;
    out.set(attrKey(spec.otel.name, attrs), { spec, value: s.value });
  }
  return out;
}

/** Each pushed point has its rendered counterpart (same value, unit, kind, integer-ness) and none is missing. */
function assertMatchesRender(req: OtlpRequest, expected: Awaited<ReturnType<typeof expectedPoints>>, temporality = 2): void {
  const seen = new Set<string>();
  for (const p of req.points) {
    const key = attrKey(p.metric, p.attributes);
    const e = expected.get(key);
    assert.ok(e !== undefined, `pushed point ${key} has no counterpart in the Prometheus render`);
    assert.ok(!seen.has(key), `pushed point ${key} twice`);
    seen.add(key);
    assert.equal(p.unit, e.spec.otel.unit, `unit of ${p.metric}`);
    assert.equal(p.kind, e.spec.type === 'counter' ? 'sum' : 'gauge', `kind of ${p.metric}`);
    assert.equal(p.valueType, e.spec.otel.int ? 'int' : 'double', `${p.metric} is sent as ${e.spec.otel.int ? 'an integer' : 'a double'}`);
    if (p.kind === 'sum') {
      assert.equal(p.monotonic, true, `${p.metric} is monotonic`);
      assert.equal(p.temporality, temporality, `${p.metric} temporality`);
    }
    if (temporality === 2) {
      const tolerance = Math.max(1e-9, Math.abs(e.value) * 1e-12);
      assert.ok(Math.abs(p.value - e.value) <= tolerance, `${key}: pushed ${p.value}, rendered ${e.value}`);
    }
  }
  if (temporality !== 2) return;
  const missing = [...expected.keys()].filter((k) => !seen.has(k));
  assert.deepEqual(missing, [], 'every rendered sample was pushed');
}

const pointsOf = (req: OtlpRequest, metric: string): OtlpPoint[] => req.points.filter((p) => p.metric === metric);
const ms = (nanos: bigint): number => Number(nanos / 1_000_000n);

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

void describe('OpenTelemetry push (NodeSDK, MetricProducer over the shared snapshot)', () => {
  let conn: Connection;
  let receiver: Receiver;
  const pushes: OtlpPush[] = [];
  before(async () => {
    conn = await open('test:///default', { readOnly: true });
    receiver = await startReceiver();
  });
  after(async () => {
    for (const p of pushes) await p.close();
    await receiver.close();
    await conn.close();
  });

  const start = async (o: Partial<OtlpPushOptions> & Pick<OtlpPushOptions, 'settings'>): Promise<OtlpPush> => {
    const push = await startOtlpPush({
      collection: new Collection(conn, { collectors: ALL, timeoutMs: 5000 }),
      collectors: ALL,
      logger: memoryLogger().logger,
      version: '1.2.3',
      ...o,
    });
    assert.ok(push !== undefined, 'the push is on');
    pushes.push(push);
    return push;
  };
  const reset = (): void => {
    receiver.requests.length = 0;
    receiver.setStatus(200);
    receiver.setDelay(0);
  };

  void it('is off without an endpoint flag or variable, and with OTEL_SDK_DISABLED=true even with one', async () => {
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const base = { collection, collectors: ALL, logger: memoryLogger().logger, version: 'x' };
    assert.equal(await startOtlpPush({ ...base, settings: {} }), undefined);
    await withEnv({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, async () => {
      assert.equal(await startOtlpPush({ ...base, settings: { 'telemetry.otlp-endpoint': receiver.url } }), undefined);
    });
  });

  for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as const) {
    void it(`over ${protocol}: every family /metrics renders arrives with equal values, integer counts and stable start times`, async () => {
      reset();
      const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
      const collection = recording(real);
      const t0 = Date.now();
      const push = await start({
        settings: {
          'telemetry.otlp-endpoint': protocol === 'grpc' ? receiver.grpcUrl : receiver.url,
          'telemetry.otlp-protocol': protocol,
          'telemetry.otlp-interval': '300ms',
          'telemetry.otlp-headers': 'x-api-key=s3cr%20et',
          'telemetry.resource-attributes': 'deployment.environment=test',
        },
        collection,
        hostInfo: () => conn.hostInfo(),
      });
      await receiver.waitFor(3);
      await push.close();
      const requests = receiver.metrics();
      assert.equal(collection.snapshots.length, requests.length, 'one snapshot read per export');
      const first = requests[0] as OtlpRequest;
      assert.equal(first.transport, protocol === 'grpc' ? 'grpc' : 'http');
      assert.equal(first.encoding, protocol === 'http/json' ? 'json' : 'protobuf');
      assert.equal(first.headers['x-api-key'], 's3cr et');
      const host = await conn.hostInfo();
      assert.equal(first.resource['service.name'], 'virt-exporter');
      assert.equal(first.resource['service.version'], '1.2.3');
      assert.equal(first.resource['host.name'], host.hostname);
      assert.ok((first.resource['host.arch'] ?? '') !== '', 'host.arch');
      assert.equal(first.resource['virt.hypervisor.name'], host.hypervisor);
      assert.equal(first.resource['virt.hypervisor.version'], host.hypervisorVersion);
      assert.equal(first.resource['telemetry.sdk.name'], 'opentelemetry');
      assert.equal(first.resource['telemetry.sdk.language'], 'nodejs');
      assert.equal(first.resource['deployment.environment'], 'test');
      assert.deepEqual(first.scopes, ['virt-exporter']);

      for (const [i, req] of requests.entries()) {
        assertMatchesRender(req, await expectedPoints(collection.snapshots[i] as Snapshot, ALL, real.errorCounts, '1.2.3'));
      }
      // The semantic-convention attributes and names.
      assert.deepEqual(new Set(pointsOf(first, 'virt.domain.disk.io').map((p) => p.attributes['disk.io.direction'])), new Set(['read', 'write']));
      assert.deepEqual(new Set(pointsOf(first, 'virt.domain.network.io').map((p) => p.attributes['network.io.direction'])), new Set(['receive', 'transmit']));

      // Start times: a domain's counter starts when the driver says its run started (the test host's
      // domains booted hours ago), never at the exporter's start, and keeps it.
      const second = requests[1] as OtlpRequest;
      const last = requests[requests.length - 1] as OtlpRequest;
      const cpuFirst = pointsOf(first, METRICS.cpuTime.otel.name);
      assert.ok(cpuFirst.length >= 1);
      for (const p of cpuFirst) {
        const info = (collection.snapshots[0] as Snapshot).domains.find((d) => d.info.uuid === p.attributes['vm.id'])?.info;
        assert.ok(info?.startTimeSeconds !== undefined, 'the test driver knows when each run started');
        assert.equal(ms(p.startTimeUnixNano), Math.round(info.startTimeSeconds * 1000), 'the domain\'s start');
        assert.ok(ms(p.startTimeUnixNano) < t0, 'not the exporter start');
      }
      for (const req of [second, last]) {
        for (const p of pointsOf(req, METRICS.cpuTime.otel.name)) {
          const q = cpuFirst.find((x) => x.attributes['vm.id'] === p.attributes['vm.id']);
          assert.ok(q !== undefined);
          assert.equal(p.startTimeUnixNano, q.startTimeUnixNano, 'the start time does not move between exports');
          assert.ok(p.timeUnixNano > p.startTimeUnixNano);
        }
      }
    });
  }

  void it('is switched on and shaped by the OTEL_* variables alone: endpoint, protocol, headers, interval, resource, compression', async () => {
    reset();
    const push = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.grpcUrl,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=env-tenant',
        OTEL_METRIC_EXPORT_INTERVAL: '250',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=from-env,service.namespace=virt',
        OTEL_SERVICE_NAME: 'my-exporter',
        OTEL_TRACES_EXPORTER: 'none',
      },
      async () => {
        const p = await start({ settings: {} });
        await receiver.waitFor(2);
        return p;
      },
    );
    await push.close();
    assert.equal(push.config.intervalMs, 250);
    const req = receiver.metrics()[0] as OtlpRequest;
    assert.equal(req.transport, 'grpc');
    assert.equal(req.headers['x-tenant'], 'env-tenant');
    assert.equal(req.resource['service.name'], 'my-exporter');
    assert.equal(req.resource['service.namespace'], 'virt');
    assert.equal(req.resource['deployment.environment'], 'from-env');

    reset();
    const gz = await withEnv(
      { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.url}/v1/metrics`, OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '250' },
      async () => {
        const p = await start({ settings: {} });
        await receiver.waitFor(1);
        return p;
      },
    );
    await gz.close();
    const r2 = receiver.metrics()[0] as OtlpRequest;
    assert.equal(r2.encoding, 'json');
    assert.equal(r2.headers['content-encoding'], 'gzip');
    assert.equal(gz.config.traces, undefined, 'a metrics-only endpoint variable leaves traces off');
  });

  void it('lets the --telemetry.* flags win over the variables', async () => {
    reset();
    const refused = `http://127.0.0.1:${await freePort()}`;
    const push = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: refused,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=env-tenant',
        OTEL_METRIC_EXPORT_INTERVAL: '60000',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=from-env',
        OTEL_SERVICE_NAME: 'from-env',
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
      },
      async () => {
        const p = await start({
          settings: {
            'telemetry.otlp-endpoint': receiver.url,
            'telemetry.otlp-protocol': 'http/protobuf',
            'telemetry.otlp-headers': 'x-tenant=flag-tenant',
            'telemetry.otlp-interval': '250ms',
            'telemetry.otlp-temporality': 'cumulative',
            'telemetry.resource-attributes': 'deployment.environment=from-flag,service.name=from-flag',
          },
        });
        await receiver.waitFor(2);
        return p;
      },
    );
    await push.close();
    assert.equal(push.config.intervalMs, 250);
    const req = receiver.metrics()[0] as OtlpRequest;
    assert.equal(req.transport, 'http');
    assert.equal(req.encoding, 'protobuf');
    assert.equal(req.headers['x-tenant'], 'flag-tenant');
    assert.equal(req.resource['deployment.environment'], 'from-flag');
    assert.equal(req.resource['service.name'], 'from-flag');
    assert.ok(pointsOf(req, METRICS.cpuTime.otel.name).every((p) => p.temporality === 2), 'cumulative, as the flag says');
  });

  void it('drops a destroyed domain from the next export, and with delta temporality sends the increase', async () => {
    reset();
    const only = new Set<CollectorName>(['domain', 'cpu']);
    const real = new Collection(conn, { collectors: only, timeoutMs: 5000 });
    // From the second read on, the first domain is gone.
    const collection = recording(real, (s, n) => (n === 0 ? s : { ...s, domains: s.domains.slice(1) }));
    const push = await withEnv({ OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta' }, () =>
      start({ settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '300ms' }, collection, collectors: only }),
    );
    await receiver.waitFor(3);
    await push.close();
    const [first, second, third] = receiver.metrics() as [OtlpRequest, OtlpRequest, OtlpRequest];
    const gone = (collection.snapshots[0] as Snapshot).domains[0]?.info.name;
    assert.ok(gone !== undefined);
    assert.ok(pointsOf(first, METRICS.domainInfo.otel.name).some((p) => p.attributes['vm.name'] === gone));
    assert.ok(!second.points.some((p) => p.attributes['vm.name'] === gone), `series of destroyed domain ${gone} are not sent again`);
    assert.equal(pointsOf(second, METRICS.domains.otel.name)[0]?.value, (collection.snapshots[1] as Snapshot).domains.length);
    assert.equal(push.producer?.seriesCount !== undefined && push.producer.seriesCount < 1000, true);

    // Delta: a first observation with a known start is the increase since that start, then the increase over each interval.
    const firstRunning = (collection.snapshots[0] as Snapshot).domains.filter((d) => d.info.state !== 'shutoff');
    assert.equal(pointsOf(first, METRICS.cpuTime.otel.name).length, firstRunning.length);
    for (const p of pointsOf(first, METRICS.cpuTime.otel.name)) {
      const d = firstRunning.find((x) => x.info.uuid === p.attributes['vm.id']);
      assert.ok(d !== undefined && Math.abs(p.value - d.info.cpuTimeSeconds) < 1e-9, `first delta of ${p.attributes['vm.name']} is its CPU time since its start`);
    }
    for (const [req, i] of [[second, 1], [third, 2]] as const) {
      const before = collection.snapshots[i - 1] as Snapshot;
      const now = collection.snapshots[i] as Snapshot;
      const cpu = pointsOf(req, METRICS.cpuTime.otel.name);
      const running = now.domains.filter((d) => d.info.state !== 'shutoff' && before.domains.some((b) => b.info.uuid === d.info.uuid && b.info.state !== 'shutoff'));
      assert.equal(cpu.length, running.length);
      for (const p of cpu) {
        assert.equal(p.temporality, 1, 'delta');
        const a = before.domains.find((d) => d.info.uuid === p.attributes['vm.id']);
        const b = now.domains.find((d) => d.info.uuid === p.attributes['vm.id']);
        assert.ok(a !== undefined && b !== undefined);
        assert.ok(Math.abs(p.value - (b.info.cpuTimeSeconds - a.info.cpuTimeSeconds)) < 1e-9, `delta of ${p.attributes['vm.name']}`);
        assert.ok(p.startTimeUnixNano < p.timeUnixNano);
      }
    }
    // The interval of the second export starts where the first one ended.
    const t1 = pointsOf(first, METRICS.up.otel.name)[0]?.timeUnixNano;
    assert.ok(pointsOf(second, METRICS.cpuTime.otel.name).every((p) => p.startTimeUnixNano === t1));
  });

  void it('keeps memory bounded under domain churn: only live series are remembered', async () => {
    reset();
    const real = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    // Every read, every domain is a new one (as on a host that churns through short-lived VMs).
    const collection = recording(real, (s, n) => ({
      ...s,
      domains: s.domains.map((d) => ({ ...d, info: { ...d.info, name: `${d.info.name}-gen${n}`, uuid: `${d.info.uuid.slice(0, -4)}${String(n).padStart(4, '0')}` } })),
    }));
    const push = await start({ settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '150ms' }, collection });
    await receiver.waitFor(6);
    const remembered = push.producer?.seriesCount ?? -1;
    await push.close();
    const perRead = receiver.metrics()[3]?.points.filter((p) => p.kind === 'sum').length ?? 0;
    assert.ok(remembered > 0 && remembered <= perRead + 5, `${remembered} counter series remembered, ${perRead} per read`);
    for (const [i, req] of receiver.metrics().entries()) {
      const names = new Set(pointsOf(req, METRICS.domainInfo.otel.name).map((p) => p.attributes['vm.name']));
      assert.deepEqual(names, new Set((collection.snapshots[i] as Snapshot).domains.map((d) => d.info.name)), `export ${i}`);
    }
  });

  void it('refuses bad settings and variables with VIRT_ERR_CONFIG naming the value', async () => {
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const base = { collection, collectors: ALL, logger: memoryLogger().logger, version: 'x' };
    const bad: Array<[Record<string, string>, string]> = [
      [{ 'telemetry.otlp-endpoint': 'collector:4318' }, 'collector:4318'],
      [{ 'telemetry.otlp-endpoint': 'ftp://collector/v1/metrics' }, 'ftp://collector/v1/metrics'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-protocol': 'udp' }, 'udp'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-interval': 'soon' }, 'soon'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.otlp-temporality': 'sideways' }, 'sideways'],
      [{ 'telemetry.otlp-endpoint': 'http://c:4318', 'telemetry.resource-attributes': 'novalue' }, 'novalue'],
    ];
    for (const [settings, named] of bad) {
      await assert.rejects(startOtlpPush({ ...base, settings }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'VIRT_ERR_CONFIG', JSON.stringify(settings));
        assert.ok(err.message.includes(named), `message ${err.message} names ${named}`);
        return true;
      });
    }
    await withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon' }, async () => {
      await assert.rejects(startOtlpPush({ ...base, settings: {} }), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_CONFIG' && err.message.includes('carrier-pigeon'));
    });
    await assert.rejects(startOtlpPush({ ...base, settings: { 'telemetry.otlp-endpoint': 'http://u:hunter2@c:4318' } }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'VIRT_ERR_CONFIG');
      assert.ok(!err.message.includes('hunter2'));
      return true;
    });
    assert.equal(hostname().length > 0, true);
  });
});
