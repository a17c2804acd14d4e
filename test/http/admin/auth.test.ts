import assert from 'node:assert/strict';
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { Authenticator, tokenDigest, tokenMatches } from '../../../src/http/admin/auth.ts';
import { parseAdminConfig } from '../../../src/http/admin/config.ts';
import { DomainGate, PrincipalRateLimiter } from '../../../src/http/admin/limits.ts';
import { isVirtError } from '../../../src/virt/errors.ts';

const TOKEN = 'k3y-0123456789abcdef0123456789abcdef';

/** Records every comparison the code under test makes. */
function spyEqual(): { equal: (a: Buffer, b: Buffer) => boolean; seen: { aLen: number; bLen: number }[] } {
  const seen: { aLen: number; bLen: number }[] = [];
  return {
    seen,
    equal: (a, b) => {
      seen.push({ aLen: a.length, bLen: b.length });
      return timingSafeEqual(a, b);
    },
  };
}

function fakeRequest(authorization?: string): IncomingMessage {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  return { headers, socket: new Socket() } as unknown as IncomingMessage;
}

void describe('token comparison', () => {
  void it('a wrong token of the right length and one of another length take the same path: one 32-byte digest compare', () => {
    const stored = tokenDigest(TOKEN);
    const cases = {
      right: TOKEN,
      sameLength: TOKEN.slice(0, -1) + 'X',
      shorter: 'x',
      longer: TOKEN + TOKEN + TOKEN,
      empty: '',
    };
    const results: Record<string, boolean> = {};
    const paths: Record<string, string> = {};
    for (const [label, presented] of Object.entries(cases)) {
      const spy = spyEqual();
      results[label] = tokenMatches(presented, stored, spy.equal);
      paths[label] = JSON.stringify(spy.seen);
    }
    assert.deepEqual(results, { right: true, sameLength: false, shorter: false, longer: false, empty: false });
    const expectedPath = JSON.stringify([{ aLen: 32, bLen: 32 }]);
    for (const [label, path] of Object.entries(paths)) assert.equal(path, expectedPath, `path for ${label}`);
  });

  void it('the authenticator compares against every configured token (no early exit), whatever the presented length', () => {
    const tokens = ['viewer', 'operator', 'admin'].map((role, i) => ({ name: `t${i}`, role: role as 'viewer', digest: tokenDigest(`${TOKEN}-${i}`) }));
    for (const presented of [`${TOKEN}-0`, `${TOKEN}-2`, `${TOKEN}-9`, 'short', 'x'.repeat(4000)]) {
      const spy = spyEqual();
      const auth = new Authenticator(tokens, [], spy.equal);
      const result = auth.authenticate(fakeRequest(`Bearer ${presented}`));
      assert.equal(spy.seen.length, 3, presented.slice(0, 20));
      assert.ok(spy.seen.every((s) => s.aLen === 32 && s.bLen === 32));
      assert.equal(result.ok, presented === `${TOKEN}-0` || presented === `${TOKEN}-2`);
    }
  });

  void it('rejects missing and malformed Authorization headers without comparing anything', () => {
    const spy = spyEqual();
    const auth = new Authenticator([{ name: 'a', role: 'admin', digest: tokenDigest(TOKEN) }], [], spy.equal);
    assert.deepEqual(auth.authenticate(fakeRequest()), { ok: false, reason: 'missing' });
    for (const h of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', `Bearer ${'x'.repeat(5000)}`, 'Bearer tok\u00e9n']) {
      assert.deepEqual(auth.authenticate(fakeRequest(h)), { ok: false, reason: 'malformed' }, h.slice(0, 20));
    }
    assert.equal(spy.seen.length, 0);
  });
});

void describe('admin config file', () => {
  const digest = tokenDigest(TOKEN).toString('hex');
  const base = { audit_log: '/tmp/audit.log', tokens: [{ name: 'ci', role: 'operator', sha256: digest }] };
  const refuse = (doc: unknown, keyPattern: RegExp): void => {
    assert.throws(
      () => parseAdminConfig(doc, '/etc/virt/admin.yml'),
      (err: unknown) => isVirtError(err, 'VIRT_ERR_CONFIG') && keyPattern.test(err.message) && !err.message.includes(TOKEN),
    );
  };

  void it('accepts a minimal config and applies defaults', () => {
    const c = parseAdminConfig(base, '/etc/virt/admin.yml');
    assert.equal(c.tokens[0]?.name, 'ci');
    assert.equal(c.tokens[0]?.digest.length, 32);
    assert.equal(c.maxInFlightPerDomain, 1);
    assert.equal(c.tls, undefined);
  });

  void it('rejects unknown keys, naming them', () => {
    refuse({ ...base, tokenz: [] }, /"tokenz"/);
    refuse({ ...base, tls: { cert_file: 'a', key_file: 'b', ciphers: 'x' } }, /"tls\.ciphers"/);
    refuse({ ...base, tokens: [{ name: 'ci', role: 'operator', sha256: digest, token: TOKEN }] }, /"tokens\[0\]\.token"/);
  });

  void it('rejects bad roles, digests, duplicate names and SANs with the key named and no secret echoed', () => {
    refuse({ ...base, tokens: [{ name: 'ci', role: 'root', sha256: digest }] }, /tokens\[0\]\.role.*"root"/);
    // A token pasted where its digest belongs is refused without being shown.
    refuse({ ...base, tokens: [{ name: 'ci', role: 'admin', sha256: TOKEN }] }, /tokens\[0\]\.sha256/);
    refuse({ ...base, tokens: [...base.tokens, { name: 'ci', role: 'admin', sha256: 'a'.repeat(64) }] }, /tokens\[1\]\.name/);
    refuse({ ...base, tokens: [...base.tokens, { name: 'ci2', role: 'admin', sha256: digest }] }, /tokens\[1\]\.sha256/);
    refuse({ audit_log: '/tmp/a', tokens: [] }, /"tokens"/);
    refuse({ ...base, audit_log: undefined }, /"audit_log"/);
    refuse({ ...base, client_certificates: [{ name: 'ops', role: 'admin', san: 'DNS:ops' }] }, /client_certificates/);
    refuse({ ...base, tls: { cert_file: 'a', key_file: 'b', client_ca_file: 'c' }, client_certificates: [{ name: 'ops', role: 'admin', san: 'CN=ops' }] }, /client_certificates\[0\]\.san/);
    refuse({ ...base, tls: { cert_file: 'a', key_file: 'b', client_auth: 'required' } }, /tls\.client_ca_file/);
    refuse({ ...base, rate_limit: { interval: 'fast' } }, /rate_limit\.interval/);
  });
});

void describe('limits', () => {
  void it('rate limiter: a burst, then waits, refilled by the clock, per key', () => {
    let now = 0;
    const rl = new PrincipalRateLimiter(100, 3, () => now);
    assert.deepEqual([rl.take('a'), rl.take('a'), rl.take('a')], [0, 0, 0]);
    assert.ok(rl.take('a') > 0);
    assert.equal(rl.take('b'), 0, 'another principal has its own bucket');
    now += 100;
    assert.equal(rl.take('a'), 0);
    assert.ok(rl.take('a') > 0);
  });

  void it('domain gate: the second enter on one domain is refused until the first leaves', () => {
    const gate = new DomainGate(1);
    assert.equal(gate.enter('d1'), true);
    assert.equal(gate.enter('d1'), false);
    assert.equal(gate.enter('d2'), true);
    gate.leave('d1');
    assert.equal(gate.enter('d1'), true);
    const two = new DomainGate(2);
    assert.deepEqual([two.enter('x'), two.enter('x'), two.enter('x')], [true, true, false]);
  });
});
