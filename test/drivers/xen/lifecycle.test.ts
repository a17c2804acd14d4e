import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { XendClient } from '../../../src/drivers/xen/xend.ts';
import { definitionToConfig } from '../../../src/drivers/xen/xend-config.ts';
import { XenStoreClient } from '../../../src/drivers/xen/xenstore.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import type { DomainState } from '../../../src/drivers/types.ts';
import { buildNative, startXenFixture, type XenFixture } from './fixture.ts';

/** The state the next hypervisor read (virt-proxy -> stub libxenctrl -> state file) reports; null: not running. */
async function hvState(c: Connection, name: string): Promise<DomainState | null> {
  const bulk = await c.allDomainStats({ groups: ['state'] });
  return bulk.domains.find((d) => d.info.name === name)?.info.state ?? null;
}

async function eventually(what: string, fn: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 10_000;
  while (!(await fn())) {
    if (Date.now() > until) assert.fail(`${what} did not happen within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

void describe('Xen lifecycle through Xend, seen by the next hypervisor read', () => {
  let f: XenFixture;
  let c: Connection;
  let xs: XenStoreClient;
  before(async () => {
    await buildNative();
    f = await startXenFixture();
    c = await open('xen:///', { readOnly: false, logger: silentLogger, settings: f.settings });
    xs = await XenStoreClient.connect({ socketPath: f.fx.paths.xenstoreSocket, readOnly: true, timeoutMs: 5000, logger: silentLogger });
  });
  after(async () => {
    await xs?.close();
    await c?.close();
    await f?.stop();
  });

  void it('create (op=create) then resume', async () => {
    const xend = await XendClient.open({ address: f.settings['xen.xend-address'], timeoutMs: 5000, maxResponseBytes: 1 << 20, logger: silentLogger });
    try {
      await xend.create(definitionToConfig({ name: 'fresh', memoryMiB: 128, vcpus: 1, disks: [{ target: 'xvda', path: '/srv/fresh.img' }], nics: [{ mac: '00:16:3e:aa:bb:cc' }] }));
    } finally {
      await xend.close();
    }
    assert.equal(await hvState(c, 'fresh'), 'paused', 'Xend creates paused');
    const ref = await c.lookupDomain('fresh');
    assert.ok(ref.id !== null && ref.id > 0);
    assert.equal(await xs.read(`/local/domain/${ref.id}/name`), 'fresh');
    await c.resume('fresh');
    assert.equal(await hvState(c, 'fresh'), 'running');
    const info = await c.domainInfo('fresh');
    assert.equal(info.memoryBytes, 128 * 1024 * 1024);
  });

  void it('suspend and resume', async () => {
    await c.suspend('web');
    assert.equal(await hvState(c, 'web'), 'paused');
    assert.equal((await c.domainInfo('web')).state, 'paused');
    await c.resume('web');
    assert.equal(await hvState(c, 'web'), 'running');
    await assert.rejects(c.suspend('idle'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_INVALID'));
    await assert.rejects(c.suspend('nobody'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
  });

  void it('reboot keeps the domain running and restarts it', async () => {
    const before = f.fx.host.get('web').reboots;
    await c.reboot('web');
    assert.equal(await hvState(c, 'web'), 'running');
    assert.equal(f.fx.host.get('web').reboots, before + 1);
    assert.equal(await xs.read(`/local/domain/1/control/shutdown`), 'reboot', 'Xend asked the guest through XenStore');
  });

  void it('shutdown: a managed domain goes to shut off, its XenStore entries go away', async () => {
    const ref = await c.lookupDomain('db');
    await c.shutdown('db');
    assert.equal(await hvState(c, 'db'), null, 'gone from the hypercall read');
    assert.equal(await xs.readOptional(`/local/domain/${ref.id}/name`), undefined);
    const after = await c.lookupDomain('db');
    assert.equal(after.id, null);
    assert.equal((await c.domainInfo('db')).state, 'shutoff');
    await c.start('db');
    assert.equal(await hvState(c, 'db'), 'running');
  });

  void it('destroy: a transient domain disappears', async () => {
    await c.destroy('fresh');
    assert.equal(await hvState(c, 'fresh'), null);
    await assert.rejects(c.lookupDomain('fresh'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
  });

  void it('save then restore', async () => {
    const file = join(f.dir, 'web.save');
    const uuid = (await c.lookupDomain('web')).uuid;
    await c.save('web', file);
    await access(file);
    assert.equal(await hvState(c, 'web'), null);
    const ref = await c.restore(file);
    assert.equal(ref.name, 'web');
    assert.equal(ref.uuid, uuid);
    assert.equal(await hvState(c, 'web'), 'running');
    await assert.rejects(c.save('web', 'relative.save'), (e: unknown) => isVirtError(e, 'VIRT_ERR_INVALID_ARG'));
    await assert.rejects(c.restore(join(f.dir, 'missing.save')), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_FAILED'));
  });

  void it('define, start, shutdown --force, undefine', async () => {
    const ref = await c.define({ name: 'managed', memoryMiB: 256, vcpus: 2, disks: [{ target: 'xvda', path: '/dev/vg0/managed' }] });
    assert.equal(ref.id, null);
    assert.ok((await c.listDomains({ active: false, inactive: true })).some((d) => d.name === 'managed'));
    await assert.rejects(c.define({ name: 'managed', memoryMiB: 256, vcpus: 2 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_DOM_EXIST'));
    await assert.rejects(c.define({ name: 'bad name!', memoryMiB: 256, vcpus: 2 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR') && (e as Error).message.includes('bad name!'));
    await assert.rejects(c.define({ name: 'x', memoryMiB: -1, vcpus: 2 }), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR') && (e as Error).message.includes('memoryMiB'));
    await c.start('managed');
    assert.equal(await hvState(c, 'managed'), 'running');
    await c.shutdown('managed', { force: true });
    assert.equal(await hvState(c, 'managed'), null);
    await c.undefine('managed');
    await assert.rejects(c.lookupDomain('managed'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
  });

  void it('without Xend, shutdown goes through XenStore control/shutdown', async () => {
    const noXend = await open('xen:///', { readOnly: false, logger: silentLogger, settings: { ...f.settings, 'xen.xend-address': join(f.dir, 'no-xend.sock') } });
    try {
      assert.equal(await hvState(noXend, 'web'), 'running');
      await noXend.shutdown('web');
      await eventually('the guest powering off after control/shutdown', async () => (await hvState(noXend, 'web')) === null);
      await assert.rejects(noXend.destroy('db'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT') && /xend/i.test((e as Error).message), 'XenStore cannot destroy; only Xend could, and it is not there');
    } finally {
      await noXend.close();
    }
  });
});
