import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { inSpan } from '../../src/telemetry/tracing.ts';
import { LengthPrefixedDecoder, RpcTransport } from '../../src/rpc/transport.ts';
import { isVirtError } from '../../src/virt/errors.ts';
import { frame } from './helpers.ts';

void describe('LengthPrefixedDecoder', () => {
  void it('reassembles frames split anywhere and splits coalesced ones', () => {
    const d = new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'p' });
    const all = Buffer.concat([frame(1, 'ab'), frame(2, 'cdef'), frame(3)]);
    const out: Buffer[] = [];
    for (let i = 0; i < all.length; i++) out.push(...d.push(all.subarray(i, i + 1)));
    assert.deepEqual(out.map((f) => f.readUInt32BE(0)), [1, 2, 3]);
    assert.equal(out[1]?.subarray(4).toString(), 'cdef');
  });
  void it('refuses an oversized or undersized length word before buffering it', () => {
    const d = new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'p' });
    assert.throws(() => d.push(Buffer.from([0, 0, 1, 0])), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
    const d2 = new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'p' });
    assert.throws(() => d2.push(Buffer.from([0, 0, 0, 1, 9])), (e: unknown) => isVirtError(e, 'VIRT_ERR_RPC'));
  });
});

void describe('RpcTransport', () => {
  void it('matches replies out of order, fails every pending call when the peer dies, then reconnects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virt-rpc-'));
    const path = join(dir, 'sock');
    const socks: Socket[] = [];
    let mode: 'reverse' | 'die' = 'reverse';
    const server = createServer((s) => {
      socks.push(s);
      const d = new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'c' });
      const held: number[] = [];
      s.on('error', () => undefined);
      s.on('data', (c: Buffer) => {
        for (const f of d.push(c)) {
          held.push(f.readUInt32BE(0));
          if (mode === 'die' && held.length === 2) s.destroy();
          if (mode === 'reverse' && held.length === 2) for (const serial of held.reverse()) s.write(frame(serial, `r${serial}`));
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    const t = new RpcTransport<Buffer>({
      peer: 'test peer',
      socketPath: path,
      decoder: () => new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'test peer' }),
      serialOf: (f) => f.readUInt32BE(0),
      maxOutboundBytes: 100,
      connectTimeoutMs: 1000,
      backoff: { initialMs: 1, maxMs: 1 },
    });
    try {
      const opts = { timeoutMs: 2000, what: 'x' };
      const [a, b] = await Promise.all([t.call((s) => frame(s), opts), t.call((s) => frame(s), opts)]);
      assert.equal(a.subarray(4).toString(), `r${a.readUInt32BE(0)}`);
      assert.notEqual(a.readUInt32BE(0), b.readUInt32BE(0));
      mode = 'die';
      socks[0]?.destroy();
      await new Promise((r) => setTimeout(r, 20));
      const results = await Promise.allSettled([t.call((s) => frame(s), opts), t.call((s) => frame(s), opts)]);
      for (const r of results) assert.ok(r.status === 'rejected' && isVirtError(r.reason, 'VIRT_ERR_NO_CONNECT'));
      mode = 'reverse';
      await new Promise((r) => setTimeout(r, 5));
      const again = await Promise.all([t.call((s) => frame(s), opts), t.call((s) => frame(s), opts)]);
      assert.equal(again.length, 2);
      assert.equal(socks.length, 3);
    } finally {
      t.close();
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('RpcTransport tracing', () => {
  void it('each call is a child span of the traced read it belongs to', async () => {
    const spans = new InMemorySpanExporter();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] }));
    const dir = mkdtempSync(join(tmpdir(), 'virt-rpc-'));
    const path = join(dir, 'sock');
    const server = createServer((s) => {
      const d = new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'c' });
      s.on('data', (c: Buffer) => {
        for (const f of d.push(c)) s.write(frame(f.readUInt32BE(0), 'ok'));
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    const t = new RpcTransport<Buffer>({
      peer: 'traced peer',
      socketPath: path,
      decoder: () => new LengthPrefixedDecoder({ maxFrameBytes: 100, minFrameBytes: 4, inclusive: false, peer: 'traced peer' }),
      serialOf: (f) => f.readUInt32BE(0),
      maxOutboundBytes: 100,
      connectTimeoutMs: 1000,
      backoff: { initialMs: 1, maxMs: 1 },
    });
    try {
      await inSpan('bulk domain stats read', {}, async () => {
        await t.call((s) => frame(s), { timeoutMs: 2000, what: 'connect-get-all-domain-stats' });
        await t.call((s) => frame(s), { timeoutMs: 2000, what: 'domain-get-xml-desc' });
      });
      const done = spans.getFinishedSpans();
      const parent = done.find((x) => x.name === 'bulk domain stats read');
      const rpcs = done.filter((x) => x.name.startsWith('rpc '));
      assert.ok(parent !== undefined);
      assert.deepEqual(rpcs.map((x) => x.name), ['rpc connect-get-all-domain-stats', 'rpc domain-get-xml-desc']);
      for (const r of rpcs) {
        assert.equal(r.parentSpanContext?.spanId, parent.spanContext().spanId);
        assert.equal(r.attributes['server.address'], 'traced peer');
      }
    } finally {
      t.close();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
      trace.disable();
      context.disable();
    }
  });
});
