import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { COLLECTORS, METRICS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { startMetricsServer, type RunningServer } from '../../src/http/server.ts';
import { openGuard } from '../../src/http/web-guard.ts';
import { startOtlpPush, failureReason } from '../../src/telemetry/otlp.ts';
import { createLogger } from '../../src/util/logger.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { parseMetrics } from '../helpers/exporter.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const ALL = new Set<CollectorName>(COLLECTORS);
for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

void describe('OTLP push failures: down, slow, back', () => {
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

  for (const protocol of ['http/protobuf', 'grpc'] as const) {
    void it(`over ${protocol}: scrapes are served throughout, state stays bounded, failures are counted and logged once, exports resume`, async (t) => {
      receiver.requests.length = 0;
      receiver.setDown(false);
      receiver.setDelay(0);
      const lines: Array<Record<string, unknown>> = [];
      const logger = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
      const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
      const failures = new Map<string, number>();
      const server: RunningServer = await startMetricsServer({
        listenAddress: '127.0.0.1:0',
        telemetryPath: '/metrics',
        collection,
        collectors: ALL,
        registry: new Registry(),
        version: 'x',
        guard: openGuard,
        logger,
        maxRequests: 0,
        isReady: () => true,
        connectionUri: 'test:///default',
        otelExportFailures: failures,
      });
      const push = await startOtlpPush({
        settings: {
          'telemetry.otlp-endpoint': protocol === 'grpc' ? receiver.grpcUrl : receiver.url,
          'telemetry.otlp-protocol': protocol,
          'telemetry.otlp-interval': '200ms',
          'telemetry.otlp-timeout': '300ms',
        },
        collection,
        collectors: ALL,
        logger,
        version: 'x',
        exportFailures: failures,
      });
      assert.ok(push !== undefined);
      const url = `http://127.0.0.1:${server.port}/metrics`;
      const scrape = async (): Promise<{ ms: number; text: string }> => {
        const t0 = performance.now();
        const res = await fetch(url);
        const text = await res.text();
        assert.equal(res.status, 200);
        return { ms: performance.now() - t0, text };
      };
      const count = (signal: string, reason: string): number => failures.get(`${signal}\0${reason}`) ?? 0;
      try {
        await receiver.waitFor(2);
        const healthy: number[] = [];
        for (let i = 0; i < 10; i++) healthy.push((await scrape()).ms);
        const series = push.producer?.seriesCount ?? 0;
        assert.ok(series > 0);

        // Down: connections reset / UNAVAILABLE.
        receiver.setDown(true);
        const down: number[] = [];
        await until(() => count('metrics', 'unreachable') >= 3, 'three unreachable failures');
        for (let i = 0; i < 10; i++) down.push((await scrape()).ms);
        // The only new series are the failure counters themselves.
        const bound = (): number => series + [...failures.keys()].filter((k) => k.startsWith('metrics')).length;
        assert.ok((push.producer?.seriesCount ?? 0) <= bound(), 'no state accumulates while the endpoint is down');

        // Slow: it answers after the timeout.
        receiver.setDown(false);
        receiver.setDelay(1500);
        const slow: number[] = [];
        await until(() => receiver.pending().now > 0, 'an export held by the slow receiver');
        // A scrape is answered while an export hangs.
        for (let i = 0; i < 5; i++) {
          const s = await scrape();
          slow.push(s.ms);
        }
        assert.ok(receiver.pending().now > 0 || count('metrics', 'timeout') > 0);
        await until(() => count('metrics', 'timeout') >= 1, 'a timeout failure', 30_000);
        assert.ok(receiver.pending().max <= 3, `exports do not pile up on a slow endpoint (at most ${receiver.pending().max} held at once)`);
        assert.ok((push.producer?.seriesCount ?? 0) <= bound());

        // /metrics shows the failures.
        const rendered = parseMetrics((await scrape()).text).filter((s) => s.name === METRICS.otelExportFailures.name);
        assert.ok(rendered.some((s) => s.labels.signal === 'metrics' && s.labels.reason === 'unreachable' && s.value >= 3), JSON.stringify(rendered));

        // Back: exports resume.
        receiver.setDelay(0);
        const before = receiver.metrics().length;
        await receiver.waitFor(before + 2, 30_000);
        await until(() => lines.some((l) => l.msg === 'OTLP push recovered' && l.signal === 'metrics'), 'the recovery line');
        const failed = lines.filter((l) => l.msg === 'OTLP push failed' && l.signal === 'metrics');
        assert.equal(failed.length, 1, `one line for the whole outage (down then slow), not one per attempt: ${JSON.stringify(failed)}`);
        assert.equal(lines.filter((l) => l.msg === 'OTLP push recovered' && l.signal === 'metrics').length, 1);
        t.diagnostic(`scrape median ms: healthy ${median(healthy).toFixed(1)}, down ${median(down).toFixed(1)}, slow ${median(slow).toFixed(1)}; failures ${JSON.stringify([...failures])}`);
      } finally {
        await push.close();
        await server.close();
        receiver.setDown(false);
        receiver.setDelay(0);
      }
    });
  }

  void it('flushes once on shutdown, within the export timeout, even when the endpoint hangs', async () => {
    receiver.requests.length = 0;
    const collection = new Collection(conn, { collectors: ALL, timeoutMs: 5000 });
    const push = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '10m' },
      collection,
      collectors: ALL,
      logger: createLogger({ write: () => undefined }),
      version: 'x',
    });
    assert.ok(push !== undefined);
    await push.close();
    assert.equal(receiver.metrics().length, 1, 'one final export (the interval never came)');

    receiver.requests.length = 0;
    receiver.setDelay(60_000);
    const hanging = await startOtlpPush({
      settings: { 'telemetry.otlp-endpoint': receiver.url, 'telemetry.otlp-interval': '1s', 'telemetry.otlp-timeout': '300ms' },
      collection,
      collectors: ALL,
      logger: createLogger({ write: () => undefined }),
      version: 'x',
    });
    assert.ok(hanging !== undefined);
    await hanging.close();
    // close() returned although the receiver still holds the request: the shutdown is bounded.
    assert.ok(receiver.pending().now >= 1, 'the final export was sent and is still unanswered');
    receiver.setDelay(0);
  });

  void it('names failure reasons', () => {
    assert.equal(failureReason(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), 'unreachable');
    assert.equal(failureReason(new Error('Request timed out')), 'timeout');
    assert.equal(failureReason(Object.assign(new Error('Service Unavailable'), { code: 503 })), 'rejected');
    assert.equal(failureReason(Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 })), 'unreachable');
    assert.equal(failureReason(Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: 4 })), 'timeout');
    assert.equal(failureReason(new Error('something odd')), 'other');
  });
});
