import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { openXenDriver } from '../../../src/drivers/xen/index.ts';
import { parseUri } from '../../../src/virt/uri.ts';
import { WRITE_OPERATIONS, type Driver } from '../../../src/drivers/driver.ts';
import { STATS_GROUPS } from '../../../src/drivers/types.ts';
import { XS } from '../../../src/drivers/xen/xenstore-wire.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { buildNative, startXenFixture, type XenFixture } from './fixture.ts';

const ALL_GROUPS = [...STATS_GROUPS];

void describe('xen:/// unified driver against the fake host', () => {
  let f: XenFixture;
  before(async () => {
    await buildNative();
    f = await startXenFixture();
    await f.startProxyDaemon();
  });
  after(async () => {
    await f?.stop();
  });

  const openAs = (privileged: 'root' | 'user', readOnly: boolean, extra: Record<string, string> = {}): Promise<Connection> =>
    open('xen:///', { readOnly, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': privileged, ...extra } });

  void it('opens hypervisor + xend + xenstore as root, proxy + xend + xenstore as non-root', async () => {
    const uri = parseUri('xen:///');
    const rootDrv = (await openXenDriver(uri, { readOnly: false, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': 'root' } })) as Driver & { subDrivers: Array<{ slot: string; canWrite: boolean }> };
    const userDrv = (await openXenDriver(uri, { readOnly: false, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': 'user' } })) as Driver & { subDrivers: Array<{ slot: string; canWrite: boolean }> };
    const roDrv = (await openXenDriver(uri, { readOnly: true, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': 'root' } })) as Driver & { subDrivers: Array<{ slot: string; canWrite: boolean }> };
    try {
      assert.deepEqual(rootDrv.subDrivers.map((s) => s.slot), ['hypervisor', 'xend', 'xenstore']);
      assert.deepEqual(rootDrv.subDrivers.map((s) => s.canWrite), [false, true, true]);
      assert.deepEqual(userDrv.subDrivers.map((s) => s.slot), ['proxy', 'xend', 'xenstore']);
      assert.deepEqual(userDrv.subDrivers.map((s) => s.canWrite), [false, false, false]);
      assert.deepEqual(roDrv.subDrivers.map((s) => s.canWrite), [false, false, false]);
    } finally {
      await Promise.all([rootDrv.close?.(), userDrv.close?.(), roDrv.close?.()]);
    }
  });

  void it('root (virt-proxy --stdio) and non-root (virt-proxy socket) see the same domains, states and counters', async () => {
    f.fx.host.advance(30);
    await f.fx.host.flushed();
    const root = await openAs('root', true);
    const user = await openAs('user', true);
    try {
      const a = await root.allDomainStats({ groups: ALL_GROUPS });
      const b = await user.allDomainStats({ groups: ALL_GROUPS });
      assert.deepEqual(a.errors, []);
      assert.deepEqual(b, a);
      assert.deepEqual(a.domains.map((d) => [d.info.name, d.info.id, d.info.state]), [
        ['Domain-0', 0, 'running'],
        ['web', 1, 'running'],
        ['db', 2, 'blocked'],
      ]);
      // Counters match the fake host's own numbers, in base units and the guest's view.
      const db = a.domains.find((d) => d.info.name === 'db');
      const fakeDb = f.fx.host.get('db');
      assert.equal(db?.info.cpuTimeSeconds, fakeDb.cpuTimeNs / 1e9);
      assert.equal(db?.info.memoryBytes, 1024 * 1024 * 1024);
      assert.equal(db?.info.maxMemoryBytes, 2048 * 1024 * 1024);
      assert.equal(db?.memory?.balloonBytes, 1024 * 1024 * 1024);
      assert.deepEqual(db?.block?.map((x) => [x.device, x.path, x.readRequests, x.readBytes, x.writeBytes]), fakeDb.disks.map((k) => [k.dev, k.uname.replace(/^phy:/, ''), k.stats.rd_req, k.stats.rd_sect * 512, k.stats.wr_sect * 512]));
      const nic = fakeDb.nics[1];
      const vif = db?.net?.find((n) => n.interface === 'vif2.1');
      assert.ok(nic !== undefined && vif !== undefined);
      assert.equal(vif.mac, nic.mac);
      assert.ok(nic.rxBytes > 0 && nic.rxBytes !== nic.txBytes);
      assert.equal(vif.counters?.rxBytes, nic.rxBytes, 'guest view: the host vif TX is the guest RX');
      assert.equal(vif.counters?.txBytes, nic.txBytes);

      assert.deepEqual(await user.listDomains({ inactive: true }), await root.listDomains({ inactive: true }));
      assert.deepEqual(await user.domainInfo('web'), await root.domainInfo('web'));
      assert.deepEqual(await user.hostInfo(), await root.hostInfo());
      assert.equal(await root.version(), '4.17.0');
    } finally {
      await root.close();
      await user.close();
    }
  });

  void it('counters advance with time and never decrease', async () => {
    const c = await openAs('root', true);
    try {
      const first = await c.allDomainStats({ groups: ALL_GROUPS });
      f.fx.host.advance(5);
      await f.fx.host.flushed();
      const second = await c.allDomainStats({ groups: ALL_GROUPS });
      for (const d of second.domains) {
        const prev = first.domains.find((p) => p.info.uuid === d.info.uuid);
        assert.ok(prev !== undefined);
        assert.ok(d.info.cpuTimeSeconds >= prev.info.cpuTimeSeconds);
        for (const blk of d.block ?? []) {
          const p = prev.block?.find((x) => x.device === blk.device);
          assert.ok(p !== undefined && blk.readBytes >= p.readBytes && blk.writeRequests >= p.writeRequests);
        }
      }
      const web2 = second.domains.find((d) => d.info.name === 'web');
      const web1 = first.domains.find((d) => d.info.name === 'web');
      assert.ok((web2?.info.cpuTimeSeconds ?? 0) > (web1?.info.cpuTimeSeconds ?? 0), 'a running domain accrues CPU time');
    } finally {
      await c.close();
    }
  });

  void it('includes shut-off managed domains from Xend when asked', async () => {
    const c = await openAs('root', true);
    try {
      const bulk = await c.allDomainStats({ groups: ['state'], inactive: true });
      const idle = bulk.domains.find((d) => d.info.name === 'idle');
      assert.equal(idle?.info.state, 'shutoff');
      assert.equal(idle?.info.id, null);
      assert.equal((await c.lookupDomain('idle')).id, null, 'lookup falls through to Xend for inactive domains');
      await assert.rejects(c.domainInfo('no-such'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
    } finally {
      await c.close();
    }
  });

  void it('a non-root or read-only connection can never change a domain, whatever it sends', async () => {
    const snapshot = (): string => JSON.stringify(f.fx.host.domains.map((d) => [d.name, d.domid, d.status, d.memoryMiB, d.vcpus]));
    const before = snapshot();
    const postsBefore = f.fx.xend.log.filter((r) => r.method === 'POST').length;
    const writesBefore = ['WRITE', 'RM', 'MKDIR', 'SET_PERMS'].map((t) => f.fx.xenstore.counts.get(XS[t as 'WRITE']) ?? 0);
    const keys = ['web', '1', '5b1f3a52-8c7d-4e2a-9f61-0c1d2e3f4a5b', 'idle', 'Domain-0', '../../x', '', 'db\0', "'; rm -rf /"];
    const uri = parseUri('xen:///');
    const cases: Array<{ what: string; drv: Driver }> = [];
    for (const [privileged, readOnly] of [['user', false], ['user', true], ['root', true]] as const) {
      // Straight at the driver, bypassing the front-end's own read-only check.
      cases.push({ what: `${privileged} readOnly=${readOnly}`, drv: await openXenDriver(uri, { readOnly, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': privileged } }) });
    }
    try {
      for (const { what, drv } of cases) {
        for (const op of WRITE_OPERATIONS) {
          // Every write op must be present (refusing), never silently missing.
          const fn = (drv as unknown as Record<string, ((this: void, ...a: unknown[]) => Promise<unknown>) | undefined>)[op];
          assert.ok(fn !== undefined, `${what}: ${op} missing`);
          for (const key of keys) {
            const args: unknown[] = op === 'define' ? [{ name: key, memoryMiB: 128, vcpus: 1 }] : op === 'restore' ? [`/tmp/${key}`] : op === 'save' ? [key, '/tmp/x.save'] : [key, { force: true }];
            await assert.rejects(fn.apply(drv as never, args), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'), `${what}: ${op}(${JSON.stringify(key)})`);
          }
        }
      }
      // And through the front-end, non-root read-write.
      const c = await openAs('user', false);
      await assert.rejects(c.destroy('web'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      await assert.rejects(c.shutdown('web'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      await c.close();
    } finally {
      for (const { drv } of cases) await drv.close?.();
    }
    assert.equal(snapshot(), before);
    assert.equal(f.fx.xend.log.filter((r) => r.method === 'POST').length, postsBefore, 'no POST reached Xend');
    assert.deepEqual(['WRITE', 'RM', 'MKDIR', 'SET_PERMS'].map((t) => f.fx.xenstore.counts.get(XS[t as 'WRITE']) ?? 0), writesBefore, 'no write reached XenStore');
  });

  void it('falls back in order when a backend is missing, and fails to open with none', async () => {
    // No virt-proxy daemon socket: non-root still reads through Xend and XenStore.
    const c = await openAs('user', true, { 'xen.proxy-socket': `${f.dir}/absent.sock` });
    try {
      const names = (await c.listDomains()).map((d) => d.name);
      assert.deepEqual(names, ['Domain-0', 'web', 'db', 'idle']);
      const bulk = await c.allDomainStats({ groups: ALL_GROUPS });
      assert.equal(bulk.domains.find((d) => d.info.name === 'db')?.info.state, 'blocked');
    } finally {
      await c.close();
    }
    // Root without Xend: the hypervisor still reads, names from XenStore.
    const r = await openAs('root', true, { 'xen.xend-address': `${f.dir}/absent-xend.sock` });
    try {
      assert.deepEqual((await r.listDomains({ inactive: false })).map((d) => d.name), ['Domain-0', 'web', 'db']);
    } finally {
      await r.close();
    }
    await assert.rejects(
      openAs('user', true, { 'xen.proxy-socket': `${f.dir}/a.sock`, 'xen.xend-address': `${f.dir}/b.sock`, 'xen.xenstore-socket': `${f.dir}/c.sock` }),
      (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_CONNECT'),
    );
    await assert.rejects(openAs('root', true, { 'xen.privileged': 'sometimes' }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
  });

  void it('a domain XenStore cannot name is still read; the gap goes into BulkStats.errors', async () => {
    f.fx.host.store.mutate((v) => v.rm('/local/domain/2/name'));
    const c = await openAs('root', true);
    try {
      const bulk = await c.allDomainStats({ groups: ALL_GROUPS });
      assert.deepEqual(bulk.domains.map((d) => d.info.name), ['Domain-0', 'web', 'domain-2']);
      assert.equal(bulk.domains[2]?.info.uuid, 'c0ffee00-1234-4abc-8def-0123456789ab');
      assert.deepEqual(bulk.errors.map((e) => [e.domain, e.code]), [['2', 'VIRT_ERR_NO_DOMAIN']]);
    } finally {
      await c.close();
      f.fx.host.store.mutate((v) => v.write('/local/domain/2/name', Buffer.from('db')));
    }
  });

  void it('survives backend restarts: virt-proxy child, virt-proxy daemon and xenstored', async () => {
    const root = await openAs('root', true);
    const user = await openAs('user', true);
    try {
      const want = (await root.listDomains({ inactive: false })).map((d) => d.name);
      // Kill the --stdio child(ren) of this process: the next read starts a new one.
      const { execFileSync } = await import('node:child_process');
      const pids = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'virt-proxy --stdio'], { encoding: 'utf8' }).trim().split('\n').filter((x) => x !== '');
      assert.ok(pids.length > 0, 'a virt-proxy --stdio child runs');
      for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      const bulk = await root.allDomainStats({ groups: ['state'] });
      assert.deepEqual(bulk.domains.map((d) => d.info.name), want);
      const after = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'virt-proxy --stdio'], { encoding: 'utf8' }).trim().split('\n');
      assert.ok(after.every((p) => !pids.includes(p)), 'a new child was started');

      // The daemon restarts: the non-root connection reconnects.
      for (const c of f.daemons()) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await gone;
      }
      await f.startProxyDaemon();
      assert.deepEqual((await user.listDomains({ inactive: false })).map((d) => d.name), want);
      assert.match(JSON.stringify(await user.allDomainStats({ groups: ['net'] })), /vif2\.1/);

      // xenstored restarts (same data): names still come from it.
      await f.fx.xenstore.close();
      const { startXenStoreServer } = await import('../../fake-xen/xenstore-server.ts');
      const again = await startXenStoreServer(f.fx.host.store, f.fx.paths.xenstoreSocket);
      try {
        const b2 = await root.allDomainStats({ groups: ['memory'] });
        assert.deepEqual(b2.errors, []);
        assert.deepEqual(b2.domains.map((d) => d.info.name), want);
        assert.ok((again.counts.get(2) ?? 0) > 0, 'names were read from the restarted daemon');
      } finally {
        await again.close();
      }
    } finally {
      await root.close();
      await user.close();
    }
  });
});

void describe('xen:/// with a configured xl channel that is not up at open', () => {
  let f: XenFixture;
  before(async () => {
    await buildNative();
    f = await startXenFixture();
  });
  after(async () => {
    await f?.stop();
  });

  void it('keeps the libxl write path and retries the channel, rather than refusing writes for good', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vx-xlchan-'));
    const channel = join(dir, 'xl.sock');
    const settings = { ...f.settings, 'xen.xend-address': join(dir, 'no-xend.sock'), 'xen.xl-channel': channel, 'xen.libxl-config-dir': join(dir, 'store'), 'xen.retry-ms': '50' };
    const drv = (await openXenDriver(parseUri('xen:///'), { readOnly: false, logger: silentLogger, settings })) as Driver & { subDrivers: Array<{ slot: string }> };
    const ran: string[] = [];
    let server: Server | undefined;
    try {
      assert.ok(drv.subDrivers.some((s) => s.slot === 'libxl'), `libxl kept: ${drv.subDrivers.map((s) => s.slot).join(',')}`);
      // The channel comes up later: a relay that answers every xl run with success (xl info with a version).
      server = createServer((sock) => {
        let buf = '';
        sock.setEncoding('utf8');
        sock.on('data', (d: string) => {
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const [id, cmd] = buf.slice(0, i).split(' ');
            buf = buf.slice(i + 1);
            const args = Buffer.from(cmd ?? '', 'base64').toString('utf8').split('\0');
            ran.push(args.join(' '));
            const out = args[0] === 'info' ? 'xen_major : 4\nxen_minor : 17\n' : '';
            sock.write(`${id ?? ''} 0 ${out === '' ? '-' : Buffer.from(out).toString('base64')} -\n`);
          }
        });
      });
      await new Promise<void>((resolve) => server?.listen(channel, resolve));
      const destroy = drv.destroy?.bind(drv);
      assert.ok(destroy !== undefined);
      let done = false;
      for (let i = 0; i < 100 && !done; i++) {
        try {
          await destroy('web');
          done = true;
        } catch (err) {
          assert.ok(isVirtError(err, 'VIRT_ERR_NO_CONNECT'), `while the channel is retried: ${String(err)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.ok(done, 'destroy went through once the channel was up');
      assert.ok(ran.includes('destroy web'), `xl runs: ${ran.join('; ')}`);
    } finally {
      await drv.close?.();
      await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
