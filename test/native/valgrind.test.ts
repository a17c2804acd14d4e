/**
 * virt-proxy under valgrind memcheck: short stdio and socket sessions must
 * produce no memcheck error and no definite/indirect leak (--error-exitcode).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { VirtProxyClient } from '../../src/drivers/xen/proxy-client.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { HOST, FrameReader, buildNative, expectHello, frame, randomDoms, removeDir, startDaemon, stateText, tempDir, writeState, writeVbd, type Built } from './helpers.ts';

const run = promisify(execFile);
const VALGRIND = ['--tool=memcheck', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect', '--track-fds=no', '-q'];

let dir: string;
let built: Built;
let statePath: string;
let sysfs: string;
let netdev: string;
const DOMS = randomDoms(12, 3);

before(async () => {
  try {
    await run('valgrind', ['--version']);
  } catch {
    throw new Error('valgrind is required for this test (apt-get install valgrind; listed in .ci/apt-packages.txt)');
  }
  dir = await tempDir('vp-valgrind-');
  // Unoptimised build so valgrind's reports point at real lines; same sources and warnings.
  built = await buildNative(dir, ['CFLAGS=-O1 -g', 'all', 'stub']);
  statePath = join(dir, 'state');
  sysfs = join(dir, 'sys');
  netdev = join(dir, 'net-dev');
  await writeState(statePath, stateText(HOST, DOMS));
  await writeVbd(sysfs, DOMS[2]?.domid ?? 2, 768, { rd: 1, wr: 2, rdSect: 3, wrSect: 4, oo: 5 });
  await writeFile(netdev, `Inter-|\n face |\n  vif${DOMS[2]?.domid ?? 2}.0: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n`);
});

after(async () => {
  await removeDir(dir);
});

async function stdioSession(extra: string[], frames: Buffer[], expectReplies: number): Promise<{ code: number | null; stderr: string; statuses: number[] }> {
  const child = spawn('valgrind', [...VALGRIND, built.proxy, '--stdio', ...extra], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath } });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (stderr += s));
  const reader = new FrameReader(child.stdout);
  const exited = once(child, 'exit') as Promise<[number | null]>;
  await expectHello(reader);
  const statuses: number[] = [];
  for (const f of frames) {
    child.stdin.write(f);
    const r = await reader.next(60_000);
    assert.ok(r, `no reply under valgrind: ${stderr}`);
    statuses.push(r.status);
  }
  child.stdin.end();
  const [code] = await exited;
  assert.equal(statuses.length, expectReplies);
  return { code, stderr, statuses };
}

void describe('virt-proxy under valgrind memcheck', () => {
  void it('a stdio session (every request, errors included) is clean', async () => {
    const list = Buffer.from([0, 0, 1, 0, 0, 0, 0, 1]); // first 0, max 256, with devices
    const frames = [frame(0x01, 1), frame(0x02, 2), frame(0x03, 3, list), frame(0x03, 4, Buffer.from([0, 5, 0, 2, 0, 0, 0, 0])), frame(0x55, 5), frame(0x03, 6, Buffer.from([1])), frame(0x01, 7, Buffer.alloc(0), 1, 9)];
    const s = await stdioSession(['--xenctrl', built.stub, '--sysfs-root', sysfs, '--proc-net-dev', netdev], frames, frames.length);
    assert.deepEqual(s.statuses, [0, 0, 0, 0, 3, 4, 4]);
    assert.equal(s.code, 0, `valgrind reported errors:\n${s.stderr}`);
  });

  void it('the Xen-absent path (library not loadable) is clean', async () => {
    const s = await stdioSession(['--xenctrl', join(dir, 'missing-libxenctrl.so')], [frame(0x01, 1), frame(0x02, 2), frame(0x03, 3, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]))], 3);
    assert.deepEqual(s.statuses, [5, 5, 5]);
    assert.equal(s.code, 0, `valgrind reported errors:\n${s.stderr}`);
  });

  void it('a socket session with several clients and a refused bad frame is clean', async () => {
    const sock = join(dir, 'vg.sock');
    // startDaemon runs the given binary; valgrind is that binary here, with virt-proxy after its options.
    const wrapper = join(dir, 'vg-proxy.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec valgrind ${VALGRIND.join(' ')} ${built.proxy} "$@"\n`, { mode: 0o755 });
    const d = await startDaemon(wrapper, sock, ['--xenctrl', built.stub, '--sysfs-root', sysfs, '--proc-net-dev', netdev], { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath });
    try {
      const clients = await Promise.all([1, 2].map(() => VirtProxyClient.connect({ socketPath: sock, logger: silentLogger, timeoutMs: 60_000 })));
      for (const c of clients) assert.equal((await c.listDomains()).length, DOMS.length);
      await Promise.all(clients.map((c) => c.close()));
      const bad = Buffer.alloc(4);
      bad.writeUInt32BE(5000);
      const { connect } = await import('node:net');
      const s = connect({ path: sock });
      s.on('error', () => undefined);
      s.resume(); // consume the greeting and the error reply so 'close' can fire
      await once(s, 'connect');
      s.end(bad);
      await once(s, 'close');
    } finally {
      const code = await d.stop();
      assert.equal(code, 0, `valgrind reported errors:\n${d.stderr()}`);
    }
  });
});
