// The qemu driver against a virt-qemud that answers with hostile replies:
// every reply crosses a process boundary and is checked by the operation
// table's result check, so a malformed one is VIRT_ERR_RPC, never a value
// that travels on (the other side is a plain socket speaking the framing,
// not virt-qemud: QEMU is not involved).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { encodeFrame, FrameDecoder } from '../../../src/qemud-shared/protocol.ts';
import { resolvePaths } from '../../../src/qemud-shared/paths.ts';

const UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

/** What the hostile peer answers, by operation. */
const REPLIES: Record<string, unknown> = {
  ping: { protocol: 1, pid: 1, readOnly: true },
  hostInfo: { hostname: 'h', cpus: 'eight' },
  domainInfo: { name: 'web1', uuid: UUID, id: 1, state: 'running', maxMemoryBytes: '1G', memoryBytes: 1, vcpus: 1, cpuTimeSeconds: 1 },
  lookupDomain: { name: 'web1', uuid: '../../../etc/passwd', id: 1 },
  listDomains: [{ name: 'web1', uuid: UUID, id: { toString: 1 } }],
  version: ['not', 'a', 'string'],
  allDomainStats: { domains: [{ info: { name: 'web1', uuid: UUID, id: 1, state: 'running', maxMemoryBytes: 1, memoryBytes: 1, vcpus: 1, cpuTimeSeconds: 1 } }, { info: 'junk' }], errors: [] },
};

void describe('qemu driver: hostile virt-qemud replies', () => {
  let dir: string;
  let server: Server;
  let conn: Connection;
  const sockets = new Set<Socket>();
  const savedEnv = process.env['VIRT_EXPORTER_RUNTIME_DIR'];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virt-ops-hostile-'));
    process.env['VIRT_EXPORTER_RUNTIME_DIR'] = dir;
    const paths = resolvePaths('session', { runtimeDir: dir });
    server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      const dec = new FrameDecoder(1 << 20);
      sock.on('data', (chunk: Buffer) => {
        for (const m of dec.push(chunk)) {
          if (m.kind !== 'message') continue;
          const req = m.value as { id: number; op: string };
          sock.write(encodeFrame({ v: 1, id: req.id, result: REPLIES[req.op] ?? null }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(paths.roSocket, resolve));
    conn = await open('qemu:///session', { readOnly: true, settings: { 'qemu.runtime-dir': dir, 'qemu.autostart': false } });
  });

  after(async () => {
    await conn.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    if (savedEnv === undefined) delete process.env['VIRT_EXPORTER_RUNTIME_DIR'];
    else process.env['VIRT_EXPORTER_RUNTIME_DIR'] = savedEnv;
    rmSync(dir, { recursive: true, force: true });
  });

  const rpc = (e: unknown): boolean => isVirtError(e, 'VIRT_ERR_RPC');

  void it('hostInfo with a non-numeric CPU count is VIRT_ERR_RPC', async () => {
    await assert.rejects(conn.hostInfo(), rpc);
  });
  void it('domainInfo with a non-numeric memory is VIRT_ERR_RPC', async () => {
    await assert.rejects(conn.domainInfo('web1'), rpc);
  });
  void it('lookupDomain with a path for a UUID is VIRT_ERR_RPC', async () => {
    await assert.rejects(conn.lookupDomain('web1'), rpc);
  });
  void it('listDomains and version of the wrong shape are VIRT_ERR_RPC', async () => {
    await assert.rejects(conn.listDomains(), rpc);
    await assert.rejects(conn.version(), rpc);
  });
  void it('a bulk reading keeps its good domains and reports the bad one', async () => {
    const r = await conn.allDomainStats({ groups: ['state'] });
    assert.deepEqual(r.domains.map((d) => d.info.name), ['web1']);
    assert.deepEqual(r.errors.map((e) => e.code), ['VIRT_ERR_RPC']);
  });
});
