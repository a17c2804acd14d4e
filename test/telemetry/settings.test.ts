import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { readOtlpConfig } from '../../src/telemetry/settings.ts';

void describe('telemetry settings', () => {
  void it('completes a bare base URL with /v1/metrics and keeps an explicit path', () => {
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://collector:4318' })?.url, 'http://collector:4318/v1/metrics');
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'https://otlp.example/' })?.url, 'https://otlp.example/v1/metrics');
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318/otlp/v1/metrics?x=1' })?.url, 'http://c:4318/otlp/v1/metrics?x=1');
  });

  void it('applies defaults, caps the timeout at the interval and decodes key=value lists', () => {
    const d = readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318/v1/metrics' });
    assert.deepEqual([d?.intervalMs, d?.timeoutMs], [30_000, 10_000]);
    const c = readOtlpConfig({
      'telemetry.otlp-endpoint': 'http://c:4318/v1/metrics',
      'telemetry.otlp-interval': '2s',
      'telemetry.otlp-timeout': '1m',
      'telemetry.otlp-headers': ' authorization = Bearer%20abc , x-a=1 ',
      'telemetry.resource-attributes': 'deployment.environment=prod%2Cblue,k8s.node.name=n1',
    });
    assert.deepEqual([c?.intervalMs, c?.timeoutMs], [2000, 2000]);
    assert.deepEqual(c?.headers, { authorization: 'Bearer abc', 'x-a': '1' });
    assert.deepEqual(c?.resourceAttributes, { 'deployment.environment': 'prod,blue', 'k8s.node.name': 'n1' });
  });

  void it('is off without an endpoint but still validates the rest', () => {
    assert.equal(readOtlpConfig({}), undefined);
    assert.throws(() => readOtlpConfig({ 'telemetry.otlp-interval': 'often' }), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG');
  });

  void it('is part of the exporter configuration: flags and environment, refused at load time', () => {
    const cfg = loadConfig(['--telemetry.otlp-endpoint=http://c:4318', '--telemetry.otlp-interval=15s'], { VIRT_EXPORTER_TELEMETRY_RESOURCE_ATTRIBUTES: 'a=b' });
    assert.equal(cfg.get('telemetry.otlp-endpoint'), 'http://c:4318');
    assert.equal(cfg.get('telemetry.otlp-interval'), '15s');
    assert.equal(cfg.get('telemetry.resource-attributes'), 'a=b');
    assert.equal(cfg.get('telemetry.otlp-timeout'), '10s');
    assert.throws(() => loadConfig(['--telemetry.otlp-endpoint=ftp://c']), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && e.message.includes('ftp://c'));
    assert.throws(
      () => loadConfig([], { VIRT_EXPORTER_TELEMETRY_OTLP_HEADERS: 'authorization:Bearer%20hunter2' }),
      (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && !e.message.includes('hunter2'),
    );
  });
});
