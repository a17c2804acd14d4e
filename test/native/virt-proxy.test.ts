import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { VirtProxyClient } from '../../src/drivers/xen/proxy-client.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { isVirtError } from '../../src/virt/errors.ts';
import {
  HOST,
  ROOT,
  FrameReader,
  buildNative,
  connectRaw,
  errorText,
  expectHello,
  frame,
  randomDoms,
  removeDir,
  startDaemon,
  stateText,
  tempDir,
  writeState,
  writeVbd,
  type Built,
  type FakeDom,
} from './helpers.ts';

const run = promisify(execFile);
const PAGE = 4096;

let dir: string;
let built: Built;
let statePath: string;
let sysfs: string;
let netdev: string;
const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath });

const DOMS: FakeDom[] = [
  { domid: 0, uuid: '00000000-0000-0000-0000-000000000000', flags: 0x20, totPages: 262144, maxPages: 262144, cpuTimeNs: 123456789n, onlineVcpus: 2, maxVcpuId: 1 },
  { domid: 3, uuid: '6A0F8F86-1C1E-4E3B-9B5C-2F0E1D6D7A11', flags: 0x10 | 0x02, totPages: 131072, maxPages: 262144, cpuTimeNs: 5_500_000_000n, onlineVcpus: 4, maxVcpuId: 3 },
  { domid: 7, uuid: 'c0ffee00-1111-2222-3333-444455556666', flags: 0x04 | (3 << 16), totPages: 1, maxPages: 0xffffffff, cpuTimeNs: 0n, onlineVcpus: 0, maxVcpuId: 0xffffffff },
];

async function stdioClient(extra: string[] = [], xenctrl?: string): Promise<VirtProxyClient> {
  return VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: xenctrl ?? built.stub, args: ['--sysfs-root', sysfs, '--proc-net-dev', netdev, ...extra], logger: silentLogger, timeoutMs: 10_000, env: env() });
}

before(async () => {
  dir = await tempDir('vp-test-');
  built = await buildNative(dir);
  statePath = join(dir, 'state');
  sysfs = join(dir, 'sys');
  netdev = join(dir, 'net-dev');
  await writeState(statePath, stateText(HOST, DOMS));
  await writeVbd(sysfs, 3, 51712, { rd: 11, wr: 22, rdSect: 333, wrSect: 444, oo: 5 });
  await writeVbd(sysfs, 3, 51728, { rd: 1, wr: 2, rdSect: 3, wrSect: 4, oo: 0 });
  await writeVbd(sysfs, 30, 51712, { rd: 999, wr: 999, rdSect: 999, wrSect: 999, oo: 999 }); // another domain: must not leak into domid 3
  await writeFile(
    netdev,
    [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0',
      '  vif3.0:1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0',
      '  vif3.1: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0',
      'vif3.0-emu: 77 77 77 77 0 0 0 0 77 77 77 77 0 0 0 0',
      '  vif33.0: 88 88 88 88 0 0 0 0 88 88 88 88 0 0 0 0',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await removeDir(dir);
});

void describe('virt-proxy --stdio against the libxenctrl stub', () => {
  void it('reports the host from the state file (pages to bytes, kHz to MHz)', async () => {
    const c = await stdioClient();
    try {
      assert.equal(await c.version(), HOST.version);
      const h = await c.hostInfo();
      assert.equal(h.cpus, HOST.cpus);
      assert.equal(h.mhz, HOST.mhz);
      assert.equal(h.nodes, HOST.nodes);
      assert.equal(h.cores, HOST.cores);
      assert.equal(h.threads, HOST.threads);
      assert.equal(h.sockets, HOST.cpus / (HOST.cores * HOST.threads * HOST.nodes));
      assert.equal(h.totalBytes, HOST.totalPages * PAGE);
      assert.equal(h.freeBytes, HOST.freePages * PAGE);
      assert.equal(h.xenVersion, '4.17.0');
    } finally {
      await c.close();
    }
  });

  void it('lists every domain with converted units and its device counters', async () => {
    const c = await stdioClient();
    try {
      const doms = await c.listDomains();
      assert.deepEqual(
        doms.map((d) => d.domid),
        DOMS.map((d) => d.domid),
      );
      for (const [i, want] of DOMS.entries()) {
        const got = doms[i];
        assert.ok(got);
        assert.equal(got.uuid, want.uuid.toLowerCase());
        assert.equal(got.flags, want.flags);
        assert.equal(got.currentBytes, want.totPages * PAGE);
        assert.equal(got.cpuTimeSeconds, Number(want.cpuTimeNs) / 1e9);
        assert.equal(got.onlineVcpus, want.onlineVcpus);
        assert.equal(got.maxVcpuId, want.maxVcpuId === 0xffffffff ? -1 : want.maxVcpuId);
        if (want.maxPages >= 0xffffffff) {
          assert.equal(got.maxMemoryUnlimited, true);
          assert.equal(got.maximumBytes, got.currentBytes);
        } else {
          assert.equal(got.maximumBytes, want.maxPages * PAGE);
        }
      }
      const d3 = doms[1];
      assert.ok(d3);
      assert.deepEqual(d3.vbds, [
        { device: 'xvda', devid: 51712, readRequests: 11, writeRequests: 22, readSectors: 333, writeSectors: 444, errors: 5 },
        { device: 'xvdb', devid: 51728, readRequests: 1, writeRequests: 2, readSectors: 3, writeSectors: 4, errors: 0 },
      ]);
      // Guest view: the host's transmit is the guest's receive.
      assert.deepEqual(d3.vifs, [
        { interface: 'vif3.0', rxBytes: 2000, rxPackets: 20, rxErrors: 3, rxDrops: 4, txBytes: 1000, txPackets: 10, txErrors: 1, txDrops: 2 },
        { interface: 'vif3.1', rxBytes: 9, rxPackets: 10, rxErrors: 11, rxDrops: 12, txBytes: 5, txPackets: 6, txErrors: 7, txDrops: 8 },
      ]);
      assert.deepEqual(doms[0]?.vbds, []);
      assert.deepEqual(doms[0]?.vifs, []);
      const noDev = await c.listDomains({ devices: false });
      assert.deepEqual(noDev[1]?.vbds, []);
    } finally {
      await c.close();
    }
  });

  void it('sees a state change on the next call (the stub re-reads the file every time)', async () => {
    const c = await stdioClient();
    try {
      assert.equal((await c.listDomains()).length, DOMS.length);
      const changed = DOMS.map((d) => (d.domid === 3 ? { ...d, flags: 0x04, cpuTimeNs: 9_000_000_000n } : d)).filter((d) => d.domid !== 7);
      await writeState(statePath, stateText(HOST, changed));
      const doms = await c.listDomains();
      assert.deepEqual(
        doms.map((d) => [d.domid, d.flags, d.cpuTimeSeconds]),
        changed.map((d) => [d.domid, d.flags, Number(d.cpuTimeNs) / 1e9]),
      );
    } finally {
      await writeState(statePath, stateText(HOST, DOMS));
      await c.close();
    }
  });

  void it('pages through more than 256 domains', async () => {
    const many = randomDoms(700, 42);
    const path = join(dir, 'state-many');
    await writeState(path, stateText(HOST, many));
    const c = await VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: built.stub, logger: silentLogger, timeoutMs: 10_000, env: { VIRT_FAKE_XEN_STATE: path } });
    try {
      const doms = await c.listDomains({ devices: false });
      assert.equal(doms.length, 700);
      assert.deepEqual(
        doms.map((d) => [d.domid, d.uuid, d.flags, d.currentBytes]),
        many.map((d) => [d.domid, d.uuid, d.flags, d.totPages * PAGE]),
      );
    } finally {
      await c.close();
    }
  });

  void it('says clearly that Xen is absent when the control library cannot be loaded', async () => {
    const c = await stdioClient([], join(dir, 'no-such-libxenctrl.so'));
    try {
      await assert.rejects(c.version(), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /Xen is absent/.test(e.message) && e.message.includes('no-such-libxenctrl.so'));
      // The helper keeps answering (each request re-tries), it does not crash.
      await assert.rejects(c.listDomains(), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT'));
    } finally {
      await c.close();
    }
    const probe = await run(built.proxy, ['--probe', '--xenctrl', join(dir, 'nope.so')]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(probe.code, 1);
    assert.match(probe.stderr, /Xen is absent/);
  });

  void it('the environment variable VIRT_PROXY_XENCTRL selects the library', async () => {
    const out = await run(built.proxy, ['--probe'], { env: { VIRT_PROXY_XENCTRL: built.stub, VIRT_FAKE_XEN_STATE: statePath } });
    assert.match(out.stdout, /^xen 4\.17\.0 via .*libxenctrl-stub\.so/);
  });

  void it('refuses a hypervisor of another Xen version (the domctl layout differs)', async () => {
    const path = join(dir, 'state-418');
    await writeState(path, stateText({ ...HOST, version: '4.18.0' }, DOMS));
    const c = await VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: built.stub, logger: silentLogger, timeoutMs: 10_000, env: { VIRT_FAKE_XEN_STATE: path } });
    try {
      await assert.rejects(c.listDomains(), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /unsupported Xen 4\.18/.test(e.message));
    } finally {
      await c.close();
    }
  });

  void it('a malformed state file is a failed hypercall, not a crash', async () => {
    const path = join(dir, 'state-bad');
    await writeState(path, stateText(HOST, DOMS));
    const c = await VirtProxyClient.spawnStdio({ binary: built.proxy, xenctrl: built.stub, logger: silentLogger, timeoutMs: 10_000, env: { VIRT_FAKE_XEN_STATE: path } });
    try {
      assert.equal((await c.listDomains()).length, 3);
      await writeState(path, stateText(HOST, DOMS) + 'dom domid=banana\n');
      await assert.rejects(c.listDomains(), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_FAILED'));
      await writeState(path, stateText(HOST, DOMS));
      assert.equal((await c.listDomains()).length, 3);
    } finally {
      await c.close();
    }
  });

  void it('answers unknown types and bad payloads with error replies and keeps going; closes on a bad length', async () => {
    const child = spawn(built.proxy, ['--stdio', '--xenctrl', built.stub], { stdio: ['pipe', 'pipe', 'pipe'], env: env() });
    const reader = new FrameReader(child.stdout);
    try {
      await expectHello(reader);
      child.stdin.write(frame(0x42, 1));
      let r = await reader.next();
      assert.deepEqual([r?.type, r?.status, r?.serial], [0xc2, 3, 1]);
      child.stdin.write(frame(0x03, 2, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]))); // max = 0
      r = await reader.next();
      assert.deepEqual([r?.type, r?.status, r?.serial], [0x83, 4, 2]);
      child.stdin.write(frame(0x03, 3, Buffer.from([0, 0, 1, 1, 0, 0, 0, 0]))); // max = 257
      r = await reader.next();
      assert.equal(r?.status, 4);
      child.stdin.write(frame(0x01, 4, Buffer.from([1]))); // VERSION takes no payload
      r = await reader.next();
      assert.equal(r?.status, 4);
      // No write operation exists: the lifecycle-ish numbers are all unknown.
      for (let t = 0x04; t < 0x80; t++) {
        child.stdin.write(frame(t, 100 + t));
        r = await reader.next();
        assert.deepEqual([r?.status, r?.serial], [3, 100 + t], `type ${t}`);
      }
      child.stdin.write(frame(0x01, 5));
      r = await reader.next();
      assert.deepEqual([r?.type, r?.status, r?.serial], [0x81, 0, 5]);
      const bad = Buffer.alloc(4);
      bad.writeUInt32BE(1_000_000);
      child.stdin.write(bad);
      r = await reader.next();
      assert.equal(r?.status, 1);
      assert.match(errorText(r?.payload ?? Buffer.alloc(2)), /length out of bounds/);
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 2);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

void describe('virt-proxy --socket', () => {
  void it('serves several clients at once, with socket mode 0660 and the configured group, and logs peers', async () => {
    const sock = join(dir, 'vp.sock');
    const d = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub, '--group', 'nogroup', '--sysfs-root', sysfs, '--proc-net-dev', netdev], env());
    try {
      const st = await stat(sock);
      assert.equal(st.mode & 0o777, 0o660);
      assert.equal(st.gid, 65534);
      const clients = await Promise.all([1, 2, 3].map(() => VirtProxyClient.connect({ socketPath: sock, logger: silentLogger, timeoutMs: 10_000 })));
      try {
        const lists = await Promise.all(clients.map((c) => c.listDomains()));
        for (const l of lists) assert.deepEqual(
          l.map((x) => x.uuid),
          DOMS.map((x) => x.uuid.toLowerCase()),
        );
        const [a] = clients;
        assert.ok(a);
        assert.equal((await a.hostInfo()).cpus, HOST.cpus);
        assert.equal(await a.version(), '4.17.0');
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      assert.match(d.stderr(), new RegExp(`accepted client pid=${process.pid} uid=0 gid=0`));
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  void it('refuses a peer whose uid is not allowed, accepts allowed uids and group members', async () => {
    const sock = join(dir, 'vp-peer.sock');
    // 0755 so uid 65534 can reach the socket; the socket itself is then made 0666 to get past the
    // file permission and test the SO_PEERCRED check behind it.
    await chmod(dir, 0o755);
    const d = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub, '--allow-uid', '4242'], env());
    const script = join(dir, 'peer-client.ts');
    await writeFile(
      script,
      `import { VirtProxyClient } from ${JSON.stringify(join(ROOT, 'src/drivers/xen/proxy-client.ts'))};
import { silentLogger } from ${JSON.stringify(join(ROOT, 'src/util/logger.ts'))};
try {
  const c = await VirtProxyClient.connect({ socketPath: process.argv[2], logger: silentLogger, timeoutMs: 10000 });
  try { const doms = await c.listDomains(); console.log(JSON.stringify({ ok: doms.length })); }
  catch (e) { console.error(e.message); console.log(JSON.stringify({ code: e.code })); }
  finally { await c.close(); }
} catch (e) { console.error(e.message); console.log(JSON.stringify({ code: e.code })); }
`,
    );
    await chmod(script, 0o644);
    const asUser = async (uid: number, gid: number, path = sock): Promise<unknown> => {
      const child = spawn(process.execPath, [script, path], { uid, gid, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      await once(child, 'exit');
      assert.ok(out.trim() !== '', `peer client printed nothing: ${err}`);
      return JSON.parse(out.trim().split('\n').at(-1) ?? '') as unknown;
    };
    try {
      // The file mode alone keeps uid 65534 out.
      assert.deepEqual(await asUser(65534, 65534), { code: 'VIRT_ERR_NO_CONNECT' });
      await chmod(sock, 0o666);
      assert.deepEqual(await asUser(65534, 65534), { code: 'VIRT_ERR_OPERATION_DENIED' });
      assert.match(d.stderr(), /refused client pid=\d+ uid=65534 gid=65534: uid not allowed/);
      assert.deepEqual(await asUser(4242, 4242), { ok: DOMS.length });
      assert.deepEqual(await asUser(0, 0), { ok: DOMS.length });
    } finally {
      await d.stop();
    }
    const sock2 = join(dir, 'vp-group.sock');
    const d2 = await startDaemon(built.proxy, sock2, ['--xenctrl', built.stub, '--group', 'nogroup'], env());
    try {
      assert.deepEqual(await asUser(65534, 65534, sock2), { ok: DOMS.length }); // member of nogroup
      await chmod(sock2, 0o666);
      assert.deepEqual(await asUser(4242, 4242, sock2), { code: 'VIRT_ERR_OPERATION_DENIED' });
    } finally {
      await d2.stop();
      await chmod(dir, 0o700);
    }
  });

  void it('refuses to take over a live socket and replaces a stale one', async () => {
    const sock = join(dir, 'vp-twice.sock');
    const d = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub], env());
    try {
      const second = await run(built.proxy, ['--socket', sock, '--xenctrl', built.stub], { env: env() }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(second.code, 1);
      assert.match(second.stderr, /already serves/);
    } finally {
      await d.stop();
    }
    // SIGKILL leaves the socket file behind; a new daemon replaces it.
    const d2 = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub], env());
    d2.child.kill('SIGKILL');
    await once(d2.child, 'exit');
    const d3 = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub], env());
    try {
      const { sock: s, reader } = await connectRaw(sock);
      s.write(frame(0x01, 9));
      const r = await reader.next();
      assert.deepEqual([r?.type, r?.status, r?.serial], [0x81, 0, 9]);
      s.destroy();
    } finally {
      await d3.stop();
    }
  });

  void it('creates the missing parent directory of its socket (as /run/virt-exporter after a reboot)', async () => {
    const sock = join(dir, 'run-missing', 'virt-proxy.sock');
    const d = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub], env());
    try {
      const st = await stat(join(dir, 'run-missing'));
      assert.equal(st.mode & 0o777, 0o755);
      const c = await VirtProxyClient.connect({ socketPath: sock, logger: silentLogger, timeoutMs: 10_000 });
      assert.equal(await c.version(), '4.17.0');
      await c.close();
    } finally {
      await d.stop();
    }
  });

  void it('answers pipelined requests in order on one connection', async () => {
    const sock = join(dir, 'vp-pipe.sock');
    const d = await startDaemon(built.proxy, sock, ['--xenctrl', built.stub], env());
    try {
      const { sock: s, reader } = await connectRaw(sock);
      s.write(Buffer.concat([frame(0x01, 1), frame(0x02, 2), frame(0x03, 3, Buffer.from([0, 0, 0, 10, 0, 0, 0, 0])), frame(0x77, 4)]));
      const got = [];
      for (let i = 0; i < 4; i++) {
        const r = await reader.next();
        got.push([r?.type, r?.status, r?.serial]);
      }
      assert.deepEqual(got, [
        [0x81, 0, 1],
        [0x82, 0, 2],
        [0x83, 0, 3],
        [0xf7, 3, 4],
      ]);
      s.destroy();
    } finally {
      await d.stop();
    }
  });
});

void describe('native/build.sh', () => {
  void it('prints one clear line and succeeds when there is no C compiler', async () => {
    const out = await run('sh', [join(ROOT, 'native/build.sh')], { env: { PATH: process.env.PATH, CC: 'no-such-cc-for-test', BUILD: join(dir, 'never') } });
    assert.equal(out.stdout.trim().split('\n').length, 1);
    assert.match(out.stdout, /no C compiler/);
    await assert.rejects(stat(join(dir, 'never')));
  });

  void it('builds virt-proxy when a compiler is present', async () => {
    const out = join(dir, 'buildsh');
    await run('sh', [join(ROOT, 'native/build.sh')], { env: { PATH: process.env.PATH, BUILD: out } });
    const st = await stat(join(out, 'virt-proxy'));
    assert.ok(st.isFile() && (st.mode & 0o111) !== 0);
  });
});
