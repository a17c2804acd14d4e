import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, type Gauge, type Registry } from 'prom-client';

/**
 * The exporter's process metrics (prom-client's default set), without the
 * cost prom-client's defaults have when nobody scrapes: its event-loop delay
 * histogram samples every 10 ms for the life of the process (about 6 ms of
 * CPU per second on its own). Here the loop is sampled (a 1 ms interval
 * timer: each turn records how late it came) only while a scrape is in
 * flight, so an idle exporter wakes for nothing. The nodejs_eventloop_lag_*
 * gauges keep their names and help and report the delays recorded since the
 * previous scrape read them: that scrape's tail (rendering, compressing,
 * sending) and this one's collection; 0 when nothing was recorded.
 */

/** Marks the time a scrape is in flight; begin and end pair up, scrapes may overlap. */
export interface ScrapeWindow {
  begin(): void;
  end(): void;
}

/** Longest period a libuv timer takes: prom-client's own histogram then never samples (it is replaced below). */
const NEVER_MS = 2 ** 31 - 1;
/** Sampling period during scrapes: fine enough for scrapes of a few milliseconds. */
const RESOLUTION_MS = 1;
const RESOLUTION_NS = BigInt(RESOLUTION_MS * 1e6);

const LAG = 'nodejs_eventloop_lag_seconds';
const STATS: ReadonlyArray<readonly [string, (h: RecordableHistogram) => number]> = [
  ['nodejs_eventloop_lag_min_seconds', (h) => h.min],
  ['nodejs_eventloop_lag_max_seconds', (h) => h.max],
  ['nodejs_eventloop_lag_mean_seconds', (h) => h.mean],
  ['nodejs_eventloop_lag_stddev_seconds', (h) => h.stddev],
  ['nodejs_eventloop_lag_p50_seconds', (h) => h.percentile(50)],
  ['nodejs_eventloop_lag_p90_seconds', (h) => h.percentile(90)],
  ['nodejs_eventloop_lag_p99_seconds', (h) => h.percentile(99)],
];

const windows = new WeakMap<Registry, ScrapeWindow>();

/** A window that measures nothing (a registry without process metrics). */
const NO_WINDOW: ScrapeWindow = { begin: () => undefined, end: () => undefined };

/** The scrape window of a registry set up by registerProcessMetrics (a no-op for any other). */
export function scrapeWindowOf(registry: Registry | undefined): ScrapeWindow {
  return (registry !== undefined ? windows.get(registry) : undefined) ?? NO_WINDOW;
}

/** Registers prom-client's default metrics on `registry`, with event-loop delay sampled during scrapes only. */
export function registerProcessMetrics(registry: Registry): ScrapeWindow {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: NEVER_MS });
  const histogram = createHistogram();
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  let prev = 0n;
  const tick = (): void => {
    const now = process.hrtime.bigint();
    // How much later than scheduled this turn came (at least 1 ns: the histogram records positive values).
    const late = now - prev - RESOLUTION_NS;
    histogram.record(late > 0n ? late : 1n);
    prev = now;
  };
  const window: ScrapeWindow = {
    begin: () => {
      if (open++ > 0) return;
      prev = process.hrtime.bigint();
      timer = setInterval(tick, RESOLUTION_MS);
      timer.unref();
    },
    end: () => {
      if (open === 0) return;
      if (--open > 0) return;
      // A turn overdue when the last scrape ends (a block just before it) counts too.
      if (process.hrtime.bigint() - prev > RESOLUTION_NS) tick();
      clearInterval(timer);
      timer = undefined;
    },
  };
  const lag = registry.getSingleMetric(LAG) as (Gauge & { collect?: () => void }) | undefined;
  const stats = STATS.map(([name, read]) => [registry.getSingleMetric(name) as Gauge | undefined, read] as const);
  if (lag !== undefined) {
    lag.collect = () => {
      // As prom-client: the delay until the next turn of the loop, reported on the next scrape.
      const start = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / 1e9));
      const recorded = histogram.count > 0;
      for (const [gauge, read] of stats) gauge?.set(recorded ? read(histogram) / 1e9 : 0);
      histogram.reset();
    };
  }
  windows.set(registry, window);
  return window;
}
