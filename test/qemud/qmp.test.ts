import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { QmpClient, type QmpEvent } from '../../src/qemud/qmp.ts';

const dir = mkdtempSync(join(tmpdir(), 'vq-qmp-'));
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});
const greeting = readFileSync(new URL('../fixtures/qmp/greeting-7.2.json', import.meta.url), 'utf8').trim();

/** A scripted QMP peer: handler gets each parsed command and the socket. */
async function peer(name: string, onConnect: (s: Socket) => void, onCommand?: (cmd: { execute: string; id: unknown }, s: Socket) => void): Promise<string> {
  const path = join(dir, name);
  const srv = createServer((s) => {
    s.on('error', () => undefined);
    onConnect(s);
    let buf = '';
    s.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        onCommand?.(JSON.parse(line) as { execute: string; id: unknown }, s);
      }
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(path, r));
  return path;
}

void it('replies are matched by id with events interleaved and out-of-order replies', async () => {
  const path = await peer(
    'ok.sock',
    (s) => s.write(greeting + '\r\n'),
    (cmd, s) => {
      if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
      else if (cmd.execute === 'slow') setTimeout(() => s.write(JSON.stringify({ return: { n: 18446744073709551615n.toString() }, id: cmd.id }) + '\r\n'), 50);
      else if (cmd.execute === 'stop') {
        s.write('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}\r\n');
        s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
      } else if (cmd.execute === 'bad') s.write(JSON.stringify({ error: { class: 'CommandNotFound', desc: 'no' }, id: cmd.id }) + '\r\n');
    },
  );
  const events: QmpEvent[] = [];
  const q = await QmpClient.connect(path, { timeoutMs: 2000, onEvent: (e) => events.push(e) });
  const slow = q.execute('slow', undefined, { timeoutMs: 2000 });
  const stop = await q.execute('stop', undefined, { timeoutMs: 2000 });
  assert.deepEqual(stop, {});
  assert.deepEqual(await slow, { n: '18446744073709551615' });
  assert.deepEqual(events.map((e) => e.event), ['STOP']);
  await assert.rejects(q.execute('bad', undefined, { timeoutMs: 2000 }), (e: Error & { code?: string; qmpClass?: string }) => e.code === 'VIRT_ERR_OPERATION_FAILED' && e.qmpClass === 'CommandNotFound');
  q.close();
});

void it('a peer that accepts and never answers times out', async () => {
  const path = await peer('hang.sock', () => undefined);
  const t0 = Date.now();
  await assert.rejects(QmpClient.connect(path, { timeoutMs: 300 }), { code: 'VIRT_ERR_OPERATION_TIMEOUT' });
  assert.ok(Date.now() - t0 < 3000);
});

void it('a peer that greets and then never replies times out per command', async () => {
  const path = await peer('mute.sock', (s) => s.write(greeting + '\r\n'), (cmd, s) => {
    if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
  });
  const q = await QmpClient.connect(path, { timeoutMs: 1000 });
  await assert.rejects(q.execute('query-status', undefined, { timeoutMs: 200 }), { code: 'VIRT_ERR_OPERATION_TIMEOUT' });
  const ac = new AbortController();
  const p = q.execute('query-status', undefined, { timeoutMs: 10000, signal: ac.signal });
  ac.abort();
  await assert.rejects(p, { code: 'VIRT_ERR_OPERATION_TIMEOUT' });
  q.close();
});

void it('garbage from the peer is a protocol error', async () => {
  const path = await peer('garbage.sock', (s) => s.write('\x00\x01 this is not QMP\r\n'));
  await assert.rejects(QmpClient.connect(path, { timeoutMs: 2000 }), { code: 'VIRT_ERR_RPC' });
  const path2 = await peer('garbage2.sock', (s) => s.write(greeting + '\r\n'), (_cmd, s) => s.write('{"return": {}, "id": \r\n'));
  await assert.rejects(QmpClient.connect(path2, { timeoutMs: 2000 }), { code: 'VIRT_ERR_RPC' });
});
