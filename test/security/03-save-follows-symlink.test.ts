// Finding 3: save followed a symbolic link swapped in after the admin layer's
// lstat (virt-qemud opened the path with O_TRUNC), and a managed save file
// was re-opened on start without any check. Now save files are opened
// relative to a held directory descriptor with O_NOFOLLOW|O_CREAT|O_EXCL
// (O_NOFOLLOW on read) and checked after the open.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qemuPidsByUuid, RawConn, rawFrame } from '../qemud/helpers.ts';
import { D, fileDigest, problemCode, securityHost, tinyDomain, type SecurityHost } from './helpers.ts';

void describe('finding 3: save and restore never follow a symbolic link', () => {
  let h: SecurityHost;
  let victim: string;
  let uuid: string;
  before(async () => {
    h = await securityHost();
    victim = join(h.admin.dir, 'victim');
    writeFileSync(victim, 'root-owned data an attacker wants overwritten\n');
    const r = await h.post(D, 'admin', tinyDomain('sec3'));
    uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    assert.equal((await h.post(`${D}/sec3/start`, 'operator')).status, 200);
  });
  after(async () => {
    await h?.close();
  });

  async function raw(op: string, args: unknown[]): Promise<Record<string, unknown>> {
    const c = await RawConn.connect(h.sb.rwSocket);
    try {
      c.write(rawFrame(JSON.stringify({ v: 1, id: 1, op, args })));
      return await c.next(30_000);
    } finally {
      c.close();
    }
  }

  void it('the admin layer refuses a link already there (400, audited with the file)', async () => {
    symlinkSync(victim, join(h.admin.saveDir, 'link.save'));
    const before = fileDigest(victim);
    const r = await h.post(`${D}/sec3/save`, 'operator', { file: 'link.save' });
    assert.equal(r.status, 400, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_INVALID_ARG');
    assert.equal(fileDigest(victim), before);
    assert.equal(await h.state('sec3'), 'running');
    const line = await h.auditOf(r);
    assert.deepEqual([line.target, line.file, line.code], ['sec3', 'link.save', 'VIRT_ERR_INVALID_ARG']);
  });

  void it('virt-qemud itself refuses a link swapped in after the check: the target is not truncated, the guest keeps running', async () => {
    const swapped = join(h.admin.saveDir, 'swapped.save');
    symlinkSync(victim, swapped);
    const before = fileDigest(victim);
    const reply = await raw('save', ['sec3', swapped]);
    assert.equal((reply.error as { code: string } | undefined)?.code, 'VIRT_ERR_OPERATION_INVALID', JSON.stringify(reply));
    assert.equal(fileDigest(victim), before);
    assert.ok(lstatSync(swapped).isSymbolicLink());
    assert.equal(await h.state('sec3'), 'running');
    // A dangling link (to a file that does not exist yet) is not created through either.
    const dangling = join(h.admin.saveDir, 'dangling.save');
    const target = join(h.admin.dir, 'created-through-link');
    symlinkSync(target, dangling);
    assert.equal(((await raw('save', ['sec3', dangling])).error as { code: string }).code, 'VIRT_ERR_OPERATION_INVALID');
    assert.ok(!existsSync(target));
    assert.match(h.daemonLog(), /write request refused.*op=save.*code=VIRT_ERR_OPERATION_INVALID/);
  });

  void it('a managed save swapped for a link is refused on start (409 VIRT_ERR_SAVE_INVALID, audited); no QEMU starts', async () => {
    assert.equal((await h.post(`${D}/sec3/save`, 'operator', { file: 'sec3.save' })).status, 200);
    const file = join(h.admin.saveDir, 'sec3.save');
    const real = join(h.admin.saveDir, 'sec3.real');
    renameSync(file, real);
    symlinkSync(real, file);
    const r = await h.post(`${D}/sec3/start`, 'operator');
    assert.equal(r.status, 409, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
    assert.equal(await h.state('sec3'), 'shutoff');
    assert.deepEqual(qemuPidsByUuid(uuid), []);
    assert.equal((await h.auditOf(r)).code, 'VIRT_ERR_SAVE_INVALID');
    // Restore by path through the link is refused by virt-qemud too.
    assert.equal(((await raw('restore', [file])).error as { code: string }).code, 'VIRT_ERR_SAVE_INVALID');
    // Put the real file back: start restores it.
    unlinkSync(file);
    renameSync(real, file);
    const ok = await h.post(`${D}/sec3/start`, 'operator');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(await h.state('sec3'), 'running');
  });
});
