import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Registry } from 'prom-client';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { resetTestHosts } from '../../src/drivers/test/driver.ts';
import { startOtlpPush, type OtlpPush } from '../../src/telemetry/otlp.ts';
import { inSpan, tracedConnection } from '../../src/telemetry/tracing.ts';
import { createLogger } from '../../src/util/logger.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { call, startAdmin, tempDir, TOKENS, type AdminFixture } from '../http/admin/fixtures.ts';
import { startReceiver, type OtlpSpan, type Receiver } from './receiver.ts';

const ALL = new Set<CollectorName>(COLLECTORS);
for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];

void describe('traces', () => {
  let conn: Connection;
  let rw: Connection;
  let receiver: Receiver;
  let admin: AdminFixture;
  let cleanup: () => Promise<void>;
  before(async () => {
    resetTestHosts();
    conn = await open('test:///default', { readOnly: true });
    rw = await open('test:///default', { readOnly: false });
    receiver = await startReceiver();
    const t = await tempDir();
    cleanup = t.cleanup;
    admin = await startAdmin({ connection: rw, dir: t.dir });
  });
  after(async () => {
    await admin.close();
    await receiver.close();
    await rw.close();
    await conn.close();
    await cleanup();
  });

  const startPush = async (env: Record<string, string> = {}, registry?: Registry): Promise<OtlpPush> => {
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    try {
      const push = await startOtlpPush({
        settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '300ms' },
        collection: new Collection(conn, { collectors: ALL, timeoutMs: 5000 }),
        collectors: ALL,
        logger: createLogger({ write: () => undefined }),
        version: 'x',
        ...(registry === undefined ? {} : { registry }),
      });
      assert.ok(push !== undefined);
      return push;
    } finally {
      for (const k of [...Object.keys(env), 'OTEL_BSP_SCHEDULE_DELAY']) delete process.env[k];
    }
  };

  void it('has a span per collection with a child per driver read, also for the collections an export makes', async () => {
    receiver.requests.length = 0;
    const push = await startPush();
    try {
      await receiver.waitUntil(() => receiver.spans().some((s) => s.name === 'virt.collection'), 'a collection span');
    } finally {
      await push.close();
    }
    const spans = receiver.spans();
    const collection = spans.find((s) => s.name === 'virt.collection') as OtlpSpan;
    assert.equal(collection.parentSpanId, '', 'an export-triggered collection is a root span');
    assert.equal(collection.attributes['virt.driver'], 'test');
    assert.equal(collection.attributes['virt.up'], 'true');
    const children = spans.filter((s) => s.parentSpanId === collection.spanId && s.traceId === collection.traceId).map((s) => s.name).sort();
    assert.deepEqual(children, ['bulk domain stats read', 'host info read']);
    assert.equal(receiver.requests.find((r) => r.signal === 'traces')?.resource['service.name'], 'virt-exporter');
  });

  void it('has a span per admin request, child of its traceparent, with the driver operations as children carrying domain, outcome and error code', async () => {
    receiver.requests.length = 0;
    const push = await startPush({}, admin.registry);
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const failTrace = randomBytes(16).toString('hex');
    try {
      const ok = await call(`${admin.url}/api/v1/domains/web-1/suspend`, { method: 'POST', token: TOKENS.operator, headers: { traceparent: `00-${traceId}-${parentId}-01` } });
      assert.equal(ok.status < 300, true, ok.text);
      const missing = await call(`${admin.url}/api/v1/domains/no-such-vm/start`, { method: 'POST', token: TOKENS.operator, headers: { traceparent: `00-${failTrace}-${parentId}-01` } });
      assert.equal(missing.status, 404);
      const has = (trace: string, pred: (s: OtlpSpan) => boolean): boolean => receiver.spans().some((s) => s.traceId === trace && pred(s));
      await receiver.waitUntil(() => has(traceId, (s) => s.kind === 2) && has(failTrace, (s) => s.kind === 2) && has(failTrace, (s) => s.name.startsWith('virt.')), 'both admin traces');
      // The admin request counter of /metrics is pushed too.
      const counted = (): boolean => receiver.metrics().some((r) => r.points.some((p) => p.metric === 'virt.admin.requests' && p.attributes.outcome === 'not_found' && p.valueType === 'int'));
      await receiver.waitUntil(counted, 'virt.admin.requests');
    } finally {
      await push.close();
      await call(`${admin.url}/api/v1/domains/web-1/resume`, { method: 'POST', token: TOKENS.operator });
    }
    const spans = receiver.spans().filter((s) => s.traceId === traceId);
    const request = spans.find((s) => s.kind === 2) as OtlpSpan;
    assert.equal(request.parentSpanId, parentId, 'child of the traceparent sent');
    assert.equal(request.attributes['http.request.method'], 'POST');
    assert.equal(request.attributes['url.path'], '/api/v1/domains/web-1/suspend');
    const ops = spans.filter((s) => s.parentSpanId === request.spanId);
    const suspend = ops.find((s) => s.attributes['virt.operation'] === 'suspend');
    assert.ok(suspend !== undefined, `the driver operation under the request: ${ops.map((s) => s.name).join(', ')}`);
    assert.equal(suspend.name, 'virt.suspend');
    assert.equal(suspend.attributes['virt.outcome'], 'success');
    assert.ok(suspend.attributes['vm.name'] !== undefined);

    const failed = receiver.spans().filter((s) => s.traceId === failTrace);
    const failedRequest = failed.find((s) => s.kind === 2) as OtlpSpan;
    assert.equal(failedRequest.attributes['http.response.status_code'], '404');
    const lookup = failed.find((s) => s.parentSpanId === failedRequest.spanId && s.attributes['virt.outcome'] === 'failure');
    assert.ok(lookup !== undefined, `a failed operation: ${failed.map((s) => `${s.name} ${JSON.stringify(s.attributes)}`).join('; ')}`);
    assert.equal(lookup.attributes['vm.name'], 'no-such-vm');
    assert.equal(lookup.attributes['error.type'], 'VIRT_ERR_NO_DOMAIN');
    assert.equal(lookup.statusCode, 2, 'status ERROR');
  });

  void it('honours OTEL_TRACES_SAMPLER (always_off sends no spans, metrics still flow)', async () => {
    receiver.requests.length = 0;
    const push = await startPush({ OTEL_TRACES_SAMPLER: 'always_off' });
    try {
      await receiver.waitFor(2);
      await call(`${admin.url}/api/v1/domains`, { token: TOKENS.viewer, headers: { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` } });
    } finally {
      await push.close();
    }
    assert.equal(receiver.spans().length, 0);
    assert.ok(receiver.metrics().length >= 2);
  });

  void it('puts trace_id and span_id on log lines written inside a span, and none outside', async () => {
    receiver.requests.length = 0;
    const push = await startPush();
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ format: 'json', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    let ids: { traceId: string; spanId: string } | undefined;
    try {
      log.info('outside');
      await inSpan('test.work', {}, async (span) => {
        ids = span.spanContext();
        await new Promise((r) => setTimeout(r, 5));
        log.info('inside');
      });
    } finally {
      await push.close();
    }
    assert.equal(lines[0]?.trace_id, undefined);
    assert.equal(lines[1]?.trace_id, ids?.traceId);
    assert.equal(lines[1]?.span_id, ids?.spanId);
    assert.match(String(lines[1]?.trace_id), /^[0-9a-f]{32}$/);
  });

  void it('keeps a traced connection a working connection: getters, synchronous methods, operations without an active span', async () => {
    const traced = tracedConnection(conn);
    assert.equal(traced.driverName, 'test');
    assert.equal(traced.readOnly, true);
    assert.equal(traced.supports('hostInfo'), true);
    assert.equal((await traced.hostInfo()).hostname, (await conn.hostInfo()).hostname);
    await assert.rejects(traced.domainInfo('no-such-vm'), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_NO_DOMAIN');
  });
});
