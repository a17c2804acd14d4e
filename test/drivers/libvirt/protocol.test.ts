import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LibvirtClient } from '../../../src/drivers/libvirt/client.ts';
import {
  decodeRemoteError,
  encodePacket,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  keepalivePacket,
  LibvirtError,
  MessageStatus,
  MessageType,
  Proc,
  readAllDomainStats,
  readNodeInfo,
  REMOTE_PROGRAM,
  uuidToBytes,
} from '../../../src/drivers/libvirt/protocol.ts';
import { XdrReader, XdrWriter } from '../../../src/drivers/libvirt/xdr.ts';
import { isVirtError, type VirtError } from '../../../src/virt/errors.ts';
import { startFakePeer, type FakePeer, type Scenario } from './fake-peer.ts';

function client(peer: FakePeer, extra: Partial<ConstructorParameters<typeof LibvirtClient>[0]> = {}): LibvirtClient {
  return new LibvirtClient({
    socketPath: peer.socketPath,
    name: 'qemu:///system',
    readOnly: true,
    maxMessageBytes: 1 << 20,
    connectTimeoutMs: 2000,
    keepaliveIntervalMs: 5000,
    keepaliveCount: 5,
    ...extra,
  });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<VirtError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isVirtError(err), `expected a VirtError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

const nodeInfo = (c: LibvirtClient): Promise<unknown> => c.call(Proc.NODE_GET_INFO, undefined, readNodeInfo, { timeoutMs: 2000 });

function writeNodeInfo(w: XdrWriter): void {
  for (const ch of Buffer.from('x86_64\0'.padEnd(32, '\0'), 'latin1')) w.int(ch);
  w.uhyper(1024n).int(2).int(1000).int(1).int(1).int(2).int(1);
}

void describe('XDR', () => {
  void it('round-trips every primitive and bounds lengths before allocating', () => {
    const w = new XdrWriter(4);
    w.int(-5).uint(0xffffffff).hyper(-2n).uhyper(2n ** 63n).double(1.5).bool(true).string('héllo', 100).opaque(Buffer.from([1, 2, 3]), 10).optional(null, () => undefined).optional('x', (x, v) => x.string(v, 10));
    const buf = w.finish();
    assert.equal(buf.length % 4, 0);
    const r = new XdrReader(buf);
    assert.equal(r.int(), -5);
    assert.equal(r.uint(), 0xffffffff);
    assert.equal(r.hyper(), -2n);
    assert.equal(r.uhyper(), 2n ** 63n);
    assert.equal(r.double(), 1.5);
    assert.equal(r.bool(), true);
    assert.equal(r.string(100), 'héllo');
    assert.deepEqual([...r.opaque(10)], [1, 2, 3]);
    assert.equal(r.optional((x) => x.string(10)), null);
    assert.equal(r.optional((x) => x.string(10)), 'x');
    r.end('test');
    // A string claiming 4 GiB in an 8-byte buffer fails on the length, not on allocation.
    assert.throws(() => new XdrReader(Buffer.from([0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0])).string(1 << 30), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
    assert.throws(() => new XdrReader(Buffer.from([0, 0, 0, 200])).string(100), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
    // An array count of a billion in 4 bytes is refused before any element is read.
    assert.throws(() => new XdrReader(Buffer.from([0x3b, 0x9a, 0xca, 0x00])).array(2 ** 31, (x) => x.int()), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
    assert.throws(() => new XdrWriter().string('toolong', 3), (e: unknown) => isVirtError(e, 'VIRT_ERR_INVALID_ARG'));
  });

  void it('decodes typed parameters of every type in a stats record', () => {
    const w = new XdrWriter();
    w.uint(1).string('dom1', 100).fixedOpaque(uuidToBytes('6695eb01-f6a4-8304-79aa-97f2502e193f'), 16).int(3);
    const params: Array<[string, number, (x: XdrWriter) => void]> = [
      ['a.int', 1, (x) => x.int(-1)],
      ['a.uint', 2, (x) => x.uint(7)],
      ['a.llong', 3, (x) => x.hyper(-9n)],
      ['a.ullong', 4, (x) => x.uhyper(123456789012n)],
      ['a.double', 5, (x) => x.double(0.25)],
      ['a.bool', 6, (x) => x.int(1)],
      ['a.string', 7, (x) => x.string('vda', 100)],
    ];
    w.uint(params.length);
    for (const [k, t, v] of params) {
      w.string(k, 100).int(t);
      v(w);
    }
    const recs = readAllDomainStats(new XdrReader(w.finish()));
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0]?.dom, { name: 'dom1', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', id: 3 });
    assert.deepEqual(Object.fromEntries(recs[0]?.params ?? []), { 'a.int': -1, 'a.uint': 7, 'a.llong': -9, 'a.ullong': 123456789012, 'a.double': 0.25, 'a.bool': true, 'a.string': 'vda' });
  });

  void it('keeps libvirt\'s code and message in remote_error and maps it to a stable code', () => {
    const w = new XdrWriter();
    w.int(42).int(10).optional('Domain not found: no domain with matching name \'x\'', (x, v) => x.string(v, 1000)).int(2);
    w.bool(false).bool(false).bool(false).bool(false).int(0).int(0).bool(false);
    const e = decodeRemoteError(w.finish());
    assert.ok(e instanceof LibvirtError);
    assert.equal(e.code, 'VIRT_ERR_NO_DOMAIN');
    assert.equal(e.libvirtCode, 42);
    assert.equal(e.libvirtName, 'VIR_ERR_NO_DOMAIN');
    assert.match(e.libvirtMessage, /no domain with matching name/);
  });
});

void describe('libvirt client against a hostile peer', () => {
  const cases: Array<{ name: string; scenario: Scenario; code: string }> = [
    { name: 'a reply whose body does not decode', scenario: (_p, _s, reply) => reply((w) => w.int(1)), code: 'VIRT_ERR_RPC' },
    { name: 'a reply with trailing garbage', scenario: (_p, _s, reply) => reply((w) => { writeNodeInfo(w); w.int(9); }), code: 'VIRT_ERR_RPC' },
    { name: 'a packet shorter than its header', scenario: (_p, s) => s.write(Buffer.from([0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0])), code: 'VIRT_ERR_RPC' },
    { name: 'a truncated packet and a closed socket', scenario: (_p, s) => s.end(Buffer.from([0, 0, 0, 200, 0x20, 0, 0x80, 0x86])), code: 'VIRT_ERR_NO_CONNECT' },
    { name: 'an oversized length word (refused before allocation)', scenario: (_p, s) => s.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0])), code: 'VIRT_ERR_RPC' },
    { name: 'a reply with a serial never sent', scenario: (_p, _s, reply) => reply(writeNodeInfo, { serial: 99_999 }), code: 'VIRT_ERR_RPC' },
    { name: 'a reply for another procedure', scenario: (_p, _s, reply) => reply(writeNodeInfo, { proc: 9999 }), code: 'VIRT_ERR_RPC' },
    { name: 'a reply of an unknown program', scenario: (_p, _s, reply) => reply(writeNodeInfo, { prog: 0x12345678 }), code: 'VIRT_ERR_RPC' },
    { name: 'an event of an unknown procedure', scenario: (_p, _s, reply) => reply(undefined, { type: MessageType.MESSAGE, serial: 0, proc: 4242 }), code: 'VIRT_ERR_RPC' },
    { name: 'a stream packet', scenario: (_p, _s, reply) => reply(undefined, { type: MessageType.STREAM }), code: 'VIRT_ERR_RPC' },
    { name: 'a malformed remote_error', scenario: (_p, _s, reply) => reply((w) => w.int(42), { status: MessageStatus.ERROR }), code: 'VIRT_ERR_RPC' },
  ];
  for (const c of cases) {
    void it(`${c.name}: typed error, connection closed`, async () => {
      const peer = await startFakePeer(c.scenario);
      const cl = client(peer);
      try {
        await expectCode(nodeInfo(cl), c.code);
        await peer.closed;
        assert.equal(cl.connected, false);
      } finally {
        cl.close();
        await peer.stop();
      }
    });
  }

  void it('a libvirt error reply is a typed error that keeps the connection', async () => {
    const peer = await startFakePeer((_p, _s, reply) =>
      reply((w) => {
        w.int(55).int(10).optional('Requested operation is not valid: domain is not running', (x, v) => x.string(v, 1000)).int(2);
        w.bool(false).bool(false).bool(false).bool(false).int(0).int(0).bool(false);
      }, { status: MessageStatus.ERROR }),
    );
    const cl = client(peer);
    try {
      const e = await expectCode(nodeInfo(cl), 'VIRT_ERR_OPERATION_INVALID');
      assert.ok(e instanceof LibvirtError && e.libvirtCode === 55);
      assert.equal(cl.connected, true);
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('endless silence: keepalive gives up, pending calls fail, the socket is closed', async () => {
    const peer = await startFakePeer(() => undefined);
    const cl = client(peer, { keepaliveIntervalMs: 50, keepaliveCount: 3 });
    try {
      const t0 = Date.now();
      await expectCode(cl.call(Proc.NODE_GET_INFO, undefined, readNodeInfo, { timeoutMs: 60_000 }), 'VIRT_ERR_NO_CONNECT');
      assert.ok(Date.now() - t0 < 30_000);
      await peer.closed;
      // It probed before giving up.
      assert.ok(peer.received.some((p) => p.header.prog === KEEPALIVE_PROGRAM && p.header.proc === KEEPALIVE_PROC_PING));
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('a silent reply misses its deadline and a later call still works', async () => {
    let n = 0;
    const peer = await startFakePeer((_p, _s, reply) => {
      if (n++ === 0) return;
      reply(writeNodeInfo);
    });
    const cl = client(peer);
    try {
      await expectCode(cl.call(Proc.NODE_GET_INFO, undefined, readNodeInfo, { timeoutMs: 100 }), 'VIRT_ERR_OPERATION_TIMEOUT');
      const ac = new AbortController();
      ac.abort();
      await expectCode(cl.call(Proc.NODE_GET_INFO, undefined, readNodeInfo, { timeoutMs: 1000, signal: ac.signal }), 'VIRT_ERR_OPERATION_TIMEOUT');
      const info = await nodeInfo(cl);
      assert.equal((info as { model: string }).model, 'x86_64');
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('answers the daemon\'s keepalive pings', async () => {
    const peer = await startFakePeer((p, s, reply) => {
      s.write(keepalivePacket(KEEPALIVE_PROC_PING));
      setTimeout(() => reply(writeNodeInfo), 50);
    });
    const cl = client(peer);
    try {
      await nodeInfo(cl);
      assert.ok(peer.received.some((p) => p.header.prog === KEEPALIVE_PROGRAM && p.header.proc === KEEPALIVE_PROC_PONG && p.header.type === MessageType.MESSAGE));
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('refuses to send a request over the message limit', async () => {
    const peer = await startFakePeer(() => undefined);
    const cl = client(peer, { maxMessageBytes: 4096 });
    try {
      await expectCode(cl.call(Proc.DOMAIN_DEFINE_XML, (w) => w.string('x'.repeat(10_000), 1 << 22), () => undefined, { timeoutMs: 1000 }), 'VIRT_ERR_INVALID_ARG');
      assert.ok(!peer.received.some((p) => p.header.proc === Proc.DOMAIN_DEFINE_XML));
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('SASL-only daemon: a clear error naming the socket', async () => {
    const peer = await startFakePeer(() => undefined, { auth: [1] });
    const cl = client(peer);
    try {
      const e = await expectCode(cl.connect({ timeoutMs: 2000 }), 'VIRT_ERR_AUTH_UNAVAILABLE');
      assert.ok(e.message.includes(peer.socketPath));
      assert.match(e.message, /auth_unix_ro/);
    } finally {
      cl.close();
      await peer.stop();
    }
  });

  void it('a dead socket fails at connect with the socket named, and is retried with backoff', async () => {
    const peer = await startFakePeer(() => undefined);
    await peer.stop();
    const cl = client(peer);
    try {
      const e = await expectCode(nodeInfo(cl), 'VIRT_ERR_NO_CONNECT');
      assert.ok(e.message.includes(peer.socketPath));
      const again = await expectCode(nodeInfo(cl), 'VIRT_ERR_NO_CONNECT');
      assert.match(again.message, /next reconnect attempt/);
    } finally {
      cl.close();
    }
  });

  void it('a packet encoder writes the length word over the whole packet', () => {
    const b = encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 1, type: 0, serial: 5, status: 0 }, (w) => w.int(7));
    assert.equal(b.readUInt32BE(0), b.length);
    assert.equal(b.length, 32);
  });
});
