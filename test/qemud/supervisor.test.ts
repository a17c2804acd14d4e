// virt-qemud against real qemu-system-x86_64: its sockets and protocol
// limits, restart safety, QEMUs dying behind its back, broken QMP peers, and
// SIGKILL in the middle of define/start.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { validateDefinition } from '../../src/qemud/definition.ts';
import { readProcStat } from '../../src/qemud/proc.ts';
import { encodeFrame } from '../../src/qemud-shared/protocol.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { alive, daemonPid, killDaemon, killPid, qemuPidsByUuid, RawConn, rawFrame, requireBinaries, sandbox, startDaemon, waitFor, type Sandbox } from './helpers.ts';

const ALL = ['state', 'cpu', 'vcpu', 'memory', 'block', 'net'] as const;

function domain(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, memoryMiB: 64, vcpus: 1, ...extra };
}

async function openSession(sb: Sandbox, readOnly: boolean, settings: Record<string, string | number> = {}): Promise<Connection> {
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  return open('qemu:///session', { readOnly, settings });
}

function recordedPid(sb: Sandbox, name: string): number {
  const rec = JSON.parse(readFileSync(join(sb.runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number };
  return rec.pid;
}

before(() => requireBinaries('qemu-system-x86_64', 'qemu-img'));

void describe('the two sockets and the framed protocol', () => {
  let sb: Sandbox;
  let daemon: ChildProcess;
  before(async () => {
    sb = sandbox();
    daemon = await startDaemon(sb, ['--max-frame-bytes', '65536']);
  });
  after(async () => {
    await sb.cleanup();
  });

  void it('creates the read-write socket 0600 and the read-only socket 0666', () => {
    assert.equal(statSync(sb.rwSocket).mode & 0o777, 0o600);
    assert.equal(statSync(sb.roSocket).mode & 0o777, 0o666);
  });

  void it('refuses a write on the read-only socket with VIRT_ERR_OPERATION_DENIED and keeps serving it', async () => {
    const c = await RawConn.connect(sb.roSocket);
    c.write(encodeFrame({ v: 1, id: 1, op: 'define', args: [domain('denied')] }));
    const r = await c.next();
    assert.equal(r['id'], 1);
    assert.equal((r['error'] as { code: string }).code, 'VIRT_ERR_OPERATION_DENIED');
    for (const op of ['start', 'destroy', 'undefine', 'save', 'restore', 'shutdown']) {
      c.write(encodeFrame({ v: 1, id: op, op, args: ['x'] }));
      assert.equal(((await c.next())['error'] as { code: string }).code, 'VIRT_ERR_OPERATION_DENIED', op);
    }
    c.write(encodeFrame({ v: 1, id: 2, op: 'listDomains', args: [] }));
    assert.deepEqual((await c.next())['result'], []);
    c.close();
    assert.ok(!existsSync(join(sb.runtimeDir, 'state', 'domains', 'denied.json')));
  });

  void it('answers a malformed frame with a clear error and goes on serving the same connection', async () => {
    const c = await RawConn.connect(sb.rwSocket);
    c.write(rawFrame('{"v":1,"id":'));
    const r = await c.next();
    assert.equal((r['error'] as { code: string }).code, 'VIRT_ERR_RPC');
    assert.match((r['error'] as { message: string }).message, /malformed frame/);
    c.write(encodeFrame({ v: 2, id: 5, op: 'ping', args: [] }));
    const v2 = await c.next();
    assert.equal((v2['error'] as { code: string }).code, 'VIRT_ERR_RPC');
    assert.match((v2['error'] as { message: string }).message, /protocol version/);
    c.write(encodeFrame({ v: 1, id: 6, op: 'noSuchOp', args: [] }));
    assert.equal(((await c.next())['error'] as { code: string }).code, 'VIRT_ERR_NO_SUPPORT');
    c.write(encodeFrame({ v: 1, id: 7, op: 'ping', args: [] }));
    const ok = await c.next();
    assert.equal(ok['id'], 7);
    assert.equal((ok['result'] as { protocol: number }).protocol, 1);
    c.close();
  });

  void it('closes only the connection that sent an oversized frame', async () => {
    const bystander = await RawConn.connect(sb.roSocket);
    const c = await RawConn.connect(sb.rwSocket);
    c.write(rawFrame('x'.repeat(100), 65537));
    const r = await c.next();
    assert.equal((r['error'] as { code: string }).code, 'VIRT_ERR_RPC');
    assert.match((r['error'] as { message: string }).message, /exceeds the limit/);
    await waitFor(() => c.closed, 5000, 'the oversized connection to close');
    bystander.write(encodeFrame({ v: 1, id: 1, op: 'ping', args: [] }));
    assert.equal((await bystander.next())['id'], 1);
    const fresh = await RawConn.connect(sb.rwSocket);
    fresh.write(encodeFrame({ v: 1, id: 9, op: 'version', args: [] }));
    assert.match(String((await fresh.next())['result']), /^\d+\.\d+\.\d+$/);
    fresh.close();
    bystander.close();
    assert.equal(daemon.exitCode, null, 'virt-qemud must still run');
  });

  void it('with a configured group the read-only socket is 0660 owned by that group', async () => {
    const other = sandbox();
    try {
      await startDaemon(other, ['--ro-socket-group', 'root']);
      // The mode is set right after the socket appears; on a busy machine that may be a moment later.
      await waitFor(() => (statSync(other.roSocket).mode & 0o777) === 0o660, 5000, 'the read-only socket mode');
      const st = statSync(other.roSocket);
      assert.equal(st.mode & 0o777, 0o660);
      assert.equal(st.gid, 0);
      assert.equal(statSync(other.rwSocket).mode & 0o777, 0o600);
    } finally {
      await other.cleanup();
    }
  });

  void it('a definition with an unknown key is refused naming the key, and nothing is stored', async () => {
    const c = await RawConn.connect(sb.rwSocket);
    c.write(encodeFrame({ v: 1, id: 1, op: 'define', args: [{ ...domain('typo'), memroyMiB: 64 }] }));
    const e = (await c.next())['error'] as { code: string; message: string };
    assert.equal(e.code, 'VIRT_ERR_XML_ERROR');
    assert.match(e.message, /memroyMiB/);
    c.write(encodeFrame({ v: 1, id: 2, op: 'domainInfo', args: ['typo'] }));
    assert.equal(((await c.next())['error'] as { code: string }).code, 'VIRT_ERR_NO_DOMAIN');
    c.close();
  });
});

void describe('restart safety and QEMUs that die', () => {
  let sb: Sandbox;
  let conn: Connection;
  let disk: string;
  before(async () => {
    sb = sandbox();
    disk = join(sb.base, 'd2.qcow2');
    const r = spawnSync('qemu-img', ['create', '-f', 'qcow2', disk, '16M'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // No supervisor runs: opening the driver starts one in the background.
    conn = await openSession(sb, false);
  });
  after(async () => {
    await conn.close();
    await sb.cleanup();
  });

  void it('the driver started virt-qemud in the background', () => {
    const pid = daemonPid(sb.runtimeDir);
    assert.ok(pid !== undefined && alive(pid));
  });

  void it('after SIGKILL of virt-qemud and a restart, the same domains run with the same pids and are read again', async () => {
    await conn.define(domain('r1', { vcpus: 2 }));
    await conn.define(domain('r2', { disks: [{ path: disk, format: 'qcow2' }], nics: [{ type: 'user' }] }));
    await conn.start('r1');
    await conn.start('r2');
    await conn.suspend('r2');
    const pids = { r1: recordedPid(sb, 'r1'), r2: recordedPid(sb, 'r2') };
    const uuid1 = (await conn.lookupDomain('r1')).uuid;
    assert.deepEqual(qemuPidsByUuid(uuid1), [pids.r1]);

    const old = killDaemon(sb.runtimeDir);
    assert.ok(old !== undefined);
    await waitFor(() => !alive(old), 5000, 'virt-qemud to die');
    assert.ok(alive(pids.r1) && alive(pids.r2), 'QEMU processes outlive virt-qemud');

    // The next call reconnects, which starts a new supervisor that re-attaches.
    const list = await conn.listDomains({ active: true, inactive: false });
    assert.deepEqual(list.map((d) => d.name), ['r1', 'r2']);
    const fresh = daemonPid(sb.runtimeDir);
    assert.ok(fresh !== undefined && fresh !== old);
    const i1 = await conn.domainInfo('r1');
    const i2 = await conn.domainInfo('r2');
    assert.equal(i1.state, 'running');
    assert.equal(i2.state, 'paused', 'the paused state is read back from QEMU');
    assert.equal(recordedPid(sb, 'r1'), pids.r1);
    assert.equal(recordedPid(sb, 'r2'), pids.r2);
    assert.deepEqual(qemuPidsByUuid(uuid1), [pids.r1]);

    const ro = await openSession(sb, true);
    const stats = await ro.allDomainStats({ groups: ALL });
    await ro.close();
    assert.deepEqual(stats.errors, []);
    assert.deepEqual(stats.domains.map((d) => d.info.name), ['r1', 'r2']);
    const r2 = stats.domains[1];
    assert.equal(r2?.block?.[0]?.device, 'vda');
    assert.equal(r2?.net?.[0]?.counters, null, 'a user-mode NIC has no counters');
    assert.equal(stats.domains[0]?.vcpus?.length, 2);
    assert.equal(stats.domains[0]?.memory?.maximumBytes, 64 * 1024 * 1024);
    assert.ok((stats.domains[0]?.memory?.rssBytes ?? 0) > 0);
  });

  void it('a QEMU killed from outside is reported shut off (crashed) on the next read, never running', async () => {
    const pid = recordedPid(sb, 'r1');
    killPid(pid);
    await waitFor(() => !alive(pid), 5000, 'QEMU to die');
    const info = await conn.domainInfo('r1');
    assert.equal(info.state, 'shutoff');
    assert.equal(info.stateReason, 'crashed');
    assert.equal(info.id, null);
    const stats = await conn.allDomainStats({ groups: ALL });
    assert.ok(!stats.domains.some((d) => d.info.name === 'r1'));
    const withInactive = await conn.allDomainStats({ groups: ALL, inactive: true });
    assert.equal(withInactive.domains.find((d) => d.info.name === 'r1')?.info.state, 'shutoff');
    // It can be started again.
    await conn.start('r1');
    assert.equal((await conn.domainInfo('r1')).state, 'running');
  });

  void it('a QEMU that died while virt-qemud was down is reported shut off after the restart', async () => {
    const old = killDaemon(sb.runtimeDir);
    assert.ok(old !== undefined);
    await waitFor(() => !alive(old), 5000, 'virt-qemud to die');
    const pid = recordedPid(sb, 'r1');
    killPid(pid);
    await waitFor(() => !alive(pid), 5000, 'QEMU to die');
    const info = await conn.domainInfo('r1');
    assert.equal(info.state, 'shutoff');
    assert.equal((await conn.domainInfo('r2')).state, 'paused');
  });
});

void describe('broken QMP peers fail alone', () => {
  let sb: Sandbox;
  const servers: Server[] = [];
  const sleepers: ChildProcess[] = [];
  before(async () => {
    sb = sandbox();
    await startDaemon(sb, ['--qmp-timeout-ms', '500']);
  });
  after(async () => {
    for (const s of servers) s.close();
    for (const c of sleepers) c.kill('SIGKILL');
    await sb.cleanup();
  });

  void it('a peer that never answers and one that sends garbage fail within the deadline; the others are reported', async () => {
    const conn = await openSession(sb, false);
    await conn.define(domain('good'));
    const hang = await conn.define(domain('hang'));
    const garbage = await conn.define(domain('garbage'));
    await conn.start('good');
    await conn.close();
    const old = killDaemon(sb.runtimeDir) ?? 0;
    await waitFor(() => !alive(old), 5000, 'virt-qemud to die');

    // Fake "QEMUs": a live process (for the pid) and a QMP socket that misbehaves.
    for (const [ref, behaviour] of [
      [hang, 'hang'],
      [garbage, 'garbage'],
    ] as const) {
      const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
      sleepers.push(sleeper);
      const pid = sleeper.pid as number;
      await waitFor(() => readProcStat(pid) !== null, 2000, 'sleep to start');
      const qmpSocket = join(sb.base, `${behaviour}.sock`);
      const srv = createServer((s) => {
        s.on('error', () => undefined);
        if (behaviour === 'garbage') s.write('\u0000garbage, not QMP at all }{\r\n');
      });
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(qmpSocket, r));
      const rec = {
        name: ref.name,
        uuid: ref.uuid,
        id: behaviour === 'hang' ? 100 : 101,
        phase: 'running',
        pid,
        pidStartTime: readProcStat(pid)?.startTime,
        pidFile: join(sb.base, `${behaviour}.pid`),
        qmpSocket,
        consoleLog: join(sb.base, `${behaviour}.log`),
        accel: 'kvm',
        startedAt: new Date().toISOString(),
      };
      writeFileSync(join(sb.runtimeDir, 'run', `${ref.name}.json`), JSON.stringify(rec));
    }
    await startDaemon(sb, ['--qmp-timeout-ms', '500']);
    const ro = await openSession(sb, true);
    for (let round = 0; round < 2; round++) {
      const t0 = Date.now();
      const stats = await ro.allDomainStats({ groups: ALL });
      const took = Date.now() - t0;
      assert.ok(took < 5000, `the bulk read must finish within the 5 s deadline, took ${took} ms`);
      assert.deepEqual(stats.domains.map((d) => d.info.name), ['good']);
      assert.equal(stats.domains[0]?.info.state, 'running');
      const byDomain = new Map(stats.errors.map((e) => [e.domain, e.code]));
      assert.equal(byDomain.get('hang'), 'VIRT_ERR_OPERATION_TIMEOUT');
      assert.equal(byDomain.get('garbage'), 'VIRT_ERR_RPC');
    }
    await assert.rejects(ro.domainInfo('hang'), { code: 'VIRT_ERR_OPERATION_TIMEOUT' });
    assert.equal((await ro.domainInfo('good')).state, 'running');
    // An aborted read returns at once.
    const ac = new AbortController();
    const p = ro.allDomainStats({ groups: ALL, signal: ac.signal });
    ac.abort();
    await assert.rejects(p, { code: 'VIRT_ERR_OPERATION_TIMEOUT' });
    await ro.close();
  });
});

void describe('SIGKILL in the middle of define and start', () => {
  let sb: Sandbox;
  before(() => {
    sb = sandbox();
  });
  after(async () => {
    await sb.cleanup();
  });

  void it('a start interrupted after its QEMU was spawned leaves no QEMU behind after the restart', async () => {
    // A slow emulator wrapper holds the start open long enough to kill virt-qemud inside it.
    const slow = join(sb.base, 'qemu-system-slow');
    writeFileSync(slow, '#!/bin/sh\nsleep 1\nexec qemu-system-x86_64 "$@"\n', { mode: 0o755 });
    const daemon = await startDaemon(sb, ['--emulator', slow]);
    const c = await RawConn.connect(sb.rwSocket);
    c.write(encodeFrame({ v: 1, id: 1, op: 'define', args: [domain('interrupted')] }));
    const ref = (await c.next())['result'] as { uuid: string };
    c.write(encodeFrame({ v: 1, id: 2, op: 'start', args: ['interrupted'] }));
    await waitFor(() => qemuPidsByUuid(ref.uuid).length > 0, 10_000, 'the emulator to be spawned');
    assert.match(readFileSync(join(sb.runtimeDir, 'run', 'interrupted.json'), 'utf8'), /"phase":"starting"/);
    daemon.kill('SIGKILL');
    await waitFor(() => daemon.exitCode !== null || daemon.signalCode !== null, 5000, 'virt-qemud to die');
    c.close();
    // Orphaned, the QEMU finishes starting on its own.
    await waitFor(() => qemuPidsByUuid(ref.uuid).some((p) => readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('qemu-system-x86_64')), 10_000, 'the orphan QEMU to run');
    const again = await startDaemon(sb);
    const conn = await openSession(sb, false);
    const info = await conn.domainInfo('interrupted');
    assert.equal(info.state, 'shutoff');
    await waitFor(() => qemuPidsByUuid(ref.uuid).length === 0, 5000, 'no QEMU left for the interrupted start');
    await conn.start('interrupted');
    assert.equal((await conn.domainInfo('interrupted')).state, 'running');
    assert.deepEqual(qemuPidsByUuid(ref.uuid), [recordedPid(sb, 'interrupted')]);
    await conn.destroy('interrupted');
    await conn.undefine('interrupted');
    await conn.close();
    again.kill('SIGKILL');
    await waitFor(() => again.exitCode !== null || again.signalCode !== null, 5000, 'virt-qemud to die');
  });

  void it('never leaves a half-written definition nor an unknown QEMU', async () => {
    const domainsDir = join(sb.runtimeDir, 'state', 'domains');
    for (let round = 0; round < 6; round++) {
      const daemon = await startDaemon(sb);
      const c = await RawConn.connect(sb.rwSocket);
      // A large definition makes each write take a while.
      const names = Array.from({ length: 20 }, (_, i) => `k${round}-${i}`);
      for (const n of names) c.write(encodeFrame({ v: 1, id: n, op: 'define', args: [domain(n, { kernel: { path: '/nonexistent/vmlinuz', cmdline: 'x'.repeat(3000) } })] }));
      if (round > 0) {
        const s = `s${round}`;
        c.write(encodeFrame({ v: 1, id: 'd', op: 'define', args: [domain(s)] }));
        c.write(encodeFrame({ v: 1, id: 's', op: 'start', args: [s] }));
      }
      await new Promise((r) => setTimeout(r, 5 + round * 12));
      // The last round lets at least one define through, however busy the machine.
      if (round === 5) await c.next();
      daemon.kill('SIGKILL');
      await waitFor(() => daemon.exitCode !== null || daemon.signalCode !== null, 5000, 'virt-qemud to die');
      c.close();
      for (const f of readdirSync(domainsDir)) {
        if (f.startsWith('.tmp-')) continue; // an unfinished write, never read
        const def = validateDefinition(JSON.parse(readFileSync(join(domainsDir, f), 'utf8')) as unknown);
        assert.equal(`${def.name}.json`, f);
      }
    }
    const daemon = await startDaemon(sb);
    assert.deepEqual(
      readdirSync(domainsDir).filter((f) => f.startsWith('.tmp-')),
      [],
      'stray temp files are removed at startup',
    );
    const conn = await openSession(sb, false);
    const all = await conn.listDomains();
    assert.ok(all.length > 0);
    for (const ref of all) {
      const info = await conn.domainInfo(ref.name);
      const pids = qemuPidsByUuid(ref.uuid);
      if (info.state === 'shutoff') assert.deepEqual(pids, [], `${ref.name} is shut off but a QEMU runs for it`);
      else assert.deepEqual(pids, [recordedPid(sb, ref.name)], `${ref.name} runs with a known pid`);
      if (info.state !== 'shutoff') await conn.destroy(ref.name);
    }
    await conn.close();
    daemon.kill('SIGTERM');
  });
});
