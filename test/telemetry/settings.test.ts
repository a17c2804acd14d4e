import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/schema.ts';
import { readOtlpConfig } from '../../src/telemetry/settings.ts';

void describe('telemetry settings (flags over OTEL_* variables)', () => {
  void it('makes signal URLs from a base endpoint, keeps an explicit /v1/metrics path, and uses the origin for gRPC', () => {
    const c = readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://collector:4318' }, {});
    assert.equal(c?.metrics?.url, 'http://collector:4318/v1/metrics');
    assert.equal(c?.traces?.url, 'http://collector:4318/v1/traces');
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'https://otlp.example/prefix/' }, {})?.metrics?.url, 'https://otlp.example/prefix/v1/metrics');
    const explicit = readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318/otlp/v1/metrics?x=1' }, {});
    assert.equal(explicit?.metrics?.url, 'http://c:4318/otlp/v1/metrics?x=1');
    assert.equal(explicit?.traces?.url, 'http://c:4318/otlp/v1/traces?x=1');
    const grpc = readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4317/ignored', 'telemetry.otlp-protocol': 'grpc' }, {});
    assert.equal(grpc?.metrics?.url, 'http://c:4317');
    assert.equal(grpc?.metrics?.protocol, 'grpc');
  });

  void it('leaves what no flag sets to the OTEL_* variables, and the specification defaults', () => {
    const d = readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318' }, {});
    assert.deepEqual([d?.intervalMs, d?.exportTimeoutMs, d?.metrics?.timeoutMs, d?.metrics?.protocol, d?.temporality], [60_000, 30_000, undefined, 'http/protobuf', undefined]);
    const e = readOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '5000', OTEL_METRIC_EXPORT_TIMEOUT: '9000' });
    assert.equal(e?.metrics?.url, undefined, 'the exporter reads the variable itself');
    assert.deepEqual([e?.intervalMs, e?.exportTimeoutMs, e?.metrics?.protocol], [5000, 5000, 'http/json']);
    // Signal-specific variables: each signal on its own.
    const m = readOtlpConfig({}, { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/v1/metrics', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' });
    assert.equal(m?.traces, undefined);
    assert.equal(m?.metrics?.protocol, 'grpc');
    const t = readOtlpConfig({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' });
    assert.equal(t?.metrics, undefined);
    assert.equal(t?.traces?.protocol, 'http/protobuf');
    // OTEL_<SIGNAL>_EXPORTER=none and OTEL_SDK_DISABLED.
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318' }, { OTEL_TRACES_EXPORTER: 'none' })?.traces, undefined);
    assert.equal(readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318' }, { OTEL_SDK_DISABLED: 'TRUE' }), undefined);
    assert.notEqual(readOtlpConfig({ 'telemetry.otlp-endpoint': 'http://c:4318' }, { OTEL_SDK_DISABLED: 'false' }), undefined);
  });

  void it('lets flags win: protocol, interval, timeout, temporality, headers, resource attributes', () => {
    const c = readOtlpConfig(
      {
        'telemetry.otlp-endpoint': 'http://c:4318',
        'telemetry.otlp-protocol': 'http/json',
        'telemetry.otlp-interval': '2s',
        'telemetry.otlp-timeout': '1m',
        'telemetry.otlp-temporality': 'Delta',
        'telemetry.otlp-headers': ' authorization = Bearer%20abc , x-a=1 ',
        'telemetry.resource-attributes': 'deployment.environment=prod%2Cblue,k8s.node.name=n1',
      },
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_METRIC_EXPORT_INTERVAL: '100000', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' },
    );
    assert.equal(c?.metrics?.url, 'http://c:4318/v1/metrics');
    assert.deepEqual([c?.metrics?.protocol, c?.intervalMs, c?.exportTimeoutMs, c?.metrics?.timeoutMs, c?.temporality], ['http/json', 2000, 2000, 60_000, 'delta']);
    assert.deepEqual(c?.metrics?.headers, { authorization: 'Bearer abc', 'x-a': '1' });
    assert.deepEqual(c?.resourceAttributes, { 'deployment.environment': 'prod,blue', 'k8s.node.name': 'n1' });
  });

  void it('is off without an endpoint but still validates the rest', () => {
    assert.equal(readOtlpConfig({}, {}), undefined);
    assert.throws(() => readOtlpConfig({ 'telemetry.otlp-interval': 'often' }, {}), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG');
    assert.throws(() => readOtlpConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'smoke' }), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && e.message.includes('smoke'));
  });

  void it('is part of the exporter configuration: flags and environment, refused at load time', () => {
    const cfg = loadConfig(['--telemetry.otlp-endpoint=http://c:4318', '--telemetry.otlp-interval=15s', '--telemetry.otlp-protocol=grpc'], { VIRT_EXPORTER_TELEMETRY_RESOURCE_ATTRIBUTES: 'a=b' });
    assert.equal(cfg.get('telemetry.otlp-endpoint'), 'http://c:4318');
    assert.equal(cfg.get('telemetry.otlp-interval'), '15s');
    assert.equal(cfg.get('telemetry.otlp-protocol'), 'grpc');
    assert.equal(cfg.get('telemetry.resource-attributes'), 'a=b');
    assert.equal(cfg.get('telemetry.otlp-timeout'), '');
    assert.throws(() => loadConfig(['--telemetry.otlp-endpoint=ftp://c']), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && e.message.includes('ftp://c'));
    assert.throws(() => loadConfig(['--telemetry.otlp-protocol=http']), (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && e.message.includes('http'));
    assert.throws(
      () => loadConfig([], { VIRT_EXPORTER_TELEMETRY_OTLP_HEADERS: 'authorization:Bearer%20hunter2' }),
      (e: Error & { code?: string }) => e.code === 'VIRT_ERR_CONFIG' && !e.message.includes('hunter2'),
    );
  });
});
