// Finding 5: the session runtime directory was predictable
// (/tmp/virt-exporter-$UID): another local user pre-created it and listened on
// virt-qemud-sock, and the victim's `virtctl define` (kernel command-line
// secrets) went to the attacker. Now the directory must be the caller's own
// and mode 0700, and $XDG_RUNTIME_DIR or the home directory come first.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sessionBaseDir } from '../../src/qemud-shared/paths.ts';
import { ERROR_CODES } from '../../src/virt/errors.ts';
import { VIRTCTL_BIN, waitFor } from '../qemud/helpers.ts';
import { createUser, runAs, type TestUser } from './users.ts';

const LISTENER = `
const net = require('node:net');
const fs = require('node:fs');
const [sock, log] = process.argv.slice(2);
const server = net.createServer((c) => {
  c.on('data', (d) => {
    fs.appendFileSync(log, d);
    // A spoofed answer, in case anything gets this far.
    const body = Buffer.from(JSON.stringify({ v: 1, id: 1, result: [{ name: 'spoofed', uuid: '00000000-0000-4000-8000-000000000000', id: 1 }] }));
    const h = Buffer.alloc(4); h.writeUInt32BE(body.length, 0); c.write(Buffer.concat([h, body]));
  });
});
server.listen(sock, () => { fs.chmodSync(sock, 0o777); process.stdout.write('ready\\n'); });
`;

void describe('finding 5: a session runtime directory of another user is refused', () => {
  let victim: TestUser;
  let attacker: TestUser;
  let listener: ChildProcess | undefined;
  let work: string;
  let victimTmp: string;
  const node = process.execPath;
  const secret = 'root=/dev/vda console=ttyS0 api_token=s3cr3t-in-the-kernel-cmdline';

  before(async () => {
    victim = createUser('vxs5v');
    attacker = createUser('vxs5a');
    work = mkdtempSync(join(tmpdir(), 'virt-sec5-'));
    chmodSync(work, 0o755);
    victimTmp = `/tmp/virt-exporter-${victim.uid}`;
    // The attacker pre-creates the victim's predictable directory and listens where virt-qemud would.
    const script = join(work, 'listener.cjs');
    writeFileSync(script, LISTENER);
    chmodSync(script, 0o644);
    const attackerDir = join(work, 'attacker');
    mkdirSync(attackerDir, { mode: 0o700 });
    chownSync(attackerDir, attacker.uid, attacker.gid);
    listener = spawn('setpriv', [`--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--clear-groups', '--', 'sh', '-c', `umask 022; mkdir -p ${victimTmp}/qemu && exec ${node} ${script} ${victimTmp}/qemu/virt-qemud-sock ${attackerDir}/received`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    listener.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    listener.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
    await waitFor(() => out.includes('ready'), 15_000, `the attacker's listener (stderr: ${err})`);
    assert.equal(statSync(victimTmp).uid, attacker.uid);
  });
  after(() => {
    listener?.kill('SIGKILL');
    rmSync(victimTmp, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    victim?.remove();
    attacker?.remove();
  });

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', VIRT_EXPORTER_QEMU_AUTOSTART: 'false', ...extra });

  void it("the victim's define with a secret is refused (VIRT_ERR_UNSAFE_PATH) and the attacker receives nothing", async () => {
    const def = join(work, 'def.json');
    writeFileSync(def, JSON.stringify({ name: 'vm-secret', memoryMiB: 64, vcpus: 1, kernel: { path: '/boot/vmlinuz', cmdline: secret } }));
    chmodSync(def, 0o644);
    for (const args of [['define', def], ['list', '--all']]) {
      const r = await runAs(victim, VIRTCTL_BIN, ['--connect', 'qemu:///session', ...args], env());
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_UNSAFE_PATH.exit, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /VIRT_ERR_UNSAFE_PATH/);
      assert.ok(!r.stdout.includes('spoofed'), 'no spoofed domain is shown');
    }
    assert.ok(!existsSync(join(work, 'attacker', 'received')), 'the attacker received no byte');
  });

  void it("the victim's own directory is refused too while it is open to others (mode 0755)", async () => {
    const own = `/tmp/virt-exporter-${attacker.uid}`;
    try {
      mkdirSync(own, { mode: 0o755 });
      chmodSync(own, 0o755);
      chownSync(own, attacker.uid, attacker.gid);
      const r = await runAs(attacker, VIRTCTL_BIN, ['--connect', 'qemu:///session', 'list'], env());
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_UNSAFE_PATH.exit, r.stderr);
      assert.match(r.stderr, /mode is 0755/);
      chmodSync(own, 0o700);
      const ok = await runAs(attacker, VIRTCTL_BIN, ['--connect', 'qemu:///session', 'list'], env());
      assert.equal(ok.code, ERROR_CODES.VIRT_ERR_NO_CONNECT.exit, `past the check, no daemon runs (autostart off): ${ok.stderr}`);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  void it('with a home directory the default is $HOME/.cache/virt-exporter (0700), never /tmp', async () => {
    const home = join(work, 'home');
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, victim.uid, victim.gid);
    // Read-only commands create nothing (issue 15); a write command makes the directory, then finds no daemon (autostart off).
    const ro = await runAs(victim, VIRTCTL_BIN, ['--connect', 'qemu:///session', 'list'], env({ HOME: home }));
    assert.equal(ro.code, ERROR_CODES.VIRT_ERR_NO_CONNECT.exit, ro.stderr);
    assert.equal(existsSync(join(home, '.cache')), false, 'a read-only command created a directory');
    const r = await runAs(victim, VIRTCTL_BIN, ['--connect', 'qemu:///session', 'start', 'nothing'], env({ HOME: home }));
    assert.equal(r.code, ERROR_CODES.VIRT_ERR_NO_CONNECT.exit, r.stderr);
    const dir = join(home, '.cache', 'virt-exporter');
    const st = statSync(dir);
    assert.equal(st.uid, victim.uid);
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(sessionBaseDir({ HOME: home }), dir);
    assert.equal(sessionBaseDir({ HOME: home, XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/virt-exporter');
    assert.ok(!readFileSync('/etc/passwd', 'utf8').includes(`${victim.name}:x:${victim.uid}:${victim.gid}::${home}`), 'the home is the test\'s, not the account\'s');
  });
});
