import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseNetDev, parseProcStat } from '../../src/qemud/proc.ts';
import { checkRequest, encodeFrame, FrameDecoder } from '../../src/qemud-shared/protocol.ts';

void it('frames split across chunks and packed together decode in order', () => {
  const a = encodeFrame({ v: 1, id: 1, op: 'ping', args: [] });
  const b = encodeFrame({ v: 1, id: 2, op: 'version', args: [] });
  const all = Buffer.concat([a, b]);
  const dec = new FrameDecoder(1024);
  const out = [];
  for (let i = 0; i < all.length; i += 3) out.push(...dec.push(all.subarray(i, i + 3)));
  assert.deepEqual(out.map((m) => (m.kind === 'message' ? (m.value as { id: number }).id : m.kind)), [1, 2]);
});

void it('an oversized frame is reported once and nothing after it is read', () => {
  const dec = new FrameDecoder(100);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(101, 0);
  assert.deepEqual(dec.push(h), [{ kind: 'oversized', length: 101 }]);
  assert.deepEqual(dec.push(encodeFrame({ v: 1 })), []);
});

void it('malformed frames are reported and the stream goes on', () => {
  const dec = new FrameDecoder(100);
  const bad = Buffer.from('{nope', 'utf8');
  const h = Buffer.alloc(4);
  h.writeUInt32BE(bad.length, 0);
  const out = dec.push(Buffer.concat([h, bad, encodeFrame({ v: 1, id: 3, op: 'ping' })]));
  assert.equal(out[0]?.kind, 'malformed');
  assert.equal(out[1]?.kind, 'message');
});

void it('requests are checked: version, id, op, args, unknown keys', () => {
  assert.deepEqual(checkRequest({ v: 1, id: 1, op: 'ping' }), { v: 1, id: 1, op: 'ping', args: [] });
  for (const bad of [{ v: 2, id: 1, op: 'ping' }, { v: 1, op: 'ping' }, { v: 1, id: 1 }, { v: 1, id: 1, op: 'x', args: {} }, { v: 1, id: 1, op: 'x', extra: 1 }, [1]]) {
    assert.throws(() => checkRequest(bad), { code: 'VIRT_ERR_RPC' });
  }
});

void it('/proc/PID/stat parsing copes with spaces and parentheses in comm', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 1));
  fields[0] = '4242';
  fields[1] = '(qemu (x) y)';
  fields[2] = 'S';
  fields[13] = '150';
  fields[14] = '50';
  fields[21] = '987654';
  fields[23] = '1000';
  fields[38] = '1';
  const s = parseProcStat(fields.join(' '));
  assert.deepEqual(s, { state: 'S', utimeTicks: 150, stimeTicks: 50, startTime: '987654', rssPages: 1000, processor: 1 });
});

void it('/proc/net/dev parsing', () => {
  const text = [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    '    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0',
    '  tap0: 5000 10 1 2 0 0 0 0 7000 14 3 4 0 0 0 0',
  ].join('\n');
  const m = parseNetDev(text);
  assert.deepEqual(m.get('tap0'), { rxBytes: 5000, rxPackets: 10, rxErrors: 1, rxDrops: 2, txBytes: 7000, txPackets: 14, txErrors: 3, txDrops: 4 });
  assert.equal(m.size, 2);
});

void it('/proc schedstat parsing: run and wait nanoseconds become seconds; junk is null', async () => {
  const { parseSchedstat } = await import('../../src/qemud/proc.ts');
  assert.deepEqual(parseSchedstat('492433658 187802048 1730\n'), { runSeconds: 0.492433658, delaySeconds: 0.187802048 });
  assert.equal(parseSchedstat('1 2\n'), null);
  assert.equal(parseSchedstat('a b c'), null);
});
