// The XenStore sub-driver over the project's XenStore stand-in (the real wire
// protocol): identities of running domains, and the names-only read the libxl
// path uses to tell which defined domains are active.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeXen, type FakeXen } from '../../fake-xen/index.ts';
import { Reconnecting } from '../../../src/drivers/xen/reconnecting.ts';
import { XenStoreClient } from '../../../src/drivers/xen/xenstore.ts';
import { createXenStoreSubDriver, type XenStoreSubDriver } from '../../../src/drivers/xen/xenstore-driver.ts';
import { silentLogger } from '../../../src/util/logger.ts';

void describe('XenStore sub-driver', () => {
  let dir: string;
  let fx: FakeXen;
  let xs: XenStoreSubDriver;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-xsd-test-'));
    fx = await startFakeXen({ dir });
    const open = (): Promise<XenStoreClient> => XenStoreClient.connect({ socketPath: fx.paths.xenstoreSocket, readOnly: true, timeoutMs: 5000, logger: silentLogger });
    xs = createXenStoreSubDriver(new Reconnecting(await open(), open, silentLogger, 'xenstore'), true);
  });
  after(async () => {
    await xs.close?.();
    await fx.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('names() gives exactly the names identities() finds, and follows a domain that stops', async () => {
    const names = await xs.names();
    const full = [...(await xs.identities(undefined)).values()].map((i) => i.name);
    assert.deepEqual([...names].sort(), [...full].sort());
    assert.ok(names.has('Domain-0') && names.has('web'), [...names].join(','));
    fx.host.destroy('web');
    fx.host.changed();
    await fx.host.flushed();
    assert.equal((await xs.names()).has('web'), false, 'a destroyed domain leaves XenStore');
  });
});
