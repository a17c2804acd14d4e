// Finding 4: QEMU ran as root with no sandbox, so anyone who could name a disk
// path, kernel.path or console.logFile was root-equivalent. Now QEMU runs
// under a seccomp sandbox (-sandbox on,obsolete=deny,elevateprivileges=deny,
// spawn=deny,resourcecontrol=deny), device nodes are always refused, and with
// qemu.image-dirs set every file a definition names must resolve inside them.
// QEMU runs as that user and its files are handed to it while the domain
// runs, then given back (libvirt's DAC driver). Both are the defaults: a
// system virt-qemud runs QEMU as virt-qemu (our Debian package's user) or
// libvirt-qemu, and confines definitions to /var/lib/virt-exporter/images
// (a session to RUNTIME-DIR/images), with nothing configured.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chooseQemuUser, DEFAULT_QEMU_USERS, lookupUser, type QemuUser } from '../../src/qemud/dac.ts';
import { SYSTEM_IMAGE_DIR } from '../../src/qemud/images.ts';
import type { LogFields, Logger } from '../../src/util/logger.ts';
import { qemuPidsByUuid } from '../qemud/helpers.ts';
import { D, fileDigest, problemCode, securityHost, tinyDomain, treeDigest, type SecurityHost } from './helpers.ts';
import { createUser, type TestUser } from './users.ts';

function recordingLogger(): { logger: Logger; lines: { level: string; msg: string; fields: LogFields | undefined }[] } {
  const lines: { level: string; msg: string; fields: LogFields | undefined }[] = [];
  const logger: Logger = {
    debug: (msg, fields) => lines.push({ level: 'debug', msg, fields }),
    info: (msg, fields) => lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields }),
    error: (msg, fields) => lines.push({ level: 'error', msg, fields }),
    child: () => logger,
    isLevelEnabled: () => true,
  };
  return { logger, lines };
}

/** Runs `fn` with VIRT_EXPORTER_QEMU_IMAGE_DIRS empty, so the virt-qemuds started meanwhile take their default. */
function withDefaultImageDirs(): () => void {
  const previous = process.env['VIRT_EXPORTER_QEMU_IMAGE_DIRS'];
  process.env['VIRT_EXPORTER_QEMU_IMAGE_DIRS'] = '';
  return () => {
    if (previous === undefined) delete process.env['VIRT_EXPORTER_QEMU_IMAGE_DIRS'];
    else process.env['VIRT_EXPORTER_QEMU_IMAGE_DIRS'] = previous;
  };
}

void describe('finding 4, defaults: which user QEMU runs as when --qemu-user is not given', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'virt-sec4p-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const passwd = (names: string[]): string => {
    const f = join(dir, `passwd-${names.join('-') || 'none'}`);
    writeFileSync(f, ['root:x:0:0:root:/root:/bin/bash', ...names.map((n, i) => `${n}:x:${900 + i}:${800 + i}::/nonexistent:/usr/sbin/nologin`), ''].join('\n'));
    return f;
  };

  void it('qemu:///system: virt-qemu first, then libvirt-qemu', () => {
    assert.deepEqual(DEFAULT_QEMU_USERS, ['virt-qemu', 'libvirt-qemu']);
    const { logger, lines } = recordingLogger();
    assert.equal(chooseQemuUser('system', '', logger, passwd(['libvirt-qemu', 'virt-qemu']))?.name, 'virt-qemu');
    assert.equal(chooseQemuUser('system', undefined, logger, passwd(['libvirt-qemu']))?.name, 'libvirt-qemu');
    assert.deepEqual(lines.map((l) => [l.level, l.fields?.['source']]), [['info', 'default'], ['info', 'default']]);
  });

  void it('qemu:///system with neither: root, and a warning that says so and what to do', () => {
    const { logger, lines } = recordingLogger();
    assert.equal(chooseQemuUser('system', '', logger, passwd([])), undefined);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.level, 'warn');
    assert.match(lines[0]?.msg ?? '', /QEMU runs as root.*virt-qemu, libvirt-qemu.*--qemu-user/);
  });

  void it('--qemu-user wins; naming root keeps QEMU as root without the warning; an unknown user is a configuration error', () => {
    const { logger, lines } = recordingLogger();
    const f = passwd(['virt-qemu', 'other']);
    assert.equal(chooseQemuUser('system', 'other', logger, f)?.name, 'other');
    assert.equal(chooseQemuUser('system', 'root', logger, f), undefined);
    assert.ok(lines.every((l) => l.level === 'info'));
    assert.throws(() => chooseQemuUser('system', 'nobody-here', logger, f), { code: 'VIRT_ERR_CONFIG' });
  });

  void it('qemu:///session: the session\'s own user', () => {
    const { logger } = recordingLogger();
    assert.equal(chooseQemuUser('session', '', logger, passwd(['virt-qemu'])), undefined);
  });
});

void describe('finding 4, defaults: a system virt-qemud with nothing configured', () => {
  let h: SecurityHost;
  let restoreEnv: () => void;
  let user: QemuUser;
  let created: TestUser | undefined;
  let outside: string;
  before(async () => {
    // The default user is the first of virt-qemu, libvirt-qemu that exists; without either, the test makes virt-qemu.
    const existing = DEFAULT_QEMU_USERS.map((n) => lookupUser(n)).find((u) => u !== undefined);
    if (existing === undefined) {
      const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', 'virt-qemu'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `useradd virt-qemu: ${r.stderr}`);
      created = {
        name: 'virt-qemu',
        uid: lookupUser('virt-qemu')?.uid ?? -1,
        gid: lookupUser('virt-qemu')?.gid ?? -1,
        remove: () => {
          spawnSync('userdel', ['virt-qemu']);
          spawnSync('groupdel', ['virt-qemu']);
        },
      };
    }
    const u = DEFAULT_QEMU_USERS.map((n) => lookupUser(n)).find((x) => x !== undefined);
    assert.ok(u !== undefined);
    user = u;
    outside = mkdtempSync(join(tmpdir(), 'virt-sec4d-outside-'));
    writeFileSync(join(outside, 'secret'), 'not for guests\n');
    restoreEnv = withDefaultImageDirs();
    h = await securityHost({}, 'qemu:///system');
    // The QEMU user reaches its private directory under the runtime dir (as /run/virt-exporter/qemu is).
    chmodSync(h.sb.base, 0o711);
  });
  after(async () => {
    await h?.close();
    restoreEnv?.();
    created?.remove();
    rmSync(outside, { recursive: true, force: true });
  });

  void it('an admin naming /etc/shadow, a file outside the image directory or a device node is refused (403, audited); nothing changes', async () => {
    // The daemon said what it chose.
    const log = h.daemonLog();
    assert.match(log, new RegExp(`QEMU runs as an unprivileged user.*${user.name}`));
    assert.match(log, new RegExp(`image director.*${SYSTEM_IMAGE_DIR.replaceAll('/', '\\/')}`));
    const stateBefore = treeDigest(h.stateDir);
    const shadowBefore = fileDigest('/etc/shadow');
    const secretBefore = fileDigest(join(outside, 'secret'));
    const attempts: [string, Record<string, unknown>][] = [
      ['shadow-disk', { disks: [{ path: '/etc/shadow', format: 'raw' }] }],
      ['shadow-kernel', { kernel: { path: '/etc/shadow' } }],
      ['outside-disk', { disks: [{ path: join(outside, 'secret'), format: 'raw' }] }],
      ['outside-initrd', { kernel: { path: join(SYSTEM_IMAGE_DIR, 'vmlinuz'), initrd: join(outside, 'secret') } }],
      ['cron-console', { console: { logFile: '/etc/cron.d/virt-sec4d' } }],
      ['dev-zero', { disks: [{ path: '/dev/zero', format: 'raw' }] }],
      ['dev-null-kernel', { kernel: { path: '/dev/null' } }],
    ];
    for (const [what, extra] of attempts) {
      const name = `sec4d-${what}`;
      const r = await h.post(D, 'admin', tinyDomain(name, extra));
      assert.equal(r.status, 403, `${what}: ${r.text}`);
      assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_DENIED', what);
      const line = await h.auditOf(r);
      assert.deepEqual([line.action, line.target, line.outcome, line.code], ['define', name, 'forbidden', 'VIRT_ERR_OPERATION_DENIED'], what);
      await assert.rejects(h.ro.lookupDomain(name), { code: 'VIRT_ERR_NO_DOMAIN' });
    }
    assert.deepEqual(treeDigest(h.stateDir), stateBefore, 'no definition written');
    assert.equal(fileDigest('/etc/shadow'), shadowBefore);
    assert.equal(fileDigest(join(outside, 'secret')), secretBefore);
    assert.equal(existsSync('/etc/cron.d/virt-sec4d'), false);
  });

  void it(`QEMU runs as the unprivileged default user, sandboxed; its console log is handed back when it stops`, async () => {
    // TCG: the default user need not be in the kvm group on a test machine.
    const r = await h.post(D, 'admin', tinyDomain('sec4d', { accel: 'tcg' }));
    assert.equal(r.status, 201, r.text);
    const uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    const start = await h.post(`${D}/sec4d/start`, 'operator');
    assert.equal(start.status, 200, start.text);
    const [pid] = qemuPidsByUuid(uuid);
    assert.ok(pid !== undefined);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}$`, 'm'), 'QEMU runs as the default QEMU user');
    assert.match(status, new RegExp(`^Gid:\\s+${user.gid}\\s+${user.gid}\\s+${user.gid}\\s+${user.gid}$`, 'm'));
    assert.match(status, /^Seccomp:\s+2$/m);
    const consoleLog = join(h.sb.runtimeDir, 'log', 'sec4d.console.log');
    assert.equal(statSync(consoleLog).uid, user.uid, 'the console log is the QEMU user\'s while it runs');
    assert.equal((await h.post(`${D}/sec4d/destroy`, 'admin')).status, 200);
    assert.equal(statSync(consoleLog).uid, 0, 'and root\'s again after');
  });
});

void describe('finding 4, defaults: a session virt-qemud with nothing configured', () => {
  let h: SecurityHost;
  let restoreEnv: () => void;
  before(async () => {
    restoreEnv = withDefaultImageDirs();
    h = await securityHost();
  });
  after(async () => {
    await h?.close();
    restoreEnv?.();
  });

  void it('accepts files in RUNTIME-DIR/images only', async () => {
    const images = join(h.sb.runtimeDir, 'images');
    // The admin endpoint's first request started virt-qemud, which made its image directory.
    assert.equal((await h.get(D, 'viewer')).status, 200);
    assert.equal(statSync(images).mode & 0o777, 0o700);
    writeFileSync(join(images, 'disk.raw'), Buffer.alloc(64 * 1024));
    mkdirSync(join(h.sb.base, 'elsewhere'));
    writeFileSync(join(h.sb.base, 'elsewhere', 'disk.raw'), Buffer.alloc(64 * 1024));
    const outside = await h.post(D, 'admin', tinyDomain('sec4s-out', { disks: [{ path: join(h.sb.base, 'elsewhere', 'disk.raw'), format: 'raw' }] }));
    assert.equal(outside.status, 403, outside.text);
    assert.equal(problemCode(outside), 'VIRT_ERR_OPERATION_DENIED');
    const key = await h.post(D, 'admin', tinyDomain('sec4s-key', { disks: [{ path: join(h.stateDir, 'save-image.key'), format: 'raw' }] }));
    assert.equal(key.status, 403, 'virt-qemud\'s own MAC key is not an image');
    const inside = await h.post(D, 'admin', tinyDomain('sec4s-in', { disks: [{ path: join(images, 'disk.raw'), format: 'raw' }] }));
    assert.equal(inside.status, 201, inside.text);
  });
});

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
