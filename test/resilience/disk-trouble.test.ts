// virt-qemud's state directory full, then read-only (a real tmpfs, mounted by
// the test): define fails with a clear, typed error; the definitions already
// there stay intact, readable and free of half-written files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isVirtError } from '../../src/virt/errors.ts';
import { open, type Connection } from '../../src/virt/connection.ts';
import { requireBinaries, sandbox, startDaemon, type Sandbox } from '../qemud/helpers.ts';

let sb: Sandbox;
let conn: Connection;
let stateDir: string;

function mount(...args: string[]): void {
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount ${args.join(' ')}: ${r.stderr}`);
}

function stateFiles(): string[] {
  return readdirSync(stateDir, { recursive: true }).map(String).sort();
}

before(async () => {
  requireBinaries('qemu-system-x86_64', 'mount', 'umount');
  sb = sandbox();
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  stateDir = join(sb.base, 'state');
  mkdirSync(stateDir);
  mount('-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'virt-test-state', stateDir);
  await startDaemon(sb, ['--state-dir', stateDir]);
  conn = await open('qemu:///session', { readOnly: false });
});

after(async () => {
  await conn.close();
  await sb.cleanup().catch(() => undefined);
  spawnSync('umount', ['-l', stateDir]);
});

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(isVirtError(err), `untyped error: ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail('the operation succeeded');
}

void describe('disk trouble under virt-qemud', { timeout: 60_000 }, () => {
  let kept: unknown;
  let filesBefore: string[];

  void it('a full state directory: define fails clearly, nothing existing is lost', async () => {
    await conn.define({ name: 'kept', memoryMiB: 64, vcpus: 1 });
    kept = await conn.domainDefinition('kept');
    filesBefore = stateFiles();
    // Fill what is left of the filesystem.
    const filler = join(stateDir, 'filler');
    const chunk = Buffer.alloc(4096, 1);
    try {
      for (let i = 0; i < 1000; i++) writeFileSync(filler, chunk, { flag: 'a' });
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    const r = await refusal(conn.define({ name: 'newcomer', memoryMiB: 64, vcpus: 1 }));
    assert.equal(r.code, 'VIRT_ERR_OPERATION_FAILED', r.message);
    assert.match(r.message, /no space left/i, 'the error says what is wrong');
    assert.deepEqual((await conn.listDomains()).map((d) => d.name), ['kept']);
    assert.deepEqual(await conn.domainDefinition('kept'), kept);
    assert.deepEqual(stateFiles(), [...filesBefore, 'filler'].sort(), 'no half-written or temporary file is left');
    await assert.rejects(conn.domainInfo('newcomer'), { code: 'VIRT_ERR_NO_DOMAIN' });
  });

  void it('a read-only state directory: define and undefine fail clearly, the definitions stay readable', async () => {
    mount('-o', 'remount,ro', stateDir);
    const r = await refusal(conn.define({ name: 'newcomer', memoryMiB: 64, vcpus: 1 }));
    assert.equal(r.code, 'VIRT_ERR_OPERATION_FAILED', r.message);
    assert.match(r.message, /read-only/i, 'the error says what is wrong');
    const u = await refusal(conn.undefine('kept'));
    assert.equal(u.code, 'VIRT_ERR_OPERATION_FAILED', u.message);
    assert.deepEqual((await conn.listDomains()).map((d) => d.name), ['kept']);
    assert.deepEqual(await conn.domainDefinition('kept'), kept);
    mount('-o', 'remount,rw', stateDir);
    // Once the disk is back, the same define works.
    spawnSync('rm', ['-f', join(stateDir, 'filler')]);
    await conn.define({ name: 'newcomer', memoryMiB: 64, vcpus: 1 });
    assert.deepEqual((await conn.listDomains()).map((d) => d.name).sort(), ['kept', 'newcomer']);
  });
});
