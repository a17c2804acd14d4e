import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startFakeXen, type FakeXen } from '../../fake-xen/index.ts';
import { isXsErrno, resolveXenStoreSocket, XenStoreClient, XenStoreError } from '../../../src/drivers/xen/xenstore.ts';
import { XS } from '../../../src/drivers/xen/xenstore-wire.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { silentLogger } from '../../../src/util/logger.ts';

const execFileP = promisify(execFile);

async function cli(fx: FakeXen, tool: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(tool, args, { env: { ...process.env, XENSTORED_PATH: fx.paths.xenstoreSocket }, timeout: 10_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${tool} is not installed: apt-get install -y xenstore-utils`);
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

void describe('XenStore stand-in and client', () => {
  let dir: string;
  let fx: FakeXen;
  let client: XenStoreClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-xs-test-'));
    fx = await startFakeXen({ dir });
    client = await XenStoreClient.connect({ socketPath: fx.paths.xenstoreSocket, readOnly: false, timeoutMs: 5000, logger: silentLogger });
  });
  after(async () => {
    await client.close();
    await fx.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it("Debian's xenstore-read/-ls read the fake host's domains", async () => {
    const r = await cli(fx, 'xenstore-read', ['/local/domain/1/name', '/local/domain/2/name']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['web', 'db']);
    const ls = await cli(fx, 'xenstore-ls', ['-f', '/local/domain/0/backend/vbd/2']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /\/local\/domain\/0\/backend\/vbd\/2\/51728\/dev = "xvdb"/);
    const missing = await cli(fx, 'xenstore-read', ['/no/such/node']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /couldn't read path \/no\/such\/node/);
  });

  void it('our client reads what xenstore-write wrote (multi-pair write runs in a transaction)', async () => {
    const txBefore = fx.xenstore.counts.get(XS.TRANSACTION_START) ?? 0;
    const w = await cli(fx, 'xenstore-write', ['/tool/test/a', 'hello world', '/tool/test/b', 'ü-utf8']);
    assert.equal(w.code, 0, w.stderr);
    assert.ok((fx.xenstore.counts.get(XS.TRANSACTION_START) ?? 0) > txBefore, 'xenstore-write used a transaction');
    assert.equal(await client.read('/tool/test/a'), 'hello world');
    assert.equal(await client.read('/tool/test/b'), 'ü-utf8');
    assert.deepEqual((await client.directory('/tool/test')).sort(), ['a', 'b']);
  });

  void it('xenstore tools read what our client wrote, and see rm', async () => {
    await client.write('/tool/ours/key', 'from-client');
    const r = await cli(fx, 'xenstore-read', ['/tool/ours/key']);
    assert.equal(r.stdout.trim(), 'from-client');
    await client.rm('/tool/ours');
    const exists = await cli(fx, 'xenstore-exists', ['/tool/ours/key']);
    assert.notEqual(exists.code, 0);
    // rm of a missing node whose parent exists is fine; with a missing parent it is ENOENT.
    await client.rm('/tool/ours');
    await assert.rejects(client.rm('/tool/nothing/here'), (e: unknown) => isXsErrno(e, 'ENOENT'));
  });

  void it('maps ERROR replies to typed errors', async () => {
    await assert.rejects(client.read('/local/domain/999/name'), (e: unknown) => e instanceof XenStoreError && e.errno === 'ENOENT' && e.code === 'VIRT_ERR_OPERATION_FAILED');
    assert.equal(await client.readOptional('/local/domain/999/name'), undefined);
    await assert.rejects(client.read('relative//bad'), (e: unknown) => isXsErrno(e, 'EINVAL') && isVirtError(e, 'VIRT_ERR_INVALID_ARG'));
    await assert.rejects(client.request(XS.CONTROL, Buffer.from('x\0')), (e: unknown) => isXsErrno(e, 'ENOSYS') && isVirtError(e, 'VIRT_ERR_NO_SUPPORT'));
    await assert.rejects(client.request(XS.READ, Buffer.from('/x\0'), { tx: 4242 }), (e: unknown) => isXsErrno(e, 'ENOENT'));
  });

  void it('refuses payloads above 4096 bytes before sending', async () => {
    const before = fx.xenstore.counts.get(XS.WRITE) ?? 0;
    await assert.rejects(client.write('/tool/big', 'x'.repeat(5000)), (e: unknown) => isVirtError(e, 'VIRT_ERR_INVALID_ARG'));
    assert.equal(fx.xenstore.counts.get(XS.WRITE) ?? 0, before, 'nothing reached the daemon');
    // The connection is still usable.
    assert.equal(await client.read('/local/domain/1/name'), 'web');
  });

  void it('runs transactions: isolation, commit, abort and EAGAIN on conflict', async () => {
    await client.write('/tool/tx/v', '1');
    const tx = await client.transactionStart();
    await client.write('/tool/tx/v', '2', { tx });
    assert.equal(await client.read('/tool/tx/v'), '1', 'outside the transaction the old value stands');
    assert.equal(await client.read('/tool/tx/v', { tx }), '2');
    await client.transactionEnd(tx, true);
    assert.equal(await client.read('/tool/tx/v'), '2');

    const aborted = await client.transactionStart();
    await client.write('/tool/tx/v', 'never', { tx: aborted });
    await client.transactionEnd(aborted, false);
    assert.equal(await client.read('/tool/tx/v'), '2');

    const conflicting = await client.transactionStart();
    await client.write('/tool/tx/v', 'mine', { tx: conflicting });
    await client.write('/tool/tx/other', 'theirs');
    await assert.rejects(client.transactionEnd(conflicting, true), (e: unknown) => isXsErrno(e, 'EAGAIN'));

    // transaction() retries on EAGAIN.
    let attempts = 0;
    const result = await client.transaction(async (t) => {
      attempts++;
      const v = await client.read('/tool/tx/v', { tx: t });
      if (attempts === 1) await client.write('/tool/tx/other', 'interfere');
      await client.write('/tool/tx/v', v + '+', { tx: t });
      return v;
    });
    assert.equal(attempts, 2);
    assert.equal(result, '2');
    assert.equal(await client.read('/tool/tx/v'), '2+');
  });

  void it('delivers watch events: once at registration, then on changes below the path', async () => {
    const events: string[] = [];
    let notify: () => void = () => undefined;
    const waitFor = (n: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${events.length} events: ${events.join(',')}`)), 5000);
        notify = () => {
          if (events.length >= n) {
            clearTimeout(t);
            resolve();
          }
        };
        notify();
      });
    await client.watch('/tool/watched', 'tok1', (path, token) => {
      events.push(`${token}:${path}`);
      notify();
    });
    await waitFor(1);
    assert.equal(events[0], 'tok1:/tool/watched');
    const w = await cli(fx, 'xenstore-write', ['/tool/watched/child', 'x']);
    assert.equal(w.code, 0);
    await waitFor(2);
    assert.equal(events[1], 'tok1:/tool/watched/child');
    await client.unwatch('/tool/watched', 'tok1');
    await client.write('/tool/watched/child', 'y');
    assert.equal(await client.read('/tool/watched/child'), 'y');
    assert.equal(events.length, 2, 'no events after unwatch');
  });

  void it('a read-only client refuses every write locally', async () => {
    const ro = await XenStoreClient.connect({ socketPath: fx.paths.xenstoreSocket, readOnly: true, timeoutMs: 5000, logger: silentLogger });
    try {
      const writesBefore = fx.xenstore.counts.get(XS.WRITE) ?? 0;
      await assert.rejects(ro.write('/local/domain/1/control/shutdown', 'poweroff'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      await assert.rejects(ro.rm('/local/domain/1'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      await assert.rejects(ro.mkdir('/x'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      await assert.rejects(ro.request(XS.SET_PERMS, Buffer.from('/local/domain/1\0n0\0')), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      assert.equal(fx.xenstore.counts.get(XS.WRITE) ?? 0, writesBefore);
      assert.equal(await ro.read('/local/domain/1/name'), 'web');
    } finally {
      await ro.close();
    }
  });

  void it('GET_DOMAIN_PATH and GET_PERMS', async () => {
    assert.equal(await client.getDomainPath(3), '/local/domain/3');
    assert.deepEqual(await client.getPerms('/local/domain/1/name'), ['n0']);
  });
});

void describe('XenStore client transport', () => {
  void it('resolves the socket like libxenstore', () => {
    assert.equal(resolveXenStoreSocket('/explicit', { XENSTORED_PATH: '/env' }), '/explicit');
    assert.equal(resolveXenStoreSocket('', { XENSTORED_PATH: '/env/sock' }), '/env/sock');
    assert.equal(resolveXenStoreSocket(undefined, { XENSTORED_RUNDIR: '/run/x/' }), '/run/x/socket');
    assert.equal(resolveXenStoreSocket('', {}), '/var/run/xenstored/socket');
  });

  void it('a missing socket is VIRT_ERR_NO_CONNECT', async () => {
    await assert.rejects(XenStoreClient.connect({ socketPath: join(tmpdir(), 'no-such-xenstored.sock'), readOnly: true, timeoutMs: 2000, logger: silentLogger }), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT'));
  });

  void it('a daemon that never answers is cut off by the deadline; an oversized reply is VIRT_ERR_RPC', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virt-xs-silent-'));
    const path = join(dir, 'sock');
    let mode: 'silent' | 'huge' = 'silent';
    const server: Server = createServer((s) => {
      s.on('data', () => {
        if (mode === 'huge') {
          const h = Buffer.alloc(16);
          h.writeUInt32LE(XS.READ, 0);
          h.writeUInt32LE(2, 4);
          h.writeUInt32LE(0, 8);
          h.writeUInt32LE(100_000, 12);
          s.write(h);
        }
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const c = await XenStoreClient.connect({ socketPath: path, readOnly: true, timeoutMs: 300, logger: silentLogger });
      const t0 = Date.now();
      await assert.rejects(c.read('/x'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_TIMEOUT'));
      assert.ok(Date.now() - t0 < 5000);
      mode = 'huge';
      await assert.rejects(c.read('/y'), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
      await c.close();
      const c2 = await XenStoreClient.connect({ socketPath: path, readOnly: true, timeoutMs: 10_000, logger: silentLogger });
      mode = 'silent';
      const ac = new AbortController();
      const p = c2.read('/z', { signal: ac.signal });
      ac.abort();
      await assert.rejects(p, (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_TIMEOUT'));
      await c2.close();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

void describe('XenStore big directories', () => {
  void it('a directory too big for one payload is read with DIRECTORY_PART (pitfall 7)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virt-xs-big-'));
    const fx = await startFakeXen({ dir });
    const c = await XenStoreClient.connect({ socketPath: fx.paths.xenstoreSocket, readOnly: false, timeoutMs: 5000, logger: silentLogger });
    try {
      const want: string[] = [];
      await c.transaction(async (tx) => {
        for (let i = 0; i < 1200; i++) {
          want.push(`node-with-a-longish-name-${i}`);
          await c.write(`/tool/big/node-with-a-longish-name-${i}`, String(i), { tx });
        }
      });
      await assert.rejects(c.request(XS.DIRECTORY, Buffer.from('/tool/big\0')), (e: unknown) => isXsErrno(e, 'E2BIG'));
      const partsBefore = fx.xenstore.counts.get(XS.DIRECTORY_PART) ?? 0;
      const names = await c.directory('/tool/big');
      assert.deepEqual(names, want);
      assert.ok((fx.xenstore.counts.get(XS.DIRECTORY_PART) ?? 0) - partsBefore >= 8, 'read in several parts');
      const ls = await cli(fx, 'xenstore-list', ['/tool/big']);
      assert.equal(ls.code, 0, ls.stderr);
      assert.equal(ls.stdout.trim().split('\n').length, 1200, "Debian's tools read the big directory too");
    } finally {
      await c.close();
      await fx.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
