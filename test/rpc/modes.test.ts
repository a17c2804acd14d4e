/**
 * The transport modes the QMP, XenStore and virt-proxy clients rely on: one
 * connection (reconnect: false), deadlines that close it, one call at a time,
 * a greeting read by the handshake, truncated frames, a child's pipes as the
 * stream, and line framing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Backoff } from '../../src/rpc/backoff.ts';
import { LengthPrefixedDecoder, LineDecoder, RpcTransport, type TransportOptions } from '../../src/rpc/transport.ts';
import { childStream } from '../../src/rpc/streams.ts';
import { isVirtError, type VirtErrorCode } from '../../src/virt/errors.ts';
import { frame } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'virt-rpc-modes-'));
const servers: Server[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  rmSync(dir, { recursive: true, force: true });
});

const decoder = (): LengthPrefixedDecoder => new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'test peer' });

/** A peer that greets (serial 0) and then does what `reply` says with each request's serial. */
async function peer(name: string, reply: (serial: number, s: Socket, n: number) => void, greet = true): Promise<string> {
  const path = join(dir, name);
  const srv = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    if (greet) s.write(frame(0, 'hello'));
    const d = decoder();
    let n = 0;
    s.on('data', (c: Buffer) => {
      for (const f of d.push(c)) reply(f.readUInt32BE(0), s, n++);
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(path, r));
  return path;
}

function transport(path: string, extra: Partial<TransportOptions<Buffer>> = {}): RpcTransport<Buffer> {
  return new RpcTransport<Buffer>({
    peer: 'test peer',
    socketPath: path,
    decoder,
    serialOf: (f) => (f.readUInt32BE(0) === 0 ? undefined : f.readUInt32BE(0)),
    handshake: async (conn, signal) => {
      const hello = await conn.next({ timeoutMs: 1000, signal, what: 'greeting' });
      assert.equal(hello.subarray(4).toString(), 'hello');
    },
    maxOutboundBytes: 100,
    connectTimeoutMs: 1000,
    backoff: { initialMs: 1, maxMs: 1 },
    reconnect: false,
    ...extra,
  });
}

const code = (c: VirtErrorCode) => (e: unknown) => isVirtError(e, c);
const opts = { timeoutMs: 2000, what: 'x' };

void describe('RpcTransport with one connection', () => {
  void it('reads the greeting in the handshake, then stays closed with the reason the connection was lost', async () => {
    const path = await peer('once.sock', (serial, s, n) => (n === 0 ? s.write(frame(serial, 'ok')) : s.destroy()));
    const t = transport(path);
    const lost: string[] = [];
    const t2 = transport(path, { onDisconnect: (e) => lost.push(e.code) });
    assert.equal((await t.call((s) => frame(s), opts)).subarray(4).toString(), 'ok');
    await assert.rejects(t.call((s) => frame(s), opts), code('VIRT_ERR_NO_CONNECT'));
    assert.equal(t.closed, true);
    await assert.rejects(t.call((s) => frame(s), opts), code('VIRT_ERR_NO_CONNECT'));
    await t2.call((s) => frame(s), opts);
    await t2.closeAndWait();
    assert.deepEqual(lost, ['VIRT_ERR_INVALID_CONN']);
    await assert.rejects(t2.call((s) => frame(s), opts), code('VIRT_ERR_INVALID_CONN'));
  });

  void it('a peer that never greets fails the connect with VIRT_ERR_OPERATION_TIMEOUT', async () => {
    const path = await peer('mute.sock', () => undefined, false);
    const t = transport(path, { connectTimeoutMs: 200 });
    await assert.rejects(t.connection(), code('VIRT_ERR_OPERATION_TIMEOUT'));
  });

  void it('a deadline abandons the serial (a late reply is dropped) unless timeoutCloses', async () => {
    const path = await peer('late.sock', (serial, s, n) => setTimeout(() => s.write(frame(serial, `r${n}`)), n === 0 ? 150 : 0));
    const t = transport(path);
    await assert.rejects(t.call((s) => frame(s), { timeoutMs: 50, what: 'slow' }), code('VIRT_ERR_OPERATION_TIMEOUT'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await t.call((s) => frame(s), opts)).subarray(4).toString(), 'r1');
    t.close();
    const strict = transport(path, { timeoutCloses: true });
    await assert.rejects(strict.call((s) => frame(s), { timeoutMs: 50, what: 'slow' }), code('VIRT_ERR_OPERATION_TIMEOUT'));
    assert.equal(strict.closed, true);
    await assert.rejects(strict.call((s) => frame(s), opts), code('VIRT_ERR_OPERATION_TIMEOUT'));
  });

  void it('exclusive: the second call is sent only once the first is answered', async () => {
    let inFlight = 0;
    let most = 0;
    const path = await peer('serial.sock', (serial, s) => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        s.write(frame(serial));
      }, 20);
    });
    const t = transport(path, { exclusive: true });
    await Promise.all([1, 2, 3].map(() => t.call((s) => frame(s), opts)));
    assert.equal(most, 1);
    t.close();
  });

  void it('a frame cut short by the peer closing is VIRT_ERR_RPC; a reply to no request is VIRT_ERR_RPC', async () => {
    const cut = await peer('cut.sock', (serial, s) => s.end(frame(serial, 'abcdef').subarray(0, 9)));
    await assert.rejects(transport(cut).call((s) => frame(s), opts), code('VIRT_ERR_RPC'));
    const stray = await peer('stray.sock', (serial, s) => s.write(frame(serial + 7)));
    await assert.rejects(transport(stray).call((s) => frame(s), opts), code('VIRT_ERR_RPC'));
  });
});

void describe('the streams and frames under the transport', () => {
  void it("a child's stdin/stdout carry calls; its exit names its last stderr line", async () => {
    const script = "process.stdout.write(Buffer.from([0,0,0,9,0,0,0,0,104,105,33,33,33]));process.stdin.once('data',(b)=>{const s=b.readUInt32BE(4);const r=Buffer.alloc(8);r.writeUInt32BE(4,0);r.writeUInt32BE(s,4);process.stdout.write(r);process.stderr.write('going away\\n');setTimeout(()=>process.exit(3),50);});";
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((r) => child.once('spawn', r));
    const t = transport('', {
      open: () => Promise.resolve(childStream(child, { graceMs: 1000 })),
      connectTimeoutMs: 30_000,
      handshake: async (conn, signal) => void (await conn.next({ timeoutMs: 30_000, signal, what: 'greeting' })),
    });
    await t.call((s) => frame(s), opts);
    const err = await t.call((s) => frame(s), opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isVirtError(err, 'VIRT_ERR_NO_CONNECT'), String(err));
    assert.match((err as Error).message, /exited \(code 3\): going away/);
  });

  void it('LineDecoder splits on LF, trims CR and blanks, and refuses an over-long line', () => {
    const d = new LineDecoder({ maxLineBytes: 16, peer: 'p' });
    assert.deepEqual(d.push(Buffer.from('{"a":1}\r\n\r\n{"b"')), ['{"a":1}']);
    assert.deepEqual(d.push(Buffer.from(':2}\r\n')), ['{"b":2}']);
    assert.equal(d.pendingBytes, 0);
    assert.throws(() => d.push(Buffer.from('x'.repeat(17))), code('VIRT_ERR_RPC'));
  });

  void it('Backoff doubles its wait up to the cap, refuses with the last reason meanwhile, and resets on success', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 3000 });
    assert.doesNotThrow(() => b.check('x'));
    b.failed(new Error('boom'));
    assert.throws(() => b.check('x'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /boom.*next reconnect attempt/.test((e as Error).message));
    b.failed(new Error('boom'));
    assert.ok(b.waitMs > 1000 && b.waitMs <= 2000, String(b.waitMs));
    b.failed(new Error('boom'));
    assert.ok(b.waitMs > 2000 && b.waitMs <= 3000, String(b.waitMs));
    b.succeeded();
    assert.equal(b.waitMs, 0);
    assert.equal(b.failures, 0);
  });
});
