import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STATS_GROUPS } from '../../src/drivers/types.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { checkBulkStats } from '../../src/virt/readings.ts';
import { parseUri } from '../../src/virt/uri.ts';

const good = () => ({
  info: { name: 'a', uuid: 'u-1', id: 3, state: 'running', maxMemoryBytes: 10, memoryBytes: 5, vcpus: 1, cpuTimeSeconds: 1.5 },
  block: [{ device: 'vda', readBytes: 1, writeBytes: 2, readRequests: 3, writeRequests: 4 }],
  net: [{ interface: 'vnet0', counters: null }],
});

void describe('checkBulkStats (the front-end boundary for bulk readings)', () => {
  void it('passes a well-formed reading through untouched', () => {
    const r = checkBulkStats({ domains: [good()], errors: [] }, 'x');
    assert.deepEqual(r, { domains: [good()], errors: [] });
  });

  void it('drops malformed domains with a VIRT_ERR_RPC entry naming them, keeping the others', () => {
    const bad = [
      null,
      { info: null },
      { info: { ...good().info, state: 'exploded' } },
      { info: { ...good().info, name: 'b', cpuTimeSeconds: 'lots' } },
      { info: { ...good().info, name: 7 } },
      { info: { ...good().info, name: 'c', maxMemoryBytes: Infinity } },
    ];
    const r = checkBulkStats({ domains: [good(), ...bad], errors: [{ code: 'VIRT_ERR_OPERATION_TIMEOUT', message: 'slow', domain: 'z' }, 'junk'] }, 'x');
    assert.deepEqual(r.domains.map((d) => d.info.name), ['a']);
    assert.equal(r.errors.length, 1 + bad.length);
    assert.equal(r.errors[0]?.code, 'VIRT_ERR_OPERATION_TIMEOUT');
    assert.ok(r.errors.slice(1).every((e) => e.code === 'VIRT_ERR_RPC'));
    assert.deepEqual(r.errors.filter((e) => e.domain !== undefined).map((e) => e.domain), ['z', 'a', 'b', 'c']);
  });

  void it('prunes malformed devices and groups but keeps the domain', () => {
    const d = {
      ...good(),
      block: [{ device: 'vda', readBytes: 1, writeBytes: 2, readRequests: 3, writeRequests: 4 }, { device: 'vdb', readBytes: '1' }, 'x'],
      net: [{ interface: 'vnet0', counters: { rxBytes: 1 } }, { interface: 'vnet1', counters: null }],
      vcpus: [{ id: 0, state: 'running', timeSeconds: 1 }, { id: 1, state: 'dancing' }],
      memory: { maximumBytes: 1, currentBytes: 1, guest: { freeBytes: 'no' } },
      cpu: { userSeconds: 'x' },
    };
    const r = checkBulkStats({ domains: [d] }, 'x');
    const out = r.domains[0]!;
    assert.deepEqual(out.block?.map((b) => b.device), ['vda']);
    assert.deepEqual(out.net?.map((n) => n.interface), ['vnet1']);
    assert.deepEqual(out.vcpus?.map((v) => v.id), [0]);
    assert.equal(out.memory?.guest, undefined);
    assert.equal(out.cpu, undefined);
  });

  void it('a reply without a domain list is one error, not a crash', () => {
    for (const raw of [undefined, 'garbage', { domains: 'x' }]) {
      const r = checkBulkStats(raw, 'x');
      assert.deepEqual(r.domains, []);
      assert.equal(r.errors[0]?.code, 'VIRT_ERR_RPC');
    }
  });

  void it('Connection.allDomainStats applies it to whatever the driver returns', async () => {
    const host = new TestHost(structuredClone(DEFAULT_HOST));
    const base = createTestDriver(host);
    const conn = connectionFor(parseUri('test:///default'), {
      ...base,
      allDomainStats: async (o) => {
        const r = await base.allDomainStats!(o);
        (r.domains[0]!.info as unknown as Record<string, unknown>).state = 'bogus';
        return r;
      },
    }, true);
    const r = await conn.allDomainStats({ groups: STATS_GROUPS });
    assert.equal(r.domains.length, DEFAULT_HOST.domains.length - 1);
    assert.equal(r.errors.length, 1);
  });
});
