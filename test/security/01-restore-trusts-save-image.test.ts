// Finding 1: restore trusted the save image. It re-defined a domain an admin
// had undefined, and started a re-headed image's configuration (any host file
// attached) as root. Now only a defined domain comes back, with its current
// definition; images carry a MAC; re-creation is admin-only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chownSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qemuPidsByUuid } from '../qemud/helpers.ts';
import { D, fileDigest, problemCode, securityHost, tinyDomain, treeDigest, type SecurityHost } from './helpers.ts';

function forgedImage(definition: Record<string, unknown>, magic = 'VIRTQEMUD-SAVE2\n'): Buffer {
  const body = Buffer.from(JSON.stringify({ definition, state: 'running', savedAt: new Date().toISOString() }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  // A MAC the attacker cannot compute: random bytes in its place.
  return Buffer.concat([Buffer.from(magic, 'latin1'), len, body, ...(magic.endsWith('2\n') ? [randomBytes(32)] : []), randomBytes(4096)]);
}

void describe('finding 1: restore only brings back a defined domain, with its current definition', () => {
  let h: SecurityHost;
  let victim: string;
  const uuid: Record<string, string> = {};
  before(async () => {
    h = await securityHost();
    for (const n of ['sec1a', 'sec1b']) {
      const r = await h.post(D, 'admin', tinyDomain(n));
      assert.equal(r.status, 201, r.text);
      uuid[n] = (r.json as { domain: { uuid: string } }).domain.uuid;
    }
    victim = join(h.admin.dir, 'victim-host-file');
    writeFileSync(victim, 'host data that must not be touched\n');
  });
  after(async () => {
    await h?.close();
  });

  void it('an operator cannot bring back a domain an admin undefined (403, audited); an admin can, and the API says so', async () => {
    assert.equal((await h.post(`${D}/sec1a/start`, 'operator')).status, 200);
    assert.equal((await h.post(`${D}/sec1a/save`, 'operator', { file: 'a.save' })).status, 200);
    assert.equal((await h.del(`${D}/sec1a`, 'admin')).status, 200);
    const image = fileDigest(join(h.admin.saveDir, 'a.save'));
    const disk = treeDigest(h.stateDir);

    const r = await h.post(`${D}/sec1a/restore`, 'operator', { file: 'a.save' });
    assert.equal(r.status, 403, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_DENIED');
    await assert.rejects(h.ro.lookupDomain('sec1a'), { code: 'VIRT_ERR_NO_DOMAIN' });
    assert.deepEqual(qemuPidsByUuid(uuid.sec1a as string), []);
    assert.deepEqual(treeDigest(h.stateDir), disk);
    assert.equal(fileDigest(join(h.admin.saveDir, 'a.save')), image);
    const line = await h.auditOf(r);
    assert.equal(line.code, 'VIRT_ERR_OPERATION_DENIED');
    assert.equal(line.target, 'sec1a');
    assert.equal(line.file, 'a.save');

    const byAdmin = await h.post(`${D}/sec1a/restore`, 'admin', { file: 'a.save' });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal(await h.state('sec1a'), 'running');
    assert.equal((await h.auditOf(byAdmin)).domain, 'sec1a');
  });

  void it('a re-headed image attaching a host file is refused by its MAC: no QEMU starts, nothing changes', async () => {
    const forged = forgedImage({ ...tinyDomain('sec1b'), uuid: uuid.sec1b, disks: [{ path: victim, format: 'raw' }] });
    writeFileSync(join(h.admin.saveDir, 'forged.save'), forged);
    const legacy = forgedImage({ ...tinyDomain('sec1b'), uuid: uuid.sec1b, disks: [{ path: victim, format: 'raw' }] }, 'VIRTQEMUD-SAVE1\n');
    writeFileSync(join(h.admin.saveDir, 'legacy.save'), legacy);
    const disk = treeDigest(h.stateDir);
    const victimBefore = fileDigest(victim);
    for (const file of ['forged.save', 'legacy.save']) {
      const r = await h.post(`${D}/sec1b/restore`, 'operator', { file });
      assert.equal(r.status, 409, r.text);
      assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
      assert.equal(await h.state('sec1b'), 'shutoff');
      assert.deepEqual(qemuPidsByUuid(uuid.sec1b as string), []);
      const line = await h.auditOf(r);
      assert.deepEqual([line.domain, line.file, line.code], ['sec1b', file, 'VIRT_ERR_SAVE_INVALID']);
    }
    assert.equal(fileDigest(victim), victimBefore);
    assert.deepEqual(treeDigest(h.stateDir), disk);
    assert.match(h.daemonLog(), /write request refused.*code=VIRT_ERR_SAVE_INVALID/);
  });

  void it('an image of another domain is refused at the path of this one', async () => {
    assert.equal((await h.post(`${D}/sec1b/start`, 'operator')).status, 200);
    assert.equal((await h.post(`${D}/sec1b/save`, 'operator', { file: 'b.save' })).status, 200);
    assert.equal((await h.post(`${D}/sec1a/destroy`, 'admin')).status, 200);
    const r = await h.post(`${D}/sec1a/restore`, 'operator', { file: 'b.save' });
    assert.equal(r.status, 409, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
    assert.equal(await h.state('sec1a'), 'shutoff');
    assert.equal(await h.state('sec1b'), 'shutoff');
    assert.deepEqual(qemuPidsByUuid(uuid.sec1b as string), []);
  });

  void it('an old image is refused once an admin changed the definition: the current definition wins', async () => {
    const restored = await h.post(`${D}/sec1b/restore`, 'operator', { file: 'b.save' });
    assert.equal(restored.status, 200, restored.text);
    assert.equal((await h.post(`${D}/sec1b/destroy`, 'admin')).status, 200);
    assert.equal((await h.post(D, 'admin', tinyDomain('sec1b', { memoryMiB: 80 }))).status, 201);
    const r = await h.post(`${D}/sec1b/restore`, 'operator', { file: 'b.save' });
    assert.equal(r.status, 409, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
    assert.match((r.json as { detail: string }).detail, /memoryMiB/);
    assert.equal(await h.state('sec1b'), 'shutoff');
  });

  void it('an image owned by another user is refused even though its MAC is right', async () => {
    assert.equal((await h.post(`${D}/sec1a/start`, 'operator')).status, 200);
    assert.equal((await h.post(`${D}/sec1a/save`, 'operator', { file: 'a2.save' })).status, 200);
    const theirs = join(h.admin.saveDir, 'theirs.save');
    copyFileSync(join(h.admin.saveDir, 'a2.save'), theirs);
    chownSync(theirs, 65534, 65534);
    const r = await h.post(`${D}/sec1a/restore`, 'operator', { file: 'theirs.save' });
    assert.equal(r.status, 409, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
    assert.equal(await h.state('sec1a'), 'shutoff');
    // The same bytes owned by virt-qemud restore: the owner was the reason.
    const ok = await h.post(`${D}/sec1a/restore`, 'operator', { file: 'a2.save' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(await h.state('sec1a'), 'running');
  });
});
