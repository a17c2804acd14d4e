import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeDomainList, decodeFrame, decodeHello, decodeHostInfo, decodeVersion, replyFrameLength, statusError } from '../../../src/drivers/xen/proxy-protocol.ts';
import { XenStoreClient } from '../../../src/drivers/xen/xenstore.ts';
import { encodeMessage, XS, XS_PAYLOAD_MAX } from '../../../src/drivers/xen/xenstore-wire.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { holds, holdsAsync, hostileBytes, parsesOrTyped } from './check.ts';
import { HostilePeer } from './peer.ts';

/** A virt-proxy reply frame: prefix, version, type, status, serial, then any payload. */
const proxyFrame = fc
  .record({ version: fc.oneof(fc.constant(1), fc.nat({ max: 255 })), type: fc.nat({ max: 255 }), status: fc.oneof(fc.constant(0), fc.nat({ max: 0xffff })), serial: fc.nat(), payload: hostileBytes(600), lie: fc.oneof(fc.constant(0), fc.integer({ min: -8, max: 8 }), fc.nat()) })
  .map((f) => {
    const b = Buffer.alloc(12 + f.payload.length);
    b.writeUInt32BE(Math.max(0, Math.min(0xffffffff, 8 + f.payload.length + f.lie)), 0);
    b.writeUInt8(f.version, 4);
    b.writeUInt8(f.type, 5);
    b.writeUInt16BE(f.status, 6);
    b.writeUInt32BE(f.serial >>> 0, 8);
    b.set(f.payload, 12);
    return b;
  });

void describe('hostile input: virt-proxy replies', () => {
  void it('frames and every reply body decode or give VIRT_ERR_RPC (or the status error), never anything else', () => {
    holds(fc.oneof(proxyFrame, hostileBytes(64).map((b) => Buffer.from(b))), (buf) => {
      const len = parsesOrTyped(() => replyFrameLength(buf), ['VIRT_ERR_RPC']);
      if (!len.ok || len.value === 0) return;
      const frame = parsesOrTyped(() => decodeFrame(buf.subarray(0, len.value)), ['VIRT_ERR_RPC']);
      if (!frame.ok) return;
      const p = frame.value.payload;
      parsesOrTyped(() => decodeHello(p), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => decodeVersion(p), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => decodeHostInfo(p), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => decodeDomainList(p, 0, 256), ['VIRT_ERR_RPC']);
      assert.ok(isVirtError(statusError(frame.value.status, p)));
    }, 5000);
  });

  void it('a domain list never holds more domains than asked for, nor domids outside the range', () => {
    holds(fc.tuple(hostileBytes(2000), fc.nat({ max: 0x7fef }), fc.integer({ min: 1, max: 256 })), ([bytes, first, max]) => {
      const r = parsesOrTyped(() => decodeDomainList(Buffer.from(bytes), first, max), ['VIRT_ERR_RPC']);
      if (r.ok) {
        assert.ok(r.value.length <= max);
        for (const d of r.value) assert.ok(d.domid >= first, `domid ${d.domid} below first ${first}`);
      }
    });
  });
});

void describe('hostile input: XenStore replies', () => {
  let peer: HostilePeer;
  before(async () => {
    peer = await HostilePeer.start();
  });
  after(async () => {
    await peer.stop();
  });

  void it('a read resolves or fails typed within its deadline, for any reply stream', async () => {
    const message = fc.record({ type: fc.oneof(fc.constant(XS.READ), fc.constant(XS.ERROR), fc.constant(XS.WATCH_EVENT), fc.nat({ max: 40 })), reqId: fc.oneof(fc.constant(1), fc.nat()), txId: fc.nat(), payload: hostileBytes(200).map((b) => Buffer.from(b)) }).map((m) => encodeMessage(m));
    const lyingHeader = fc.integer({ min: XS_PAYLOAD_MAX + 1, max: 0xffffffff }).map((len) => {
      const b = Buffer.alloc(16);
      b.writeUInt32LE(XS.READ, 0);
      b.writeUInt32LE(1, 4);
      b.writeUInt32LE(len, 12);
      return b;
    });
    const reply = fc.array(fc.oneof(message, lyingHeader, hostileBytes(20).map((b) => Buffer.from(b))), { minLength: 1, maxLength: 4 }).map((parts) => Buffer.concat(parts));
    await holdsAsync(fc.record({ reply, chunks: fc.array(fc.integer({ min: 1, max: 24 }), { maxLength: 5 }), close: fc.boolean() }), async (script) => {
      peer.script = script;
      const started = Date.now();
      const client = await XenStoreClient.connect({ socketPath: peer.path, readOnly: true, timeoutMs: 200, logger: silentLogger });
      try {
        const v = await client.read('/local/domain/0/name');
        assert.equal(typeof v, 'string');
      } catch (err) {
        assert.ok(isVirtError(err), `untyped rejection: ${String(err)}`);
      } finally {
        await client.close();
      }
      assert.ok(Date.now() - started < 2000, 'the read outlived its deadline');
    }, 200);
  });
});
