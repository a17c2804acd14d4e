import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateHost } from '../../../src/drivers/test/default-host.ts';
import { createTestDriver, resetTestHosts, TestHost } from '../../../src/drivers/test/driver.ts';
import { parseHostFile } from '../../../src/drivers/test/host-file.ts';
import { STATS_GROUPS } from '../../../src/drivers/types.ts';
import { connectionFor, open } from '../../../src/virt/connection.ts';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';
import { parseUri } from '../../../src/virt/uri.ts';

/** A test host on a hand-driven clock, so counter growth is exact. */
function clockHost(file = parseHostFile({ domains: [{ name: 'a', memoryMiB: 512, vcpus: 2, load: 0.5, disks: [{ path: '/d/a.img' }], nics: [{}] }, { name: 'b', state: 'paused', memoryMiB: 256, vcpus: 1 }, { name: 'c', state: 'shutoff', memoryMiB: 256, vcpus: 1 }] })) {
  let t = 1_000_000_000_000;
  const host = new TestHost(file, () => t);
  const conn = connectionFor(parseUri('test:///default'), createTestDriver(host), false);
  return { host, conn, advance: (ms: number) => (t += ms) };
}

const rejectsWith = (p: Promise<unknown>, code: VirtErrorCode) => assert.rejects(p, (err: unknown) => isVirtError(err, code));

void describe('test driver', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-test-driver-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    resetTestHosts();
  });

  void it('test:///default has running, paused and shut-off domains with devices', async () => {
    const conn = await open('test:///default', { readOnly: true });
    const stats = await conn.allDomainStats({ groups: STATS_GROUPS });
    const states = new Set(stats.domains.map((d) => d.info.state));
    for (const s of ['running', 'paused', 'shutoff']) assert.ok(states.has(s as never), `has a ${s} domain`);
    const running = stats.domains.find((d) => d.info.state === 'running' && (d.block?.length ?? 0) > 0 && (d.net?.length ?? 0) > 0);
    assert.ok(running, 'a running domain with disks and NICs');
    assert.ok((running.vcpus?.length ?? 0) > 0);
    assert.ok(running.memory?.guest?.totalBytes !== undefined);
    assert.ok(stats.domains.some((d) => d.net?.some((n) => n.counters === null)), 'a user-mode NIC without counters');
  });

  void it('counters advance with run time and never decrease; a paused domain accrues no CPU', async () => {
    const { conn, advance } = clockHost();
    const read = async () => new Map((await conn.allDomainStats({ groups: STATS_GROUPS })).domains.map((d) => [d.info.name, d]));
    let prev = await read();
    for (let i = 0; i < 50; i++) {
      advance(7_000 + i * 1_000);
      const cur = await read();
      const a0 = prev.get('a');
      const a1 = cur.get('a');
      assert.ok(a0 && a1);
      assert.ok(a1.info.cpuTimeSeconds > a0.info.cpuTimeSeconds, 'running CPU grows');
      const b0 = a0.block?.[0];
      const b1 = a1.block?.[0];
      assert.ok(b0 && b1 && b1.readBytes >= b0.readBytes && b1.writeBytes > b0.writeBytes && b1.readRequests >= b0.readRequests);
      const n0 = a0.net?.[0]?.counters;
      const n1 = a1.net?.[0]?.counters;
      assert.ok(n0 && n1 && n1.rxBytes > n0.rxBytes && n1.txPackets >= n0.txPackets);
      for (const [k, v] of (a1.vcpus ?? []).entries()) assert.ok((v.timeSeconds ?? 0) >= (a0.vcpus?.[k]?.timeSeconds ?? 0));
      assert.equal(cur.get('b')?.info.cpuTimeSeconds, prev.get('b')?.info.cpuTimeSeconds, 'paused CPU is frozen');
      assert.equal(cur.get('c')?.info.cpuTimeSeconds, 0);
      prev = cur;
    }
    // Domain a booted 1 h before load and ran 1575 s more: CPU time lies between
    // half its mean load and its 2 vCPUs' full capacity over that time.
    const a = prev.get('a');
    const seconds = 3600 + 1575;
    assert.ok(a && a.info.cpuTimeSeconds > 0.5 * 0.5 * 2 * seconds && a.info.cpuTimeSeconds < 2 * seconds, String(a?.info.cpuTimeSeconds));
  });

  void it('lifecycle behaves as a hypervisor would', async () => {
    const { conn, advance } = clockHost();
    await rejectsWith(conn.destroy('c'), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.resume('a'), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.start('a'), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.suspend('b'), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.undefine('a'), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.start('nope'), 'VIRT_ERR_NO_DOMAIN');

    await conn.suspend('a');
    assert.equal((await conn.domainInfo('a')).state, 'paused');
    const frozen = (await conn.domainInfo('a')).cpuTimeSeconds;
    advance(60_000);
    assert.equal((await conn.domainInfo('a')).cpuTimeSeconds, frozen);
    await conn.resume('a');
    advance(60_000);
    assert.ok((await conn.domainInfo('a')).cpuTimeSeconds > frozen);

    await conn.start('c');
    const c = await conn.domainInfo('c');
    assert.equal(c.state, 'running');
    assert.ok(c.id !== null);
    assert.equal((await conn.lookupDomain(String(c.id))).name, 'c');
    await conn.reboot('c');
    await conn.shutdown('c');
    assert.equal((await conn.domainInfo('c')).state, 'shutoff');
    assert.equal((await conn.domainInfo('c')).id, null);
    await conn.undefine('c');
    await rejectsWith(conn.domainInfo('c'), 'VIRT_ERR_NO_DOMAIN');

    const ref = await conn.define({ name: 'fresh', memoryMiB: 128, vcpus: 1 });
    assert.equal((await conn.domainInfo(ref.uuid)).state, 'shutoff');
    await rejectsWith(conn.define({ name: 'fresh', memoryMiB: 128, vcpus: 1 }), 'VIRT_ERR_DOM_EXIST');
    await rejectsWith(conn.define({ name: 'bad name!', memoryMiB: 128, vcpus: 1 }), 'VIRT_ERR_XML_ERROR');
    await rejectsWith(conn.define({ name: 'x', memoryMiB: 128, vcpus: 1, colour: 'red' }), 'VIRT_ERR_XML_ERROR');
  });

  void it('save stops the domain; restore brings it back in its saved state with its counters', async () => {
    const { conn, advance } = clockHost();
    advance(30_000);
    await conn.suspend('a');
    const before = await conn.domainInfo('a');
    const file = join(dir, 'a.save');
    await conn.save('a', file);
    assert.equal((await conn.domainInfo('a')).state, 'shutoff');
    await rejectsWith(conn.save('a', join(dir, 'again.save')), 'VIRT_ERR_OPERATION_INVALID');
    await rejectsWith(conn.save('b', 'relative.save'), 'VIRT_ERR_INVALID_ARG');
    advance(30_000);
    const ref = await conn.restore(file);
    assert.equal(ref.name, 'a');
    const after = await conn.domainInfo('a');
    assert.equal(after.state, 'paused');
    assert.equal(after.cpuTimeSeconds, before.cpuTimeSeconds);
    await rejectsWith(conn.restore(file), 'VIRT_ERR_OPERATION_INVALID');
    const junk = join(dir, 'junk.save');
    await writeFile(junk, '{"format":"something else"}');
    await rejectsWith(conn.restore(junk), 'VIRT_ERR_INVALID_ARG');
    await rejectsWith(conn.restore(join(dir, 'missing.save')), 'VIRT_ERR_INVALID_ARG');
  });

  void it('loads a host file and names the bad field of a broken one', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ host: { cpus: 4 }, domains: [{ name: 'one', memoryMiB: 64, vcpus: 1 }] }));
    const conn = await open(`test://${good}`, { readOnly: true });
    assert.deepEqual((await conn.listDomains()).map((d) => d.name), ['one']);
    assert.equal((await conn.hostInfo()).cpus, 4);

    const cases: Array<[string, string, VirtErrorCode, RegExp]> = [
      ['syntax.json', '{"domains": [', 'VIRT_ERR_XML_ERROR', /not valid JSON/],
      ['field.json', JSON.stringify({ domains: [{ name: 'ok', memoryMiB: 'lots', vcpus: 1 }] }), 'VIRT_ERR_XML_ERROR', /\$\.domains\[0\]\.memoryMiB: expected a number, got "lots"/],
      ['unknown.json', JSON.stringify({ domains: [], extra: 1 }), 'VIRT_ERR_XML_ERROR', /\$\.extra: unknown key/],
      ['dup.json', JSON.stringify({ domains: [{ name: 'x', memoryMiB: 1, vcpus: 1 }, { name: 'x', memoryMiB: 1, vcpus: 1 }] }), 'VIRT_ERR_XML_ERROR', /duplicate domain name "x"/],
      ['state.json', JSON.stringify({ domains: [{ name: 'x', memoryMiB: 1, vcpus: 1, state: 'flying' }] }), 'VIRT_ERR_XML_ERROR', /state: expected one of running, paused, shutoff, got "flying"/],
    ];
    for (const [name, text, code, message] of cases) {
      const path = join(dir, name);
      await writeFile(path, text);
      await assert.rejects(open(`test://${path}`, { readOnly: true }), (err: unknown) => {
        assert.ok(isVirtError(err, code), `${name}: ${String(err)}`);
        assert.match(err.message, message);
        assert.match(err.message, new RegExp(name.replace('.', '\\.')));
        return true;
      });
    }
    await assert.rejects(open(`test://${join(dir, 'absent.json')}`, { readOnly: true }), (err: unknown) => isVirtError(err, 'VIRT_ERR_NO_CONNECT'));
  });

  void it('holds 10,000 domains', async () => {
    const host = new TestHost(parseHostFile(JSON.parse(JSON.stringify(generateHost(10_000)))));
    const conn = connectionFor(parseUri('test:///default'), createTestDriver(host), true);
    const stats = await conn.allDomainStats({ groups: STATS_GROUPS });
    assert.equal(stats.domains.length, 10_000);
    assert.equal(new Set(stats.domains.map((d) => d.info.uuid)).size, 10_000);
  });
});
