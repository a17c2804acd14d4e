import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseQmpJson, u64 } from '../../../src/qemud/json.ts';
import { QmpClient } from '../../../src/qemud/qmp.ts';
import { parseBalloon, parseBlockstats, parseCpusFast, parseGuestStats, parseQueryMigrate, parseQueryStatus } from '../../../src/qemud/qmp-parse.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { holds, holdsAsync, hostileBytes, parsesOrTyped } from './check.ts';
import { HostilePeer } from './peer.ts';

// Numbers QEMU really sends (u64 counters, the 2^64-1 marker) and ones it should not.
const qmpNumber = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => n.toString()),
  fc.constantFrom('18446744073709551615', '-1', '1e400', '-0', '0.5', '9007199254740993', '1' + '0'.repeat(400)),
);

/** QMP-ish JSON text: real reply shapes with hostile numbers, nesting and strings spliced in. */
const qmpText = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.tuple(qmpNumber, qmpNumber, qmpNumber).map(([a, b, c]) => `{"return": [{"device": "", "qdev": "/machine/peripheral/vda/virtio-backend", "stats": {"rd_bytes": ${a}, "wr_bytes": ${b}, "rd_total_time_ns": ${c}}}]}`),
  fc.tuple(qmpNumber, qmpNumber).map(([a, b]) => `{"return": {"actual": ${a}, "last-update": ${b}, "stats": {"stat-free-memory": ${a}}}}`),
  fc.tuple(fc.integer({ min: -5, max: 70_000 }), qmpNumber).map(([i, t]) => `{"return": [{"cpu-index": ${i}, "thread-id": ${t}}]}`),
  fc.integer({ min: 1, max: 20_000 }).map((d) => '{"return": ' + '['.repeat(d) + ']'.repeat(d) + '}'),
  fc.string({ unit: 'binary', maxLength: 80 }),
);

const PARSERS: [string, (v: unknown) => unknown][] = [
  ['query-status', parseQueryStatus],
  ['query-cpus-fast', parseCpusFast],
  ['query-balloon', parseBalloon],
  ['guest-stats', parseGuestStats],
  ['query-blockstats', (v) => parseBlockstats(v, () => undefined)],
  ['query-migrate', parseQueryMigrate],
];

function replyValue(text: string): unknown {
  const msg = parseQmpJson(text);
  return typeof msg === 'object' && msg !== null && 'return' in msg ? msg.return : msg;
}

void describe('hostile input: QMP replies', () => {
  void it('every reply parser returns a reading or VIRT_ERR_RPC for any reply value', () => {
    holds(qmpText, (text) => {
      let value: unknown;
      try {
        value = replyValue(text);
      } catch {
        return; // not JSON at all: the QMP client drops the connection (tested below)
      }
      for (const [, parse] of PARSERS) parsesOrTyped(() => parse(value), ['VIRT_ERR_RPC']);
    }, 4000);
  });

  void it('keeps u64 counters exact or absent: never negative, never NaN', () => {
    holds(qmpNumber, (text) => {
      const v = u64(parseQmpJson(text));
      if (v !== undefined) assert.ok(Number.isFinite(v) && v >= 0, `u64(${text}) = ${v}`);
    });
  });

  void it('vCPU thread ids come back bounded by the reply, whatever indexes QEMU claims', () => {
    holds(fc.array(fc.record({ 'cpu-index': fc.oneof(fc.integer({ min: -3, max: 1 << 30 }), fc.double()), 'thread-id': fc.oneof(fc.integer(), fc.double()) }), { maxLength: 8 }), (cpus) => {
      const r = parsesOrTyped(() => parseCpusFast(cpus), ['VIRT_ERR_RPC']);
      if (r.ok) {
        assert.ok(r.value.length <= 16384, `array of length ${r.value.length}`);
        for (const tid of r.value) if (tid !== undefined) assert.ok(Number.isSafeInteger(tid) && tid > 0);
      }
    });
  });

  void describe('the QMP client against a hostile monitor', () => {
    let peer: HostilePeer;
    before(async () => {
      peer = await HostilePeer.start();
    });
    after(async () => {
      await peer.stop();
    });

    void it('connects or fails with a typed error within its deadline, for any greeting and reply', async () => {
      const greeting = fc.oneof(
        fc.constant('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}\r\n'),
        qmpText.map((t) => t + '\r\n'),
        hostileBytes(64).map((b) => Buffer.from(b).toString('latin1')),
      );
      const reply = fc.oneof(qmpText.map((t) => t + '\r\n'), fc.constant('{"return": {}, "id": "v1"}\r\n'), fc.constant('{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n'), fc.constant('x'.repeat(5000) + '\r\n'));
      await holdsAsync(fc.record({ greeting, reply, chunks: fc.array(fc.integer({ min: 1, max: 32 }), { maxLength: 4 }), close: fc.boolean() }), async (s) => {
        peer.script = { greeting: Buffer.from(s.greeting, 'latin1'), reply: Buffer.from(s.reply, 'latin1'), chunks: s.chunks, close: s.close };
        const started = Date.now();
        try {
          const c = await QmpClient.connect(peer.path, { timeoutMs: 200, maxLineBytes: 4096 });
          c.close();
        } catch (err) {
          assert.ok(isVirtError(err), `untyped rejection: ${String(err)}`);
        }
        assert.ok(Date.now() - started < 2000, 'connect outlived its deadline');
      }, 150);
      peer.dropAll();
    });
  });
});
