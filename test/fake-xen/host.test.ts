import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeXenHost, domainFlags, vbdDevid } from './host.ts';

void describe('fake Xen host state files (the stub libxenctrl contract)', () => {
  let dir: string;
  let host: FakeXenHost;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-fakehost-test-'));
    host = new FakeXenHost({ dir });
    host.changed();
    await host.flushed();
  });
  after(async () => {
    await host.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('writes the host and dom lines in the agreed format', async () => {
    const lines = (await readFile(host.statePath, 'utf8')).trimEnd().split('\n');
    assert.equal(lines[0], 'host cpus=4 mhz=2400 nodes=1 sockets=1 cores=4 threads=1 total_pages=4194304 free_pages=1048576 version=4.17.0');
    assert.equal(lines[1], 'dom domid=0 uuid=00000000-0000-0000-0000-000000000000 flags=0x20 tot_pages=262144 max_pages=262144 cpu_time_ns=123456789 online_vcpus=2 max_vcpu_id=1');
    for (const l of lines.slice(1)) {
      assert.match(l, /^dom domid=\d+ uuid=[0-9a-f-]{36} flags=0x[0-9a-f]+ tot_pages=\d+ max_pages=\d+ cpu_time_ns=\d+ online_vcpus=\d+ max_vcpu_id=-?\d+$/);
    }
    assert.equal(lines.length, 4, 'dom0, web, db; the halted managed domain has no line');
    assert.match(lines[3] ?? '', /^dom domid=2 .* flags=0x10 tot_pages=262144 max_pages=524288 /);
    assert.equal(host.writeError, undefined);
  });

  void it('writes vbd statistics and a /proc/net/dev with host-view (swapped) vif counters', async () => {
    host.advance(10);
    await host.flushed();
    const devices = (await readdir(join(host.sysfsRoot, 'bus/xen-backend/devices'))).sort();
    assert.deepEqual(devices, ['vbd-1-51712', 'vbd-2-51712', 'vbd-2-51728']);
    const stats = join(host.sysfsRoot, 'bus/xen-backend/devices/vbd-2-51728/statistics');
    const disk = host.get('db').disks[1];
    assert.ok(disk !== undefined);
    for (const k of ['rd_req', 'wr_req', 'rd_sect', 'wr_sect', 'oo_req'] as const) {
      assert.equal(Number(await readFile(join(stats, k), 'utf8')), disk.stats[k]);
    }
    const netdev = await readFile(host.procNetDev, 'utf8');
    const nic = host.get('db').nics[0];
    assert.ok(nic !== undefined && nic.rxBytes !== nic.txBytes);
    const line = netdev.split('\n').find((l) => l.trim().startsWith('vif2.0:'));
    const cols = line?.split(':')[1]?.trim().split(/\s+/).map(Number);
    assert.equal(cols?.length, 16);
    assert.equal(cols?.[0], nic.txBytes, 'host receive = guest transmit');
    assert.equal(cols?.[8], nic.rxBytes, 'host transmit = guest receive');
  });

  void it('reflects lifecycle changes and never decreases counters', async () => {
    const cpu = host.get('web').cpuTimeNs;
    host.pause('web');
    await host.flushed();
    assert.match(await readFile(host.statePath, 'utf8'), /dom domid=1 \S+ flags=0x8 /);
    host.advance(5);
    assert.equal(host.get('web').cpuTimeNs, cpu, 'a paused domain accrues no CPU time');
    host.unpause('web');
    host.advance(5);
    assert.ok(host.get('web').cpuTimeNs > cpu);
    host.destroy('web');
    await host.flushed();
    const text = await readFile(host.statePath, 'utf8');
    assert.doesNotMatch(text, /domid=1 /);
    assert.deepEqual((await readdir(join(host.sysfsRoot, 'bus/xen-backend/devices'))).sort(), ['vbd-2-51712', 'vbd-2-51728']);
    assert.equal(host.store.live.find('/local/domain/1'), undefined);
    assert.doesNotMatch(await readFile(host.procNetDev, 'utf8'), /vif1\./);
  });

  void it('encodes flags and vbd numbers as Xen does', () => {
    assert.equal(vbdDevid('xvda'), 51712);
    assert.equal(vbdDevid('xvdb'), 51728);
    const d = host.get('db');
    assert.equal(domainFlags({ ...d, status: 'shutdown', shutdownReason: 1 }), 0x4 | (1 << 16));
    assert.equal(domainFlags({ ...d, status: 'crashed' }), 0x4 | (3 << 16));
    assert.equal(domainFlags({ ...d, status: 'running', osType: 'hvm' }), 0x22);
  });
});
