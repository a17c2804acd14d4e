import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { METRICS } from '../../src/collectors/catalogue.ts';
import { ROOT, parseMetrics, scrape, startExporter } from '../helpers/exporter.ts';
import { startReceiver, type OtlpRequest } from './receiver.ts';

/** The environment without any OTEL_* variable of the machine running the tests. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_')) env[k] = v;
  return { ...env, ...extra };
}

void describe('virt-exporter with OpenTelemetry (end to end)', () => {
  void it('pushes the same domains it serves on /metrics with --telemetry.otlp-endpoint, and once more on shutdown', async () => {
    const receiver = await startReceiver();
    const exporter = await startExporter(
      ['--connect=test:///default', `--telemetry.otlp-endpoint=${receiver.url}`, '--telemetry.otlp-interval=1s', '--telemetry.resource-attributes=k8s.node.name=node-a'],
      cleanEnv({}),
    );
    try {
      await receiver.waitFor(2);
      const samples = parseMetrics(await scrape(exporter.url));
      const scraped = new Set(samples.filter((s) => s.name === METRICS.domainInfo.name).map((s) => s.labels.domain));
      const before = receiver.metrics().length;
      assert.equal(await exporter.stop(), 0, 'clean exit');
      assert.ok(receiver.metrics().length > before, 'a final push on shutdown');

      const req = receiver.metrics()[1] as OtlpRequest;
      assert.equal(req.encoding, 'protobuf', 'http/protobuf is the default protocol');
      assert.equal(req.resource['service.name'], 'virt-exporter');
      assert.equal(req.resource['k8s.node.name'], 'node-a');
      const pushed = new Set(req.points.filter((p) => p.metric === METRICS.domainInfo.otel.name).map((p) => p.attributes['vm.name']));
      assert.ok(scraped.size >= 2);
      assert.deepEqual(pushed, scraped);
      const up = req.points.find((p) => p.metric === METRICS.up.otel.name);
      assert.equal(up?.value, 1);
      assert.equal(up?.attributes.driver, 'test');
      assert.match(exporter.log(), /"msg":"OpenTelemetry started"/);
    } finally {
      await exporter.stop();
      await receiver.close();
    }
  });

  void it('is configured by OTEL_EXPORTER_OTLP_ENDPOINT alone, and traces a scrape under the traceparent sent', async () => {
    const receiver = await startReceiver();
    const exporter = await startExporter(
      ['--connect=test:///default', '--log.level=debug'],
      cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.grpcUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_METRIC_EXPORT_INTERVAL: '500', OTEL_BSP_SCHEDULE_DELAY: '200' }),
    );
    try {
      await receiver.waitFor(1);
      const traceId = randomBytes(16).toString('hex');
      const parentId = randomBytes(8).toString('hex');
      await scrape(exporter.url, { traceparent: `00-${traceId}-${parentId}-01` });
      // The scrape's span ends last (after its response), so it may come in a later batch than its children.
      const has = (name: string): boolean => receiver.spans().some((s) => s.traceId === traceId && s.name === name);
      await receiver.waitUntil(() => has('virt.collection') && has('GET /metrics') && has('bulk domain stats read'), 'the scrape trace');
      const spans = receiver.spans().filter((s) => s.traceId === traceId);
      const server = spans.find((s) => s.name === 'GET /metrics');
      assert.ok(server !== undefined, `a span for the scrape among ${spans.map((s) => s.name).join(', ')}`);
      assert.equal(server.parentSpanId, parentId, 'child of the traceparent sent');
      assert.equal(server.kind, 2, 'SERVER');
      assert.equal(server.attributes['http.response.status_code'], '200');
      const collection = spans.find((s) => s.name === 'virt.collection');
      assert.equal(collection?.parentSpanId, server.spanId, 'the collection is a child of the scrape');
      const reads = spans.filter((s) => s.parentSpanId === collection?.spanId).map((s) => s.name);
      assert.ok(reads.includes('bulk domain stats read') && reads.includes('host info read'), `driver reads under the collection: ${reads.join(', ')}`);
      assert.ok(receiver.requests.every((r) => r.transport === 'grpc'));
      assert.equal(await exporter.stop(), 0);
    } finally {
      await exporter.stop();
      await receiver.close();
    }
  });

  void it('counts failed exports on /metrics as virt_otel_export_failures_total{signal,reason}', async () => {
    const receiver = await startReceiver(503);
    const exporter = await startExporter(['--connect=test:///default', `--telemetry.otlp-endpoint=${receiver.url}`, '--telemetry.otlp-interval=300ms', '--telemetry.otlp-timeout=200ms'], cleanEnv({}));
    try {
      let failures: number[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        failures = parseMetrics(await scrape(exporter.url))
          .filter((s) => s.name === METRICS.otelExportFailures.name && s.labels.signal === 'metrics')
          .map((s) => s.value);
        if (failures.length > 0 && (failures[0] ?? 0) >= 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok((failures[0] ?? 0) >= 2, `failures counted: ${JSON.stringify(failures)}`);
      const text = await scrape(exporter.url);
      assert.match(text, /virt_otel_export_failures_total\{signal="metrics",reason="(rejected|timeout)"\} \d+/);
      const warned = exporter.log().split('\n').filter((l) => l.includes('"msg":"OTLP push failed"') && l.includes('"signal":"metrics"'));
      assert.equal(warned.length, 1, 'logged once for the outage');
    } finally {
      await exporter.stop();
      await receiver.close();
    }
  });

  void it('exits with a configuration error naming a bad endpoint or protocol', () => {
    const r = spawnSync(`${ROOT}bin/virt-exporter`, ['--connect=test:///default', '--telemetry.otlp-endpoint=udp://collector:4318'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /udp:\/\/collector:4318/);
    const p = spawnSync(`${ROOT}bin/virt-exporter`, ['--connect=test:///default', '--web.listen-address=127.0.0.1:0'], { encoding: 'utf8', timeout: 30_000, env: cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }) });
    assert.notEqual(p.status, 0, p.stderr);
    assert.match(p.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL \\?"thrift\\?"/);
    assert.doesNotMatch(p.stderr, /msg=listening/, 'refused before binding anything');
  });
});
