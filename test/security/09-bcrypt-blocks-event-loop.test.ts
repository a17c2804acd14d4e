// Finding 9: bcrypt for /metrics basic auth ran on the only thread: each
// wrong password cost 100-170 ms of event loop, so flooders delayed every
// scrape. Now bcryptjs runs in a worker, successful verifications are cached,
// and verifications in progress are bounded (429 beyond).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { stringify as toYaml } from 'yaml';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { startMetricsServer, type RunningServer } from '../../src/http/server.ts';
import { loadWebGuard } from '../../src/http/web-config.ts';
import type { WebGuard } from '../../src/http/web-guard.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { tempDir } from '../http/admin/fixtures.ts';

const PASSWORD = 'scrape-password-0123456789';

function get(port: number, auth: string): Promise<{ status: number; at: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false, headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, at: performance.now() }));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('finding 9: basic-auth bcrypt runs off the event loop, cached and bounded', () => {
  let conn: Connection;
  let guard: WebGuard;
  let server: RunningServer;
  let cleanup: () => Promise<void>;
  before(async () => {
    const t = await tempDir('virt-sec9-');
    cleanup = t.cleanup;
    let hash: string;
    try {
      // Cost 12: each check is hundreds of milliseconds of CPU, as a real deployment's.
      const out = execFileSync('htpasswd', ['-nbB', '-C', '12', 'prom', PASSWORD], { encoding: 'utf8' }).trim();
      hash = out.slice(out.indexOf(':') + 1);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('htpasswd is required (Debian package apache2-utils, listed in .ci/apt-packages.txt)');
      throw err;
    }
    const file = join(t.dir, 'web.yml');
    writeFileSync(file, toYaml({ basic_auth_users: { prom: hash } }));
    guard = await loadWebGuard(file, silentLogger);
    conn = await open('test:///default', { readOnly: true });
    const all = new Set<CollectorName>(COLLECTORS);
    server = await startMetricsServer({
      listenAddress: '127.0.0.1:0', telemetryPath: '/metrics', collection: new Collection(conn, { collectors: all, timeoutMs: 5000 }), collectors: all, registry: new Registry(),
      version: '0.0.0', guard, logger: silentLogger, maxRequests: 100, isReady: () => true, connectionUri: 'test:///default',
    });
  });
  after(async () => {
    await server?.close(100);
    guard?.close();
    await conn?.close();
    await cleanup?.();
  });

  void it('the first good scrape is verified (in the worker) and then cached', async () => {
    assert.equal((await get(server.port, `prom:${PASSWORD}`)).status, 200);
    assert.equal((await get(server.port, 'prom:wrong')).status, 401);
  });

  void it('16 flooders with wrong passwords: bounded (some get 429 at once), and a scrape with the right password is answered before the flood ends', async () => {
    const flood = Array.from({ length: 16 }, (_, i) => get(server.port, `prom:wrong-${i}`));
    // Sent after the flood: on one thread it would wait behind every wrong password's bcrypt.
    const scrape = await get(server.port, `prom:${PASSWORD}`);
    const results = await Promise.all(flood);
    assert.equal(scrape.status, 200);
    const denied = results.filter((r) => r.status === 401);
    const busy = results.filter((r) => r.status === 429);
    assert.equal(denied.length + busy.length, 16);
    assert.ok(busy.length >= 8, `verifications in progress are bounded (8): ${busy.length} got 429`);
    assert.ok(denied.length >= 1);
    assert.ok(denied.every((r) => r.at > scrape.at), 'every hashed wrong password finished after the good scrape was answered');
  });

  void it('an unknown user costs a hash too (no user enumeration by timing) and is refused', async () => {
    assert.equal((await get(server.port, `mallory:${PASSWORD}`)).status, 401);
  });
});
