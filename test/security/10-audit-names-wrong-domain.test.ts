// Finding 10: the audit log named the wrong domain or none: a restore was
// logged under the path's {id} while another domain came back, define lines
// had "domain": null, a refused request lost its target, and no line named
// the save/restore file.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { D, problemCode, securityHost, tinyDomain, type SecurityHost } from './helpers.ts';

void describe('finding 10: the audit line names the domain acted on, the file, and the target of refused requests', () => {
  let h: SecurityHost;
  let uuid: string;
  before(async () => {
    h = await securityHost();
  });
  after(async () => {
    await h?.close();
  });

  void it('define names the domain defined, with its UUID', async () => {
    const r = await h.post(D, 'admin', tinyDomain('sec10'));
    assert.equal(r.status, 201, r.text);
    uuid = (r.json as { domain: { uuid: string } }).domain.uuid;
    const line = await h.auditOf(r);
    assert.deepEqual([line.target, line.domain, line.uuid], ['sec10', 'sec10', uuid]);
  });

  void it('a refused define and a refused destroy keep their target', async () => {
    const def = await h.post(D, 'operator', tinyDomain('sec10-other'));
    assert.equal(def.status, 403);
    const destroy = await h.post(`${D}/sec10/destroy`, 'operator');
    assert.equal(problemCode(destroy), 'VIRT_ERR_OPERATION_DENIED');
    const line = await h.auditOf(destroy);
    assert.deepEqual([line.target, line.domain, line.code], ['sec10', null, 'VIRT_ERR_OPERATION_DENIED']);
  });

  void it('save and restore by UUID name the file and the domain actually acted on', async () => {
    assert.equal((await h.post(`${D}/${uuid}/start`, 'operator')).status, 200);
    const save = await h.post(`${D}/${uuid}/save`, 'operator', { file: 'sec10.save' });
    assert.equal(save.status, 200, save.text);
    const s = await h.auditOf(save);
    assert.deepEqual([s.target, s.domain, s.uuid, s.file], [uuid, 'sec10', uuid, 'sec10.save']);
    const restore = await h.post(`${D}/${uuid}/restore`, 'operator', { file: 'sec10.save' });
    assert.equal(restore.status, 200, restore.text);
    const r = await h.auditOf(restore);
    assert.deepEqual([r.domain, r.uuid, r.file, r.outcome], ['sec10', uuid, 'sec10.save', 'ok']);
  });

  void it('a restore at another domain\'s path is refused and logged under the domain it targeted, not the image\'s', async () => {
    assert.equal((await h.post(D, 'admin', tinyDomain('sec10-b'))).status, 201);
    const r = await h.post(`${D}/sec10-b/restore`, 'operator', { file: 'sec10.save' });
    assert.equal(problemCode(r), 'VIRT_ERR_SAVE_INVALID');
    const line = await h.auditOf(r);
    assert.deepEqual([line.target, line.domain, line.file], ['sec10-b', 'sec10-b', 'sec10.save']);
    assert.equal(await h.state('sec10'), 'running', 'the domain of the image is untouched');
  });
});
