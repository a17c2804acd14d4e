import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resetTestHosts } from '../../../src/drivers/test/driver.ts';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { call, recordingConnection, recordingDriver, startAdmin, tempDir, TOKENS, type AdminFixture, type Reply } from './fixtures.ts';

const D = '/api/v1/domains';

function code(r: Reply): unknown {
  return (r.json as { code?: unknown } | undefined)?.code;
}

void describe('admin API lifecycle against the test driver (test:///default)', () => {
  let f: AdminFixture;
  let conn: Connection;
  let readOnly: Connection;
  let cleanup: () => Promise<void>;

  before(async () => {
    resetTestHosts();
    const t = await tempDir();
    cleanup = t.cleanup;
    conn = await open('test:///default', { readOnly: false });
    // What the collectors see: a separate read-only connection to the same host.
    readOnly = await open('test:///default', { readOnly: true });
    f = await startAdmin({ connection: conn, dir: t.dir });
  });
  after(async () => {
    await f.close();
    await conn.close();
    await readOnly.close();
    await cleanup();
  });

  const post = (path: string, role: keyof typeof TOKENS, body?: unknown): Promise<Reply> =>
    call(f.url + path, { method: 'POST', token: TOKENS[role], ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const stateOf = async (key: string): Promise<string> => (await readOnly.domainInfo(key)).state;

  void it('lists and gets domains with their states', async () => {
    const list = await call(f.url + D, { token: TOKENS.viewer });
    assert.equal(list.status, 200);
    const domains = (list.json as { domains: { name: string; state: string; uuid: string }[] }).domains;
    const byName = Object.fromEntries(domains.map((d) => [d.name, d.state]));
    assert.equal(byName['web-1'], 'running');
    assert.equal(byName['batch-1'], 'paused');
    assert.equal(byName['legacy-1'], 'shutoff');
    const uuid = domains.find((d) => d.name === 'web-1')?.uuid ?? '';
    const get = await call(`${f.url}${D}/${uuid.toUpperCase()}`, { token: TOKENS.viewer });
    assert.equal(get.status, 200);
    assert.equal((get.json as { domain: { name: string } }).domain.name, 'web-1');
    const missing = await call(`${f.url}${D}/no-such-vm`, { token: TOKENS.viewer });
    assert.equal(missing.status, 404);
    assert.equal(code(missing), 'VIRT_ERR_NO_DOMAIN');
  });

  void it('start, suspend, resume, reboot, save, restore, shutdown: each seen by a read-only connection', async () => {
    const steps: [string, keyof typeof TOKENS, unknown, string][] = [
      ['start', 'operator', undefined, 'running'],
      ['suspend', 'operator', undefined, 'paused'],
      ['resume', 'operator', {}, 'running'],
      ['reboot', 'operator', undefined, 'running'],
      ['save', 'operator', { file: 'legacy-1.save' }, 'shutoff'],
      ['restore', 'operator', { file: 'legacy-1.save' }, 'running'],
      ['shutdown', 'operator', { force: false }, 'shutoff'],
    ];
    for (const [action, role, body, state] of steps) {
      const r = await post(`${D}/legacy-1/${action}`, role, body);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      assert.equal((r.json as { state: string }).state, state, action);
      assert.equal(await stateOf('legacy-1'), state, `${action} seen by the collectors' connection`);
    }
    assert.deepEqual(await readdir(f.saveDir), ['legacy-1.save']);
    assert.ok((await stat(join(f.saveDir, 'legacy-1.save'))).isFile());
  });

  void it('maps the driver refusals: wrong state 409, no such domain 404', async () => {
    const r = await post(`${D}/legacy-1/resume`, 'operator');
    assert.equal(r.status, 409);
    assert.equal(code(r), 'VIRT_ERR_OPERATION_INVALID');
    assert.equal((await post(`${D}/ghost/start`, 'operator')).status, 404);
    const again = await post(`${D}/web-1/save`, 'operator', { file: 'legacy-1.save' });
    assert.equal(again.status, 409, 'an existing save file is never overwritten');
    assert.equal(await stateOf('web-1'), 'running');
  });

  void it('destroy, define, get, undefine as admin', async () => {
    assert.equal((await post(`${D}/web-2/destroy`, 'operator')).status, 403);
    assert.equal(await stateOf('web-2'), 'running');
    assert.equal((await post(`${D}/web-2/destroy`, 'admin')).status, 200);
    assert.equal(await stateOf('web-2'), 'shutoff');

    const def = { name: 'api-made', memoryMiB: 512, vcpus: 1 };
    const created = await post(D, 'admin', def);
    assert.equal(created.status, 201, created.text);
    const ref = (created.json as { domain: { uuid: string; name: string } }).domain;
    assert.equal(created.headers.location, `${D}/${ref.uuid}`);
    assert.equal(await stateOf('api-made'), 'shutoff');
    const dup = await post(D, 'admin', { ...def, uuid: '00000000-0000-4000-8000-000000000001' });
    assert.equal(dup.status, 409);
    assert.equal(code(dup), 'VIRT_ERR_DOM_EXIST');
    const bad = await post(D, 'admin', { name: 'x', memoryMiB: -1, vcpus: 1 });
    assert.equal(bad.status, 400);
    assert.equal(code(bad), 'VIRT_ERR_XML_ERROR');

    assert.equal((await post(`${D}/api-made/start`, 'operator')).status, 200);
    const busy = await call(`${f.url}${D}/api-made`, { method: 'DELETE', token: TOKENS.admin });
    assert.equal(busy.status, 409, 'cannot undefine a running domain');
    assert.equal((await post(`${D}/api-made/destroy`, 'admin')).status, 200);
    const gone = await call(`${f.url}${D}/api-made`, { method: 'DELETE', token: TOKENS.admin });
    assert.equal(gone.status, 200, gone.text);
    assert.equal((await call(`${f.url}${D}/api-made`, { token: TOKENS.viewer })).status, 404);
    await assert.rejects(readOnly.domainInfo('api-made'));
  });
});

void describe('admin API concurrency and deadlines', () => {
  void it('a second state-changing request on the same domain gets 409 while the first is in flight', async () => {
    const { dir, cleanup } = await tempDir();
    const rec = recordingDriver();
    let release!: () => void;
    rec.hold.promise = new Promise<void>((r) => { release = r; });
    const f = await startAdmin({ connection: recordingConnection(rec.driver), dir });
    try {
      const first = call(`${f.url}${D}/web-1/suspend`, { method: 'POST', token: TOKENS.operator });
      // Wait until the first has reached the driver.
      for (let i = 0; i < 200 && rec.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(rec.calls, ['suspend web-1']);
      const byName = await call(`${f.url}${D}/web-1/resume`, { method: 'POST', token: TOKENS.operator });
      const byUuid = await call(`${f.url}${D}/11111111-2222-4333-8444-555555555501/destroy`, { method: 'POST', token: TOKENS.admin });
      for (const r of [byName, byUuid]) {
        assert.equal(r.status, 409);
        assert.equal(code(r), 'VIRT_ERR_OPERATION_IN_PROGRESS');
      }
      assert.deepEqual(rec.calls, ['suspend web-1'], 'the refused ones never reached the driver');
      // Reads and other domains are not blocked (the hold only applies to the recording driver's writes once released).
      assert.equal((await call(`${f.url}${D}/web-1`, { token: TOKENS.viewer })).status, 200);
      release();
      assert.equal((await first).status, 200);
      rec.hold.promise = null;
      assert.equal((await call(`${f.url}${D}/web-1/resume`, { method: 'POST', token: TOKENS.operator })).status, 200);
    } finally {
      release();
      await f.close();
      await cleanup();
    }
  });

  void it('an operation past its deadline answers 504 and keeps the domain gated until the driver finishes', async () => {
    const { dir, cleanup } = await tempDir();
    const rec = recordingDriver();
    let release!: () => void;
    rec.hold.promise = new Promise<void>((r) => { release = r; });
    const f = await startAdmin({ connection: recordingConnection(rec.driver), dir, operationTimeoutMs: 200 });
    try {
      const slow = await call(`${f.url}${D}/web-1/reboot`, { method: 'POST', token: TOKENS.operator });
      assert.equal(slow.status, 504);
      assert.equal(code(slow), 'VIRT_ERR_OPERATION_TIMEOUT');
      const meanwhile = await call(`${f.url}${D}/web-1/suspend`, { method: 'POST', token: TOKENS.operator });
      assert.equal(meanwhile.status, 409);
      release();
      rec.hold.promise = null;
      let after: Reply | undefined;
      for (let i = 0; i < 100; i++) {
        after = await call(`${f.url}${D}/web-1/suspend`, { method: 'POST', token: TOKENS.operator });
        if (after.status !== 409) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(after?.status, 200);
    } finally {
      release();
      await f.close();
      await cleanup();
    }
  });

  void it('rate limits per principal with 429 and Retry-After, other principals unaffected', async () => {
    const { dir, cleanup } = await tempDir();
    const f = await startAdmin({ connection: recordingConnection(recordingDriver().driver), dir, extra: { rate_limit: { interval: '1h', burst: 3 } } });
    try {
      const statuses: number[] = [];
      let last: Reply | undefined;
      for (let i = 0; i < 5; i++) {
        last = await call(f.url + D, { token: TOKENS.viewer });
        statuses.push(last.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      assert.equal(code(last as Reply), 'VIRT_ERR_RATE_LIMITED');
      assert.ok(Number(last?.headers['retry-after']) >= 1);
      assert.equal((await call(f.url + D, { token: TOKENS.operator })).status, 200);
      // Failed authentication is limited per peer address too.
      const anon: number[] = [];
      for (let i = 0; i < 5; i++) anon.push((await call(f.url + D, { token: 'guess' + String(i) })).status);
      assert.deepEqual(anon, [401, 401, 401, 429, 429]);
    } finally {
      await f.close();
      await cleanup();
    }
  });
});
