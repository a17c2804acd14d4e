/**
 * Shared test helpers for virt-proxy: building it (into a private temp dir,
 * so parallel test files never overwrite each other's binaries), writing the
 * fake host's state file, and speaking raw frames.
 */
import { stateFileText, type StateDomain, type StateHost } from '../fake-xen/state-file.ts';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NATIVE = join(ROOT, 'native');
const run = promisify(execFile);

export interface Built {
  dir: string;
  proxy: string;
  stub: string;
  asan: string;
}

/** Builds the requested make targets with -Werror into dir/build; fails loudly when gcc/make are missing. */
export async function buildNative(dir: string, targets: string[] = ['all', 'stub']): Promise<Built> {
  const build = join(dir, 'build');
  try {
    await run('make', ['-C', NATIVE, '--no-print-directory', `BUILD=${build}`, 'WERROR=1', ...targets], { timeout: 180_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`building native/ failed (gcc and make are required; see .ci/apt-packages.txt): ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  return { dir: build, proxy: join(build, 'virt-proxy'), stub: join(build, 'libxenctrl-stub.so'), asan: join(build, 'virt-proxy-asan') };
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

export type FakeDom = StateDomain & { cpuTimeNs: bigint };
export type FakeHost = StateHost;

export const HOST: FakeHost = { cpus: 8, mhz: 2900, nodes: 1, sockets: 2, cores: 2, threads: 2, totalPages: 4194304, freePages: 1048576, version: '4.17.0' };

export function stateText(host: FakeHost, doms: FakeDom[]): string {
  return stateFileText(host, doms, 'fake host written by a test');
}

/** Writes the state file atomically (temp + rename), as the contract requires. */
export async function writeState(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

export function uuidFor(i: number): string {
  const hex = i.toString(16).padStart(12, '0');
  return `5e1f00${(i % 256).toString(16).padStart(2, '0')}-aaaa-4bbb-8ccc-${hex}`;
}

export function randomDoms(n: number, seed = 1): FakeDom[] {
  let s = seed;
  const rnd = (m: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % m;
  };
  const doms: FakeDom[] = [];
  let domid = 0;
  for (let i = 0; i < n; i++) {
    doms.push({
      domid,
      uuid: uuidFor(domid),
      flags: [0x20, 0x10, 0x08, 0x04 | (3 << 16), 0x01, 0x12, 0x38][rnd(7)] ?? 0x20,
      totPages: 1024 + rnd(1_000_000),
      maxPages: 2_000_000 + rnd(1000),
      cpuTimeNs: BigInt(rnd(2_000_000_000)) * 1000n + 7n,
      onlineVcpus: 1 + rnd(8),
      maxVcpuId: rnd(8),
    });
    domid += 1 + rnd(3);
  }
  return doms;
}

/** Builds a request frame by hand (so tests do not depend on the client's encoder). */
export function frame(type: number, serial: number, payload: Buffer = Buffer.alloc(0), version = 1, status = 0): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b.writeUInt32BE(8 + payload.length, 0);
  b.writeUInt8(version, 4);
  b.writeUInt8(type, 5);
  b.writeUInt16BE(status, 6);
  b.writeUInt32BE(serial, 8);
  payload.copy(b, 12);
  return b;
}

export interface RawReply {
  type: number;
  status: number;
  serial: number;
  payload: Buffer;
}

/** Reads frames from a stream, for raw protocol tests. */
export class FrameReader {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;

  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('close', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Next frame, or null when the stream ended first. Rejects after timeoutMs. */
  async next(timeoutMs = 10_000): Promise<RawReply | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 4) {
        const len = this.buf.readUInt32BE(0);
        if (len < 8 || len > 1024 * 1024) throw new Error(`reply length ${len} out of bounds`);
        if (this.buf.length >= 4 + len) {
          const f = this.buf.subarray(0, 4 + len);
          this.buf = this.buf.subarray(4 + len);
          if (f.readUInt8(4) !== 1) throw new Error(`reply version ${f.readUInt8(4)}`);
          return { type: f.readUInt8(5), status: f.readUInt16BE(6), serial: f.readUInt32BE(8), payload: Buffer.from(f.subarray(12)) };
        }
      }
      if (this.ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a reply frame');
      await new Promise<void>((ok) => {
        const t = setTimeout(ok, left);
        this.waiters.push(() => {
          clearTimeout(t);
          ok();
        });
      });
    }
  }
}

export function errorText(payload: Buffer): string {
  const n = payload.readUInt16BE(0);
  return payload.subarray(2, 2 + n).toString('utf8');
}

export interface Daemon {
  child: ChildProcess;
  stderr: () => string;
  stop: () => Promise<number | null>;
}

/** Starts `virt-proxy --socket` and waits until it listens. */
export async function startDaemon(binary: string, socketPath: string, extra: string[], env: NodeJS.ProcessEnv): Promise<Daemon> {
  const child = spawn(binary, ['--socket', socketPath, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    err += s;
  });
  const deadline = Date.now() + 20_000;
  while (!err.includes('listening on')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`virt-proxy --socket exited early: ${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`virt-proxy --socket did not start: ${err}`);
    }
    await new Promise((ok) => setTimeout(ok, 20));
  }
  return {
    child,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
      return child.exitCode;
    },
  };
}

/** Connects and consumes the greeting (type 0x80, serial 0); fails if anything else comes first. */
export async function connectRaw(path: string): Promise<{ sock: Socket; reader: FrameReader }> {
  const sock = connect({ path });
  await once(sock, 'connect');
  const reader = new FrameReader(sock);
  await expectHello(reader);
  return { sock, reader };
}

export async function expectHello(reader: FrameReader): Promise<void> {
  const hello = await reader.next();
  if (hello === null || hello.type !== 0x80 || hello.status !== 0 || hello.serial !== 0 || hello.payload.readUInt16BE(0) !== 1) {
    throw new Error(`expected the virt-proxy greeting, got ${JSON.stringify(hello)}`);
  }
}

/** Writes the vbd statistics files of one device under a fake sysfs root. */
export async function writeVbd(sysfs: string, domid: number, devid: number, c: { rd: number; wr: number; rdSect: number; wrSect: number; oo: number }): Promise<void> {
  const dir = join(sysfs, 'bus/xen-backend/devices', `vbd-${domid}-${devid}`, 'statistics');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'rd_req'), `${c.rd}\n`);
  await writeFile(join(dir, 'wr_req'), `${c.wr}\n`);
  await writeFile(join(dir, 'rd_sect'), `${c.rdSect}\n`);
  await writeFile(join(dir, 'wr_sect'), `${c.wrSect}\n`);
  await writeFile(join(dir, 'oo_req'), `${c.oo}\n`);
}
