/**
 * libvirt+qemu:///session against a real session-mode libvirtd: Debian's
 * libvirtd run as an unprivileged user (nobody) with its own XDG directories,
 * as a desktop user's session daemon is. The exporter finds its socket under
 * $XDG_RUNTIME_DIR/libvirt and reads a domain defined and started through
 * that daemon (QEMU under TCG, as nobody).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseMetrics, scrape, startExporter, valueOf, type StartedExporter } from '../../helpers/exporter.ts';
import { domainXml, requireLibvirtTools } from './daemon.ts';

const run = promisify(execFile);
const USER = 'nobody';
const UID = 65534;
const GID = 65534;

void describe('libvirt+qemu:///session against a session-mode libvirtd run as an unprivileged user', { timeout: 180_000 }, () => {
  let dir = '';
  let env: NodeJS.ProcessEnv = {};
  let daemon: ChildProcess | undefined;
  let exporter: StartedExporter | undefined;

  const virsh = async (args: string[]): Promise<string> =>
    (await run('/usr/sbin/runuser', ['-u', USER, '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`), 'virsh', '-q', '-c', 'qemu:///session', ...args], { cwd: '/', timeout: 120_000 })).stdout;

  before(async () => {
    requireLibvirtTools();
    if (!existsSync('/usr/sbin/runuser')) throw new Error('/usr/sbin/runuser is missing: apt-get install -y --no-install-recommends util-linux');
    dir = mkdtempSync(join(tmpdir(), 'virt-lvs-'));
    chmodSync(dir, 0o755);
    const home = join(dir, 'home');
    const runtime = join(dir, 'run');
    for (const d of [home, runtime]) {
      mkdirSync(d);
      chownSync(d, UID, GID);
      chmodSync(d, 0o700);
    }
    env = { HOME: home, XDG_RUNTIME_DIR: runtime, XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache'), XDG_DATA_HOME: join(home, '.local', 'share') };
    daemon = spawn('/usr/sbin/runuser', ['-u', USER, '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`), '/usr/sbin/libvirtd'], { cwd: '/', stdio: 'ignore' });
    const sock = join(runtime, 'libvirt', 'libvirt-sock');
    const until = Date.now() + 30_000;
    while (!existsSync(sock)) {
      if (daemon.exitCode !== null) throw new Error(`session libvirtd exited early (${String(daemon.exitCode)})`);
      if (Date.now() > until) throw new Error(`session libvirtd did not open ${sock} within 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const file = join(dir, 'sess.xml');
    writeFileSync(file, domainXml({ name: 'lv-sess', userNic: true }));
    chmodSync(file, 0o644);
    await virsh(['define', file]);
    await virsh(['start', 'lv-sess']);
    // The exporter (root here) finds the session socket through XDG_RUNTIME_DIR, as the session's own user would.
    exporter = await startExporter(['--connect', 'libvirt+qemu:///session', '--collect.timeout', '10s'], { XDG_RUNTIME_DIR: runtime });
  });

  after(async () => {
    await exporter?.stop();
    if (dir !== '') {
      await virsh(['destroy', 'lv-sess']).catch(() => undefined);
      const qemuRun = join(dir, 'run', 'libvirt', 'qemu', 'run');
      for (const f of existsSync(qemuRun) ? readdirSync(qemuRun).filter((x) => x.endsWith('.pid')) : []) {
        try {
          process.kill(Number(readFileSync(join(qemuRun, f), 'utf8').trim()), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    // libvirtd, and the virtlogd it spawned (which would linger for its --timeout=120 s), by their pid files.
    for (const f of ['libvirtd.pid', 'virtlogd.pid']) {
      const file = join(dir, 'run', 'libvirt', f);
      if (dir === '' || !existsSync(file)) continue;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1) continue;
      await stopPid(pid);
    }
    if (daemon !== undefined && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGKILL');
      await exited;
    }
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  void it('reads the session daemon\'s domain through $XDG_RUNTIME_DIR/libvirt/libvirt-sock', async () => {
    const m = parseMetrics(await scrape((exporter as StartedExporter).url));
    assert.equal(valueOf(m, 'virt_up'), 1);
    assert.equal(valueOf(m, 'virt_domains'), 1);
    assert.equal(valueOf(m, 'virt_domain_state', { domain: 'lv-sess', state: 'running' }), 1);
    assert.equal(valueOf(m, 'virt_domain_vcpus', { domain: 'lv-sess' }), 1);
    assert.equal(valueOf(m, 'virt_domain_memory_maximum_bytes', { domain: 'lv-sess' }), 64 * 1024 * 1024);
    assert.ok(valueOf(m, 'virt_domain_cpu_time_seconds_total', { domain: 'lv-sess' }) > 0);
    // The daemon is the session's own: virsh as that user agrees.
    assert.match(await virsh(['domstate', 'lv-sess']), /running/);
  });
});

/** SIGTERM, then SIGKILL after 10 s; returns once the process is gone. */
async function stopPid(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + 10_000;
  while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  if (alive()) process.kill(pid, 'SIGKILL');
  while (alive()) await new Promise((r) => setTimeout(r, 50));
}
