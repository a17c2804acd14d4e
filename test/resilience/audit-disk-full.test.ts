// The admin audit log's disk full (a real tmpfs mounted by the test): state-changing admin requests fail closed. The intent line is written
// and fsynced before the driver is called; when it cannot be, the request is
// refused (503 VIRT_ERR_AUDIT_FAILED) and nothing changes; no partial line is
// left in the log. Reads still answer. Once there is room again, the same
// requests go through with an intent line before their outcome line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '../../src/virt/connection.ts';
import { open } from '../../src/virt/connection.ts';
import { adminPost, call, domainState, startAdmin, tempDir, TOKENS, type AdminFixture, type Reply } from '../http/admin/fixtures.ts';
import { requireBinaries, sandbox, startDaemon, type Sandbox } from '../qemud/helpers.ts';

const D = '/api/v1/domains';

let sb: Sandbox;
let rw: Connection;
let admin: AdminFixture;
let adminDir: { dir: string; cleanup: () => Promise<void> };
let mnt: string;
let auditFile: string;
let mounted = false;
/** For each driver call the admin endpoint made: the audit log's lines at that moment. */
const atCall: { op: string; lines: Record<string, unknown>[] }[] = [];

function mount(...args: string[]): void {
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount ${args.join(' ')}: ${r.stderr}`);
}

/** Every line of the audit log; a partial or corrupt line fails the test. */
function lines(): Record<string, unknown>[] {
  const text = readFileSync(auditFile, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the audit log ends in the middle of a line');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

const post = (path: string, body?: unknown): Promise<Reply> => adminPost(admin.url, path, body);
const state = (name: string): Promise<string> => domainState(rw, name);

const WRITES: { label: string; send: () => Promise<Reply>; unchanged: () => Promise<void> }[] = [
  { label: 'define', send: () => post(D, { name: 'a-new', memoryMiB: 64, vcpus: 1 }), unchanged: async () => assert.equal(await state('a-new'), 'undefined') },
  { label: 'start', send: () => post(`${D}/a-off/start`), unchanged: async () => assert.equal(await state('a-off'), 'shutoff') },
  { label: 'undefine', send: () => call(`${admin.url}${D}/a-off`, { method: 'DELETE', token: TOKENS.admin }), unchanged: async () => assert.equal(await state('a-off'), 'shutoff') },
  { label: 'suspend', send: () => post(`${D}/a-run/suspend`), unchanged: async () => assert.equal(await state('a-run'), 'running') },
  { label: 'destroy', send: () => post(`${D}/a-run/destroy`), unchanged: async () => assert.equal(await state('a-run'), 'running') },
];

async function refusedClosed(what: string): Promise<void> {
  const sizeBefore = statSync(auditFile).size;
  const defsBefore = JSON.stringify((await rw.listDomains()).map((d) => d.name).sort());
  const callsBefore = atCall.length;
  for (const w of WRITES) {
    const r = await w.send();
    assert.equal(r.status, 503, `${what}, ${w.label}: ${r.text}`);
    assert.equal((r.json as { code?: string }).code, 'VIRT_ERR_AUDIT_FAILED', `${what}, ${w.label}`);
    assert.match((r.json as { detail?: string }).detail ?? '', /nothing was changed/);
    await w.unchanged();
  }
  assert.deepEqual(atCall.slice(callsBefore).map((c) => c.op).filter((op) => !['lookupDomain', 'domainInfo'].includes(op)), [], `${what}: the driver was never asked to change anything`);
  assert.equal(JSON.stringify((await rw.listDomains()).map((d) => d.name).sort()), defsBefore);
  assert.equal(statSync(auditFile).size, sizeBefore, `${what}: no partial line was left`);
  lines();
  // Reads are not refused (their lines are lost while the disk is full; they change nothing).
  const list = await call(admin.url + D, { token: TOKENS.viewer });
  assert.equal(list.status, 200);
}

before(async () => {
  requireBinaries('qemu-system-x86_64', 'mount', 'umount');
  if (process.getuid?.() !== 0) throw new Error('this test mounts a tmpfs and must run as root (as .ci/run does)');
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  await startDaemon(sb);
  rw = await open('qemu:///session', { readOnly: false, settings: { 'qemu.autostart': false } });
  adminDir = await tempDir('virt-audit-full-');
  mnt = join(adminDir.dir, 'audit');
  mkdirSync(mnt);
  mount('-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'virt-test-audit', mnt);
  mounted = true;
  auditFile = join(mnt, 'audit.jsonl');
  const real = rw;
  const recording = new Proxy(real, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        atCall.push({ op: String(prop), lines: lines() });
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  admin = await startAdmin({ connection: recording, dir: adminDir.dir, extra: { audit_log: auditFile } });
  await rw.define({ name: 'a-off', memoryMiB: 64, vcpus: 1 });
  await rw.define({ name: 'a-run', memoryMiB: 64, vcpus: 1, balloon: { enabled: false } });
  await rw.start('a-run');
});

after(async () => {
  await admin?.close();
  await rw?.close();
  await sb?.cleanup();
  if (mounted) spawnSync('umount', ['-l', mnt]);
  await adminDir?.cleanup();
});

void describe('the audit log\'s disk in trouble', { timeout: 60_000 }, () => {
  void it('with room: the intent line is on disk before the driver is called, the outcome line after', async () => {
    const r = await post(`${D}/a-run/suspend`);
    assert.equal(r.status, 200, r.text);
    const id = r.headers['x-request-id'];
    const mine = lines().filter((l) => l.request_id === id);
    assert.deepEqual(mine.map((l) => [l.phase, l.outcome, l.status]), [['intent', 'pending', null], ['done', 'ok', 200]]);
    assert.deepEqual([mine[0]?.action, mine[0]?.target, mine[0]?.domain], ['suspend', 'a-run', 'a-run']);
    const c = atCall.find((x) => x.op === 'suspend');
    assert.ok(c !== undefined);
    assert.deepEqual(c.lines.filter((l) => l.request_id === id).map((l) => l.phase), ['intent'], 'when the driver was called, the intent line (only) was there');
    assert.equal((await post(`${D}/a-run/resume`)).status, 200);
  });

  void it('full: every state-changing request is refused (503 VIRT_ERR_AUDIT_FAILED) and nothing changes', async () => {
    // Fill what is left of the filesystem.
    const filler = join(mnt, 'filler');
    const chunk = Buffer.alloc(512, 1);
    let full = false;
    for (let i = 0; i < 1000 && !full; i++) {
      try {
        writeFileSync(filler, chunk, { flag: 'a' });
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        full = true;
      }
    }
    assert.ok(full, 'the tmpfs did not fill up');
    // The audit log's last page may still have room for a few lines: requests go through until it is used up,
    // each with its intent line on disk (its outcome line may no longer fit).
    let slack = 0;
    for (;;) {
      const r = await post(D, { name: `slack-${slack}`, memoryMiB: 64, vcpus: 1 });
      if (r.status === 503) break;
      assert.equal(r.status, 201, r.text);
      assert.ok(lines().some((l) => l.request_id === r.headers['x-request-id'] && l.phase === 'intent'), 'a change made without its intent line');
      slack++;
      assert.ok(slack < 100, 'the audit log never filled up');
    }
    process.stdout.write(`# ${slack} defines fitted in the audit log's last page\n`);
    await refusedClosed('disk full');
    const counter = await admin.registry.getSingleMetricAsString('virt_admin_requests_total');
    assert.match(counter, /virt_admin_requests_total\{action="define",outcome="error"\} [1-9]/);
    rmSync(filler);
  });

  void it('with room again: the requests go through, each with its intent line first', async () => {
    const r = await post(`${D}/a-run/suspend`);
    assert.equal(r.status, 200, r.text);
    assert.equal(await state('a-run'), 'paused');
    const d = await post(D, { name: 'a-new', memoryMiB: 64, vcpus: 1 });
    assert.equal(d.status, 201, d.text);
    const all = lines();
    for (const id of [r.headers['x-request-id'], d.headers['x-request-id']]) {
      assert.deepEqual(all.filter((l) => l.request_id === id).map((l) => l.phase), ['intent', 'done']);
    }
  });
});
