/** Shared helpers of the virt-qemud tests: temp runtime dirs, daemons, raw protocol clients, cleanup. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameDecoder } from '../../src/qemud-shared/protocol.ts';
import { readProcStat } from '../../src/qemud/proc.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const QEMUD_BIN = join(ROOT, 'bin/virt-qemud');
export const VIRTCTL_BIN = join(ROOT, 'bin/virtctl');

/** Fails (never skips) when a binary the real-QEMU tests need is missing. */
export function requireBinaries(...names: string[]): void {
  for (const n of names) {
    const r = spawnSync('sh', ['-c', `command -v ${n}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${n} is not installed; the real-QEMU tests need it (Debian packages qemu-system-x86 and qemu-utils, see .ci/apt-packages.txt)`);
  }
}

export interface Sandbox {
  /** Value of VIRT_EXPORTER_RUNTIME_DIR. */
  base: string;
  /** virt-qemud's runtime dir (base/qemu). */
  runtimeDir: string;
  rwSocket: string;
  roSocket: string;
  env: NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

/**
 * qemu.image-dirs of the virt-qemuds these tests start: their images, kernels
 * and console logs live in temp dirs and .cache, so the whole host is allowed,
 * explicitly. virt-qemud's default (confined to one image directory) is what
 * test/security/04-* attacks; set VIRT_EXPORTER_QEMU_IMAGE_DIRS to '' before
 * sandbox() to get that default.
 */
export const TEST_IMAGE_DIRS = '/';

export function sandbox(extraEnv: NodeJS.ProcessEnv = {}): Sandbox {
  const base = mkdtempSync(join(tmpdir(), 'vq-'));
  const runtimeDir = join(base, 'qemu');
  // Also for the virt-qemuds the driver starts from this process (they inherit its environment).
  process.env['VIRT_EXPORTER_QEMU_IMAGE_DIRS'] ??= TEST_IMAGE_DIRS;
  const env = { ...process.env, VIRT_EXPORTER_RUNTIME_DIR: base, ...extraEnv };
  return {
    base,
    runtimeDir,
    rwSocket: join(runtimeDir, 'virt-qemud-sock'),
    roSocket: join(runtimeDir, 'virt-qemud-sock-ro'),
    env,
    async cleanup() {
      killDaemon(runtimeDir);
      for (const pid of qemuPids(runtimeDir)) killPid(pid);
      await waitFor(() => qemuPids(runtimeDir).every((p) => !alive(p)), 5000).catch(() => undefined);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export function daemonPid(runtimeDir: string): number | undefined {
  try {
    const n = Number(readFileSync(join(runtimeDir, 'virt-qemud.pid'), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function killDaemon(runtimeDir: string, signal: NodeJS.Signals = 'SIGKILL'): number | undefined {
  const pid = daemonPid(runtimeDir);
  if (pid !== undefined) killPid(pid, signal);
  return pid;
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** Alive and not a zombie. */
export function alive(pid: number): boolean {
  const s = readProcStat(pid);
  return s !== null && s.state !== 'Z' && s.state !== 'X';
}

/** Pids of every QEMU this runtime dir's supervisor launched (from runtime records and pid files). */
export function qemuPids(runtimeDir: string): number[] {
  const out = new Set<number>();
  const run = join(runtimeDir, 'run');
  if (!existsSync(run)) return [];
  for (const f of readdirSync(run)) {
    try {
      const text = readFileSync(join(run, f), 'utf8');
      if (f.endsWith('.pid')) out.add(Number(text.trim()));
      else if (f.endsWith('.json')) {
        const pid = (JSON.parse(text) as { pid?: number }).pid;
        if (typeof pid === 'number') out.add(pid);
      }
    } catch {
      // racing with the supervisor
    }
  }
  return [...out].filter((p) => Number.isInteger(p) && p > 1);
}

/** Every live QEMU whose command line names this UUID (finds orphans the supervisor does not know). */
export function qemuPidsByUuid(uuid: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0');
      if (cmd.slice(0, 2).some((a) => a.includes('qemu-system')) && cmd.includes(uuid) && alive(Number(d))) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts virt-qemud in the foreground of the test (so its pid is known). */
export async function startDaemon(sb: Sandbox, args: string[] = []): Promise<ChildProcess> {
  const child = spawn(QEMUD_BIN, ['--session', '--runtime-dir', sb.runtimeDir, ...args], { env: sb.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    if (err.length < 20000) err += s;
  });
  await waitFor(
    async () => {
      if (!existsSync(sb.roSocket) || daemonPid(sb.runtimeDir) !== child.pid) return false;
      try {
        (await RawConn.connect(sb.rwSocket)).close();
        return true;
      } catch {
        return false;
      }
    },
    15000,
    `virt-qemud sockets (stderr: ${err})`,
  );
  return child;
}

/** A raw protocol connection for malformed/oversized frame tests. */
export class RawConn {
  readonly socket: Socket;
  readonly frames: unknown[] = [];
  closed = false;
  readonly #decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      for (const m of this.#decoder.push(c)) if (m.kind === 'message') this.frames.push(m.value);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  write(buf: Buffer): void {
    this.socket.write(buf);
  }

  async next(ms = 5000): Promise<Record<string, unknown>> {
    await waitFor(() => this.frames.length > 0, ms, 'a reply frame');
    return this.frames.shift() as Record<string, unknown>;
  }

  close(): void {
    this.socket.destroy();
  }
}

export function rawFrame(body: string | Buffer, declaredLength?: number): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const h = Buffer.alloc(4);
  h.writeUInt32BE(declaredLength ?? b.length, 0);
  return Buffer.concat([h, b]);
}
