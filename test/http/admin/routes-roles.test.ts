import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ACTIONS, REQUIRED_ROLE, ROLES, roleAllows, type Action, type Role } from '../../../src/http/admin/roles.ts';
import { call, recordingConnection, recordingDriver, startAdmin, tempDir, TOKENS, type AdminFixture } from './fixtures.ts';

const DOMAINS = '/api/v1/domains';
const WEB = '11111111-2222-4333-8444-555555555501';

/** One request per action; the bodies are valid so an allowed call succeeds against the recording driver. */
const ROUTES: Record<Action, { method: string; path: string; body?: string; ok: number }> = {
  list: { method: 'GET', path: DOMAINS, ok: 200 },
  get: { method: 'GET', path: `${DOMAINS}/web-1`, ok: 200 },
  define: { method: 'POST', path: DOMAINS, body: JSON.stringify({ name: 'new-vm' }), ok: 201 },
  // The admin run defines new-vm just before (ACTIONS order), so undefining it leaves old-1 to start.
  undefine: { method: 'DELETE', path: `${DOMAINS}/new-vm`, ok: 200 },
  start: { method: 'POST', path: `${DOMAINS}/old-1/start`, ok: 200 },
  // Without force: force destroys, so it needs admin (test/security/11-force-is-admin-only.test.ts).
  shutdown: { method: 'POST', path: `${DOMAINS}/web-1/shutdown`, body: '{"force":false}', ok: 200 },
  reboot: { method: 'POST', path: `${DOMAINS}/${WEB}/reboot`, ok: 200 },
  destroy: { method: 'POST', path: `${DOMAINS}/web-1/destroy`, ok: 200 },
  suspend: { method: 'POST', path: `${DOMAINS}/web-1/suspend`, body: '{}', ok: 200 },
  resume: { method: 'POST', path: `${DOMAINS}/db-1/resume`, ok: 200 },
  save: { method: 'POST', path: `${DOMAINS}/web-1/save`, body: '{"file":"web-1.img"}', ok: 200 },
  restore: { method: 'POST', path: `${DOMAINS}/web-1/restore`, body: '{"file":"prepared.img"}', ok: 200 },
};

type Fixture = AdminFixture & { calls: string[]; snapshot: () => string; cleanup: () => Promise<void> };

async function fixture(): Promise<Fixture> {
  const { dir, cleanup } = await tempDir();
  const rec = recordingDriver();
  const admin = await startAdmin({ connection: recordingConnection(rec.driver), dir });
  await writeFile(join(admin.saveDir, 'prepared.img'), WEB);
  const snapshot = (): string => JSON.stringify([...rec.domains.values()]);
  return { ...admin, calls: rec.calls, snapshot, cleanup: async () => { await admin.close(); await cleanup(); } };
}

void describe('admin API: every route x every role x credentials', () => {
  void describe('without valid credentials nothing is reachable or changed', () => {
    let f: Fixture;
    before(async () => { f = await fixture(); });
    after(async () => { await f.cleanup(); });

    for (const action of ACTIONS) {
      const r = ROUTES[action];
      void it(`${action}: no credentials -> 401 with WWW-Authenticate`, async () => {
        const before = f.snapshot();
        const res = await call(f.url + r.path, { method: r.method, ...(r.body === undefined ? {} : { body: r.body }) });
        assert.equal(res.status, 401);
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="virt-exporter-admin"/);
        assert.equal(res.headers['content-type'], 'application/problem+json');
        assert.equal((res.json as { code: string }).code, 'VIRT_ERR_AUTH_FAILED');
        assert.equal(f.snapshot(), before);
      });
      void it(`${action}: wrong token -> 401 invalid_token`, async () => {
        // Same length as a real token, differing in the last character.
        const wrong = TOKENS.admin.slice(0, -1) + (TOKENS.admin.endsWith('1') ? '2' : '1');
        const res = await call(f.url + r.path, { method: r.method, token: wrong, ...(r.body === undefined ? {} : { body: r.body }) });
        assert.equal(res.status, 401);
        assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
        assert.ok(!res.text.includes(wrong), 'the token is never echoed');
      });
    }
    void it('recorded no state-changing driver call at all', () => {
      assert.deepEqual(f.calls, []);
    });
  });

  for (const role of ROLES) {
    void describe(`role ${role} with its right token`, () => {
      let f: Fixture;
      before(async () => { f = await fixture(); });
      after(async () => { await f.cleanup(); });

      for (const action of ACTIONS) {
        const r = ROUTES[action];
        const allowed = roleAllows(role, action);
        void it(`${action} -> ${allowed ? r.ok : 403}`, async () => {
          const callsBefore = f.calls.length;
          const res = await call(f.url + r.path, { method: r.method, token: TOKENS[role], ...(r.body === undefined ? {} : { body: r.body }) });
          assert.equal(res.status, allowed ? r.ok : 403, res.text);
          if (!allowed) {
            assert.equal((res.json as { code: string }).code, 'VIRT_ERR_OPERATION_DENIED');
            assert.equal(f.calls.length, callsBefore, `${role} ${action} must not reach the driver`);
          } else if (action !== 'list' && action !== 'get') {
            assert.equal(f.calls.length, callsBefore + 1, `${action} reached the driver once`);
            assert.ok(f.calls.at(-1)?.startsWith(action), f.calls.at(-1));
          }
        });
      }
      void it('reached the driver for exactly the actions its role allows', () => {
        const expected = ACTIONS.filter((a) => a !== 'list' && a !== 'get' && roleAllows(role, a));
        assert.deepEqual(f.calls.map((c) => c.split(' ')[0]), expected);
      });
    });
  }

  void it('the role table: a viewer changes nothing, an operator may not destroy, define or undefine', () => {
    const can = (role: Role): Action[] => ACTIONS.filter((a) => roleAllows(role, a));
    assert.deepEqual(can('viewer'), ['list', 'get']);
    assert.deepEqual(can('operator').sort(), ['get', 'list', 'reboot', 'restore', 'resume', 'save', 'shutdown', 'start', 'suspend']);
    assert.deepEqual(can('admin'), [...ACTIONS]);
    assert.equal(REQUIRED_ROLE.destroy, 'admin');
  });
});
