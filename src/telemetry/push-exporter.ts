import type { Attributes } from '@opentelemetry/api';
import { AggregationTemporality, type InstrumentType, type MetricData, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { FailureLog } from './failure-log.ts';

type ExportCallback = Parameters<PushMetricExporter['export']>[1];
type ExportResult = Parameters<ExportCallback>[0];

/** Stable identity of one series: instrument name plus its attributes, order-independent. */
export function seriesKey(name: string, attributes: Attributes): string {
  const keys = Object.keys(attributes).sort();
  let s = name;
  for (const k of keys) s += `\0${k}\0${String(attributes[k])}`;
  return s;
}

/**
 * Wraps the OTLP exporter to (1) send only the series observed in the latest
 * collection: with cumulative temporality the SDK keeps re-reporting every
 * attribute set an observable ever had, so a deleted domain would live on
 * with its last values; and (2) report outcomes to the failure log.
 */
export class CurrentSeriesExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #failures: FailureLog;
  #current: ReadonlySet<string> = new Set();
  #retired = false;

  constructor(inner: PushMetricExporter, failures: FailureLog) {
    this.#inner = inner;
    this.#failures = failures;
  }

  /** Called by the observable callback with the series of the collection just read. */
  setCurrent(keys: ReadonlySet<string>): void {
    this.#current = keys;
  }

  /** From now on, exports are dropped (reported as done): a newer pipeline sends the data. */
  retire(): void {
    this.#retired = true;
  }

  export(metrics: ResourceMetrics, resultCallback: ExportCallback): void {
    if (this.#retired) {
      resultCallback({ code: 0 });
      return;
    }
    const current = this.#current;
    const scopeMetrics = metrics.scopeMetrics.map((sm) => ({
      ...sm,
      metrics: sm.metrics
        .map((md) => ({ ...md, dataPoints: md.dataPoints.filter((dp) => current.has(seriesKey(md.descriptor.name, dp.attributes))) }) as MetricData)
        .filter((md) => md.dataPoints.length > 0),
    }));
    if (!scopeMetrics.some((sm) => sm.metrics.length > 0)) {
      // Nothing current (the observation failed): send nothing rather than an empty request.
      resultCallback({ code: 0 });
      return;
    }
    this.#inner.export({ ...metrics, scopeMetrics }, (result: ExportResult) => {
      // ExportResultCode.SUCCESS is 0 (@opentelemetry/core, not a direct dependency).
      if (Number(result.code) === 0) this.#failures.success();
      else this.#failures.failure(result.error ?? new Error('export failed'));
      resultCallback(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  selectAggregationTemporality(instrumentType: InstrumentType): AggregationTemporality {
    return this.#inner.selectAggregationTemporality?.(instrumentType) ?? AggregationTemporality.CUMULATIVE;
  }
}
