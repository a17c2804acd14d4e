import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { registerProcessMetrics, scrapeWindowOf } from '../../src/collectors/process-metrics.ts';

async function value(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  assert.ok(m !== undefined, `${name} is registered`);
  return (await m.get()).values[0]?.value ?? NaN;
}

/** Keeps the event loop busy for `ms`, then lets the loop turn a few times. */
async function block(ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2));
}

void describe('process metrics', () => {
  void it("keeps prom-client's default metric names, in prom-client's order", async () => {
    const ours = new Registry();
    registerProcessMetrics(ours);
    const theirs = new Registry();
    const { collectDefaultMetrics } = await import('prom-client');
    collectDefaultMetrics({ register: theirs });
    assert.deepEqual((await ours.getMetricsAsJSON()).map((m) => m.name), (await theirs.getMetricsAsJSON()).map((m) => m.name));
  });

  void it('records event-loop delay only inside a scrape window, and reports 0 when nothing was recorded', async () => {
    const registry = new Registry();
    const window = registerProcessMetrics(registry);
    assert.equal(scrapeWindowOf(registry), window);
    // Outside a window a blocked loop is not measured.
    await block(30);
    await registry.metrics();
    assert.equal(await value(registry, 'nodejs_eventloop_lag_max_seconds'), 0);
    assert.equal(await value(registry, 'nodejs_eventloop_lag_p99_seconds'), 0);

    window.begin();
    window.begin(); // overlapping scrapes
    await block(40);
    window.end();
    await block(1);
    window.end();
    await registry.metrics();
    const max = await value(registry, 'nodejs_eventloop_lag_max_seconds');
    assert.ok(max >= 0.02 && max < 10, `max delay ${max} s after a 40 ms block`);
    assert.ok((await value(registry, 'nodejs_eventloop_lag_min_seconds')) <= max);

    // Read once: the next scrape starts from nothing again.
    await registry.metrics();
    assert.equal(await value(registry, 'nodejs_eventloop_lag_max_seconds'), 0);
    window.end(); // an unpaired end is ignored
  });

  void it('a registry without process metrics has a window that does nothing', () => {
    const w = scrapeWindowOf(new Registry());
    w.begin();
    w.end();
    assert.equal(scrapeWindowOf(undefined), w);
  });
});
