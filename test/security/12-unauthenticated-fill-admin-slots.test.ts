// Finding 12: unauthenticated clients could fill every admin connection slot
// (64 idle sockets, renewable every 10 s). Now not-yet-authenticated
// connections have their own smaller cap and a short deadline, so an
// authenticated request still gets in.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../src/virt/connection.ts';
import { call, startAdmin, tempDir, TOKENS, type AdminFixture } from '../http/admin/fixtures.ts';
import { waitFor } from '../qemud/helpers.ts';

const D = '/api/v1/domains';

function idle(port: number, partial: boolean): Promise<Socket & { gone: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }) as Socket & { gone: boolean };
    s.gone = false;
    s.on('close', () => (s.gone = true));
    // Flowing, so the server's close is seen even when nothing is read.
    s.resume();
    s.on('error', () => undefined);
    s.once('connect', () => {
      // Slowloris: a request line and never the end of the headers.
      if (partial) s.write('GET /api/v1/domains HTTP/1.1\r\nHost: x\r\n');
      resolve(s);
    });
    s.once('error', reject);
  });
}

void describe('finding 12: unauthenticated connections cannot lock authenticated clients out', () => {
  let conn: Connection;
  let f: AdminFixture;
  let cleanup: () => Promise<void>;
  const sockets: Socket[] = [];
  before(async () => {
    conn = await open('test:///default', { readOnly: false });
    const t = await tempDir('virt-sec12-');
    cleanup = t.cleanup;
    f = await startAdmin({ connection: conn, dir: t.dir, settings: { 'admin.max-connections': 64, 'admin.max-unauthenticated-connections': 8, 'admin.unauthenticated-timeout-ms': 1500 } });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await f?.close();
    await conn?.close();
    await cleanup?.();
  });

  void it('64 idle and slowloris connections: only 8 are kept (the newest), and an authenticated request is answered at once', async () => {
    for (let i = 0; i < 64; i++) sockets.push(await idle(f.server.port, i % 2 === 0));
    await waitFor(() => sockets.filter((s) => (s as Socket & { gone: boolean }).gone).length >= 56, 10_000, 'connections over the unauthenticated cap to close');
    const kept = sockets.filter((s) => !(s as Socket & { gone: boolean }).gone);
    assert.equal(kept.length, 8);
    assert.deepEqual(kept, sockets.slice(-8), 'the oldest unauthenticated connections were closed');
    // Without the cap all 64 slots were held and this request could not even connect.
    for (let i = 0; i < 5; i++) {
      const r = await call(f.url + D, { token: TOKENS.viewer });
      assert.equal(r.status, 200, r.text);
    }
  });

  void it('the remaining unauthenticated connections are closed after the deadline; new ones are accepted again', async () => {
    await waitFor(() => sockets.every((s) => (s as Socket & { gone: boolean }).gone), 15_000, 'unauthenticated connections to expire');
    const s = await idle(f.server.port, true);
    sockets.push(s);
    s.write('Authorization: Bearer ' + TOKENS.viewer + '\r\n\r\n');
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        text += d;
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    assert.match(reply, /^HTTP\/1\.1 200 /);
  });

  void it('a failed request does not count as authenticated: its connection is closed at the deadline', async () => {
    const s = await idle(f.server.port, false);
    sockets.push(s);
    s.write(`GET ${D} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\n\r\n`);
    await waitFor(() => (s).gone, 15_000, 'the unauthenticated keep-alive connection to close');
  });
});
