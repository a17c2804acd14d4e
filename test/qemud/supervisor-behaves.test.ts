// virt-qemud as an operator meets it: read-only commands never start one,
// an auto-started one exits when idle (one started by hand does not), one
// instance per directory, --version/--help, its process title, and
// detection by a live answer on the socket.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DAEMON_KEYS } from '../../src/qemud-shared/settings.ts';
import { ERROR_CODES } from '../../src/virt/errors.ts';
import { open } from '../../src/virt/connection.ts';
import { detectHostLive } from '../../src/virt/detect.ts';
import { parseMetrics, scrape, startExporter } from '../helpers/exporter.ts';
import { alive, daemonPid, killPid, QEMUD_BIN, sandbox, startDaemon, VIRTCTL_BIN, waitFor, type Sandbox } from './helpers.ts';

const boxes: Sandbox[] = [];
function box(): Sandbox {
  const sb = sandbox();
  boxes.push(sb);
  return sb;
}
after(async () => {
  for (const sb of boxes) await sb.cleanup();
});

function virtctl(sb: Sandbox, ...args: string[]) {
  const r = spawnSync(VIRTCTL_BIN, ['-c', 'qemu:///session', ...args], { encoding: 'utf8', timeout: 60_000, env: { ...sb.env, VIRT_EXPORTER_CONNECT: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function defFile(sb: Sandbox, name: string): string {
  const f = join(sb.base, `${name}.json`);
  writeFileSync(f, JSON.stringify({ name, memoryMiB: 32, vcpus: 1 }));
  return f;
}

void describe('virt-qemud behaves', { timeout: 120_000 }, () => {
  void it('read-only commands and connections never start a supervisor, nor create its directories', async () => {
    const sb = box();
    for (const args of [['list'], ['list', '--all'], ['-r', 'dominfo', 'x'], ['domstats'], ['--readonly', 'list']]) {
      const r = virtctl(sb, ...args);
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_NO_CONNECT.exit, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /VIRT_ERR_NO_CONNECT.*read-only connections never start virt-qemud/);
    }
    await assert.rejects(open('qemu:///session', { readOnly: true, settings: { 'qemu.runtime-dir': sb.runtimeDir } }), { code: 'VIRT_ERR_NO_CONNECT' });
    assert.equal(existsSync(sb.runtimeDir), false, 'read-only commands created the runtime directory');
  });

  void it('a write command starts one with an idle timeout; it is titled virt-qemud, refuses a second instance and exits when idle; afterwards read-only commands do not bring it back', async () => {
    const sb = box();
    const r = virtctl(sb, '--qemu.idle-timeout-seconds=1', 'define', defFile(sb, 'idle-a'));
    assert.equal(r.code, 0, r.stderr);
    const pid = daemonPid(sb.runtimeDir);
    assert.ok(pid !== undefined && alive(pid), 'no virt-qemud after a write command');
    assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'virt-qemud');
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'latin1'), /^virt-qemud/);

    const second = spawnSync(QEMUD_BIN, ['--session', '--runtime-dir', sb.runtimeDir], { encoding: 'utf8', env: sb.env, timeout: 30_000 });
    assert.notEqual(second.status, 0, 'a second virt-qemud for the same directory exited 0');
    assert.match(second.stderr, /already running/);
    assert.ok(alive(pid), 'the second instance disturbed the first');

    await waitFor(() => !alive(pid), 30_000, 'the idle virt-qemud to exit');
    assert.equal(existsSync(sb.roSocket), false, 'the idle exit left its socket');
    assert.equal(existsSync(join(sb.runtimeDir, 'virt-qemud.pid')), false, 'the idle exit left its pid file');
    assert.match(readFileSync(join(sb.runtimeDir, 'virt-qemud.log'), 'utf8'), /idle: no running domain and no client; exiting/);

    const ro = virtctl(sb, 'list', '--all');
    assert.equal(ro.code, ERROR_CODES.VIRT_ERR_NO_CONNECT.exit, ro.stderr);
    assert.equal(daemonPid(sb.runtimeDir), undefined, 'a read-only command started virt-qemud after a clean stop');
    // The definition survived; a write command brings the supervisor back.
    const again = virtctl(sb, '--qemu.idle-timeout-seconds=1', 'undefine', 'idle-a');
    assert.equal(again.code, 0, again.stderr);
  });

  void it('a virt-qemud started by hand has no idle timeout: it outlives an auto-started one that idles out', async () => {
    const manual = box();
    const child = await startDaemon(manual);
    const auto = box();
    assert.equal(virtctl(auto, '--qemu.idle-timeout-seconds=1', 'define', defFile(auto, 'idle-b')).code, 0);
    const autoPid = daemonPid(auto.runtimeDir);
    assert.ok(autoPid !== undefined);
    // Both had no domain and no client from the same moment on.
    await waitFor(() => !alive(autoPid), 30_000, 'the auto-started virt-qemud to exit');
    assert.ok(child.pid !== undefined && alive(child.pid), 'the virt-qemud started by hand exited when idle');
    child.kill('SIGTERM');
  });

  void it('--version and --help answer like the other executables; a bad flag gets one line', () => {
    const v = spawnSync(QEMUD_BIN, ['--version'], { encoding: 'utf8' });
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^virt-qemud \d+\.\d+\.\d+ \(node 22\./);
    // The exporter's config file named in the environment (inherited by an auto-started virt-qemud) is not virt-qemud's.
    const h = spawnSync(QEMUD_BIN, ['--help'], { encoding: 'utf8', env: { ...process.env, VIRT_EXPORTER_CONFIG: '/nonexistent/exporter.yaml' } });
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /--idle-timeout-seconds=VALUE \(also --timeout\)/);
    // Every daemon key, with the environment variable the driver and the unit use; the log settings as the exporter has them.
    for (const k of DAEMON_KEYS) assert.ok(h.stdout.includes(`--${k}=VALUE`) && h.stdout.includes(`VIRT_EXPORTER_QEMU_${k.toUpperCase().replaceAll('-', '_')}`), `--help lists --${k}`);
    assert.match(h.stdout, /--log\.level=VALUE/);
    assert.match(h.stdout, /env: VIRT_EXPORTER_QEMUD_CONFIG/);
    for (const args of [['--frobnicate'], ['--timeout=soon'], ['--max-clients', 'many'], ['--system', '--session'], ['--log.level=loud']]) {
      const bad = spawnSync(QEMUD_BIN, args, { encoding: 'utf8' });
      assert.equal(bad.status, 2, args.join(' '));
      const lines = bad.stderr.trim().split('\n');
      assert.equal(lines.length, 1, bad.stderr);
      assert.match(lines[0] ?? '', /^virt-qemud: error: VIRT_ERR_CONFIG: /, args.join(' '));
    }
  });

  void it('detection asks the socket: a live supervisor is found, a dead one\'s socket file is not taken for one', async () => {
    const sb = box();
    const env = { VIRT_EXPORTER_RUNTIME_DIR: sb.base };
    assert.equal((await detectHostLive(env)).uri.startsWith('qemu:///session'), false);
    const child = await startDaemon(sb);
    const live = await detectHostLive(env);
    assert.equal(live.uri, 'qemu:///session');
    assert.match(live.reason, /answers on/);
    killPid(child.pid ?? 0, 'SIGKILL');
    await waitFor(() => !alive(child.pid ?? 0), 5000, 'virt-qemud to die');
    assert.ok(existsSync(sb.roSocket), 'SIGKILL should leave the socket file behind');
    const dead = await detectHostLive(env);
    assert.notEqual(dead.uri, 'qemu:///session');
    assert.deepEqual(dead.silent.filter((s) => s === sb.roSocket), [sb.roSocket]);
    assert.match(dead.reason, /nothing answers on/);
  });

  void it('a supervisor stopped for maintenance stays down while an exporter scrapes: virt_up 0, no new virt-qemud', async () => {
    const sb = box();
    const child = await startDaemon(sb);
    const ex = await startExporter(['--connect=qemu:///session'], { ...sb.env, VIRT_EXPORTER_CONNECT: '' });
    try {
      const up = (text: string): number | undefined => parseMetrics(text).find((x) => x.name === 'virt_up')?.value;
      assert.equal(up(await scrape(ex.url)), 1);
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, 15_000, 'virt-qemud to stop');
      for (let i = 0; i < 3; i++) assert.equal(up(await scrape(ex.url)), 0);
      assert.equal(daemonPid(sb.runtimeDir), undefined, 'a scrape started virt-qemud again');
      assert.equal(existsSync(sb.roSocket), false);
    } finally {
      await ex.stop();
    }
  });

  void it('the exporter logs what detection found', async () => {
    const sb = box();
    await startDaemon(sb);
    const child = spawn(join(QEMUD_BIN, '..', 'virt-exporter'), ['--web.listen-address=127.0.0.1:0', '--log.format=json'], { env: { ...sb.env, VIRT_EXPORTER_CONNECT: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log += s));
    try {
      await waitFor(() => /"msg":"listening"/.test(log) || child.exitCode !== null, 30_000, 'the exporter to listen');
      assert.match(log, /"msg":"detected host","uri":"qemu:\/\/\/session","reason":"virt-qemud answers on [^"]*virt-qemud-sock-ro"/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
