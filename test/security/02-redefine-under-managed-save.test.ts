// Finding 2: a redefinition made while a managed save existed was silently
// undone by start (the old disk was opened). Now it is refused, as libvirt
// does, until the managed save is restored or explicitly removed.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qemuPidsByUuid, RawConn, rawFrame, waitFor } from '../qemud/helpers.ts';
import { D, fileDigest, problemCode, securityHost, tinyDomain, type SecurityHost } from './helpers.ts';

function cmdline(uuid: string): string {
  const [pid] = qemuPidsByUuid(uuid);
  assert.ok(pid !== undefined, `a QEMU for ${uuid}`);
  return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ');
}

void describe('finding 2: no redefinition while a managed save exists', () => {
  let h: SecurityHost;
  let d1: string;
  let d2: string;
  let uuid: string;
  before(async () => {
    h = await securityHost();
    d1 = join(h.admin.dir, 'old-disk.raw');
    d2 = join(h.admin.dir, 'new-disk.raw');
    writeFileSync(d1, Buffer.alloc(1024 * 1024));
    writeFileSync(d2, Buffer.alloc(1024 * 1024));
    const r = await h.post(D, 'admin', tinyDomain('sec2', { disks: [{ path: d1, format: 'raw' }] }));
    assert.equal(r.status, 201, r.text);
    uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    assert.equal((await h.post(`${D}/sec2/start`, 'operator')).status, 200);
    assert.equal((await h.post(`${D}/sec2/save`, 'operator', { file: 'sec2.save' })).status, 200);
  });
  after(async () => {
    await h?.close();
  });

  void it('the redefinition is refused (409 VIRT_ERR_OPERATION_INVALID, audited), the stored definition unchanged', async () => {
    const stored = join(h.stateDir, 'domains', 'sec2.json');
    const before = fileDigest(stored);
    const r = await h.post(D, 'admin', tinyDomain('sec2', { disks: [{ path: d2, format: 'raw' }] }));
    assert.equal(r.status, 409, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_INVALID');
    assert.equal(fileDigest(stored), before);
    const line = await h.auditOf(r);
    assert.deepEqual([line.action, line.target, line.code], ['define', 'sec2', 'VIRT_ERR_OPERATION_INVALID']);
  });

  void it('start restores the saved domain, with the definition that is really defined (the old disk, as defined)', async () => {
    assert.equal((await h.post(`${D}/sec2/start`, 'operator')).status, 200);
    assert.equal(await h.state('sec2'), 'running');
    assert.ok(cmdline(uuid).includes(d1));
  });

  void it('discarding the managed save explicitly (managedSaveRemove) allows the redefinition; start then boots the new disk', async () => {
    assert.equal((await h.post(`${D}/sec2/save`, 'operator', { file: 'sec2-again.save' })).status, 200);
    assert.equal((await h.post(D, 'admin', tinyDomain('sec2', { disks: [{ path: d2, format: 'raw' }] }))).status, 409);
    const c = await RawConn.connect(h.sb.rwSocket);
    try {
      c.write(rawFrame(JSON.stringify({ v: 1, id: 1, op: 'managedSaveRemove', args: ['sec2'] })));
      const reply = await c.next();
      assert.equal(reply.error, undefined, JSON.stringify(reply));
      c.write(rawFrame(JSON.stringify({ v: 1, id: 2, op: 'managedSaveRemove', args: ['sec2'] })));
      assert.equal((await c.next()).error !== undefined, true, 'a second removal finds nothing to remove');
    } finally {
      c.close();
    }
    const r = await h.post(D, 'admin', tinyDomain('sec2', { disks: [{ path: d2, format: 'raw' }] }));
    assert.equal(r.status, 201, r.text);
    assert.equal((await h.post(`${D}/sec2/start`, 'operator')).status, 200);
    await waitFor(() => qemuPidsByUuid(uuid).length === 1, 5000, 'the new QEMU');
    const cmd = cmdline(uuid);
    assert.ok(cmd.includes(d2) && !cmd.includes(d1), cmd);
    assert.ok(!cmd.includes('-incoming'), 'a fresh boot, not a restore');
  });
});
