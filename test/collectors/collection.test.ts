import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLLECTORS, METRIC_LIST, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import type { Driver } from '../../src/drivers/driver.ts';
import type { BulkStats } from '../../src/drivers/types.ts';
import { renderExposition } from '../../src/http/exposition.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';
import { parseMetrics, valueOf } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

const ALL = new Set<CollectorName>(COLLECTORS);

function driverWith(overrides: Partial<Driver>): { driver: Driver; host: TestHost } {
  const host = new TestHost(structuredClone(DEFAULT_HOST));
  return { driver: { ...createTestDriver(host), ...overrides }, host };
}

async function scrapeOnce(driver: Driver, timeoutMs = 500): Promise<{ text: string; ms: number }> {
  const conn = connectionFor(parseUri('test:///default'), driver, true);
  const c = new Collection(conn, { collectors: ALL, timeoutMs });
  const t0 = performance.now();
  const snap = await c.collect();
  const text = await renderExposition(snap, ALL, { version: 't', errorCounts: c.errorCounts }, undefined, 'text');
  return { text, ms: performance.now() - t0 };
}

function families(text: string): Set<string> {
  return new Set(parseMetrics(text).map((s) => s.name));
}

void describe('Collection', () => {
  void it('a full scrape of the test host passes promtool and has every family', async () => {
    const { driver } = driverWith({});
    const { text } = await scrapeOnce(driver);
    await promtoolCheck(text);
    const names = families(text);
    for (const spec of METRIC_LIST) {
      if (spec.name === 'virt_collection_errors_total') continue; // only after an error
      if (spec.name === 'virt_otel_export_failures_total') continue; // only after a failed OTLP export
      assert.ok(names.has(spec.name), `missing ${spec.name}`);
    }
    const samples = parseMetrics(text);
    for (const s of samples.filter((x) => x.name.startsWith('virt_domain_'))) {
      assert.ok(s.labels.domain !== undefined && s.labels.uuid !== undefined, `${s.name} carries domain and uuid`);
    }
  });

  void it('a part that throws fails alone: its success is 0 and every other family is present', async () => {
    const { driver } = driverWith({ hostInfo: () => Promise.reject(new Error('host read exploded')) });
    const { text } = await scrapeOnce(driver);
    const samples = parseMetrics(text);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'host' }), 0);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'cpu' }), 1);
    assert.equal(valueOf(samples, 'virt_up', { driver: 'test' }), 1);
    assert.equal(valueOf(samples, 'virt_collection_errors_total', { collector: 'host', code: 'VIRT_ERR_OPERATION_FAILED' }), 1);
    const names = families(text);
    assert.ok(!names.has('virt_host_cpus'));
    for (const n of ['virt_domain_cpu_time_seconds_total', 'virt_domain_block_read_bytes_total', 'virt_domain_network_receive_bytes_total', 'virt_domain_state']) assert.ok(names.has(n), n);
    await promtoolCheck(text);
  });

  void it('a part that never answers is cut off at the deadline; the rest still renders', async () => {
    const { driver } = driverWith({ allDomainStats: () => new Promise<BulkStats>(() => undefined) });
    const { text, ms } = await scrapeOnce(driver, 300);
    assert.ok(ms < 3000, `finished in ${ms} ms`);
    const samples = parseMetrics(text);
    for (const c of ['domain', 'cpu', 'vcpu', 'memory', 'block', 'network']) {
      assert.equal(valueOf(samples, 'virt_collector_success', { collector: c }), 0, c);
    }
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'host' }), 1);
    assert.ok(valueOf(samples, 'virt_host_cpus') > 0);
    assert.equal(valueOf(samples, 'virt_collection_errors_total', { collector: 'cpu', code: 'VIRT_ERR_OPERATION_TIMEOUT' }), 1);
    await promtoolCheck(text);
  });

  void it('both parts failing still yields a valid scrape with virt_up 0', async () => {
    const { driver } = driverWith({ hostInfo: () => Promise.reject(new Error('x')), allDomainStats: () => Promise.reject(new Error('y')) });
    const { text } = await scrapeOnce(driver);
    assert.equal(valueOf(parseMetrics(text), 'virt_up', { driver: 'test' }), 0);
    await promtoolCheck(text);
  });

  void it('50 concurrent collections share one driver read', async () => {
    let reads = 0;
    const base = driverWith({});
    const bulk = base.driver.allDomainStats?.bind(base.driver);
    const driver: Driver = {
      ...base.driver,
      allDomainStats: async (opts) => {
        reads++;
        await new Promise((r) => setTimeout(r, 50));
        return bulk!(opts);
      },
    };
    const c = new Collection(connectionFor(parseUri('test:///default'), driver, true), { collectors: ALL, timeoutMs: 2000 });
    const snaps = await Promise.all(Array.from({ length: 50 }, () => c.collect()));
    assert.equal(reads, 1);
    assert.equal(c.collections, 1);
    assert.ok(snaps.every((s) => s === snaps[0]));
    await c.collect();
    assert.equal(reads, 2, 'the next collection reads again');
  });

  void it('per-domain read errors fail that collector without hiding other domains; duplicates are dropped', async () => {
    const base = driverWith({});
    const bulk = base.driver.allDomainStats?.bind(base.driver);
    const driver: Driver = {
      ...base.driver,
      allDomainStats: async (opts) => {
        const r = await bulk!(opts);
        const first = r.domains[0]!;
        return {
          domains: [...r.domains, { ...first, block: [...(first.block ?? []), ...(first.block ?? [])] }],
          errors: [{ domain: 'ghost', code: 'VIRT_ERR_RPC', message: 'garbage from monitor' }, { domain: 'web-2', group: 'block', code: 'VIRT_ERR_OPERATION_TIMEOUT', message: 'slow' }],
        };
      },
    };
    const { text } = await scrapeOnce(driver);
    await promtoolCheck(text);
    const samples = parseMetrics(text);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'domain' }), 0);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'block' }), 0);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'cpu' }), 1);
    assert.equal(valueOf(samples, 'virt_domains'), DEFAULT_HOST.domains.length);
  });

  void it('a failed bulk read reports no domain count (unknown, not zero), and the deadline reaches the driver', async () => {
    let deadline: number | undefined;
    const { driver } = driverWith({
      allDomainStats: (opts) => {
        deadline = opts.deadline;
        return Promise.reject(new Error('daemon gone'));
      },
    });
    const t0 = Date.now();
    const { text } = await scrapeOnce(driver, 700);
    assert.ok(deadline !== undefined && deadline >= t0 + 700 && deadline <= Date.now() + 700, `deadline ${String(deadline)}`);
    const samples = parseMetrics(text);
    assert.equal(valueOf(samples, 'virt_collector_success', { collector: 'domain' }), 0);
    assert.ok(!samples.some((x) => x.name === 'virt_domains'), 'no virt_domains while the list is unknown');
  });

  void it('counts deadline misses per domain and forgets a domain once it is gone', async () => {
    const base = driverWith({});
    const bulk = base.driver.allDomainStats?.bind(base.driver);
    let slow: string | undefined = 'web-1';
    let drop: string | undefined;
    const driver: Driver = {
      ...base.driver,
      allDomainStats: async (opts) => {
        const r = await bulk!(opts);
        return {
          domains: r.domains.filter((d) => d.info.name !== drop),
          errors: slow === undefined ? [] : [{ domain: slow, group: 'block', code: 'VIRT_ERR_OPERATION_TIMEOUT', message: 'monitor stuck' }],
        };
      },
    };
    const conn = connectionFor(parseUri('test:///default'), driver, true);
    const c = new Collection(conn, { collectors: ALL, timeoutMs: 500 });
    const render = async (): Promise<ReturnType<typeof parseMetrics>> => parseMetrics(await renderExposition(await c.collect(), ALL, { version: 't', errorCounts: c.errorCounts }, undefined, 'text'));
    await c.collect();
    let samples = await render();
    assert.equal(valueOf(samples, 'virt_domain_read_timeouts_total', { domain: 'web-1' }), 2);
    assert.equal(valueOf(samples, 'virt_domain_read_timeouts_total', { domain: 'web-2' }), 0);
    slow = undefined;
    samples = await render();
    assert.equal(valueOf(samples, 'virt_domain_read_timeouts_total', { domain: 'web-1' }), 2, 'a counter, it does not fall when the domain recovers');
    drop = 'web-1';
    await c.collect();
    drop = undefined;
    samples = await render();
    assert.equal(valueOf(samples, 'virt_domain_read_timeouts_total', { domain: 'web-1' }), 0, 'a domain that went away starts over');
  });

  void it('max-age serves a finished collection again until it is that old, then collects afresh', async () => {
    const { driver } = driverWith({});
    const c = new Collection(connectionFor(parseUri('test:///default'), driver, true), { collectors: ALL, timeoutMs: 1000, maxAgeMs: 150 });
    const first = await c.collect();
    assert.equal(await c.collect(), first);
    assert.equal(c.collections, 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.notEqual(await c.collect(), first);
    assert.equal(c.collections, 2);
  });

  void it('include/exclude and inactive filters', async () => {
    const { driver } = driverWith({});
    const conn = connectionFor(parseUri('test:///default'), driver, true);
    const c = new Collection(conn, { collectors: ALL, timeoutMs: 1000, include: /^(web|legacy)-/, exclude: /-2$/, inactive: false });
    const snap = await c.collect();
    assert.deepEqual(snap.domains.map((d) => d.info.name), ['web-1']);
  });
});

void describe('Collection logging', () => {
  void it('logs a persistent failure once when it starts and once when it clears', async () => {
    const lines: string[] = [];
    const { createLogger } = await import('../../src/util/logger.ts');
    const logger = createLogger({ level: 'info', write: (l) => lines.push(l) });
    let broken = true;
    const base = driverWith({});
    const driver: Driver = { ...base.driver, hostInfo: () => (broken ? Promise.reject(new Error('no host')) : base.driver.hostInfo!()) };
    const c = new Collection(connectionFor(parseUri('test:///default'), driver, true), { collectors: ALL, timeoutMs: 1000, logger });
    for (let i = 0; i < 5; i++) await c.collect();
    assert.equal(lines.filter((l) => l.includes('collector read failed')).length, 1);
    broken = false;
    await c.collect();
    await c.collect();
    assert.equal(lines.filter((l) => l.includes('collector read recovered')).length, 1);
    assert.equal(valueOf(parseMetrics(await renderExposition(await c.collect(), ALL, { version: 't', errorCounts: c.errorCounts }, undefined, 'text')), 'virt_collection_errors_total', { collector: 'host', code: 'VIRT_ERR_OPERATION_FAILED' }), 5);
  });
});
