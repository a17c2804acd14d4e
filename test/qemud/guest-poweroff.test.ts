// A guest that powers itself off: direct kernel boot of the real-guest fixture
// (test/fixtures/guest) under virt-qemud; QEMU runs with -no-shutdown, so the
// guest's poweroff leaves it alive in the "shutdown" run state until virt-qemud
// sees the SHUTDOWN event and ends it. The domain must end shut off with the
// reason "shutdown" (not "crashed"), its QEMU gone, its console log written.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../src/virt/connection.ts';
import { buildGuest, guestCmdline, type GuestImage } from '../fixtures/guest/index.ts';
import { alive, qemuPidsByUuid, requireBinaries, sandbox, waitFor, type Sandbox } from './helpers.ts';

let sb: Sandbox;
let conn: Connection;
let image: GuestImage;

before(async () => {
  requireBinaries('qemu-system-x86_64');
  image = await buildGuest();
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  conn = await open('qemu:///session', { readOnly: false });
});

after(async () => {
  await conn.close();
  await sb.cleanup();
});

void describe('a guest that powers itself off', { timeout: 150_000 }, () => {
  void it('boots from kernel+initrd, powers off, and is reported shut off (reason shutdown) with its QEMU gone', async () => {
    const consoleLog = join(sb.base, 'console.log');
    const ref = await conn.define({
      name: 'poweroff',
      memoryMiB: 256,
      vcpus: 1,
      // Under nested KVM this kernel hangs after decompression; TCG boots it.
      accel: 'tcg',
      kernel: { path: image.kernel, initrd: image.initrd, cmdline: guestCmdline({ poweroff: true, balloonDriver: false }) },
      console: { logFile: consoleLog },
    });
    await conn.start('poweroff');
    const pid = (JSON.parse(readFileSync(join(sb.runtimeDir, 'run', 'poweroff.json'), 'utf8')) as { pid: number }).pid;
    assert.ok(alive(pid));
    assert.equal((await conn.domainInfo('poweroff')).state, 'running');
    await waitFor(async () => (await conn.domainInfo('poweroff')).state === 'shutoff', 120_000, 'the guest to power off');
    const info = await conn.domainInfo('poweroff');
    assert.equal(info.stateReason, 'shutdown');
    await waitFor(() => !alive(pid), 5000, 'QEMU to exit');
    assert.deepEqual(qemuPidsByUuid(ref.uuid), []);
    assert.ok(existsSync(consoleLog));
    assert.match(readFileSync(consoleLog, 'utf8'), /VX-REPORT errors=0/);
    const log = readFileSync(join(sb.runtimeDir, 'virt-qemud.log'), 'utf8');
    assert.match(log, /event=SHUTDOWN reason=guest-shutdown/);
  });
});
