// Finding 6: virt-qemud did not know who was connected. Now it reads each
// client's uid/gid/pid with SO_PEERCRED (native/peercred, built at install),
// refuses the read-write socket to anyone but root, the daemon's user and
// the admin group, and records the peer in its log. Here the socket's mode is
// opened to everyone on purpose, so only the peer check stands in the way.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadPeerCred, PEERCRED_ADDON } from '../../src/qemud/peercred.ts';
import { daemonPid, QEMUD_BIN, waitFor } from '../qemud/helpers.ts';
import { createUser, runAs, type TestUser } from './users.ts';

const CLIENT = `
const net = require('node:net');
const [path] = process.argv.slice(2);
const s = net.createConnection(path);
let buf = Buffer.alloc(0);
s.on('connect', () => {
  const body = Buffer.from(JSON.stringify({ v: 1, id: 1, op: 'ping', args: [] }));
  const h = Buffer.alloc(4); h.writeUInt32BE(body.length, 0); s.write(Buffer.concat([h, body]));
});
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) { process.stdout.write(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString()); process.exit(0); }
});
s.on('error', (e) => { process.stdout.write(JSON.stringify({ connectError: e.code })); process.exit(0); });
`;

void describe('finding 6: the read-write socket checks peer credentials', () => {
  let outsider: TestUser;
  let member: TestUser;
  let supplementary: TestUser;
  let base: string;
  let runtimeDir: string;
  let log: string;
  let daemon: ChildProcess | undefined;
  let script: string;

  before(async () => {
    assert.ok(existsSync(PEERCRED_ADDON), `${PEERCRED_ADDON} is built at install time (npm ci, or sh native/peercred/build.sh; needs gcc)`);
    outsider = createUser('vxs6o');
    member = createUser('vxs6m');
    supplementary = createUser('vxs6s');
    const r = spawnSync('usermod', ['-aG', member.name, supplementary.name], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    base = mkdtempSync(join(tmpdir(), 'virt-sec6-'));
    chmodSync(base, 0o755);
    runtimeDir = join(base, 'qemu');
    log = join(base, 'daemon.log');
    script = join(base, 'client.cjs');
    writeFileSync(script, CLIENT);
    chmodSync(script, 0o644);
    const fd = openSync(log, 'a');
    daemon = spawn(QEMUD_BIN, ['--session', '--runtime-dir', runtimeDir, '--admin-group', member.name], { env: { ...process.env, VIRT_EXPORTER_RUNTIME_DIR: base }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    await waitFor(() => daemonPid(runtimeDir) === daemon?.pid && existsSync(join(runtimeDir, 'virt-qemud-sock-ro')), 15_000, `virt-qemud (log: ${existsSync(log) ? readFileSync(log, 'utf8') : ''})`);
    chmodSync(runtimeDir, 0o755);
    // Misconfigured on purpose: anyone may connect to the read-write socket; the peer check must refuse.
    chmodSync(join(runtimeDir, 'virt-qemud-sock'), 0o666);
  });
  after(() => {
    daemon?.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
    supplementary?.remove();
    member?.remove();
    outsider?.remove();
  });

  const ping = async (user: TestUser, socket: string, groups: number[] = []): Promise<Record<string, unknown>> => {
    const r = groups.length === 0
      ? await runAs(user, process.execPath, [script, join(runtimeDir, socket)], { PATH: process.env['PATH'] ?? '' })
      : await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const c = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${groups.join(',')}`, '--', process.execPath, script, join(runtimeDir, socket)], { stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          c.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
          c.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
          c.on('close', (code) => resolve({ code, stdout, stderr }));
        });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  void it('an unprivileged outsider is refused on the read-write socket (VIRT_ERR_OPERATION_DENIED) and logged with its uid and pid', async () => {
    const reply = await ping(outsider, 'virt-qemud-sock');
    assert.equal((reply.error as { code: string } | undefined)?.code, 'VIRT_ERR_OPERATION_DENIED', JSON.stringify(reply));
    await waitFor(() => readFileSync(log, 'utf8').includes(`peer_uid=${outsider.uid}`), 5000, 'the refusal in the daemon log');
    assert.match(readFileSync(log, 'utf8'), new RegExp(`refusing a client on the read-write socket.*peer_pid=\\d+.*peer_uid=${outsider.uid}`));
  });

  void it('the same outsider may use the read-only socket', async () => {
    const reply = await ping(outsider, 'virt-qemud-sock-ro');
    assert.deepEqual((reply.result as { readOnly: boolean }).readOnly, true);
  });

  void it('a member of the admin group (primary or supplementary) may use the read-write socket; root too', async () => {
    const byPrimary = await ping(member, 'virt-qemud-sock');
    assert.equal((byPrimary.result as { readOnly: boolean } | undefined)?.readOnly, false, JSON.stringify(byPrimary));
    const bySupplementary = await ping(supplementary, 'virt-qemud-sock', [member.gid]);
    assert.equal((bySupplementary.result as { readOnly: boolean } | undefined)?.readOnly, false, JSON.stringify(bySupplementary));
    assert.match(readFileSync(log, 'utf8'), new RegExp(`client connected.*socket=rw.*peer_uid=${member.uid}`));
  });

  void it('without the addon (no compiler at install), loading it fails with VIRT_ERR_CONFIG naming the build step', () => {
    assert.throws(() => loadPeerCred(join(base, 'missing', 'peercred.node')), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_CONFIG' && err.message.includes('native/peercred/build.sh'));
  });
});
