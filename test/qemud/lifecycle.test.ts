// The lifecycle of real QEMU domains driven through virtctl, as an operator
// would, each step checked through a read and, where it applies, against the
// QEMU process itself (its pid, and its run state asked over its own QMP
// socket while virt-qemud is down).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { QmpClient } from '../../src/qemud/qmp.ts';
import { alive, daemonPid, killDaemon, qemuPidsByUuid, requireBinaries, sandbox, VIRTCTL_BIN, waitFor, type Sandbox } from './helpers.ts';

const execFileP = promisify(execFile);

interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

let sb: Sandbox;

async function ctl(...args: string[]): Promise<CtlResult> {
  try {
    const r = await execFileP(VIRTCTL_BIN, ['--connect', 'qemu:///session', ...args], { env: sb.env, timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function ok(...args: string[]): Promise<string> {
  const r = await ctl(...args);
  assert.equal(r.code, 0, `virtctl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function fails(code: string, ...args: string[]): Promise<void> {
  const r = await ctl(...args);
  assert.notEqual(r.code, 0, `virtctl ${args.join(' ')} should fail with ${code}`);
  assert.match(r.stderr, new RegExp(code), `virtctl ${args.join(' ')}: ${r.stderr}`);
}

interface Info {
  state: string;
  stateReason?: string;
  id: number | null;
  uuid: string;
  maxMemoryBytes: number;
  vcpus: number;
}

async function info(name: string): Promise<Info> {
  return JSON.parse(await ok('--json', 'dominfo', name)) as Info;
}

function pidOf(name: string): number {
  return (JSON.parse(readFileSync(join(sb.runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

/** Asks QEMU itself for its run state: stops virt-qemud (it holds the monitor), queries, disconnects. */
async function qemuRunState(uuid: string): Promise<string> {
  const old = killDaemon(sb.runtimeDir);
  if (old !== undefined) await waitFor(() => !alive(old), 5000, 'virt-qemud to die');
  const q = await QmpClient.connect(join(sb.runtimeDir, 'qmp', `${uuid}.sock`), { timeoutMs: 5000 });
  try {
    const st = (await q.execute('query-status', undefined, { timeoutMs: 5000 })) as { status: string };
    return st.status;
  } finally {
    q.close();
  }
}

before(() => {
  requireBinaries('qemu-system-x86_64', 'qemu-img');
  sb = sandbox({ VIRT_EXPORTER_QEMU_SHUTDOWN_GRACE_SECONDS: '2' });
});
after(async () => {
  await sb.cleanup();
});

void describe('lifecycle through virtctl --connect qemu:///session', { timeout: 180_000 }, () => {
  let def: string;
  let uuid: string;
  let saveFile: string;

  void it('defines a domain from a JSON file; it is listed shut off', async () => {
    const disk = join(sb.base, 'vm1.qcow2');
    const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '32M'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    def = join(sb.base, 'vm1.json');
    writeFileSync(def, JSON.stringify({ name: 'vm1', memoryMiB: 96, vcpus: 2, disks: [{ path: disk, format: 'qcow2' }], nics: [{ type: 'user' }] }));
    const out = JSON.parse(await ok('--json', 'define', def)) as { domain: { uuid: string } };
    uuid = out.domain.uuid;
    const list = JSON.parse(await ok('--json', 'list', '--all')) as Array<{ name: string; state: string }>;
    assert.deepEqual(list.map((d) => [d.name, d.state]), [['vm1', 'shutoff']]);
    const i = await info('vm1');
    assert.equal(i.maxMemoryBytes, 96 * 1024 * 1024);
    assert.equal(i.vcpus, 2);
    // The supervisor was started on demand.
    assert.ok(daemonPid(sb.runtimeDir) !== undefined);
  });

  void it('refuses a bad definition file naming the bad key', async () => {
    const bad = join(sb.base, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'bad', memoryMiB: 64, vcpus: 1, nics: [{ type: 'user', bridge: 'br0' }] }));
    const r = await ctl('define', bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /VIRT_ERR_XML_ERROR.*nics\[0\]\.bridge/);
  });

  void it('starts it: running, a live QEMU with its UUID; a second start is refused', async () => {
    await ok('start', 'vm1');
    const i = await info('vm1');
    assert.equal(i.state, 'running');
    assert.ok(typeof i.id === 'number');
    assert.deepEqual(qemuPidsByUuid(uuid), [pidOf('vm1')]);
    await fails('VIRT_ERR_OPERATION_INVALID', 'start', 'vm1');
    await fails('VIRT_ERR_OPERATION_INVALID', 'resume', 'vm1');
    await fails('VIRT_ERR_OPERATION_INVALID', 'undefine', 'vm1');
  });

  void it('suspends it: paused, as QEMU itself says over QMP; resumes it', async () => {
    await ok('suspend', 'vm1');
    assert.equal((await info('vm1')).state, 'paused');
    await fails('VIRT_ERR_OPERATION_INVALID', 'suspend', 'vm1');
    const pid = pidOf('vm1');
    assert.equal(await qemuRunState(uuid), 'paused');
    // virt-qemud was stopped for that; the next virtctl starts it again and it re-attaches.
    assert.equal((await info('vm1')).state, 'paused');
    assert.equal(pidOf('vm1'), pid);
    await ok('resume', 'vm1');
    assert.equal((await info('vm1')).state, 'running');
    assert.equal(await qemuRunState(uuid), 'running');
  });

  void it('reboots it: same QEMU process, still running, QEMU reported the reset', async () => {
    const pid = pidOf('vm1');
    await ok('reboot', 'vm1');
    assert.equal((await info('vm1')).state, 'running');
    assert.equal(pidOf('vm1'), pid);
    assert.ok(alive(pid));
    await waitFor(() => readFileSync(join(sb.runtimeDir, 'virt-qemud.log'), 'utf8').includes('event=RESET reason=host-qmp-system-reset'), 5000, 'the RESET event');
  });

  void it('saves it to a file: shut off with a managed save image, its QEMU gone', async () => {
    const pid = pidOf('vm1');
    saveFile = join(sb.base, 'vm1.save');
    await ok('save', 'vm1', saveFile);
    const i = await info('vm1');
    assert.equal(i.state, 'shutoff');
    assert.equal(i.stateReason, 'saved');
    await waitFor(() => !alive(pid), 5000, 'the saved QEMU to exit');
    assert.deepEqual(qemuPidsByUuid(uuid), []);
    assert.ok(statSync(saveFile).size > 64 * 1024, 'the image holds the guest state');
    assert.ok(existsSync(join(sb.runtimeDir, 'state', 'saves', 'vm1.json')), 'managed save record');
  });

  void it('restores it from the file: running again, as it was saved, in a new QEMU', async () => {
    const out = JSON.parse(await ok('--json', 'restore', saveFile)) as { domain: { name: string } };
    assert.equal(out.domain.name, 'vm1');
    assert.equal((await info('vm1')).state, 'running');
    assert.equal(qemuPidsByUuid(uuid).length, 1);
    assert.ok(!existsSync(join(sb.runtimeDir, 'state', 'saves', 'vm1.json')));
    await fails('VIRT_ERR_OPERATION_INVALID', 'restore', saveFile);
  });

  void it('a domain saved while paused comes back paused', async () => {
    await ok('suspend', 'vm1');
    const paused = join(sb.base, 'vm1-paused.save');
    await ok('save', 'vm1', paused);
    assert.equal((await info('vm1')).state, 'shutoff');
    await ok('restore', paused);
    assert.equal((await info('vm1')).state, 'paused');
    assert.equal(await qemuRunState(uuid), 'paused');
    await ok('resume', 'vm1');
  });

  void it('shutdown of a guest that ignores ACPI fails after the grace period unless forced', async () => {
    const pid = pidOf('vm1');
    const t0 = Date.now();
    await fails('VIRT_ERR_OPERATION_TIMEOUT', 'shutdown', 'vm1');
    assert.ok(Date.now() - t0 >= 2000, 'waited the 2 s grace period');
    assert.equal((await info('vm1')).state, 'running');
    assert.ok(alive(pid));
    await ok('shutdown', '--force', 'vm1');
    assert.equal((await info('vm1')).state, 'shutoff');
    assert.ok(!alive(pid));
  });

  void it('destroys it: its QEMU pid is gone; a second destroy is refused', async () => {
    await ok('start', 'vm1');
    const pid = pidOf('vm1');
    await ok('destroy', 'vm1');
    const i = await info('vm1');
    assert.equal(i.state, 'shutoff');
    assert.equal(i.stateReason, 'destroyed');
    assert.ok(!alive(pid));
    assert.deepEqual(qemuPidsByUuid(uuid), []);
    await fails('VIRT_ERR_OPERATION_INVALID', 'destroy', 'vm1');
    await fails('VIRT_ERR_OPERATION_INVALID', 'suspend', 'vm1');
  });

  void it('undefines it: gone from the list, and unknown afterwards', async () => {
    await ok('undefine', 'vm1');
    assert.deepEqual(JSON.parse(await ok('--json', 'list', '--all')), []);
    await fails('VIRT_ERR_NO_DOMAIN', 'dominfo', 'vm1');
    await fails('VIRT_ERR_NO_DOMAIN', 'start', 'vm1');
  });
});
