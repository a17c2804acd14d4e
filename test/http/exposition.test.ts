import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import { Exposition, type Rendered } from '../../src/http/exposition.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { parseMetrics, valueOf } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

const ALL = new Set<CollectorName>(COLLECTORS);

function text(r: Rendered): string {
  const t = Buffer.concat(r.chunks).toString('utf8');
  r.release();
  return t;
}

async function snapshotOf(host: TestHost) {
  const c = new Collection(connectionFor(parseUri('test:///default'), createTestDriver(host), true), { collectors: ALL, timeoutMs: 2000 });
  return { snap: await c.collect(), errorCounts: c.errorCounts };
}

void describe('Exposition', () => {
  void it('escapes hostile label values so the scrape stays valid', async () => {
    const file = structuredClone(DEFAULT_HOST);
    const host = new TestHost(file);
    const { snap, errorCounts } = await snapshotOf(host);
    const d = snap.domains[0]!;
    d.info.name = 'evil"name\\with\nnewline';
    const body = text(await new Exposition().render(snap, ALL, { version: 't', errorCounts }, undefined, 'text'));
    await promtoolCheck(body);
    assert.ok(parseMetrics(body).some((s) => s.labels.domain === 'evil"name\\with\nnewline'));
  });

  void it('--compat=libvirt-exporter adds alias series with the same values, and stays promtool-clean', async () => {
    const { snap, errorCounts } = await snapshotOf(new TestHost(structuredClone(DEFAULT_HOST)));
    const native = parseMetrics(text(await new Exposition().render(snap, ALL, { version: 't', errorCounts }, undefined, 'text')));
    const body = text(await new Exposition('libvirt-exporter').render(snap, ALL, { version: 't', errorCounts }, undefined, 'text'));
    await promtoolCheck(body);
    const withAliases = parseMetrics(body);
    assert.equal(
      valueOf(withAliases, 'libvirt_domain_block_stats_read_bytes_total', { domain: 'db-1', target_device: 'vdb' }),
      valueOf(native, 'virt_domain_block_read_bytes_total', { domain: 'db-1', device: 'vdb' }),
    );
    assert.equal(valueOf(withAliases, 'libvirt_domain_info_cpu_time_seconds_total', { domain: 'web-1' }), valueOf(native, 'virt_domain_cpu_time_seconds_total', { domain: 'web-1' }));
    assert.ok(withAliases.filter((s) => s.name.startsWith('libvirt_')).every((s) => s.labels.uuid === undefined));
    assert.equal(native.filter((s) => s.name.startsWith('libvirt_')).length, 0, 'no aliases by default');
    // Every native series is still there.
    assert.equal(withAliases.filter((s) => s.name.startsWith('virt_')).length, native.filter((s) => s.name.startsWith('virt_')).length);
  });

  void it('a lent body stays intact while other snapshots render; shared snapshots share one body; released buffers are reused', async () => {
    const host = new TestHost(structuredClone(DEFAULT_HOST));
    const c = new Collection(connectionFor(parseUri('test:///default'), createTestDriver(host), true), { collectors: ALL, timeoutMs: 2000 });
    const e = new Exposition();
    const state = { version: 't', errorCounts: c.errorCounts };
    const s1 = await c.collect();
    const a = await e.render(s1, ALL, state, undefined, 'text');
    const b = await e.render(s1, ALL, state, undefined, 'text');
    assert.equal(a.chunks, b.chunks, 'one body per snapshot and format');
    const before = Buffer.concat(a.chunks).toString();
    await new Promise((r) => setTimeout(r, 20));
    const s2 = await c.collect();
    const other = await e.render(s2, ALL, state, undefined, 'text');
    assert.notEqual(Buffer.concat(other.chunks).toString(), before, 'a later snapshot differs');
    assert.equal(Buffer.concat(a.chunks as Buffer[]).toString(), before, 'the lent body was not overwritten');
    a.release();
    assert.equal(Buffer.concat(b.chunks as Buffer[]).toString(), before, 'still lent to b');
    b.release();
    other.release();
    // With every lease back, a render of the first snapshot renders afresh into pooled buffers.
    const again = await e.render(s1, ALL, state, undefined, 'text');
    assert.equal(Buffer.concat(again.chunks as Buffer[]).toString(), before);
    again.release();
  });
});
