// Finding 4: QEMU ran as root with no sandbox, so anyone who could name a disk
// path, kernel.path or console.logFile was root-equivalent. Now QEMU runs
// under a seccomp sandbox (-sandbox on,obsolete=deny,elevateprivileges=deny,
// spawn=deny,resourcecontrol=deny), device nodes are always refused, and with
// qemu.image-dirs set every file a definition names must resolve inside them.
// With qemu-user set, QEMU runs as that user and its files are handed to it
// while the domain runs, then given back (libvirt's DAC driver).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qemuPidsByUuid } from '../qemud/helpers.ts';
import { D, fileDigest, problemCode, securityHost, tinyDomain, treeDigest, type SecurityHost } from './helpers.ts';
import { createUser, type TestUser } from './users.ts';

void describe('finding 4: QEMU is sandboxed and confined to the image directories', () => {
  let h: SecurityHost;
  let images: string;
  let outside: string;
  before(async () => {
    images = mkdtempSync(join(tmpdir(), 'virt-sec4-images-'));
    outside = mkdtempSync(join(tmpdir(), 'virt-sec4-outside-'));
    writeFileSync(join(images, 'disk.raw'), Buffer.alloc(1024 * 1024));
    writeFileSync(join(outside, 'shadow'), 'root:$6$secret-hash:19000:0:99999:7:::\n');
    h = await securityHost({ 'qemu.image-dirs': images });
  });
  after(async () => {
    await h?.close();
    rmSync(images, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  void it('files outside the image directories are refused in every slot (403, audited), nothing defined', async () => {
    const victim = join(outside, 'shadow');
    symlinkSync(victim, join(images, 'link-out.raw'));
    const before = treeDigest(h.stateDir);
    const victimBefore = fileDigest(victim);
    const attempts: [string, Record<string, unknown>][] = [
      ['disk', { disks: [{ path: victim, format: 'raw' }] }],
      ['link', { disks: [{ path: join(images, 'link-out.raw'), format: 'raw' }] }],
      ['kernel', { kernel: { path: victim } }],
      ['initrd', { kernel: { path: join(images, 'disk.raw'), initrd: victim } }],
      ['console', { console: { logFile: join(outside, 'cron-job') } }],
      ['device', { disks: [{ path: '/dev/zero', format: 'raw' }] }],
    ];
    for (const [what, extra] of attempts) {
      const r = await h.post(D, 'admin', tinyDomain(`sec4-${what}`, extra));
      assert.equal(r.status, 403, `${what}: ${r.text}`);
      assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_DENIED', what);
      const line = await h.auditOf(r);
      assert.deepEqual([line.action, line.target, line.code], ['define', `sec4-${what}`, 'VIRT_ERR_OPERATION_DENIED']);
      await assert.rejects(h.ro.lookupDomain(`sec4-${what}`), { code: 'VIRT_ERR_NO_DOMAIN' });
    }
    assert.deepEqual(treeDigest(h.stateDir), before);
    assert.equal(fileDigest(victim), victimBefore);
  });

  void it('a domain inside the image directory runs under the seccomp sandbox', async () => {
    const r = await h.post(D, 'admin', tinyDomain('sec4', { disks: [{ path: join(images, 'disk.raw'), format: 'raw' }] }));
    assert.equal(r.status, 201, r.text);
    const uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    assert.equal((await h.post(`${D}/sec4/start`, 'operator')).status, 200);
    const [pid] = qemuPidsByUuid(uuid);
    assert.ok(pid !== undefined);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Seccomp:\s+2$/m, 'seccomp filter mode');
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'latin1'), /on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny/);
    assert.equal((await h.post(`${D}/sec4/destroy`, 'admin')).status, 200);
  });

  void it('a disk swapped for a link to a device after the definition is refused at start; no QEMU starts', async () => {
    const disk = join(images, 'disk.raw');
    unlinkSync(disk);
    symlinkSync('/dev/zero', disk);
    const r = await h.post(`${D}/sec4/start`, 'operator');
    assert.equal(r.status, 403, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_DENIED');
    assert.equal(await h.state('sec4'), 'shutoff');
    assert.equal((await h.auditOf(r)).domain, 'sec4');
  });
});

void describe('finding 4: QEMU as an unprivileged qemu-user, its files handed over and given back', () => {
  let h: SecurityHost;
  let user: TestUser;
  let images: string;
  let disk: string;
  let uuid: string;
  before(async () => {
    user = createUser('vxs4q');
    images = mkdtempSync(join(tmpdir(), 'virt-sec4u-'));
    chmodSync(images, 0o711);
    disk = join(images, 'disk.raw');
    writeFileSync(disk, Buffer.alloc(1024 * 1024), { mode: 0o600 });
    h = await securityHost({ 'qemu.qemu-user': user.name, 'qemu.image-dirs': images });
    // The QEMU user must be able to reach its private directory under the runtime dir.
    chmodSync(h.sb.base, 0o711);
    chmodSync(h.sb.runtimeDir, 0o711);
  });
  after(async () => {
    await h?.close();
    rmSync(images, { recursive: true, force: true });
    user?.remove();
  });

  void it('QEMU runs as the qemu-user; the disk belongs to it only while the domain runs', async () => {
    // TCG: the throw-away user is not in the kvm group.
    const r = await h.post(D, 'admin', tinyDomain('sec4u', { accel: 'tcg', disks: [{ path: disk, format: 'raw' }] }));
    assert.equal(r.status, 201, r.text);
    uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    const start = await h.post(`${D}/sec4u/start`, 'operator');
    assert.equal(start.status, 200, start.text);
    const [pid] = qemuPidsByUuid(uuid);
    assert.ok(pid !== undefined);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}$`, 'm'));
    assert.match(status, /^Seccomp:\s+2$/m);
    assert.equal(statSync(disk).uid, user.uid, 'handed to the QEMU user while running');
    assert.equal(statSync(disk).mode & 0o777, 0o600, 'mode untouched');
  });

  void it('save and restore work as that user', async () => {
    assert.equal((await h.post(`${D}/sec4u/save`, 'operator', { file: 'sec4u.save' })).status, 200);
    assert.equal(statSync(disk).uid, 0, 'given back while saved');
    assert.equal(statSync(join(h.admin.saveDir, 'sec4u.save')).uid, 0, 'the image is virt-qemud\'s');
    const r = await h.post(`${D}/sec4u/restore`, 'operator', { file: 'sec4u.save' });
    assert.equal(r.status, 200, r.text);
    assert.equal(await h.state('sec4u'), 'running');
    assert.equal(statSync(disk).uid, user.uid);
  });

  void it('after destroy the disk is root\'s again', async () => {
    assert.equal((await h.post(`${D}/sec4u/destroy`, 'admin')).status, 200);
    assert.equal(statSync(disk).uid, 0);
    assert.equal(statSync(disk).gid, 0);
  });
});
