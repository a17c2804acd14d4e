/**
 * VirtProxyClient against the real virt-proxy (stub libxenctrl) and against
 * scripted fake proxies that send truncated, oversized, garbled or no
 * replies: every one must become a typed VirtError, never a hang or a crash.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VirtProxyClient, resolveProxyBinary } from '../../../src/drivers/xen/proxy-client.ts';
import { vbdName } from '../../../src/drivers/xen/proxy-protocol.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';
import { HOST, ROOT, buildNative, frame, randomDoms, removeDir, startDaemon, stateText, tempDir, writeState, type Built } from '../../native/helpers.ts';

let dir: string;
let built: Built;
let statePath: string;
const DOMS = randomDoms(5, 11);

before(async () => {
  dir = await tempDir('vp-client-');
  built = await buildNative(dir);
  statePath = join(dir, 'state');
  await writeState(statePath, stateText(HOST, DOMS));
});

after(async () => {
  await removeDir(dir);
});

const isCode = (code: VirtErrorCode) => (e: unknown) => isVirtError(e, code);

// ---- a scripted fake proxy ----

interface Req {
  type: number;
  serial: number;
  payload: Buffer;
}

function replyFrame(type: number, status: number, serial: number, payload: Buffer = Buffer.alloc(0), version = 1): Buffer {
  return frame(type, serial, payload, version, status);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

const HELLO = replyFrame(0x80, 0, 0, Buffer.concat([Buffer.from([0, 1]), str('fake 1')]));

function versionPayload(major = 4, minor = 17, extra = '.0'): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(1, 0);
  b.writeUInt32BE(major, 2);
  b.writeUInt32BE(minor, 6);
  return Buffer.concat([b, str(extra), str('fake 1')]);
}

interface DomSpec {
  domid: number;
  nvbd?: number;
  nvif?: number;
}

function listPayload(doms: DomSpec[], opts: { page?: number; count?: number; vcpus?: Array<{ id: number; flags: number }> } = {}): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(6);
  head.writeUInt32BE(opts.page ?? 4096, 0);
  head.writeUInt16BE((opts.count ?? doms.length) | (opts.vcpus !== undefined ? 0x8000 : 0), 4);
  parts.push(head);
  for (const d of doms) {
    const r = Buffer.alloc(2 + 4 + 16 + 24 + 8);
    r.writeUInt16BE(d.domid, 0);
    r.writeUInt32BE(0x20, 2);
    r.fill(0xab, 6, 22);
    r.writeBigUInt64BE(256n, 22);
    r.writeBigUInt64BE(512n, 30);
    r.writeBigUInt64BE(1_500_000_000n, 38);
    r.writeUInt32BE(1, 46);
    r.writeUInt32BE(0, 50);
    parts.push(r, Buffer.from([d.nvbd ?? 0]));
    for (let i = 0; i < (d.nvbd ?? 0); i++) parts.push(Buffer.alloc(4 + 40));
    parts.push(Buffer.from([d.nvif ?? 0]));
    for (let i = 0; i < (d.nvif ?? 0); i++) parts.push(Buffer.alloc(4 + 64));
    if (opts.vcpus !== undefined) {
      const v = Buffer.alloc(2 + 15 * opts.vcpus.length);
      v.writeUInt16BE(opts.vcpus.length, 0);
      opts.vcpus.forEach((x, i) => {
        v.writeUInt16BE(x.id, 2 + 15 * i);
        v.writeUInt8(x.flags, 4 + 15 * i);
      });
      parts.push(v);
    }
  }
  return Buffer.concat(parts);
}

type Script = (req: Req, sock: Socket) => void;

async function fakeProxy(script: Script, opts: { hello?: Buffer | null } = {}): Promise<{ path: string; server: Server; close: () => Promise<void> }> {
  const path = join(dir, `fake-${Math.random().toString(36).slice(2)}.sock`);
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    if (opts.hello !== null) sock.write(opts.hello ?? HELLO);
    let buf = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const f = buf.subarray(0, 4 + len);
        buf = buf.subarray(4 + len);
        script({ type: f.readUInt8(5), serial: f.readUInt32BE(8), payload: Buffer.from(f.subarray(12)) }, sock);
      }
    });
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    server,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

async function withFake(script: Script, body: (c: VirtProxyClient) => Promise<void>, opts: { timeoutMs?: number } = {}): Promise<void> {
  const fake = await fakeProxy(script);
  const c = await VirtProxyClient.connect({ socketPath: fake.path, logger: silentLogger, timeoutMs: opts.timeoutMs ?? 5000 });
  try {
    await body(c);
  } finally {
    await c.close();
    await fake.close();
  }
}

void describe('VirtProxyClient with the real virt-proxy', () => {
  void it('reads the same domains over --stdio and over the socket', async () => {
    const env = { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath };
    const stdio = await VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: built.stub, logger: silentLogger, timeoutMs: 10_000, env });
    const sockPath = join(dir, 'real.sock');
    const d = await startDaemon(built.proxy, sockPath, ['--xenctrl', built.stub], env);
    try {
      const viaSocket = await VirtProxyClient.connect({ socketPath: sockPath, logger: silentLogger, timeoutMs: 10_000 });
      try {
        const a = await stdio.listDomains();
        const b = await viaSocket.listDomains();
        assert.deepEqual(a, b);
        assert.deepEqual(
          a.map((x) => [x.domid, x.uuid, x.currentBytes, x.maximumBytes, x.cpuTimeSeconds]),
          DOMS.map((x) => [x.domid, x.uuid, x.totPages * 4096, x.maxPages * 4096, Number(x.cpuTimeNs) / 1e9]),
        );
        assert.deepEqual(await stdio.hostInfo(), await viaSocket.hostInfo());
      } finally {
        await viaSocket.close();
      }
    } finally {
      await stdio.close();
      await d.stop();
    }
    assert.equal(stdio.closed, true);
    await assert.rejects(stdio.version(), isCode('VIRT_ERR_NO_CONNECT'));
  });

  void it('reads per-vCPU readings (xc_vcpu_getinfo) with the details, and none without', async () => {
    const env = { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath };
    const c = await VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: built.stub, logger: silentLogger, timeoutMs: 10_000, env });
    try {
      const withDetails = await c.listDomains({ devices: true });
      // The stub splits a domain's CPU time evenly among its online vCPUs (remainder to vCPU 0).
      assert.deepEqual(
        withDetails.map((x) => x.vcpus),
        DOMS.map((d) =>
          Array.from({ length: d.maxVcpuId + 1 }, (_, v) => {
            const online = v < d.onlineVcpus;
            const ns = online ? d.cpuTimeNs / BigInt(d.onlineVcpus) + (v === 0 ? d.cpuTimeNs % BigInt(d.onlineVcpus) : 0n) : 0n;
            const running = online && (d.flags & 0x20) !== 0;
            return { id: v, online, blocked: online && !running, running, cpu: v % HOST.cpus, timeSeconds: Number(ns) / 1e9 };
          }),
        ),
      );
      const plain = await c.listDomains({ devices: false });
      assert.ok(plain.every((x) => x.vcpus === undefined), 'no vCPU block without the details option');
    } finally {
      await c.close();
    }
  });

  void it('a missing binary is NO_CONNECT and says it was not built', async () => {
    await assert.rejects(
      VirtProxyClient.spawnStdio({ binary: join(dir, 'build/nope/virt-proxy'), logger: silentLogger, timeoutMs: 1000 }),
      (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /not built/.test(e.message),
    );
  });

  void it('a missing socket is NO_CONNECT and says the daemon is not running', async () => {
    await assert.rejects(VirtProxyClient.connect({ socketPath: join(dir, 'nobody-here.sock'), logger: silentLogger, timeoutMs: 1000 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /daemon running/.test(e.message));
  });

  void it('a child that dies at once is NO_CONNECT with its last stderr line', async () => {
    const script = join(dir, 'dies.sh');
    await writeFile(script, '#!/bin/sh\necho "virt-proxy: cannot start for a test reason" >&2\nexit 3\n');
    await chmod(script, 0o755);
    await assert.rejects(VirtProxyClient.spawnStdio({ binary: script, logger: silentLogger, timeoutMs: 5000 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /test reason/.test(e.message));
  });

  void it('a child that never greets is cut off by the deadline and killed', async () => {
    const script = join(dir, 'silent.sh');
    await writeFile(script, '#!/bin/sh\nexec sleep 30\n');
    await chmod(script, 0o755);
    const started = Date.now();
    await assert.rejects(VirtProxyClient.spawnStdio({ binary: script, logger: silentLogger, timeoutMs: 300 }), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
    assert.ok(Date.now() - started < 10_000, 'within the generous deadline');
  });

  void it('resolves the default binary setting relative to the project', () => {
    assert.equal(resolveProxyBinary(undefined), join(ROOT, 'native/build/virt-proxy'));
    assert.equal(resolveProxyBinary(''), join(ROOT, 'native/build/virt-proxy'));
    assert.equal(resolveProxyBinary('/opt/x/virt-proxy'), '/opt/x/virt-proxy');
  });
});

void describe('VirtProxyClient against misbehaving proxies', () => {
  void it('decodes a well-formed scripted reply (the fake itself is sound)', async () => {
    await withFake(
      (r, s) => s.write(replyFrame(r.type | 0x80, 0, r.serial, r.type === 1 ? versionPayload(4, 17, '.7') : listPayload([{ domid: 0 }, { domid: 4, nvbd: 1, nvif: 1 }]))),
      async (c) => {
        assert.equal(await c.version(), '4.17.7');
        const doms = await c.listDomains();
        assert.deepEqual(
          doms.map((d) => [d.domid, d.currentBytes, d.maximumBytes, d.cpuTimeSeconds, d.vbds?.length, d.vifs?.[0]?.interface]),
          [
            [0, 256 * 4096, 512 * 4096, 1.5, 0, undefined],
            [4, 256 * 4096, 512 * 4096, 1.5, 1, 'vif4.0'],
          ],
        );
        assert.equal(doms[1]?.uuid, 'abababab-abab-abab-abab-abababababab');
      },
    );
  });

  void it('a proxy that never answers is cut off by the deadline (OPERATION_TIMEOUT), and the client is then closed', async () => {
    await withFake(
      () => undefined,
      async (c) => {
        const started = Date.now();
        await assert.rejects(c.version(), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
        assert.ok(Date.now() - started < 10_000);
        assert.equal(c.closed, true);
        await assert.rejects(c.version(), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
      },
      { timeoutMs: 200 },
    );
  });

  void it('an aborted signal ends the wait (OPERATION_TIMEOUT)', async () => {
    await withFake(
      () => undefined,
      async (c) => {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 50);
        await assert.rejects(c.listDomains({ signal: ac.signal }), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
        await assert.rejects(c.version({ signal: AbortSignal.abort() }), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
      },
    );
  });

  void it('a proxy that never greets makes connect time out', async () => {
    const fake = await fakeProxy(() => undefined, { hello: null });
    try {
      await assert.rejects(VirtProxyClient.connect({ socketPath: fake.path, logger: silentLogger, timeoutMs: 200 }), isCode('VIRT_ERR_OPERATION_TIMEOUT'));
    } finally {
      await fake.close();
    }
  });

  void it('a refusal instead of the greeting is OPERATION_DENIED / NO_CONNECT (busy)', async () => {
    for (const [status, code] of [
      [7, 'VIRT_ERR_OPERATION_DENIED'],
      [8, 'VIRT_ERR_NO_CONNECT'],
    ] as const) {
      const fake = await fakeProxy(() => undefined, { hello: replyFrame(0xff, status, 0, str('no')) });
      try {
        await assert.rejects(VirtProxyClient.connect({ socketPath: fake.path, logger: silentLogger, timeoutMs: 2000 }), isCode(code));
      } finally {
        await fake.close();
      }
    }
  });

  void it('a greeting for another protocol version is an RPC error', async () => {
    const fake = await fakeProxy(() => undefined, { hello: replyFrame(0x80, 0, 0, Buffer.concat([Buffer.from([0, 2]), str('future')])) });
    try {
      await assert.rejects(VirtProxyClient.connect({ socketPath: fake.path, logger: silentLogger, timeoutMs: 2000 }), isCode('VIRT_ERR_RPC'));
    } finally {
      await fake.close();
    }
  });

  const garbage: Array<[string, (r: Req) => Buffer | Buffer[]]> = [
    ['an oversized length prefix', () => Buffer.from([0x00, 0x40, 0x00, 0x01])],
    ['a length below the header', () => Buffer.from([0, 0, 0, 3, 1, 0x81, 0])],
    ['a wrong protocol version', (r) => replyFrame(0x81, 0, r.serial, versionPayload(), 7)],
    ['a wrong serial', (r) => replyFrame(0x81, 0, r.serial + 1, versionPayload())],
    ['a wrong reply type', (r) => replyFrame(0x82, 0, r.serial, versionPayload())],
    ['a payload cut short', (r) => replyFrame(0x81, 0, r.serial, versionPayload().subarray(0, 7))],
    ['trailing bytes', (r) => replyFrame(0x81, 0, r.serial, Buffer.concat([versionPayload(), Buffer.from([0])]))],
    ['an over-long string', (r) => replyFrame(0x81, 0, r.serial, Buffer.concat([versionPayload().subarray(0, 10), str('x'.repeat(40)), str('p')]))],
    ['an unknown status', (r) => replyFrame(0x81, 77, r.serial, str('what'))],
    ['a frame cut off by the connection closing', (r) => replyFrame(0x81, 0, r.serial, versionPayload()).subarray(0, 15)],
    ['two replies for one request', (r) => [replyFrame(0x81, 0, r.serial, versionPayload()), replyFrame(0x81, 0, r.serial, versionPayload())]],
  ];
  for (const [what, make] of garbage) {
    void it(`${what} is VIRT_ERR_RPC`, async () => {
      await withFake(
        (r, s) => {
          const out = make(r);
          for (const b of Array.isArray(out) ? out : [out]) s.write(b);
          if (what.includes('closing')) s.end();
        },
        async (c) => {
          if (what.startsWith('two replies')) {
            // The first reply is fine; the unsolicited second one kills the connection.
            assert.equal(await c.version(), '4.17.0');
            await new Promise((ok) => setTimeout(ok, 50));
            await assert.rejects(c.version(), isCode('VIRT_ERR_RPC'));
            return;
          }
          await assert.rejects(c.version(), isCode('VIRT_ERR_RPC'));
          assert.equal(c.closed, true);
        },
      );
    });
  }

  const badLists: Array<[string, Buffer]> = [
    ['more domains than asked for', listPayload(Array.from({ length: 257 }, (_, i) => ({ domid: i })))],
    ['domain ids out of order', listPayload([{ domid: 5 }, { domid: 3 }])],
    ['a reserved domain id', listPayload([{ domid: 0x7ff0 }])],
    ['a count larger than the records', listPayload([{ domid: 1 }], { count: 2 })],
    ['a page size that is not a power of two', listPayload([{ domid: 1 }], { page: 5000 })],
    ['too many vbds', listPayload([{ domid: 1, nvbd: 33 }])],
    ['too many vifs', listPayload([{ domid: 1, nvif: 33 }])],
    ['vCPU ids out of order', listPayload([{ domid: 1 }], { vcpus: [{ id: 0, flags: 1 }, { id: 0, flags: 1 }] })],
    ['a vCPU above the domain\'s max_vcpu_id', listPayload([{ domid: 1 }], { vcpus: [{ id: 1, flags: 1 }] })],
    ['unknown vCPU flags', listPayload([{ domid: 1 }], { vcpus: [{ id: 0, flags: 0x10 }] })],
  ];
  for (const [what, payload] of badLists) {
    void it(`a domain list with ${what} is VIRT_ERR_RPC`, async () => {
      await withFake(
        (r, s) => s.write(replyFrame(0x83, 0, r.serial, payload)),
        async (c) => {
          await assert.rejects(c.listDomains(), isCode('VIRT_ERR_RPC'));
        },
      );
    });
  }

  void it('error replies map to their codes and leave the connection usable', async () => {
    const map: Array<[number, VirtErrorCode]> = [
      [3, 'VIRT_ERR_RPC'],
      [4, 'VIRT_ERR_RPC'],
      [5, 'VIRT_ERR_NO_CONNECT'],
      [6, 'VIRT_ERR_OPERATION_FAILED'],
      [9, 'VIRT_ERR_NO_CONNECT'],
    ];
    let i = 0;
    await withFake(
      (r, s) => {
        const entry = map[i++];
        s.write(entry === undefined ? replyFrame(0x81, 0, r.serial, versionPayload()) : replyFrame(0x81, entry[0], r.serial, str(`status ${entry[0]}`)));
      },
      async (c) => {
        for (const [status, code] of map) await assert.rejects(c.version(), (e: unknown) => isVirtError(e, code) && e.message.includes(`status ${status}`));
        assert.equal(await c.version(), '4.17.0');
      },
    );
  });

  void it('concurrent calls are serialised, one request in flight at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    await withFake(
      (r, s) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => {
          inFlight--;
          s.write(replyFrame(0x81, 0, r.serial, versionPayload(4, 17, `.${r.serial}`)));
        }, 5);
      },
      async (c) => {
        const got = await Promise.all([1, 2, 3, 4, 5].map(() => c.version()));
        assert.deepEqual(got, ['4.17.1', '4.17.2', '4.17.3', '4.17.4', '4.17.5']);
        assert.equal(maxInFlight, 1);
      },
    );
  });
});

void describe('vbdName', () => {
  void it('decodes the Xen vbd numbering', () => {
    const table: Array<[number, string]> = [
      [51712, 'xvda'],
      [51713, 'xvda1'],
      [51728, 'xvdb'],
      [51952, 'xvdp'],
      [(1 << 28) | (16 << 8), 'xvdq'],
      [(1 << 28) | (26 << 8) | 3, 'xvdaa3'],
      [768, 'hda'],
      [832, 'hdb'],
      [5632, 'hdc'],
      [2048, 'sda'],
      [2065, 'sdb1'],
      [12345, '12345'],
    ];
    for (const [devid, name] of table) assert.equal(vbdName(devid), name, String(devid));
  });
});
