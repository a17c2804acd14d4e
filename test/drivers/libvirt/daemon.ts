/**
 * A private libvirtd for tests: Debian's real daemon, started in its own
 * mount namespace (unshare --mount) with tmpfs and bind mounts over the
 * fixed paths a root daemon uses (/run, /etc/libvirt, /var/lib/libvirt,
 * /var/cache/libvirt, /var/log/libvirt), so the machine's own libvirt setup
 * is neither needed nor touched. Its sockets live in a temporary directory
 * outside those mounts, reachable from the test. qemu.conf is set for
 * containers without udev or cgroups: no namespaces, no cgroup controllers,
 * QEMU as root (as libvirt-qemu every domain start re-probes QEMU for ~40 s).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * QEMU capabilities libvirtd probed (about 4 s on first use), kept under
 * .cache/ keyed by the libvirtd and QEMU binaries; libvirtd re-validates them.
 */
function capsCacheDir(): string {
  const key = ['/usr/sbin/libvirtd', '/usr/bin/qemu-system-x86_64'].map((p) => {
    const st = statSync(p);
    return `${st.size}-${Math.floor(st.mtimeMs)}`;
  }).join('_');
  return join(new URL('../../../.cache/libvirt-qemu-caps/', import.meta.url).pathname, key);
}

const TOOLS: Array<[string, string]> = [
  ['/usr/sbin/libvirtd', 'libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-daemon-system'],
  ['/usr/bin/virsh', 'libvirt-clients'],
  ['/usr/bin/unshare', 'util-linux'],
  ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86'],
  ['/usr/bin/qemu-img', 'qemu-utils'],
];

export function requireLibvirtTools(): void {
  for (const [path, pkg] of TOOLS) {
    if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install -y --no-install-recommends ${pkg} (listed in .ci/apt-packages.txt)`);
  }
  if (process.getuid?.() !== 0) throw new Error('the private libvirtd fixture needs root (mount namespace and bind mounts)');
}

export interface DomainSpec {
  name: string;
  uuid?: string;
  memoryMiB?: number;
  disk?: string;
  userNic?: boolean;
  tap?: string;
  balloon?: boolean;
  metadata?: string;
  /** Direct kernel boot (the real-guest fixture). */
  kernel?: { path: string; initrd?: string; cmdline?: string };
}

const esc = (v: string): string => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');

function kernelXml(k: DomainSpec['kernel']): string {
  if (k === undefined) return '';
  return `<kernel>${esc(k.path)}</kernel>${k.initrd === undefined ? '' : `<initrd>${esc(k.initrd)}</initrd>`}${k.cmdline === undefined ? '' : `<cmdline>${esc(k.cmdline)}</cmdline>`}`;
}

export function domainXml(d: DomainSpec): string {
  const dev: string[] = ['<emulator>/usr/bin/qemu-system-x86_64</emulator>'];
  if (d.disk !== undefined) dev.push(`<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${d.disk}'/><target dev='vda' bus='virtio'/></disk>`);
  if (d.userNic === true) dev.push(`<interface type='user'><mac address='52:54:00:10:00:01'/><model type='virtio'/></interface>`);
  if (d.tap !== undefined) dev.push(`<interface type='ethernet'><target dev='${d.tap}' managed='yes'/><mac address='52:54:00:10:00:02'/><model type='virtio'/></interface>`);
  if (d.kernel !== undefined) dev.push("<serial type='null'><target port='0'/></serial>");
  dev.push(d.balloon === false ? "<memballoon model='none'/>" : "<memballoon model='virtio'><stats period='1'/></memballoon>");
  return `<domain type='qemu'>
  <name>${d.name}</name>${d.uuid === undefined ? '' : `\n  <uuid>${d.uuid}</uuid>`}
  <memory unit='MiB'>${d.memoryMiB ?? 64}</memory>
  <vcpu>1</vcpu>${d.metadata === undefined ? '' : `\n  <metadata>${d.metadata}</metadata>`}
  <os><type arch='x86_64' machine='pc'>hvm</type>${kernelXml(d.kernel)}</os>
  <devices>
    ${dev.join('\n    ')}
  </devices>
</domain>`;
}

export class PrivateLibvirtd {
  readonly dir: string;
  readonly sockDir: string;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  private constructor(dir: string) {
    this.dir = dir;
    this.sockDir = join(dir, 'sock');
  }

  static async start(): Promise<PrivateLibvirtd> {
    requireLibvirtTools();
    const dir = mkdtempSync(join(tmpdir(), 'virt-lvd-'));
    for (const d of ['etc', 'run', 'lib', 'cache', 'log', 'sock', 'images']) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(
      join(dir, 'etc', 'libvirtd.conf'),
      [
        `unix_sock_dir = "${join(dir, 'sock')}"`,
        'unix_sock_ro_perms = "0777"',
        'unix_sock_rw_perms = "0700"',
        'auth_unix_ro = "none"',
        'auth_unix_rw = "none"',
        'listen_tls = 0',
        'listen_tcp = 0',
        'keepalive_interval = 5',
        `log_outputs = "3:file:${join(dir, 'log', 'libvirtd.log')}"`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'etc', 'qemu.conf'),
      ['namespaces = [ ]', 'cgroup_controllers = [ ]', 'user = "root"', 'group = "root"', 'dynamic_ownership = 0', 'remember_owner = 0', 'security_driver = "none"', 'stdio_handler = "file"', ''].join('\n'),
    );
    const caps = capsCacheDir();
    if (existsSync(caps)) cpSync(caps, join(dir, 'cache', 'qemu', 'capabilities'), { recursive: true });
    const d = new PrivateLibvirtd(dir);
    await d.launch();
    return d;
  }

  get rwSocket(): string {
    return join(this.sockDir, 'libvirt-sock');
  }

  get roSocket(): string {
    return join(this.sockDir, 'libvirt-sock-ro');
  }

  get pid(): number {
    const pid = this.#child?.pid;
    if (pid === undefined) throw new Error('private libvirtd is not running');
    return pid;
  }

  /** virsh against this daemon: driver "qemu" or "test". */
  uri(driver: 'qemu' | 'test' = 'qemu'): string {
    return `${driver === 'qemu' ? 'qemu:///system' : 'test+unix:///default'}?socket=${this.rwSocket}`;
  }

  async virsh(args: string[], driver: 'qemu' | 'test' = 'qemu'): Promise<string> {
    const { stdout } = await run('virsh', ['-q', '-c', this.uri(driver), ...args], { timeout: 180_000 });
    return stdout;
  }

  async launch(): Promise<void> {
    const dir = this.dir;
    rmSync(this.rwSocket, { force: true });
    const mounts = [
      'mount -t tmpfs tmpfs /run',
      'mkdir -p /run/libvirt',
      `mount --bind ${dir}/run /run/libvirt`,
      `mount --bind ${dir}/etc /etc/libvirt`,
      `mount --bind ${dir}/lib /var/lib/libvirt`,
      `mount --bind ${dir}/cache /var/cache/libvirt`,
      `mount --bind ${dir}/log /var/log/libvirt`,
      `exec /usr/sbin/libvirtd --config ${dir}/etc/libvirtd.conf`,
    ].join(' && ');
    const child = spawn('/usr/bin/unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', mounts], { cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    this.#child = child;
    this.#exited = new Promise((r) => child.once('exit', () => r()));
    const until = Date.now() + 30_000;
    while (!existsSync(this.rwSocket) || !existsSync(this.roSocket)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`private libvirtd exited early (${String(child.exitCode ?? child.signalCode)}): ${err}\n${this.log()}`);
      if (Date.now() > until) throw new Error(`private libvirtd did not open ${this.rwSocket} within 30 s: ${err}\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'log', 'libvirtd.log'), 'utf8').slice(-4000);
    } catch {
      return '';
    }
  }

  /** Stops libvirtd only (domains keep running, as on a real daemon restart). */
  async stopDaemon(): Promise<void> {
    const c = this.#child;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
    await this.#exited;
    clearTimeout(t);
    this.#child = null;
  }

  /** Rewrites one libvirtd.conf setting (takes effect at the next launch). */
  setConf(key: string, value: string): void {
    const file = join(this.dir, 'etc', 'libvirtd.conf');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith(`${key} =`));
    writeFileSync(file, [...lines.filter((l) => l !== ''), `${key} = ${value}`, ''].join('\n'));
  }

  async restart(): Promise<void> {
    await this.stopDaemon();
    await this.launch();
  }

  async qemuImg(name: string, size = '16M'): Promise<string> {
    const path = join(this.dir, 'images', name);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
    return path;
  }

  /** Kills every QEMU this daemon started, the daemon, and removes everything. */
  async stop(): Promise<void> {
    const qemuRun = join(this.dir, 'run', 'qemu');
    if (this.#child !== null) {
      try {
        this.#child.kill('SIGCONT');
        for (const name of (await this.virsh(['list', '--name'])).split('\n').filter((l) => l.trim() !== '')) await this.virsh(['destroy', name.trim()]).catch(() => undefined);
      } catch {
        // the pid files below still catch every QEMU
      }
    }
    await this.stopDaemon();
    const probed = join(this.dir, 'cache', 'qemu', 'capabilities');
    try {
      const caps = capsCacheDir();
      if (existsSync(probed) && readdirSync(probed).length > 0 && !existsSync(caps)) cpSync(probed, caps, { recursive: true });
    } catch {
      // a cache only
    }
    if (existsSync(qemuRun)) {
      for (const f of readdirSync(qemuRun)) {
        if (!f.endsWith('.pid')) continue;
        const pid = Number(readFileSync(join(qemuRun, f), 'utf8').trim());
        if (Number.isInteger(pid) && pid > 1) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
