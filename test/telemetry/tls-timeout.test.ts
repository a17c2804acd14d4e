import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { startOtlpPush } from '../../src/telemetry/otlp.ts';
import { createLogger } from '../../src/util/logger.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { makeCerts, tempDir, type CertSet } from '../http/admin/fixtures.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const ALL = new Set<CollectorName>(COLLECTORS);
for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];

async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

void describe('OTEL_EXPORTER_OTLP_CERTIFICATE, client certificate and key, and OTEL_EXPORTER_OTLP_TIMEOUT', () => {
  let conn: Connection;
  let certs: CertSet;
  let cleanup: () => Promise<void>;
  let tls: Receiver;
  before(async () => {
    conn = await open('test:///default', { readOnly: true });
    const t = await tempDir('virt-otel-tls-');
    cleanup = t.cleanup;
    certs = makeCerts(t.dir);
    tls = await startReceiver(200, { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert });
  });
  after(async () => {
    await tls.close();
    await conn.close();
    await cleanup();
  });

  const push = async (settings: Record<string, string>, env: Record<string, string>, failures = new Map<string, number>()) => {
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
    try {
      const p = await startOtlpPush({
        settings: { 'telemetry.otlp-interval': '250ms', ...settings },
        collection: new Collection(conn, { collectors: ALL, timeoutMs: 5000 }),
        collectors: ALL,
        logger: createLogger({ write: () => undefined }),
        version: 'x',
        exportFailures: failures,
      });
      assert.ok(p !== undefined);
      return p;
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  };

  void it('reaches an https endpoint with mutual TLS through the certificate variables, and fails (counted) without the client certificate', async () => {
    const good = await push(
      { 'telemetry.otlp-endpoint': tls.url },
      { OTEL_EXPORTER_OTLP_CERTIFICATE: certs.caCert, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: certs.clientCert, OTEL_EXPORTER_OTLP_CLIENT_KEY: certs.clientKey },
    );
    try {
      await tls.waitFor(1);
    } finally {
      await good.close();
    }
    assert.equal(tls.metrics()[0]?.encoding, 'protobuf');

    tls.requests.length = 0;
    const failures = new Map<string, number>();
    const bad = await push({ 'telemetry.otlp-endpoint': tls.url }, { OTEL_EXPORTER_OTLP_CERTIFICATE: certs.caCert }, failures);
    try {
      await until(() => [...failures.keys()].some((k) => k.startsWith('metrics')), 'a failure without a client certificate');
    } finally {
      await bad.close();
    }
    assert.equal(tls.metrics().length, 0, 'the receiver accepted nothing without a client certificate');
  });

  void it('gives up after OTEL_EXPORTER_OTLP_TIMEOUT on a slow endpoint (reason timeout); --telemetry.otlp-timeout overrides it', async () => {
    const slow = await startReceiver();
    slow.setDelay(800);
    try {
      const failures = new Map<string, number>();
      const p = await push({ 'telemetry.otlp-endpoint': slow.url, 'telemetry.otlp-interval': '2s' }, { OTEL_EXPORTER_OTLP_TIMEOUT: '200', OTEL_TRACES_EXPORTER: 'none' }, failures);
      try {
        await until(() => (failures.get('metrics\0timeout') ?? 0) >= 1, 'a timeout failure');
      } finally {
        await p.close();
      }
      assert.equal(slow.metrics().length > 0, true, 'the request was sent (and answered too late)');

      const ok = new Map<string, number>();
      slow.requests.length = 0;
      const q = await push({ 'telemetry.otlp-endpoint': slow.url, 'telemetry.otlp-interval': '2s', 'telemetry.otlp-timeout': '1500ms' }, { OTEL_EXPORTER_OTLP_TIMEOUT: '200', OTEL_TRACES_EXPORTER: 'none' }, ok);
      try {
        await slow.waitFor(1);
      } finally {
        // Shutdown waits for the export in progress (and flushes once more), so both outcomes are in.
        await q.close();
      }
      assert.equal(ok.get('metrics\0timeout'), undefined, `no timeout with the flag's longer deadline: ${JSON.stringify([...ok])}`);
    } finally {
      await slow.close();
    }
  });
});
