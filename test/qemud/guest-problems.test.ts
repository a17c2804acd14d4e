// Guest problems made visible, on real QEMU: QEMU's stderr after daemonizing
// goes to log/NAME.qemu.log; a failed lifecycle command names that file; a
// guest that QEMU stopped on an I/O error (its disk sits on a full tmpfs, so
// the write fails with ENOSPC and virtio-blk's default werror=enospc stops
// it) is reported paused with reason "ioerror", not "user".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../src/virt/connection.ts';
import { buildGuest, guestCmdline, type GuestImage } from '../fixtures/guest/index.ts';
import { requireBinaries, sandbox, waitFor, type Sandbox } from './helpers.ts';

let sb: Sandbox;
let conn: Connection;
let image: GuestImage;
let mnt = '';

function pidOf(name: string): number {
  return (JSON.parse(readFileSync(join(sb.runtimeDir, 'run', `${name}.json`), 'utf8')) as { pid: number }).pid;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  requireBinaries('qemu-system-x86_64');
  if (process.getuid?.() !== 0) throw new Error('this test mounts a tiny tmpfs and must run as root (as .ci/run does)');
  image = await buildGuest();
  sb = sandbox();
  conn = await open('qemu:///session', { readOnly: false, settings: { 'qemu.runtime-dir': sb.runtimeDir, 'qemu.command-timeout-ms': 1500, 'qemu.idle-timeout-seconds': 0 } });
});

after(async () => {
  await conn?.close();
  await sb?.cleanup();
  if (mnt !== '') {
    spawnSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

void describe('guest problems made visible', { timeout: 240_000 }, () => {
  void it('QEMU keeps its stderr in log/NAME.qemu.log, and a failed resume names that file', async () => {
    await conn.define({ name: 'logged', memoryMiB: 32, vcpus: 1, accel: 'tcg' });
    await conn.start('logged');
    const pid = pidOf('logged');
    const log = join(sb.runtimeDir, 'log', 'logged.qemu.log');
    assert.equal(readlinkSync(`/proc/${pid}/fd/2`), log, 'QEMU\'s stderr after daemonizing is not its log file');
    await conn.suspend('logged');
    assert.equal((await conn.domainInfo('logged')).stateReason, 'user');
    // A QEMU that does not answer its monitor: the resume fails and says where to look.
    process.kill(pid, 'SIGSTOP');
    try {
      await assert.rejects(conn.resume('logged'), (err: Error & { code?: string }) => {
        assert.ok(err.message.includes(log), err.message);
        return true;
      });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await conn.destroy('logged');
    // A second start keeps the previous run's log.
    await conn.start('logged');
    assert.ok(existsSync(`${log}.1`) || readFileSync(log, 'utf8') === '', 'the previous QEMU log was lost');
    await conn.destroy('logged');
  });

  void it('a guest stopped by QEMU on a disk I/O error is paused with reason ioerror; it runs again once there is room', async () => {
    mnt = mkdtempSync(join(tmpdir(), 'vq-full-'));
    sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    const disk = join(mnt, 'disk.raw');
    writeFileSync(disk, '');
    sh('truncate', ['-s', '16M', disk]);
    // Fill what is left, so the guest's first write needs a page tmpfs cannot give.
    spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=4k'], { encoding: 'utf8' });
    const consoleLog = join(sb.base, 'ioerr.console.log');
    await conn.define({
      name: 'ioerr',
      memoryMiB: 256,
      vcpus: 1,
      accel: 'tcg',
      kernel: { path: image.kernel, initrd: image.initrd, cmdline: guestCmdline({ diskBytes: 1024 * 1024, balloonDriver: false }) },
      disks: [{ path: disk, format: 'raw' }],
      console: { logFile: consoleLog },
    });
    await conn.start('ioerr');
    await waitFor(async () => (await conn.domainInfo('ioerr')).state === 'paused', 180_000, 'QEMU to stop the guest on the I/O error');
    const info = await conn.domainInfo('ioerr');
    assert.equal(info.stateReason, 'ioerror');
    assert.match(readFileSync(join(sb.runtimeDir, 'virt-qemud.log'), 'utf8'), /guest I\/O error stops the domain" domain=ioerr device=vda operation=write .*nospace=true/);
    const stats = await conn.allDomainStats({ groups: ['state'], inactive: false });
    assert.equal(stats.domains.find((d) => d.info.name === 'ioerr')?.info.stateReason, 'ioerror');
    // Room again: resume retries the write and the guest finishes its workload.
    rmSync(join(mnt, 'filler'));
    await conn.resume('ioerr');
    await waitFor(() => /VX-REPORT/.test(existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : ''), 120_000, 'the guest to finish its disk workload');
    assert.equal((await conn.domainInfo('ioerr')).state, 'running');
    await conn.destroy('ioerr');
  });
});
