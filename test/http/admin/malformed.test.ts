import assert from 'node:assert/strict';
import { symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resetTestHosts } from '../../../src/drivers/test/driver.ts';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { auditLines, call, startAdmin, tempDir, TOKENS, type AdminFixture, type RequestOptions } from './fixtures.ts';

const D = '/api/v1/domains';

/** A small deterministic PRNG (mulberry32) so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  label: string;
  path: string;
  opts: RequestOptions;
}

function cases(): Case[] {
  const out: Case[] = [];
  const admin = (label: string, method: string, path: string, body?: string | Buffer, headers?: Record<string, string>): void => {
    out.push({ label, path, opts: { method, token: TOKENS.admin, ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) } });
  };
  const badNames = [
    '..', '.', '.hidden', '%2e%2e', '%2E%2E%2F', 'a'.repeat(65), 'web-1;rm%20-rf%20/', 'web%00', '$(reboot)', '%60id%60', 'web-1%20x', 'w%C3%A9b',
    '-rf', '_x', 'web-1%0d%0aX-Injected:1', '..%2f..%2fetc', 'web-1%2fstart', '%', "web'1", 'web"1', 'web*', '~root', '12345678-1234-1234-1234-12345678901',
    '12345678-1234-1234-1234-1234567890123', 'g2345678-1234-1234-1234-123456789012',
  ];
  for (const n of badNames) {
    admin(`get bad name ${n}`, 'GET', `${D}/${n}`);
    admin(`start bad name ${n}`, 'POST', `${D}/${n}/start`);
    admin(`undefine bad name ${n}`, 'DELETE', `${D}/${n}`);
    admin(`save bad name ${n}`, 'POST', `${D}/${n}/save`, '{"file":"x.img"}');
  }
  const badBodies: (string | Buffer)[] = [
    '{', '{"force":', '[]', '[1,2]', 'null', '"x"', '123', 'true', '{"force":"yes"}', '{"force":1}', '{"force":null}', '{"unknown":true}',
    '{"force":true,"x":1}', '{"__proto__":{"force":true}}', '{"constructor":{}}', Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), Buffer.from([0xc3, 0x28]),
    '{"force":true}{"force":true}', '{"a":' + '['.repeat(5000), '\u0000', ' ', '{"file":1}',
  ];
  for (const [i, b] of badBodies.entries()) {
    admin(`shutdown bad body #${i}`, 'POST', `${D}/web-1/shutdown`, b);
    admin(`suspend bad body #${i}`, 'POST', `${D}/web-2/suspend`, b);
    admin(`define bad body #${i}`, 'POST', D, b);
  }
  for (const t of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data']) {
    admin(`shutdown content-type ${t}`, 'POST', `${D}/web-1/shutdown`, '{"force":true}', { 'content-type': t });
    admin(`define content-type ${t}`, 'POST', D, '{"name":"x"}', { 'content-type': t });
  }
  const badFiles = [
    '../x.img', '../../etc/passwd', '/etc/passwd', '/tmp/x.img', 'a/../../b', '.', '..', 'sub/../x', 'x\u0000y', '', 'a'.repeat(200),
    'escape/x.img', 'escape-file', '.hidden', 'a//b', 'a/', '/', 'a/b/c/d/e', ' x', 'x y', '$(id)', 'x;rm', 'missing-dir/x.img',
  ];
  for (const f of badFiles) {
    admin(`save traversal ${JSON.stringify(f)}`, 'POST', `${D}/web-1/save`, JSON.stringify({ file: f }));
    admin(`restore traversal ${JSON.stringify(f)}`, 'POST', `${D}/legacy-1/restore`, JSON.stringify({ file: f }));
  }
  admin('save missing file key', 'POST', `${D}/web-1/save`, '{}');
  admin('save file exists', 'POST', `${D}/web-1/save`, '{"file":"exists.img"}');
  admin('save with force', 'POST', `${D}/web-1/save`, '{"file":"y.img","force":true}');
  for (const a of ['migrate', 'START', 'start ', 'start%20', 'shutdown.', 'setmem', '', 'start/extra', 'destroy/now', 'x'.repeat(300)]) {
    admin(`unknown action ${a}`, 'POST', `${D}/web-1/${a}`);
  }
  for (const [m, p] of [
    ['PUT', `${D}/web-1/start`], ['PATCH', `${D}/web-1/start`], ['DELETE', `${D}/web-1/start`], ['GET', `${D}/web-1/start`],
    ['PUT', D], ['DELETE', D], ['PATCH', D], ['POST', `${D}/web-1`], ['PUT', `${D}/web-1`], ['OPTIONS', D], ['HEAD', `${D}/web-1/destroy`],
    ['TRACE', D], ['PROPFIND', D],
  ] as const) {
    admin(`wrong method ${m} ${p}`, m, p);
  }
  for (const p of ['/', '/api', '/api/v1', '/api/v2/domains', `${D}/`, `${D}//start`, `${D}/web-1//start`, `${D}?x=1`, `${D}/web-1/start?force=true`, '/metrics', `${D}/web-1/start/`, '/API/V1/DOMAINS', `${D}x`]) {
    admin(`unknown path ${p}`, 'POST', p);
  }
  // Refused by the driver's state rules: reach it, change nothing.
  admin('start a running domain', 'POST', `${D}/web-1/start`);
  admin('resume a running domain', 'POST', `${D}/web-1/resume`);
  admin('suspend a shut-off domain', 'POST', `${D}/legacy-1/suspend`);
  admin('save a shut-off domain', 'POST', `${D}/legacy-1/save`, '{"file":"l.img"}');
  admin('no such domain', 'POST', `${D}/no-such-vm/destroy`);
  // Credentials that are not.
  for (const h of ['Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', `Bearer ${TOKENS.admin} extra`, `Bearer ${TOKENS.admin.toUpperCase()}`, 'bearer' + TOKENS.admin, `Bearer ${'A'.repeat(5000)}`]) {
    out.push({ label: `auth header ${h.slice(0, 30)}`, path: `${D}/web-1/destroy`, opts: { method: 'POST', headers: { authorization: h } } });
  }
  // Random garbage in names, actions and bodies.
  const rnd = prng(0x5eed);
  const pick = (s: string): string => s[Math.floor(rnd() * s.length)] as string;
  const alphabet = 'abcXYZ019-_.~!$&\'()*+,;=:@%/?#[] \\"<>^`{|}';
  for (let i = 0; i < 60; i++) {
    let name = '';
    const len = 1 + Math.floor(rnd() * 20);
    for (let j = 0; j < len; j++) name += pick(alphabet);
    // Only names that are not valid keys and contain no path/query characters that change the route.
    name = encodeURIComponent(name).replace(/^[A-Za-z0-9]/, '%2B');
    admin(`random name #${i}`, 'POST', `${D}/${name}/reboot`);
  }
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.alloc(1 + Math.floor(rnd() * 64));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rnd() * 256);
    bytes[0] = 0x5b; // "[": never a JSON object
    admin(`random body #${i}`, 'POST', `${D}/web-1/shutdown`, bytes);
  }
  return out;
}

async function raw(port: number, data: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    sock.setTimeout(10_000, () => sock.destroy(new Error('raw request timed out')));
    sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
    sock.on('error', reject);
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m === null) reject(new Error(`no HTTP status in ${JSON.stringify(buf.slice(0, 80))}`));
      else resolve(Number(m[1]));
    });
    sock.write(data);
  });
}

void describe('admin API under malformed input', () => {
  let f: AdminFixture;
  let conn: Connection;
  let cleanup: () => Promise<void>;

  async function snapshot(): Promise<string> {
    const refs = await conn.listDomains();
    const infos = await Promise.all(refs.map(async (r) => {
      const i = await conn.domainInfo(r.uuid);
      return { name: i.name, uuid: i.uuid, id: i.id, state: i.state, def: await conn.domainDefinition(r.uuid) };
    }));
    return JSON.stringify(infos.sort((a, b) => a.uuid.localeCompare(b.uuid)));
  }

  before(async () => {
    resetTestHosts();
    const t = await tempDir();
    cleanup = t.cleanup;
    conn = await open('test:///default', { readOnly: false });
    f = await startAdmin({ connection: conn, dir: t.dir, settings: { 'admin.max-body-bytes': 4096 } });
    await symlink('/tmp', join(f.saveDir, 'escape'));
    await symlink('/etc/hostname', join(f.saveDir, 'escape-file'));
    await writeFile(join(f.saveDir, 'exists.img'), 'x');
  });
  after(async () => {
    await f.close();
    await conn.close();
    await cleanup();
  });

  void it('answers every one of a few hundred malformed requests with a 4xx, keeps serving, changes no domain', async () => {
    const all = cases();
    assert.ok(all.length >= 300, `only ${all.length} cases`);
    const before = await snapshot();
    const failures: string[] = [];
    const hist: Record<number, number> = {};
    for (const [i, c] of all.entries()) {
      const res = await call(f.url + c.path, c.opts).catch((e: unknown) => ({ status: -1, text: String(e), headers: {} }));
      hist[res.status] = (hist[res.status] ?? 0) + 1;
      if (res.status < 400 || res.status > 499) failures.push(`${c.label}: ${res.status} ${res.text.slice(0, 120)}`);
      if (res.status >= 400 && 'json' in res && c.opts.method !== 'HEAD') {
        const body = res.json as { code?: unknown } | undefined;
        if (typeof body?.code !== 'string' || !body.code.startsWith('VIRT_ERR_')) failures.push(`${c.label}: no problem code in ${res.text.slice(0, 80)}`);
      }
      if (i % 50 === 49) assert.equal((await call(f.url + D, { token: TOKENS.viewer })).status, 200, `still serving after ${i + 1}`);
    }
    assert.deepEqual(failures, [], `status histogram ${JSON.stringify(hist)}`);
    assert.equal(await snapshot(), before, 'no domain changed');
    const lines = await auditLines(f.auditFile);
    assert.ok(lines.length >= all.length, 'every request audited');
    assert.deepEqual(lines.filter((l) => l.outcome === 'ok' && l.action !== 'list'), [], 'no state-changing request succeeded');
  });

  void it('oversized bodies are refused with 413 whether declared or streamed', async () => {
    const big = JSON.stringify({ force: true, pad: 'x'.repeat(10_000) });
    const declared = await call(`${f.url}${D}/web-1/shutdown`, { method: 'POST', token: TOKENS.admin, body: big });
    assert.equal(declared.status, 413);
    const streamed = await call(`${f.url}${D}/web-1/shutdown`, { method: 'POST', token: TOKENS.admin, body: big, headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(streamed.status, 413);
    assert.equal((await call(f.url + D, { token: TOKENS.viewer })).status, 200);
  });

  void it('malformed HTTP on the socket gets 400/431 from the server and it keeps serving', async () => {
    assert.equal(await raw(f.server.port, 'GARBAGE\r\n\r\n'), 400);
    assert.equal(await raw(f.server.port, 'GET /api/v1/domains HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'), 400);
    assert.equal(await raw(f.server.port, `GET /api/v1/domains HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431);
    assert.equal(await raw(f.server.port, 'POST /api/v1/domains/web-1/destroy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'), 400);
    const before = (await conn.domainInfo('web-1')).state;
    // Broken chunked framing after valid headers: a 400 (or a cut connection), never a change.
    const chunked = await raw(f.server.port, `POST /api/v1/domains/web-1/shutdown HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n`).catch(() => 0);
    assert.ok(chunked === 400 || chunked === 0, `got ${chunked}`);
    assert.equal((await conn.domainInfo('web-1')).state, before);
    assert.equal((await call(f.url + D, { token: TOKENS.viewer })).status, 200);
  });

  void it('a client that never finishes its headers is cut off with 408 (slowloris)', async () => {
    const { dir, cleanup: c } = await tempDir();
    const slow = await startAdmin({ connection: conn, dir, settings: { 'admin.headers-timeout-ms': 300, 'admin.request-timeout-ms': 600 } });
    try {
      const started = Date.now();
      const status = await new Promise<number>((resolve, reject) => {
        const sock = connect(slow.server.port, '127.0.0.1');
        let buf = '';
        sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
        sock.on('error', reject);
        sock.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)));
        sock.write('GET /api/v1/domains HTTP/1.1\r\nHost: x\r\n');
        // Keep trickling a header line so the socket is never idle, but never finish.
        const t = setInterval(() => sock.write('X-Slow: 1\r\n'), 50);
        sock.on('close', () => clearInterval(t));
        sock.setTimeout(15_000, () => sock.destroy(new Error('not cut off within 15 s')));
      });
      assert.equal(status, 408);
      assert.ok(Date.now() - started < 15_000);
      assert.equal((await call(slow.url + D, { token: TOKENS.viewer })).status, 200);
    } finally {
      await slow.close();
      await c();
    }
  });
});
