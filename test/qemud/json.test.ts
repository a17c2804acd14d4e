import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { parseQmpJson, u64, u64Text } from '../../src/qemud/json.ts';
import { parseBalloon, parseBlockstats, parseCpusFast, parseGuestStats, parseQueryStatus, runStateToDomain } from '../../src/qemud/qmp-parse.ts';

const fixture = (name: string): unknown => {
  const msg = parseQmpJson(readFileSync(new URL(`../fixtures/qmp/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
  return msg['return'] ?? msg;
};

void it('64-bit counters keep every digit; 2^64-1 means unavailable', () => {
  const v = parseQmpJson('{"a": 18446744073709551615, "b": 9007199254740993, "c": 42, "d": 1.5, "e": -9007199254740993}') as Record<string, unknown>;
  assert.equal(v['a'], 18446744073709551615n);
  assert.equal(v['b'], 9007199254740993n);
  assert.equal(u64Text(v['b']), '9007199254740993');
  assert.equal(v['c'], 42);
  assert.equal(v['d'], 1.5);
  assert.equal(v['e'], -9007199254740993n);
  assert.equal(u64(v['a']), undefined);
  assert.equal(u64(v['e']), undefined);
  assert.equal(u64(v['c']), 42);
  assert.equal(u64(v['b']), 9007199254740992);
});

void it('guest-stats recorded from QEMU 7.2 without a guest driver: absent, not zero', () => {
  const v = fixture('qom-get-guest-stats-no-driver-7.2.json');
  assert.equal(parseGuestStats(v), undefined);
});

void it('guest-stats with a guest driver: values parsed, unavailable ones left out', () => {
  // The recorded reply with last-update and some values as a reporting guest sets them.
  const text = readFileSync(new URL('../fixtures/qmp/qom-get-guest-stats-no-driver-7.2.json', import.meta.url), 'utf8')
    .replace('"last-update": 0', '"last-update": 1795551043')
    .replace('"stat-total-memory": 18446744073709551615', '"stat-total-memory": 240676864')
    .replace('"stat-free-memory": 18446744073709551615', '"stat-free-memory": 9007199254740993');
  const g = parseGuestStats((parseQmpJson(text) as Record<string, unknown>)['return']);
  assert.ok(g !== undefined);
  assert.equal(g.totalBytes, 240676864);
  assert.equal(g.freeBytes, 9007199254740992);
  assert.equal(g.lastUpdateSeconds, 1795551043);
  assert.equal('swapInBytes' in g, false);
});

void it('query-cpus-fast maps vCPU index to thread id', () => {
  const tids = parseCpusFast(fixture('query-cpus-fast-7.2.json'));
  assert.equal(tids.length, 2);
  assert.ok(tids.every((t) => Number.isInteger(t) && t > 0));
  assert.throws(() => parseCpusFast({}), { code: 'VIRT_ERR_RPC' });
});

void it('query-blockstats with -blockdev (empty device) is keyed by our node name', () => {
  const v = fixture('query-blockstats-blockdev-7.2.json');
  const byNode = parseBlockstats(v, (n) => (n === 'fmt-vda' ? 'vda' : undefined));
  assert.equal(byNode.length, 1);
  assert.equal(byNode[0]?.device, 'vda');
  assert.equal(byNode[0]?.readBytes, 512);
  assert.equal(byNode[0]?.readRequests, 1);
  assert.ok(Math.abs((byNode[0]?.readTimeSeconds ?? 0) - 92792e-9) < 1e-12);
  // Without a node-name mapping the qdev id is the stable name.
  assert.equal(parseBlockstats(v, () => undefined)[0]?.device, 'vda');
});

void it('balloon and status replies', () => {
  assert.equal(parseBalloon(fixture('query-balloon-7.2.json')), 67108864);
  const lines = readFileSync(new URL('../fixtures/qmp/session-7.2.jsonl', import.meta.url), 'utf8').trim().split('\n');
  const status = lines.map((l) => parseQmpJson(l) as Record<string, unknown>).filter((m) => typeof m['return'] === 'object' && m['return'] !== null && 'status' in (m['return']));
  assert.deepEqual(status.map((m) => parseQueryStatus(m['return'])), ['running', 'paused']);
  assert.deepEqual(runStateToDomain('paused'), { state: 'paused', reason: 'user' });
  assert.equal(runStateToDomain('guest-panicked').state, 'crashed');
  assert.equal(runStateToDomain('shutdown').state, 'shutdown');
});

void it('integers of up to 15 digits (the plain JSON.parse path) and of 16 or more (the bigint path) parse as the reviver would', () => {
  const v = parseQmpJson('{"a": 999999999999999, "b": 9007199254740991, "c": 9007199254740992, "s": "1234567890123456789", "f": 0.12345678901234567, "x": 1e300}') as Record<string, unknown>;
  assert.equal(v['a'], 999999999999999);
  assert.equal(v['b'], 9007199254740991);
  assert.equal(v['c'], 9007199254740992n);
  assert.equal(v['s'], '1234567890123456789');
  assert.equal(v['f'], 0.12345678901234567);
  assert.equal(v['x'], 1e300);
  // Without any run of 16 digits, the same as JSON.parse.
  const plain = '{"return": [{"stats": {"rd_bytes": 123456789012345, "wr_bytes": 0}}], "id": "v7"}';
  assert.deepEqual(parseQmpJson(plain), JSON.parse(plain));
});

void it('nesting deeper than the limit is refused whether or not the text also has long integers', () => {
  const deep = (inner: string): string => '['.repeat(70) + inner + ']'.repeat(70);
  assert.throws(() => parseQmpJson(deep('1')), { code: 'VIRT_ERR_RPC' });
  assert.throws(() => parseQmpJson(deep('18446744073709551615')), { code: 'VIRT_ERR_RPC' });
  // Many objects side by side are not deep.
  assert.equal((parseQmpJson(`[${Array.from({ length: 100 }, () => '{}').join(',')}]`) as unknown[]).length, 100);
});
