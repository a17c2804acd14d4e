/**
 * Shared fixture for the Xen tests: a fake Xen host in a temp dir, the
 * native virt-proxy and stub libxenctrl built from source, and the settings
 * that point the xen driver at them.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startFakeXen, type FakeXen } from '../../fake-xen/index.ts';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../../..');

export interface NativeBuild {
  proxyBin: string;
  stubLib: string;
}

let built: Promise<NativeBuild> | undefined;
let buildDir: string | undefined;
/**
 * Builds virt-proxy and the stub library once per process into a private
 * temp dir (parallel test files never overwrite each other's binaries);
 * fails clearly without make or a C compiler.
 */
export function buildNative(): Promise<NativeBuild> {
  built ??= (async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'virt-xen-native-'));
    process.once('exit', () => {
      if (buildDir !== undefined) rmSync(buildDir, { recursive: true, force: true });
    });
    try {
      await run('make', ['-C', join(ROOT, 'native'), '--no-print-directory', `BUILD=${buildDir}`, 'all', 'stub'], { timeout: 180_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`building native/ (make -C native all stub) failed; make and a C compiler are required (.ci/apt-packages.txt): ${e.message}\n${e.stderr ?? ''}`);
    }
    const nb = { proxyBin: join(buildDir, 'virt-proxy'), stubLib: join(buildDir, 'libxenctrl-stub.so') };
    await access(nb.proxyBin);
    await access(nb.stubLib);
    return nb;
  })();
  return built;
}

export interface XenFixture {
  fx: FakeXen;
  dir: string;
  settings: Record<string, string>;
  /** Starts a virt-proxy daemon on the fixture's proxy socket. */
  startProxyDaemon(): Promise<ChildProcess>;
  /** The daemons started so far (still running or not). */
  daemons(): ChildProcess[];
  stop(): Promise<void>;
}

export async function startXenFixture(opts: { tcp?: boolean } = {}): Promise<XenFixture> {
  const { proxyBin: PROXY_BIN, stubLib: STUB_LIB } = await buildNative();
  const dir = await mkdtemp(join(tmpdir(), 'virt-xen-test-'));
  const fx = await startFakeXen({ dir, tcp: opts.tcp });
  // The stub libxenctrl reads the fake host's state file named here (child processes inherit it).
  process.env.VIRT_FAKE_XEN_STATE = fx.paths.stateFile;
  const proxySocket = join(dir, 'virt-proxy.sock');
  const settings: Record<string, string> = {
    'xen.xenstore-socket': fx.paths.xenstoreSocket,
    'xen.xend-address': fx.paths.xendSocket,
    'xen.proxy-binary': PROXY_BIN,
    'xen.proxy-socket': proxySocket,
    'xen.xenctrl': STUB_LIB,
    'xen.sysfs-root': fx.paths.sysfsRoot,
    'xen.proc-net-dev': fx.paths.procNetDev,
    'xen.privileged': 'root',
  };
  const children: ChildProcess[] = [];
  return {
    fx,
    dir,
    settings,
    daemons: () => [...children],
    startProxyDaemon: async () => {
      // A stale socket from a killed daemon must not pass for a live one.
      await rm(proxySocket, { force: true });
      const child = spawn(PROXY_BIN, ['--socket', proxySocket, '--xenctrl', STUB_LIB, '--sysfs-root', fx.paths.sysfsRoot, '--proc-net-dev', fx.paths.procNetDev], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, VIRT_FAKE_XEN_STATE: fx.paths.stateFile },
      });
      children.push(child);
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await access(proxySocket);
          return child;
        } catch {
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`virt-proxy --socket did not come up: ${stderr}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    stop: async () => {
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null) {
          const gone = new Promise((r) => c.once('exit', r));
          c.kill('SIGTERM');
          await gone;
        }
      }
      await fx.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
