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
}

export interface OtlpPush {
  /** Stops the timer, pushes once more, and waits for it (bounded by otlp-timeout). */
  close(): Promise<void>;
}

/** Series an instrument can have after a long domain churn; beyond it the SDK folds them into one overflow series. */
const CARDINALITY_LIMIT = 100_000;

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
  const otlp = new OTLPMetricExporter({
    url: config.url,
    headers: config.headers,
    timeoutMillis: config.timeoutMs,
    temporalityPreference: AggregationTemporalityPreference.CUMULATIVE,
  });
  const exporter = new CurrentSeriesExporter(otlp, new FailureLog({ logger: log }));
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

  const observe = async (result: BatchObservableResult): Promise<void> => {
    const snapshot = await opts.collection.collect();
    const current = new Set<string>();
    const emit = (s: Sample): void => {
      const instrument = instruments.get(s.metric);
      if (instrument === undefined) return;
      const attributes = toAttributes(s.metric, s.labels);
      result.observe(instrument, s.value, attributes);
      current.add(seriesKey(s.metric.otel.name, attributes));
    };
    collectExporter(snapshot, { version: opts.version, errorCounts: opts.collection.errorCounts }, emit);
    for (const name of enabled) COLLECTOR_FNS[name](snapshot, emit);
    exporter.setCurrent(current);
  };
  meter.addBatchObservableCallback(observe, [...instruments.values()]);

  log.info('OTLP push started', { endpoint: redactUrl(config.url), interval_ms: config.intervalMs, timeout_ms: config.timeoutMs });
  let closed: Promise<void> | undefined;
  return Promise.resolve({
    close: () => {
      closed ??= provider.shutdown().catch((err: unknown) => log.warn('OTLP push shutdown failed', { err }));
      return closed;
    },
  });
}
