// Finding 11: an operator could destroy through shutdown {"force": true}
// although destroy is admin-only. Force is now an admin capability.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CAPABILITY_ROLE, REQUIRED_ROLE } from '../../src/http/admin/roles.ts';
import { D, problemCode, securityHost, tinyDomain, treeDigest, type SecurityHost } from './helpers.ts';

void describe('finding 11: shutdown with force is admin-only', () => {
  let h: SecurityHost;
  before(async () => {
    h = await securityHost();
    assert.equal((await h.post(D, 'admin', tinyDomain('sec11'))).status, 201);
    assert.equal((await h.post(`${D}/sec11/start`, 'operator')).status, 200);
  });
  after(async () => {
    await h?.close();
  });

  void it('an operator asking for force is refused (403, audited), and the domain keeps running in the same QEMU', async () => {
    const idBefore = (await h.ro.lookupDomain('sec11')).id;
    const disk = treeDigest(h.stateDir);
    const r = await h.post(`${D}/sec11/shutdown`, 'operator', { force: true });
    assert.equal(r.status, 403, r.text);
    assert.equal(problemCode(r), 'VIRT_ERR_OPERATION_DENIED');
    assert.equal(await h.state('sec11'), 'running');
    assert.equal((await h.ro.lookupDomain('sec11')).id, idBefore, 'the same QEMU process');
    assert.deepEqual(treeDigest(h.stateDir), disk);
    const line = await h.auditOf(r);
    assert.equal(line.principal, 'operator-bot');
    assert.equal(line.action, 'shutdown');
    assert.equal(line.target, 'sec11');
    assert.equal(line.code, 'VIRT_ERR_OPERATION_DENIED');
    assert.equal(line.outcome, 'forbidden');
  });

  void it('an admin may force: the guest (no OS) ignores ACPI and is destroyed after the grace period', async () => {
    const r = await h.post(`${D}/sec11/shutdown`, 'admin', { force: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(await h.state('sec11'), 'shutoff');
    const line = await h.auditOf(r);
    assert.equal(line.domain, 'sec11');
    assert.equal(line.outcome, 'ok');
  });

  void it('the capability table says force needs what destroy needs', () => {
    assert.equal(CAPABILITY_ROLE['shutdown.force'], REQUIRED_ROLE.destroy);
    assert.equal(CAPABILITY_ROLE['restore.define'], REQUIRED_ROLE.define);
  });
});
