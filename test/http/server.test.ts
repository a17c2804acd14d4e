import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import type { Driver } from '../../src/drivers/driver.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import { startMetricsServer, type RunningServer } from '../../src/http/server.ts';
import { openGuard } from '../../src/http/web-guard.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { connectionFor, type Connection } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { parseMetrics, valueOf, type ParsedSample } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

const ALL = new Set<CollectorName>(COLLECTORS);

async function serve(driver: Driver): Promise<{ server: RunningServer; url: string; collection: Collection }> {
  const conn = connectionFor(parseUri('test:///default'), driver, true);
  const collection = new Collection(conn, { collectors: ALL, timeoutMs: 2000 });
  const server = await startMetricsServer({
    listenAddress: '127.0.0.1:0', telemetryPath: '/metrics', collection, collectors: ALL, registry: new Registry(), version: '9.9.9',
    guard: openGuard, logger: silentLogger, maxRequests: 100, isReady: () => true, connectionUri: 'test:///default',
  });
  return { server, url: `http://127.0.0.1:${server.port}`, collection };
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const counters = (samples: ParsedSample[]) => samples.filter((s) => s.name.endsWith('_total') && s.name.startsWith('virt_domain_'));
const key = (s: ParsedSample) => `${s.name}${JSON.stringify(s.labels)}`;

void describe('metrics server over the test driver', () => {
  let host: TestHost;
  let rw: Connection;
  let srv: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    host = new TestHost(structuredClone(DEFAULT_HOST));
    const driver = createTestDriver(host);
    rw = connectionFor(parseUri('test:///default'), driver, false);
    srv = await serve(driver);
  });
  after(async () => {
    await srv.server.close();
  });

  void it('serves a promtool-clean scrape, landing page, health and readiness', async () => {
    const res = await get(`${srv.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    await promtoolCheck(res.body.toString());
    assert.match((await get(`${srv.url}/`)).body.toString(), /href="\/metrics"/);
    assert.equal((await get(`${srv.url}/-/healthy`)).status, 200);
    assert.equal((await get(`${srv.url}/-/ready`)).status, 200);
    assert.equal((await get(`${srv.url}/nope`)).status, 404);
    assert.equal((await get(`${srv.url}/metrics`, {}, 'POST')).status, 405);
    assert.equal((await get(`${srv.url}/metrics`, {}, 'HEAD')).body.length, 0);
  });

  void it('answers OpenMetrics when asked, and gzip when accepted', async () => {
    const om = await get(`${srv.url}/metrics`, { accept: 'application/openmetrics-text; version=1.0.0,text/plain;q=0.5' });
    assert.match(String(om.headers['content-type']), /^application\/openmetrics-text/);
    const text = om.body.toString();
    assert.ok(text.endsWith('# EOF\n'));
    assert.match(text, /# TYPE virt_domain_cpu_time_seconds counter\n/);
    const gz = await get(`${srv.url}/metrics`, { 'accept-encoding': 'gzip' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.match(gunzipSync(gz.body).toString(), /virt_up\{driver="test"\} 1/);
  });

  void it('counters never decrease across scrapes', async () => {
    let prev = new Map(counters(parseMetrics((await get(`${srv.url}/metrics`)).body.toString())).map((s) => [key(s), s.value]));
    assert.ok(prev.size > 50);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 30));
      const cur = new Map(counters(parseMetrics((await get(`${srv.url}/metrics`)).body.toString())).map((s) => [key(s), s.value]));
      for (const [k, v] of cur) if (prev.has(k)) assert.ok(v >= (prev.get(k) ?? 0), `${k} went from ${prev.get(k)} to ${v}`);
      prev = cur;
    }
  });

  void it('a destroyed domain loses its usage series but keeps info and state; an undefined one is gone', async () => {
    const before = parseMetrics((await get(`${srv.url}/metrics`)).body.toString());
    assert.ok(valueOf(before, 'virt_domain_cpu_time_seconds_total', { domain: 'web-2' }) > 0);
    await rw.destroy('web-2');
    const mid = parseMetrics((await get(`${srv.url}/metrics`)).body.toString());
    assert.equal(valueOf(mid, 'virt_domain_state', { domain: 'web-2', state: 'shutoff' }), 1);
    assert.equal(valueOf(mid, 'virt_domain_info', { domain: 'web-2' }), 1);
    assert.equal(mid.filter((s) => s.labels.domain === 'web-2' && s.name.endsWith('_total')).length, 0);
    // The shut-off domain of the default host also reports info and state.
    assert.equal(valueOf(mid, 'virt_domain_state', { domain: 'legacy-1', state: 'shutoff' }), 1);
    await rw.undefine('web-2');
    const afterUndefine = parseMetrics((await get(`${srv.url}/metrics`)).body.toString());
    assert.equal(afterUndefine.filter((s) => s.labels.domain === 'web-2').length, 0);
  });

  void it('50 concurrent HTTP scrapes trigger one driver collection', async () => {
    const slowHost = new TestHost(structuredClone(DEFAULT_HOST));
    const base = createTestDriver(slowHost);
    let reads = 0;
    const s = await serve({
      ...base,
      allDomainStats: async (o) => {
        reads++;
        await new Promise((r) => setTimeout(r, 200));
        return base.allDomainStats!(o);
      },
    });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => get(`${s.url}/metrics`)));
      assert.ok(results.every((r) => r.status === 200));
      assert.equal(reads, 1);
    } finally {
      await s.server.close();
    }
  });

  void it('close() lets an in-flight scrape finish', async () => {
    const slowHost = new TestHost(structuredClone(DEFAULT_HOST));
    const base = createTestDriver(slowHost);
    let inFlight: () => void = () => undefined;
    const started = new Promise<void>((r) => (inFlight = r));
    const s = await serve({
      ...base,
      allDomainStats: async (o) => {
        inFlight();
        await new Promise((r) => setTimeout(r, 300));
        return base.allDomainStats!(o);
      },
    });
    const pending = get(`${s.url}/metrics`);
    // Close only once the scrape is really in flight (a busy machine may take a while to connect).
    await started;
    await s.server.close();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /virt_domain_state/);
    await assert.rejects(get(`${s.url}/metrics`));
  });
});
