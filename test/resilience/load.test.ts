// Load with a real load generator (Debian's wrk): 100 concurrent scrapers
// against 1,000 test-host domains get no error and share collections; an admin
// principal that floods the endpoint gets 429 while another is still served.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { generateHost } from '../../src/drivers/test/default-host.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { startMetricsServer, type RunningServer } from '../../src/http/server.ts';
import { openGuard } from '../../src/http/web-guard.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { call, recordingConnection, recordingDriver, startAdmin, tempDir, TOKENS, type AdminFixture } from '../http/admin/fixtures.ts';
import { requireBinaries } from '../qemud/helpers.ts';

interface WrkResult {
  requests: number;
  non2xx: number;
  socketErrors: number;
  p50ms: number;
  p99ms: number;
  raw: string;
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  assert.ok(m !== null, `unreadable wrk latency ${text}`);
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Runs wrk without blocking this process's event loop (the servers under test live here). */
function wrk(args: string[]): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['--latency', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`wrk exited ${String(code)}: ${out}`));
        return;
      }
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 'NaN');
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0');
      const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const socketErrors = se === null ? 0 : se.slice(1).reduce((a, b) => a + Number(b), 0);
      const p50 = /^\s+50%\s+(\S+)\s*$/m.exec(out)?.[1];
      const p99 = /^\s+99%\s+(\S+)\s*$/m.exec(out)?.[1];
      assert.ok(p50 !== undefined && p99 !== undefined, `no latency distribution in wrk output:\n${out}`);
      resolve({ requests, non2xx, socketErrors, p50ms: ms(p50), p99ms: ms(p99), raw: out });
    });
  });
}

before(() => requireBinaries('wrk'));

async function serve1000(maxAgeMs: number): Promise<{ server: RunningServer; collection: Collection }> {
  const ALL = new Set<CollectorName>(COLLECTORS);
  const driver = createTestDriver(new TestHost(generateHost(1000)));
  const collection = new Collection(connectionFor(parseUri('test:///default'), driver, true), { collectors: ALL, timeoutMs: 5000, maxAgeMs });
  const server = await startMetricsServer({
    listenAddress: '127.0.0.1:0', telemetryPath: '/metrics', collection, collectors: ALL, registry: new Registry(), version: 'load',
    // 100 scrapers need room above the default of 40 concurrent scrapes (beyond it: 503, by design).
    guard: openGuard, logger: silentLogger, maxRequests: 128, isReady: () => true, connectionUri: 'test:///default',
  });
  return { server, collection };
}

for (const maxAgeMs of [0, 1000]) {
  void describe(`100 concurrent scrapers against 1,000 test-host domains, --collect.max-age=${maxAgeMs}ms`, { timeout: 120_000 }, () => {
    let server: RunningServer;
    let collection: Collection;
    before(async () => {
      ({ server, collection } = await serve1000(maxAgeMs));
    });
    after(async () => {
      await server.close();
    });

    void it(maxAgeMs === 0 ? 'answers every scrape with 200' : 'answers every scrape with 200 from one collection per max-age cycle', async (t) => {
      const before = collection.collections;
      const started = performance.now();
      const r = await wrk(['-t2', '-c100', '-d8s', '--timeout', '30s', `http://127.0.0.1:${server.port}/metrics`]);
      const seconds = (performance.now() - started) / 1000;
      const collections = collection.collections - before;
      t.diagnostic(`wrk -t2 -c100 -d8s, max-age ${maxAgeMs} ms: ${r.requests} scrapes, ${collections} collections (${(r.requests / Math.max(1, collections)).toFixed(1)} scrapes each), p50 ${r.p50ms} ms, p99 ${r.p99ms} ms`);
      assert.equal(r.non2xx, 0, r.raw);
      assert.equal(r.socketErrors, 0, r.raw);
      // wrk counts only completed requests; on a machine busy with other work a cycle can take seconds.
      assert.ok(r.requests >= (maxAgeMs > 0 ? 20 : 1), `only ${r.requests} scrapes in 8 s`);
      if (maxAgeMs > 0) {
        // At most one collection per max-age interval (plus the first), however many scrape.
        assert.ok(collections <= Math.ceil((seconds * 1000) / maxAgeMs) + 1, `${collections} collections in ${seconds.toFixed(1)} s`);
        assert.ok(collections * 5 <= r.requests, `${collections} collections for ${r.requests} scrapes`);
      }
    });
  });
}

void describe('an admin principal flooding the endpoint', { timeout: 120_000 }, () => {
  let admin: AdminFixture;
  let cleanup: () => Promise<void>;
  before(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    admin = await startAdmin({ connection: recordingConnection(recordingDriver().driver), dir: tmp.dir, extra: { rate_limit: { interval: '100ms', burst: 5 } } });
  });
  after(async () => {
    await admin.close();
    await cleanup();
  });

  void it('gets 429 while another principal is still served', async (t) => {
    const url = `${admin.url}/api/v1/domains`;
    const viewer = async (n: number): Promise<number[]> => {
      const lat: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const reply = await call(url, { token: TOKENS.viewer });
        lat.push(performance.now() - t0);
        assert.equal(reply.status, 200, `viewer request ${i} during the flood: ${reply.status} ${reply.text}`);
        await new Promise((r) => setTimeout(r, 120));
      }
      return lat.sort((a, b) => a - b);
    };
    // 8 connections: within the cap on not-yet-authenticated connections (issue 12 finding 12), which would close more.
    const baseline = await viewer(5);
    const [flood, during] = await Promise.all([wrk(['-t1', '-c8', '-d5s', '-H', `Authorization: Bearer ${TOKENS.operator}`, url]), viewer(30)]);
    const p = (xs: number[], q: number): number => Math.round((xs[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? NaN) * 10) / 10;
    t.diagnostic(`flood: ${flood.requests} requests, ${flood.non2xx} refused (429); viewer latency before p50 ${p(baseline, 0.5)} ms, during p50 ${p(during, 0.5)} ms p90 ${p(during, 0.9)} ms max ${p(during, 1)} ms`);
    assert.ok(flood.non2xx >= flood.requests * 0.9, `the flooder got ${flood.non2xx} refusals out of ${flood.requests}`);
    assert.equal(flood.socketErrors, 0, flood.raw);
    // The viewer was never refused (asserted per request above) and not starved.
    assert.ok(p(during, 0.9) < 1000, `viewer p90 ${p(during, 0.9)} ms during the flood`);
    const refused = (await call(url, { token: TOKENS.operator })).status;
    assert.ok(refused === 429 || refused === 200);
  });
});
