import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { QemudClient } from '../../../src/drivers/qemu/client.ts';
import { checkRequest, encodeFrame, FrameDecoder, HEADER_BYTES } from '../../../src/qemud-shared/protocol.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { holds, holdsAsync, hostileBytes, parsesOrTyped } from './check.ts';
import { HostilePeer } from './peer.ts';

const MAX = 4096;

function frame(body: Uint8Array): Uint8Array {
  const f = Buffer.alloc(HEADER_BYTES + body.length);
  f.writeUInt32BE(body.length, 0);
  f.set(body, HEADER_BYTES);
  return f;
}

/** A byte stream of frames: well-formed JSON, junk, bad UTF-8, lying lengths. */
const stream = fc
  .array(
    fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => Uint8Array.from(encodeFrame(v))),
      hostileBytes(64).map(frame),
      fc.constantFrom(Uint8Array.from([0xc3, 0x28]), Uint8Array.from([0xff, 0xfe])).map(frame),
      fc.integer({ min: MAX + 1, max: 0xffffffff }).map((n) => Uint8Array.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff])),
      hostileBytes(16),
    ),
    { maxLength: 8 },
  )
  .map((parts) => Buffer.concat(parts));

function decodeAll(bytes: Buffer, cuts: number[]): string[] {
  const d = new FrameDecoder(MAX);
  const out: string[] = [];
  let off = 0;
  for (const c of [...cuts, bytes.length]) {
    const end = Math.min(bytes.length, Math.max(off, c));
    for (const m of d.push(bytes.subarray(off, end))) out.push(JSON.stringify(m, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    off = end;
  }
  return out;
}

void describe('hostile input: driver <-> virt-qemud frames', () => {
  void it('decodes any byte stream into messages, malformed or oversized marks, never throwing', () => {
    holds(stream, (bytes) => {
      const out = decodeAll(bytes, []);
      const oversized = out.findIndex((m) => m.includes('"oversized"'));
      // Nothing is decoded after an oversized frame: the connection is dead.
      if (oversized >= 0) assert.equal(oversized, out.length - 1);
    }, 4000);
  });

  void it('gives the same messages however the stream is cut into chunks', () => {
    holds(fc.tuple(stream, fc.array(fc.nat({ max: 600 }), { maxLength: 10 })), ([bytes, cuts]) => {
      assert.deepEqual(decodeAll(bytes, [...cuts].sort((a, b) => a - b)), decodeAll(bytes, []));
    }, 3000);
  });

  void it('refuses an oversized frame at its header, before buffering its body', () => {
    holds(fc.integer({ min: MAX + 1, max: 0xffffffff }), (len) => {
      const d = new FrameDecoder(MAX);
      const head = Buffer.alloc(HEADER_BYTES);
      head.writeUInt32BE(len, 0);
      assert.deepEqual(d.push(head), [{ kind: 'oversized', length: len }]);
      assert.deepEqual(d.push(Buffer.alloc(1024)), []);
    }, 500);
  });

  void it('checks any decoded request into a Request or VIRT_ERR_RPC', () => {
    const req = fc.record({ v: fc.oneof(fc.constant(1), fc.jsonValue()), id: fc.oneof(fc.integer(), fc.string({ maxLength: 80 }), fc.jsonValue()), op: fc.oneof(fc.constantFrom('ping', 'listDomains', 'define'), fc.jsonValue()), args: fc.jsonValue() }, { requiredKeys: [] });
    holds(fc.oneof(fc.jsonValue(), req, fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 6 })), (value) => {
      parsesOrTyped(() => checkRequest(value), ['VIRT_ERR_RPC']);
    }, 5000);
  });

  void describe('the driver client against a hostile virt-qemud', () => {
    let peer: HostilePeer;
    before(async () => {
      peer = await HostilePeer.start();
    });
    after(async () => {
      await peer.stop();
    });

    void it('resolves or rejects with a typed error, within its deadline, for any reply', async () => {
      const reply = fc.oneof(
        stream,
        // Replies that match the first request's id but carry any shape.
        fc.record({ v: fc.oneof(fc.constant(1), fc.jsonValue()), id: fc.constant(1), result: fc.jsonValue(), error: fc.oneof(fc.constant(undefined), fc.jsonValue()) }, { requiredKeys: ['id'] }).map((r) => Buffer.from(encodeFrame(r))),
      );
      await holdsAsync(fc.record({ reply, chunks: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 }), close: fc.boolean() }), async (script) => {
        peer.script = script;
        const client = new QemudClient({ socketPath: peer.path, maxFrameBytes: MAX, connectTimeoutMs: 1000 });
        const started = Date.now();
        try {
          await client.call('listDomains', [], { timeoutMs: 300 });
        } catch (err) {
          assert.ok(isVirtError(err), `untyped rejection: ${String(err)}`);
        } finally {
          client.close();
        }
        assert.ok(Date.now() - started < 2000, 'the call outlived its deadline');
      }, 300);
      peer.dropAll();
    });
  });
});
