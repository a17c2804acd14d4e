// The systemd units of packaging/systemd: systemd-analyze verify accepts
// them, each has the hardening that fits it, and virt-qemud's socket
// activation works for real (systemd-socket-activate passes both named
// sockets; the first connection starts virt-qemud).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { qemudAnswers } from '../../src/virt/detect.ts';
import { ROOT } from '../helpers/exporter.ts';
import { alive, daemonPid, waitFor } from '../qemud/helpers.ts';

const UNITS = join(ROOT, 'packaging', 'systemd');
const dir = mkdtempSync(join(tmpdir(), 'units-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function requireTool(name: string): void {
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0) throw new Error(`${name} is not installed (Debian package systemd, see .ci/apt-packages.txt)`);
}

/** The [Section] Key=Value lines of a unit, repeated keys kept in order. */
function unitKeys(file: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const x = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (x === null) continue;
    m.set(x[1] ?? '', [...(m.get(x[1] ?? '') ?? []), x[2] ?? '']);
  }
  return m;
}

void describe('systemd units', { timeout: 60_000 }, () => {
  void it('systemd-analyze verify accepts every unit (ExecStart pointed at this tree\'s executables)', () => {
    requireTool('systemd-analyze');
    const copy = join(dir, 'verify');
    mkdirSync(copy);
    const files = readdirSync(UNITS).filter((f) => /\.(service|socket)$/.test(f));
    assert.deepEqual(files.sort(), ['virt-exporter.service', 'virt-exporter.socket', 'virt-qemud-ro.socket', 'virt-qemud.service', 'virt-qemud.socket']);
    for (const f of files) {
      copyFileSync(join(UNITS, f), join(copy, f));
      writeFileSync(join(copy, f), readFileSync(join(UNITS, f), 'utf8').replaceAll('/usr/bin/', join(ROOT, 'bin') + '/'));
    }
    const r = spawnSync('systemd-analyze', ['verify', ...files.map((f) => join(copy, f))], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
    assert.equal(r.status, 0, r.stderr);
    const ours = r.stderr.split('\n').filter((l) => /virt-(exporter|qemud)/.test(l));
    assert.deepEqual(ours, [], r.stderr);
  });

  void it('the exporter runs unprivileged and locked down; virt-qemud keeps what QEMU needs and leaves QEMU running when it stops', () => {
    const ex = unitKeys(join(UNITS, 'virt-exporter.service'));
    for (const [k, v] of [['User', 'virt-exporter'], ['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['PrivateDevices', 'yes'], ['CapabilityBoundingSet', '']]) {
      assert.deepEqual(ex.get(k ?? ''), [v], `virt-exporter.service ${k}`);
    }
    assert.equal(ex.has('ReadWritePaths'), false, 'the exporter writes nothing');
    const q = unitKeys(join(UNITS, 'virt-qemud.service'));
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'full'], ['KillMode', 'process'], ['RuntimeDirectoryPreserve', 'yes'], ['Sockets', 'virt-qemud.socket virt-qemud-ro.socket']]) {
      assert.deepEqual(q.get(k ?? ''), [v], `virt-qemud.service ${k}`);
    }
    assert.match(q.get('CapabilityBoundingSet')?.[0] ?? '', /CAP_NET_ADMIN/);
    assert.doesNotMatch(q.get('ExecStart')?.[0] ?? '', /idle-timeout|--timeout/, 'a unit-started virt-qemud never idles out');
    assert.deepEqual(unitKeys(join(UNITS, 'virt-qemud.socket')).get('FileDescriptorName'), ['virt-qemud-sock']);
    assert.deepEqual(unitKeys(join(UNITS, 'virt-qemud-ro.socket')).get('FileDescriptorName'), ['virt-qemud-sock-ro']);
  });

  void it('virt-qemud starts on the first connection to its socket-activated sockets and serves both', async () => {
    requireTool('systemd-socket-activate');
    const base = join(dir, 'rt');
    const rt = join(base, 'qemu');
    mkdirSync(rt, { recursive: true });
    const child = spawn('systemd-socket-activate', ['-l', join(rt, 'virt-qemud-sock'), '-l', join(rt, 'virt-qemud-sock-ro'), '--fdname=virt-qemud-sock:virt-qemud-sock-ro', `-E`, `VIRT_EXPORTER_RUNTIME_DIR=${base}`, join(ROOT, 'bin', 'virt-qemud'), '--session', '--runtime-dir', rt], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log += s));
    try {
      await waitFor(() => (log.match(/Listening on/g) ?? []).length === 2, 10_000, 'both sockets');
      assert.equal(daemonPid(rt), undefined, 'virt-qemud ran before any connection');
      // The first connection, on the read-only socket, starts it.
      assert.ok(await qemudAnswers(join(rt, 'virt-qemud-sock-ro'), 15_000), log);
      await waitFor(() => /"?virt-qemud listening"?.*systemdSocket=true/.test(log), 10_000, 'virt-qemud to log it serves systemd\'s sockets');
      const env = { ...process.env, VIRT_EXPORTER_RUNTIME_DIR: base, VIRT_EXPORTER_CONNECT: '' };
      const def = join(dir, 'sa.json');
      writeFileSync(def, JSON.stringify({ name: 'sa', memoryMiB: 32, vcpus: 1 }));
      const w = spawnSync(join(ROOT, 'bin', 'virtctl'), ['-c', 'qemu:///session', 'define', def], { encoding: 'utf8', env });
      assert.equal(w.status, 0, w.stderr);
      const r = spawnSync(join(ROOT, 'bin', 'virtctl'), ['-c', 'qemu:///session', '-r', 'list', '--all'], { encoding: 'utf8', env });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /sa\s+shut off/);
      assert.equal(daemonPid(rt), child.pid, 'systemd-socket-activate should have exec\'d virt-qemud in place');
    } finally {
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null || child.signalCode !== null || !alive(child.pid ?? 0), 10_000, 'virt-qemud to stop').catch(() => child.kill('SIGKILL'));
    }
  });
});
