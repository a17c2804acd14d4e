// The admin API end to end against a real QEMU domain: qemu:///session with a
// private VIRT_EXPORTER_RUNTIME_DIR, virt-qemud started by the driver, real
// qemu-system-x86_64 processes (TCG when /dev/kvm is absent).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { requireBinaries, sandbox, type Sandbox } from '../../qemud/helpers.ts';
import { call, startAdmin, tempDir, TOKENS, type AdminFixture, type Reply } from './fixtures.ts';

const D = '/api/v1/domains';

void describe('admin API lifecycle against a real QEMU domain (qemu:///session)', () => {
  let sb: Sandbox;
  let rw: Connection | undefined;
  let ro: Connection | undefined;
  let f: AdminFixture | undefined;
  let cleanupDir: (() => Promise<void>) | undefined;
  const previousRuntime = process.env['VIRT_EXPORTER_RUNTIME_DIR'];

  before(async () => {
    requireBinaries('qemu-system-x86_64', 'qemu-img');
    sb = sandbox();
    process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
    rw = await open('qemu:///session', { readOnly: false });
    ro = await open('qemu:///session', { readOnly: true });
    const t = await tempDir();
    cleanupDir = t.cleanup;
    f = await startAdmin({ connection: rw, dir: t.dir });
  });
  after(async () => {
    await f?.close();
    await rw?.close();
    await ro?.close();
    await sb.cleanup();
    await cleanupDir?.();
    if (previousRuntime === undefined) delete process.env['VIRT_EXPORTER_RUNTIME_DIR'];
    else process.env['VIRT_EXPORTER_RUNTIME_DIR'] = previousRuntime;
  });

  const post = (path: string, role: keyof typeof TOKENS, body?: unknown): Promise<Reply> =>
    call((f as AdminFixture).url + path, { method: 'POST', token: TOKENS[role], ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const state = async (): Promise<string> => ((await (ro as Connection).domainInfo('adm-e2e')).state);

  void it('define, start, suspend, resume, reboot, save, restore, destroy, undefine through the API', async () => {
    const defined = await post(D, 'admin', { name: 'adm-e2e', memoryMiB: 64, vcpus: 1 });
    assert.equal(defined.status, 201, defined.text);
    assert.equal(await state(), 'shutoff');
    assert.equal((await post(D, 'operator', { name: 'other', memoryMiB: 64, vcpus: 1 })).status, 403);

    const steps: [string, keyof typeof TOKENS, unknown, string][] = [
      ['start', 'operator', undefined, 'running'],
      ['suspend', 'operator', undefined, 'paused'],
      ['resume', 'operator', undefined, 'running'],
      ['reboot', 'operator', undefined, 'running'],
      ['save', 'operator', { file: 'adm-e2e.save' }, 'shutoff'],
      ['restore', 'operator', { file: 'adm-e2e.save' }, 'running'],
    ];
    for (const [action, role, body, expected] of steps) {
      const r = await post(`${D}/adm-e2e/${action}`, role, body);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      assert.equal(await state(), expected, `${action} as seen by a read-only connection`);
    }
    const wrongState = await post(`${D}/adm-e2e/resume`, 'operator');
    assert.equal(wrongState.status, 409, wrongState.text);
    assert.equal((await post(`${D}/adm-e2e/destroy`, 'operator')).status, 403);
    assert.equal(await state(), 'running');
    const destroyed = await post(`${D}/adm-e2e/destroy`, 'admin');
    assert.equal(destroyed.status, 200, destroyed.text);
    assert.equal(await state(), 'shutoff');
    const undefined_ = await call(`${(f as AdminFixture).url}${D}/adm-e2e`, { method: 'DELETE', token: TOKENS.admin });
    assert.equal(undefined_.status, 200, undefined_.text);
    const gone = await call(`${(f as AdminFixture).url}${D}/adm-e2e`, { token: TOKENS.viewer });
    assert.equal(gone.status, 404);
    assert.equal((gone.json as { code: string }).code, 'VIRT_ERR_NO_DOMAIN');
  });
});
