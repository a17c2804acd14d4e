// Finding 13: the failed-auth rate limit was per source address only (2,000
// guesses over 100 loopback addresses all got 401) and once 10,000 keys were
// tracked every bucket was cleared. Now: per address and per IPv6 /64, a
// global failed-auth budget, and buckets in use are never dropped wholesale.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { PrincipalRateLimiter, sourceKey } from '../../src/http/admin/limits.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { auditLines, call, startAdmin, tempDir, TOKENS, type AdminFixture } from '../http/admin/fixtures.ts';

const D = '/api/v1/domains';

function guess(port: number, localAddress: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: D, localAddress, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('finding 13: failed authentications are limited per address, per /64 and globally', () => {
  let conn: Connection;
  let f: AdminFixture;
  let cleanup: () => Promise<void>;
  before(async () => {
    conn = await open('test:///default', { readOnly: false });
    const t = await tempDir('virt-sec13-');
    cleanup = t.cleanup;
    // Realistic limits: 20 guesses per address, then one per 200 ms; a global budget of 300 that refills slowly.
    f = await startAdmin({
      connection: conn,
      dir: t.dir,
      extra: { rate_limit: { interval: '200ms', burst: 20 }, failed_auth: { global_interval: '1h', global_burst: 300 } },
      settings: { 'admin.max-connections': 256, 'admin.max-unauthenticated-connections': 256 },
    });
  });
  after(async () => {
    await f?.close();
    await conn?.close();
    await cleanup?.();
  });

  void it('2,000 guesses spread over 100 loopback addresses: at most the global budget is answered 401, the rest 429', async () => {
    const statuses: number[] = [];
    const sources = Array.from({ length: 100 }, (_, i) => `127.0.${Math.floor(i / 50) + 1}.${(i % 50) + 10}`);
    for (let round = 0; round < 20; round++) {
      const batch = await Promise.all(sources.map((src, i) => guess(f.server.port, src, `guess-${round}-${i}-0123456789abcdef0123456789`)));
      statuses.push(...batch);
    }
    const unauthorized = statuses.filter((s) => s === 401).length;
    const limited = statuses.filter((s) => s === 429).length;
    assert.equal(unauthorized + limited, 2000);
    assert.ok(unauthorized <= 301, `${unauthorized} guesses were answered (budget 300)`);
    assert.ok(limited >= 1699);
    // Every refusal is audited with its outcome.
    const lines = (await auditLines(f.auditFile)).filter((l) => l.auth === 'unknown-token');
    assert.equal(lines.length, 2000);
    assert.equal(lines.filter((l) => l.outcome === 'rate_limited' && l.code === 'VIRT_ERR_RATE_LIMITED').length, limited);
  });

  void it('a principal with a valid token is not affected by the flood', async () => {
    const r = await call(f.url + D, { token: TOKENS.viewer });
    assert.equal(r.status, 200, r.text);
  });

  void it('IPv6 sources are grouped by /64; IPv4-mapped ones by their IPv4 address', () => {
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
    assert.notEqual(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'));
    assert.equal(sourceKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(sourceKey('10.1.2.3'), '10.1.2.3');
  });

  void it('a flood of new keys never resets an exhausted bucket (no wholesale clearing)', () => {
    let now = 0;
    const rl = new PrincipalRateLimiter(1000, 2, () => now, 100);
    assert.deepEqual([rl.take('principal:deploy-bot'), rl.take('principal:deploy-bot')], [0, 0]);
    assert.ok(rl.take('principal:deploy-bot') > 0, 'exhausted');
    for (let i = 0; i < 10_000; i++) rl.take(`peer:10.0.${i >> 8}.${i & 255}`);
    assert.ok(rl.size <= 100, 'bounded');
    assert.ok(rl.take('principal:deploy-bot') > 0, 'still exhausted after the flood');
    // New keys beyond the bound share one overflow bucket: flooding addresses gain nothing.
    assert.ok(rl.take('peer:192.0.2.1') > 0);
    now += 1000;
    assert.equal(rl.take('principal:deploy-bot'), 0, 'refilled by time only');
  });
});
