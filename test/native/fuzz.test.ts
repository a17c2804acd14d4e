/**
 * Hostile input against the AddressSanitizer (+UBSan, +LeakSanitizer) build
 * of virt-proxy: thousands of random, oversized, truncated and mutated
 * frames. After every hostile client a well-behaved client must still be
 * answered correctly, and at the end the sanitizers must have nothing to say.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VirtProxyClient } from '../../src/drivers/xen/proxy-client.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { HOST, FrameReader, buildNative, frame, randomDoms, removeDir, startDaemon, stateText, tempDir, writeState, writeVbd, type Built } from './helpers.ts';

const SEED = Number(process.env.VIRT_PROXY_FUZZ_SEED ?? Date.now() % 1_000_000);
const SOCKET_CASES = 3000;
const STDIO_CASES = 150;
const SANITIZER_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:exitcode=66:abort_on_error=0',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=67',
};
const SANITIZER_REPORT = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/;

let dir: string;
let built: Built;
let statePath: string;
let sysfs: string;
let netdev: string;
const DOMS = randomDoms(40, 7);

/** Small deterministic PRNG (xorshift32) so a failing seed can be replayed with VIRT_PROXY_FUZZ_SEED. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return n <= 0 ? 0 : x % n;
  };
}

function randomBytes(rnd: (n: number) => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rnd(256);
  return b;
}

/** One hostile byte stream; `label` names the kind for failure messages. */
function hostileCase(rnd: (n: number) => number): { label: string; data: Buffer } {
  const valid = (): Buffer => {
    const t = [0x01, 0x02, 0x03][rnd(3)] ?? 1;
    return t === 0x03 ? frame(t, rnd(1 << 30), Buffer.from([0, rnd(256), rnd(2), rnd(256), 0, 0, 0, rnd(4)])) : frame(t, rnd(1 << 30));
  };
  switch (rnd(10)) {
    case 0:
      return { label: 'random bytes', data: randomBytes(rnd, rnd(200)) };
    case 1: {
      // Mostly just past the 64-byte bound, where an off-by-some check would bite, sometimes anywhere.
      const len = [65 + rnd(16), 65 + rnd(512), 0x10000 + rnd(0x10000), 0x7fffffff + rnd(0x7fffffff)][rnd(4)] ?? 65;
      const b = Buffer.concat([Buffer.alloc(4), randomBytes(rnd, rnd(2) === 0 ? rnd(32) : Math.min(len, 2048))]);
      b.writeUInt32BE(len, 0);
      if (b.length > 4) b[4] = 1;
      return { label: 'oversized length', data: b };
    }
    case 2: {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(rnd(8), 0);
      return { label: 'undersized length', data: b };
    }
    case 3: {
      const f = Buffer.concat([valid(), valid()]);
      return { label: 'truncated frame', data: f.subarray(0, rnd(f.length)) };
    }
    case 4: {
      const len = 8 + rnd(57);
      const body = randomBytes(rnd, len);
      body[0] = 1; // right version, random everything else
      const b = Buffer.alloc(4 + len);
      b.writeUInt32BE(len, 0);
      body.copy(b, 4);
      return { label: 'random well-framed body', data: Buffer.concat([b, valid()]) };
    }
    case 5: {
      const f = valid();
      for (let i = 0, n = 1 + rnd(4); i < n; i++) {
        const at = 4 + rnd(f.length - 4);
        f[at] = (f[at] ?? 0) ^ (1 << rnd(8));
      }
      return { label: 'bit-flipped request', data: f };
    }
    case 6:
      return { label: 'wrong protocol version', data: frame(rnd(256), rnd(1000), Buffer.alloc(0), 2 + rnd(254)) };
    case 7:
      return { label: 'big random stream', data: randomBytes(rnd, 4096 + rnd(60_000)) };
    case 8: {
      const frames: Buffer[] = [];
      for (let i = 0, n = 1 + rnd(40); i < n; i++) frames.push(rnd(3) === 0 ? frame(0x04 + rnd(0xfb), i) : valid());
      return { label: 'burst of pipelined frames', data: Buffer.concat(frames) };
    }
    default:
      return { label: 'connect and close', data: Buffer.alloc(0) };
  }
}

/** Sends one hostile stream, half-closes, reads whatever comes back (checking reply bounds) until the server closes. */
async function runHostile(path: string, data: Buffer): Promise<void> {
  const sock = connect({ path });
  const reader = new FrameReader(sock);
  sock.on('error', () => undefined); // EPIPE/ECONNRESET are fine: the server may close on garbage
  await once(sock, 'connect');
  sock.end(data);
  // Every frame the server sends must be well-formed, whatever we sent.
  for (;;) {
    const r = await reader.next(10_000);
    if (r === null) break;
    assert.ok(r.type === 0x80 || r.type === 0xff || (r.type & 0x80) !== 0, `reply type ${r.type}`);
  }
  sock.destroy();
}

before(async () => {
  dir = await tempDir('vp-fuzz-');
  built = await buildNative(dir, ['stub', 'asan']);
  statePath = join(dir, 'state');
  sysfs = join(dir, 'sys');
  netdev = join(dir, 'net-dev');
  await writeState(statePath, stateText(HOST, DOMS));
  await writeVbd(sysfs, DOMS[1]?.domid ?? 1, 51712, { rd: 1, wr: 2, rdSect: 3, wrSect: 4, oo: 5 });
  await writeFile(netdev, `Inter-|\n face |\n  vif${DOMS[1]?.domid ?? 1}.0: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n`);
});

after(async () => {
  await removeDir(dir);
});

void describe(`virt-proxy under AddressSanitizer, fuzzed (seed ${SEED})`, () => {
  void it(`socket mode survives ${SOCKET_CASES} hostile clients and keeps serving others`, async () => {
    const sock = join(dir, 'fuzz.sock');
    const env = { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath, ...SANITIZER_ENV };
    const d = await startDaemon(built.asan, sock, ['--xenctrl', built.stub, '--sysfs-root', sysfs, '--proc-net-dev', netdev], env);
    const rnd = prng(SEED);
    const good = await VirtProxyClient.connect({ socketPath: sock, logger: silentLogger, timeoutMs: 15_000 });
    const started = Date.now();
    try {
      const want = (await good.listDomains()).map((x) => x.uuid);
      assert.equal(want.length, DOMS.length);
      const kinds = new Map<string, number>();
      for (let i = 0; i < SOCKET_CASES; i++) {
        const { label, data } = hostileCase(rnd);
        kinds.set(label, (kinds.get(label) ?? 0) + 1);
        await runHostile(sock, data).catch((err: unknown) => {
          throw new Error(`case ${i} (${label}, seed ${SEED}): ${String(err)}\nserver stderr tail: ${d.stderr().slice(-2000)}`);
        });
        // The long-lived client and, now and then, a fresh one are still served correctly.
        assert.equal(await good.version(), '4.17.0', `after case ${i} (${label})`);
        if (i % 100 === 99) {
          const fresh = await VirtProxyClient.connect({ socketPath: sock, logger: silentLogger, timeoutMs: 15_000 });
          try {
            assert.deepEqual(
              (await fresh.listDomains()).map((x) => x.uuid),
              want,
            );
          } finally {
            await fresh.close();
          }
        }
      }
      assert.ok(kinds.size >= 9, `every kind of hostile input ran: ${JSON.stringify([...kinds])}`);
      assert.ok(Date.now() - started < 120_000, 'the fuzz run stays within its generous deadline');
    } finally {
      await good.close();
      const code = await d.stop();
      assert.doesNotMatch(d.stderr(), SANITIZER_REPORT);
      assert.equal(code, 0, `virt-proxy-asan exit code (66 = ASan/LSan report, 67 = UBSan): ${d.stderr().slice(-3000)}`);
    }
  });

  void it(`stdio mode survives every length around the bounds and ${STDIO_CASES} hostile parents`, async () => {
    const rnd = prng(SEED + 1);
    const lengths = [0, 1, 7, 8, 9, 12, 15, 16, 63, 64, 65, 66, 67, 68, 69, 100, 128, 164, 200, 255, 256, 4096, 65535, 65536, 0x7fffffff, 0x80000000, 0xffffffff];
    const cases: Array<{ label: string; data: Buffer }> = lengths.map((len) => {
      const b = Buffer.concat([Buffer.alloc(4), frame(0x01, 1).subarray(4), randomBytes(rnd, Math.min(len, 300))]);
      b.writeUInt32BE(len, 0);
      return { label: `length ${len}`, data: b };
    });
    for (let i = 0; i < STDIO_CASES; i++) cases.push(hostileCase(rnd));
    for (const [i, { label, data }] of cases.entries()) {
      const child = spawn(built.asan, ['--stdio', '--xenctrl', built.stub], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, VIRT_FAKE_XEN_STATE: statePath, ...SANITIZER_ENV } });
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (s: string) => (err += s));
      const reader = new FrameReader(child.stdout);
      child.stdin.on('error', () => undefined);
      child.stdin.end(data);
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      for (;;) {
        const r = await reader.next(15_000);
        if (r === null) break;
      }
      const [code, signal] = await exited;
      assert.equal(signal, null, `case ${i} (${label}): killed by ${String(signal)}: ${err}`);
      assert.ok(code === 0 || code === 2, `case ${i} (${label}): exit code ${String(code)}: ${err}`);
      assert.doesNotMatch(err, SANITIZER_REPORT, `case ${i} (${label})`);
    }
  });
});
