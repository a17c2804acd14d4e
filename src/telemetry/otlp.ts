import { hostname } from 'node:os';
import type { BatchObservableResult, Observable } from '@opentelemetry/api';
import { AggregationTemporalityPreference, OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { METRIC_LIST, type CollectorName, type MetricSpec } from '../collectors/catalogue.ts';
import type { Collection } from '../collectors/collection.ts';
import { collectExporter } from '../collectors/exporter.ts';
import { COLLECTOR_FNS } from '../collectors/index.ts';
import type { Sample } from '../collectors/snapshot.ts';
import type { Logger } from '../util/logger.ts';
import { toAttributes } from './attributes.ts';
import { FailureLog } from './failure-log.ts';
import { CurrentSeriesExporter, seriesKey } from './push-exporter.ts';
import { readOtlpConfig, redactUrl, type TelemetrySettings } from './settings.ts';

export interface OtlpPushOptions {
  /** The 'telemetry.*' settings. */
  settings: TelemetrySettings;
  /** The collection the Prometheus endpoint reads too (in-flight reads are shared). */
  collection: Pick<Collection, 'collect' | 'errorCounts'>;
  collectors: ReadonlySet<CollectorName>;
  logger: Logger;
  version: string;
  /** Vanished series tolerated before the SDK state is rebuilt (default 10000); lower in tests. */
  churnLimit?: number;
}

export interface OtlpPush {
  /** Stops the timer, pushes once more, and waits for it (bounded by otlp-timeout). */
  close(): Promise<void>;
}

/** Series one instrument may have; beyond it the SDK folds new ones into one overflow series. */
const CARDINALITY_LIMIT = 100_000;
/** Vanished series remembered before the pipeline is rebuilt (and only when they outnumber live ones). */
const DEFAULT_CHURN_LIMIT = 10_000;

/** Instruments for the catalogue metrics the enabled collectors (and the exporter itself) produce. */
function createInstruments(meter: ReturnType<MeterProvider['getMeter']>, collectors: ReadonlySet<CollectorName>): Map<MetricSpec, Observable> {
  const out = new Map<MetricSpec, Observable>();
  for (const spec of METRIC_LIST) {
    if (spec.collector !== 'exporter' && !collectors.has(spec.collector)) continue;
    const options = { description: spec.help, unit: spec.otel.unit };
    out.set(spec, spec.type === 'counter' ? meter.createObservableCounter(spec.otel.name, options) : meter.createObservableGauge(spec.otel.name, options));
  }
  return out;
}

/**
 * Starts pushing the catalogue's metrics over OTLP/HTTP (JSON) every
 * otlp-interval; undefined when no endpoint is configured. Each export cycle
 * reads ONE snapshot through the shared Collection and turns it into
 * observations with the same collector functions the Prometheus renderer uses.
 * Throws VIRT_ERR_CONFIG for bad settings; an unreachable endpoint only logs.
 */
export function startOtlpPush(opts: OtlpPushOptions): Promise<OtlpPush | undefined> {
  let config: ReturnType<typeof readOtlpConfig>;
  try {
    config = readOtlpConfig(opts.settings);
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  if (config === undefined) return Promise.resolve(undefined);
  const log = opts.logger.child({ component: 'otlp' });
  const resource = resourceFromAttributes({
    'service.name': 'virt-exporter',
    'service.version': opts.version,
    'host.name': hostname(),
    ...config.resourceAttributes,
  });
  const failures = new FailureLog({ logger: log });
  const churnLimit = opts.churnLimit ?? DEFAULT_CHURN_LIMIT;

  let closed: Promise<void> | undefined;
  let retiring: Promise<void> = Promise.resolve();
  let pipeline: Pipeline;
  const onChurn = (stale: number): void => {
    // Not from inside the callback: shutting a provider down waits for the export in progress.
    setTimeout(() => {
      if (closed !== undefined) return;
      log.info('OTLP pipeline rebuilt to forget vanished series', { stale_series: stale });
      const old = pipeline;
      pipeline = createPipeline(opts, config, resource, failures, churnLimit, onChurn);
      retiring = Promise.all([retiring, old.retire()]).then(() => undefined, () => undefined);
    }, 0);
  };
  pipeline = createPipeline(opts, config, resource, failures, churnLimit, onChurn);

  log.info('OTLP push started', { endpoint: redactUrl(config.url), interval_ms: config.intervalMs, timeout_ms: config.timeoutMs });
  return Promise.resolve({
    close: () => {
      closed ??= Promise.all([pipeline.shutdown(), retiring]).then(
        () => undefined,
        (err: unknown) => log.warn('OTLP push shutdown failed', { err }),
      );
      return closed;
    },
  });
}

interface Pipeline {
  /** Final push, then stop. */
  shutdown(): Promise<void>;
  /** Stop without pushing again (a newer pipeline has taken over). */
  retire(): Promise<void>;
}

/**
 * One MeterProvider with its reader and exporter. The SDK remembers every
 * attribute set an observable ever reported; when vanished series outnumber
 * live ones (domain churn), the pipeline is replaced by a fresh one so that
 * memory stays bounded by what exists now.
 */
function createPipeline(
  opts: OtlpPushOptions,
  config: NonNullable<ReturnType<typeof readOtlpConfig>>,
  resource: ReturnType<typeof resourceFromAttributes>,
  failures: FailureLog,
  churnLimit: number,
  onChurn: (stale: number) => void,
): Pipeline {
  const otlp = new OTLPMetricExporter({
    url: config.url,
    headers: config.headers,
    timeoutMillis: config.timeoutMs,
    temporalityPreference: AggregationTemporalityPreference.CUMULATIVE,
  });
  const exporter = new CurrentSeriesExporter(otlp, failures);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: config.intervalMs,
    // Collection has its own deadline (collect.timeout); the request its own (otlp-timeout).
    exportTimeoutMillis: config.intervalMs,
    cardinalityLimits: { default: CARDINALITY_LIMIT },
  });
  const provider = new MeterProvider({ resource, readers: [reader] });
  const meter = provider.getMeter('virt-exporter', opts.version);
  const instruments = createInstruments(meter, opts.collectors);
  const enabled = (Object.keys(COLLECTOR_FNS) as CollectorName[]).filter((c) => opts.collectors.has(c));
  const everSeen = new Set<string>();
  let retired = false;
  let churnReported = false;
  let observeFailures = 0;

  const observe = async (result: BatchObservableResult): Promise<void> => {
    if (retired) return;
    const current = new Set<string>();
    try {
      const snapshot = await opts.collection.collect();
      const emit = (s: Sample): void => {
        const instrument = instruments.get(s.metric);
        if (instrument === undefined) return;
        const attributes = toAttributes(s.metric, s.labels);
        result.observe(instrument, s.value, attributes);
        current.add(seriesKey(s.metric.otel.name, attributes));
      };
      collectExporter(snapshot, { version: opts.version, errorCounts: opts.collection.errorCounts }, emit);
      for (const name of enabled) COLLECTOR_FNS[name](snapshot, emit);
    } catch (err) {
      // A bug, not an outage: the SDK would swallow it, so say it (once loudly) and send nothing stale.
      if (observeFailures++ === 0) opts.logger.error('OTLP observation failed', { component: 'otlp', err });
      else opts.logger.debug('OTLP observation failed', { component: 'otlp', err });
      exporter.setCurrent(new Set());
      throw err;
    }
    exporter.setCurrent(current);
    for (const k of current) everSeen.add(k);
    const stale = everSeen.size - current.size;
    if (!churnReported && stale > churnLimit && stale > current.size) {
      churnReported = true;
      onChurn(stale);
    }
  };
  meter.addBatchObservableCallback(observe, [...instruments.values()]);

  return {
    shutdown: () => provider.shutdown(),
    retire: () => {
      retired = true;
      exporter.retire();
      return provider.shutdown();
    },
  };
}
