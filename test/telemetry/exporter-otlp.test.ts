import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { METRICS } from '../../src/collectors/catalogue.ts';
import { ROOT, parseMetrics, scrape, startExporter } from '../helpers/exporter.ts';
import { startReceiver, type OtlpRequest } from './receiver.ts';

void describe('virt-exporter with --telemetry.otlp-endpoint (end to end)', () => {
  void it('pushes the same domains it serves on /metrics, and pushes once more on shutdown', async () => {
    const receiver = await startReceiver();
    const exporter = await startExporter([
      '--connect=test:///default',
      `--telemetry.otlp-endpoint=${receiver.url}`,
      '--telemetry.otlp-interval=1s',
      '--telemetry.resource-attributes=k8s.node.name=node-a',
    ]);
    try {
      await receiver.waitFor(2);
      const samples = parseMetrics(await scrape(exporter.url));
      const scraped = new Set(samples.filter((s) => s.name === METRICS.domainInfo.name).map((s) => s.labels.domain));
      const before = receiver.requests.length;
      assert.equal(await exporter.stop(), 0, 'clean exit');
      assert.ok(receiver.requests.length > before, 'a final push on shutdown');

      const req = receiver.requests[1] as OtlpRequest;
      assert.equal(req.resource['service.name'], 'virt-exporter');
      assert.equal(req.resource['k8s.node.name'], 'node-a');
      const pushed = new Set(req.points.filter((p) => p.metric === METRICS.domainInfo.otel.name).map((p) => p.attributes['vm.name']));
      assert.ok(scraped.size >= 2);
      assert.deepEqual(pushed, scraped);
      const up = req.points.find((p) => p.metric === METRICS.up.otel.name);
      assert.equal(up?.value, 1);
      assert.equal(up?.attributes.driver, 'test');
      const cpu = req.points.filter((p) => p.metric === METRICS.cpuTime.otel.name);
      assert.ok(cpu.length >= 1 && cpu.every((p) => p.kind === 'sum' && p.monotonic && p.unit === 's'));
      assert.match(exporter.log(), /"msg":"OTLP push started"/);
    } finally {
      await exporter.stop();
      await receiver.close();
    }
  });

  void it('exits with a configuration error naming a bad endpoint', () => {
    const r = spawnSync(`${ROOT}bin/virt-exporter`, ['--connect=test:///default', '--telemetry.otlp-endpoint=udp://collector:4318'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /udp:\/\/collector:4318/);
  });
});
