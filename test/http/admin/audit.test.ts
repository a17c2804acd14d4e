import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { tokenDigest } from '../../../src/http/admin/auth.ts';
import { auditLines, call, recordingConnection, recordingDriver, startAdmin, tempDir, TOKENS, type AdminFixture, type Reply } from './fixtures.ts';

const D = '/api/v1/domains';

void describe('admin audit log and request counter', () => {
  let f: AdminFixture;
  let cleanup: () => Promise<void>;
  const replies: { label: string; reply: Reply; auditedBeforeReply: boolean }[] = [];

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    f = await startAdmin({ connection: recordingConnection(recordingDriver().driver), dir: t.dir });
    const wrongToken = 'not-a-token-but-looks-like-one-0123456789abcdef';
    const requests: [string, string, Parameters<typeof call>[1]][] = [
      ['viewer list', D, { token: TOKENS.viewer }],
      ['operator suspend', `${D}/web-1/suspend`, { method: 'POST', token: TOKENS.operator }],
      ['no credentials', `${D}/web-1/resume`, { method: 'POST' }],
      ['wrong token', `${D}/web-1/destroy`, { method: 'POST', token: wrongToken }],
      ['operator destroy', `${D}/web-1/destroy`, { method: 'POST', token: TOKENS.operator }],
      ['bad name', `${D}/..%2f/start`, { method: 'POST', token: TOKENS.admin }],
      ['admin shutdown', `${D}/web-1/shutdown`, { method: 'POST', token: TOKENS.admin, body: '{"force":true}' }],
    ];
    for (const [label, path, opts] of requests) {
      const reply = await call(f.url + path, opts);
      // Read the log as soon as the reply is in: the line must already be there.
      const text = await readFile(f.auditFile, 'utf8');
      replies.push({ label, reply, auditedBeforeReply: text.includes(String(reply.headers['x-request-id'])) });
    }
  });
  after(async () => {
    await f.close();
    await cleanup();
  });

  void it('writes one line per request, allowed and refused, before the response', async () => {
    const all = await auditLines(f.auditFile);
    // State-changing requests also have an intent line before the driver is called (see audit-disk-full in test/resilience).
    assert.deepEqual(all.filter((l) => l.phase === 'intent').map((l) => l.action), ['suspend', 'shutdown']);
    const lines = all.filter((l) => l.phase === 'done');
    assert.equal(lines.length, replies.length);
    for (const r of replies) assert.ok(r.auditedBeforeReply, `${r.label}: audited before its response`);
    const byId = new Map(lines.map((l) => [l.request_id, l]));
    const expect: Record<string, Partial<Record<string, unknown>>> = {
      'viewer list': { principal: 'viewer-bot', role: 'viewer', action: 'list', outcome: 'ok', status: 200, auth: 'token' },
      'operator suspend': { principal: 'operator-bot', role: 'operator', action: 'suspend', domain: 'web-1', outcome: 'ok', status: 200 },
      'no credentials': { principal: null, role: null, action: 'resume', outcome: 'unauthenticated', status: 401, auth: 'missing', code: 'VIRT_ERR_AUTH_FAILED' },
      'wrong token': { principal: null, action: 'destroy', outcome: 'unauthenticated', status: 401, auth: 'unknown-token' },
      'operator destroy': { principal: 'operator-bot', action: 'destroy', outcome: 'forbidden', status: 403, code: 'VIRT_ERR_OPERATION_DENIED' },
      'bad name': { principal: 'admin-bot', action: 'start', domain: null, outcome: 'invalid', status: 400 },
      'admin shutdown': { principal: 'admin-bot', role: 'admin', action: 'shutdown', route: '/api/v1/domains/{id}/shutdown', method: 'POST', outcome: 'ok', status: 200 },
    };
    for (const r of replies) {
      const line = byId.get(r.reply.headers['x-request-id']);
      assert.ok(line !== undefined, `${r.label}: line found by request id`);
      assert.equal(line.status, r.reply.status, r.label);
      for (const [k, v] of Object.entries(expect[r.label] ?? {})) assert.deepEqual(line[k], v, `${r.label}: ${k}`);
      for (const k of ['time', 'peer', 'method', 'route', 'duration_ms']) assert.ok(line[k] !== undefined, `${r.label}: has ${k}`);
      assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
      assert.ok(typeof line.duration_ms === 'number' && line.duration_ms >= 0);
    }
  });

  void it('contains no secret: no token, no digest, no Authorization header, no body', async () => {
    const text = await readFile(f.auditFile, 'utf8');
    for (const t of [...Object.values(TOKENS), 'not-a-token-but-looks-like-one-0123456789abcdef']) {
      assert.ok(!text.includes(t), 'token absent');
      assert.ok(!text.includes(tokenDigest(t).toString('hex')), 'digest absent');
    }
    assert.ok(!/bearer|authorization|force/i.test(text));
  });

  void it('counts every request in virt_admin_requests_total{action,outcome}', async () => {
    const metric = await f.registry.getSingleMetricAsString('virt_admin_requests_total');
    for (const [action, outcome] of [['list', 'ok'], ['suspend', 'ok'], ['resume', 'unauthenticated'], ['destroy', 'unauthenticated'], ['destroy', 'forbidden'], ['start', 'invalid'], ['shutdown', 'ok']]) {
      assert.match(metric, new RegExp(`virt_admin_requests_total\\{action="${action}",outcome="${outcome}"\\} 1(\\n|$)`), `${action}/${outcome}`);
    }
  });
});
