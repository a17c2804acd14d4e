// Finding 7: one client on the 0666 read-only socket could exhaust the root
// daemon: pipelined requests never read grew it by ~830 MiB, unfinished 16 MiB
// frames cost 220 MiB and seconds of CPU, and 3,000 idle connections were all
// accepted. Now: max clients per socket, requests in flight per client,
// back-pressure on unread replies, a small read-only frame limit, an idle
// timeout; memory stays near its baseline.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RawConn, rawFrame, sandbox, startDaemon, waitFor, type Sandbox } from '../qemud/helpers.ts';

const MiB = 1024 * 1024;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null);
  return Number(m[1]) * 1024;
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const ping = (id: number): Buffer => rawFrame(JSON.stringify({ v: 1, id, op: 'ping', args: [] }));

void describe('finding 7: per-client limits on virt-qemud\'s sockets', () => {
  let sb: Sandbox;
  let daemon: ChildProcess;
  let pid: number;
  let baseline: number;
  before(async () => {
    sb = sandbox();
    daemon = await startDaemon(sb, ['--max-anonymous-clients', '8', '--max-clients', '4', '--client-idle-timeout-seconds', '2', '--ro-max-frame-bytes', '65536', '--max-client-requests', '4']);
    pid = daemon.pid as number;
    const c = await RawConn.connect(sb.roSocket);
    for (let i = 0; i < 200; i++) c.write(ping(i));
    for (let i = 0; i < 200; i++) await c.next();
    c.close();
    baseline = rssBytes(pid);
  });
  after(async () => {
    daemon?.kill('SIGKILL');
    await sb?.cleanup();
  });

  void it('idle connections beyond max-anonymous-clients are refused (VIRT_ERR_RATE_LIMITED); the read-write socket still answers; idle ones are closed', async () => {
    const conns = await Promise.all(Array.from({ length: 200 }, () => RawConn.connect(sb.roSocket)));
    await waitFor(() => conns.filter((c) => c.closed).length >= 192, 10_000, 'refused connections to close');
    const refused = conns.filter((c) => c.closed);
    assert.equal(refused.length, 192);
    for (const c of refused) assert.equal((c.frames[0] as { error?: { code: string } } | undefined)?.error?.code, 'VIRT_ERR_RATE_LIMITED');
    const rw = await RawConn.connect(sb.rwSocket);
    rw.write(ping(1));
    assert.deepEqual((await rw.next()).error, undefined);
    rw.close();
    // The idle timeout (2 s here) frees the slots the idle clients hold.
    await waitFor(() => conns.every((c) => c.closed), 15_000, 'idle clients to be closed');
    const fresh = await RawConn.connect(sb.roSocket);
    fresh.write(ping(2));
    assert.equal((await fresh.next()).error, undefined);
    fresh.close();
  });

  void it('a client that pipelines requests and never reads is stopped by back-pressure: memory stays near baseline and returns', async (t) => {
    const s = await connect(sb.roSocket);
    s.on('error', () => undefined);
    s.pause();
    const batch: Buffer[] = [];
    for (let i = 0; i < 2000; i++) batch.push(ping(i));
    const chunk = Buffer.concat(batch);
    // 64 MiB of requests: unbounded, their replies alone would cost the daemon several times that.
    for (let sent = 0; sent < 64 * MiB; sent += chunk.length) s.write(chunk);
    let last = -1;
    await waitFor(
      () => {
        const now = s.writableLength;
        const stalled = now > 0 && now === last;
        last = now;
        return stalled;
      },
      60_000,
      'the daemon to stop reading the client',
    );
    const during = rssBytes(pid);
    t.diagnostic(`daemon RSS baseline ${Math.round(baseline / MiB)} MiB, while abused ${Math.round(during / MiB)} MiB, unsent ${Math.round(s.writableLength / MiB)} MiB`);
    assert.ok(s.writableLength > 32 * MiB, `most requests are still unsent (${s.writableLength} bytes): the daemon stopped reading`);
    assert.ok(during - baseline < 64 * MiB, `daemon RSS grew by ${Math.round((during - baseline) / MiB)} MiB`);
    s.destroy();
    await waitFor(() => rssBytes(pid) - baseline < 48 * MiB, 20_000, 'daemon memory back near its baseline');
    const c = await RawConn.connect(sb.roSocket);
    c.write(ping(3));
    assert.equal((await c.next()).error, undefined);
    c.close();
  });

  void it('unfinished 16 MiB frames on the read-only socket are refused at once (frame limit 64 KiB)', async () => {
    const conns = await Promise.all(Array.from({ length: 8 }, () => RawConn.connect(sb.roSocket)));
    // The start of a 16 MiB frame; the refusal comes before the rest would be sent.
    const body = Buffer.alloc(16 * 1024, 0x20);
    for (const c of conns) c.write(rawFrame(body, 16 * MiB));
    for (const c of conns) {
      const reply = await c.next();
      assert.equal((reply.error as { code: string }).code, 'VIRT_ERR_RPC');
      await waitFor(() => c.closed, 5000, 'the connection to close');
    }
    assert.ok(rssBytes(pid) - baseline < 48 * MiB);
  });
});
