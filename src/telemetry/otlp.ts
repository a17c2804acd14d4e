import { hostname } from 'node:os';
import { Metadata } from '@grpc/grpc-js';
import { context, diag, DiagLogLevel, metrics, propagation, trace, type DiagLogger } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { AggregationTemporalityPreference, OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, hostDetector, resourceFromAttributes, serviceInstanceIdDetector, type ResourceDetector } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { Registry } from 'prom-client';
import type { CollectorName } from '../collectors/catalogue.ts';
import type { Snapshot } from '../collectors/snapshot.ts';
import type { HostInfo } from '../drivers/types.ts';
import type { Logger } from '../util/logger.ts';
import { FailureLog } from './failure-log.ts';
import { SnapshotMetricProducer } from './producer.ts';
import { readOtlpConfig, type OtlpConfig, type Signal, type SignalConfig, type TelemetrySettings } from './settings.ts';
import { VirtError } from '../virt/errors.ts';

export interface OtlpPushOptions {
  /** The 'telemetry.*' settings (flags, config file, VIRT_EXPORTER_TELEMETRY_*). */
  settings: TelemetrySettings;
  /** The collection the Prometheus endpoint reads too (in-flight reads are shared). */
  collection: { collect(): Promise<Snapshot>; readonly errorCounts: ReadonlyMap<string, number> };
  collectors: ReadonlySet<CollectorName>;
  logger: Logger;
  version: string;
  /** The host and hypervisor, read once for the resource (bounded by 5 s; host.name falls back to this machine's). */
  hostInfo?: () => Promise<HostInfo | undefined>;
  /** The prom-client registry of /metrics: its catalogue counters (virt_admin_requests_total) are pushed too. */
  registry?: Registry;
  /** Failed exports by "signal\0reason", counted here; pass the map /metrics renders (virt_otel_export_failures_total). */
  exportFailures?: Map<string, number>;
}

export interface OtlpPush {
  /** What is pushed, as resolved from flags and OTEL_* variables. */
  readonly config: OtlpConfig;
  /** The metric producer (undefined when metrics are not pushed). */
  readonly producer: SnapshotMetricProducer | undefined;
  /** Exports once more (bounded by the export timeout), stops the SDK and unregisters it. */
  close(): Promise<void>;
}

const PROCESS_START_MS = Date.now() - process.uptime() * 1000;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

/** Why an export failed, as the `reason` label: unreachable, timeout, rejected (the endpoint answered with an error) or other. */
export function failureReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  const code = e?.code;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'unreachable';
  // gRPC status codes: 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE.
  if (code === 4 || /timed? ?out|timeout|deadline/i.test(message)) return 'timeout';
  if (code === 14 || /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|No connection established|connect/i.test(message)) return 'unreachable';
  if (typeof code === 'number' || /status|retryable/i.test(message)) return 'rejected';
  if (e?.cause !== undefined && e.cause !== err) return failureReason(e.cause);
  return 'other';
}

/** Counts and logs the outcome of every export of one signal. */
class Outcomes {
  readonly #signal: Signal;
  readonly #counts: Map<string, number>;
  readonly #log: FailureLog;
  constructor(signal: Signal, counts: Map<string, number>, logger: Logger) {
    this.#signal = signal;
    this.#counts = counts;
    this.#log = new FailureLog({ logger: logger.child({ signal }) });
  }
  done(result: ExportResult): void {
    if (result.code === ExportResultCode.SUCCESS) {
      this.#log.success();
      return;
    }
    const err = result.error ?? new VirtError('VIRT_ERR_OPERATION_FAILED', 'export failed');
    const key = `${this.#signal}\0${failureReason(err)}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#log.failure(err);
  }
}

class CountingMetricExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #outcomes: Outcomes;
  constructor(inner: PushMetricExporter, outcomes: Outcomes) {
    this.#inner = inner;
    this.#outcomes = outcomes;
  }
  export(metricsData: ResourceMetrics, done: (result: ExportResult) => void): void {
    this.#inner.export(metricsData, (result) => {
      this.#outcomes.done(result);
      done(result);
    });
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
  selectAggregationTemporality = (type: Parameters<NonNullable<PushMetricExporter['selectAggregationTemporality']>>[0]) => this.#inner.selectAggregationTemporality!(type);
}

class CountingSpanExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #outcomes: Outcomes;
  constructor(inner: SpanExporter, outcomes: Outcomes) {
    this.#inner = inner;
    this.#outcomes = outcomes;
  }
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      this.#outcomes.done(result);
      done(result);
    });
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

/** Only what the flags set; the rest the OTel exporters read from OTEL_EXPORTER_OTLP_* themselves. */
function common(c: SignalConfig): { url?: string; timeoutMillis?: number } {
  return { ...(c.url !== undefined && { url: c.url }), ...(c.timeoutMs !== undefined && { timeoutMillis: c.timeoutMs }) };
}

function grpcMetadata(headers: Record<string, string>): { metadata?: Metadata } {
  if (Object.keys(headers).length === 0) return {};
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k.toLowerCase(), v);
  return { metadata };
}

function httpHeaders(headers: Record<string, string>): { headers?: Record<string, string> } {
  return Object.keys(headers).length === 0 ? {} : { headers };
}

function metricExporter(c: SignalConfig, temporality: OtlpConfig['temporality']): PushMetricExporter {
  const t = temporality === undefined ? {} : { temporalityPreference: temporality === 'delta' ? AggregationTemporalityPreference.DELTA : AggregationTemporalityPreference.CUMULATIVE };
  switch (c.protocol) {
    case 'grpc':
      return new GrpcMetricExporter({ ...common(c), ...t, ...grpcMetadata(c.headers) });
    case 'http/json':
      return new JsonMetricExporter({ ...common(c), ...t, ...httpHeaders(c.headers) });
    default:
      return new ProtoMetricExporter({ ...common(c), ...t, ...httpHeaders(c.headers) });
  }
}

function traceExporter(c: SignalConfig): SpanExporter {
  switch (c.protocol) {
    case 'grpc':
      return new GrpcTraceExporter({ ...common(c), ...grpcMetadata(c.headers) });
    case 'http/json':
      return new JsonTraceExporter({ ...common(c), ...httpHeaders(c.headers) });
    default:
      return new ProtoTraceExporter({ ...common(c), ...httpHeaders(c.headers) });
  }
}

/** The SDK's own diagnostics go to our log at debug: outages are reported once by FailureLog, not per attempt. */
function diagLogger(log: Logger): DiagLogger {
  // Arguments may be SDK objects (circular): only their text is logged.
  const text = (a: unknown): string => (a instanceof Error ? a.message : typeof a === 'object' && a !== null ? (a.constructor?.name ?? 'object') : String(a));
  const at = (msg: string, ...args: unknown[]): void => log.debug(msg, args.length > 0 ? { args: args.map(text) } : undefined);
  return { error: at, warn: at, info: at, debug: at, verbose: () => undefined };
}

async function readHost(read: (() => Promise<HostInfo | undefined>) | undefined): Promise<HostInfo | undefined> {
  if (read === undefined) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), 5000);
  });
  try {
    return await Promise.race([read().catch(() => undefined), bound]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts OpenTelemetry through the SDK's NodeSDK: a periodic metric reader
 * whose data comes from a MetricProducer over the shared collection, and,
 * when traces are on, a batch span processor. Exporters are the OTel OTLP
 * ones for the protocol chosen (http/protobuf, http/json or grpc), so every
 * OTEL_EXPORTER_OTLP_* variable applies; the --telemetry.* flags override.
 * Undefined when nothing is to be pushed. Throws VIRT_ERR_CONFIG for bad
 * settings; an unreachable endpoint only logs and counts.
 */
export async function startOtlpPush(opts: OtlpPushOptions): Promise<OtlpPush | undefined> {
  const config = readOtlpConfig(opts.settings);
  if (config === undefined) return undefined;
  const log = opts.logger.child({ component: 'otlp' });
  diag.setLogger(diagLogger(log.child({ component: 'otel-sdk' })), { logLevel: DiagLogLevel.DEBUG, suppressOverrideMessage: true });
  const failures = opts.exportFailures ?? new Map<string, number>();
  const host = await readHost(opts.hostInfo);

  // Lowest to highest precedence: SDK defaults (telemetry.sdk.*), the machine (host.*),
  // ours (service.*, the hypervisor's host), OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, the flag.
  const ours: Record<string, string> = { 'service.name': 'virt-exporter', 'service.version': opts.version, 'host.name': host?.hostname || hostname() };
  if (host !== undefined) {
    ours['virt.hypervisor.name'] = host.hypervisor;
    ours['virt.hypervisor.version'] = host.hypervisorVersion;
  }
  const base = defaultResource().merge(detectResources({ detectors: [hostDetector, serviceInstanceIdDetector] })).merge(resourceFromAttributes(ours));
  const flagDetector: ResourceDetector = { detect: () => ({ attributes: config.resourceAttributes }) };

  let producer: SnapshotMetricProducer | undefined;
  const readers: PeriodicExportingMetricReader[] = [];
  if (config.metrics !== undefined) {
    const exporter = new CountingMetricExporter(metricExporter(config.metrics, config.temporality), new Outcomes('metrics', failures, log));
    producer = new SnapshotMetricProducer({
      collection: opts.collection,
      collectors: opts.collectors,
      version: opts.version,
      exportFailures: failures,
      ...(opts.registry === undefined ? {} : { registry: opts.registry }),
      temporality: (type) => exporter.selectAggregationTemporality(type),
      scope: { name: 'virt-exporter', version: opts.version },
      processStartMs: PROCESS_START_MS,
    });
    readers.push(
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: config.intervalMs,
        exportTimeoutMillis: config.exportTimeoutMs,
        metricProducers: [producer],
      }),
    );
  }
  const sdk = new NodeSDK({
    resource: base,
    resourceDetectors: [envDetector, flagDetector],
    metricReaders: readers,
    logRecordProcessors: [],
    instrumentations: [],
    ...(config.traces === undefined ? { spanProcessors: [] } : { traceExporter: new CountingSpanExporter(traceExporter(config.traces), new Outcomes('traces', failures, log)) }),
  });
  sdk.start();
  log.info('OpenTelemetry started', {
    metrics: config.metrics === undefined ? 'off' : `${config.metrics.protocol} ${config.metrics.shown}`,
    traces: config.traces === undefined ? 'off' : `${config.traces.protocol} ${config.traces.shown}`,
    interval_ms: config.intervalMs,
  });

  let closed: Promise<void> | undefined;
  return {
    config,
    producer,
    close: () => {
      closed ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.warn('OpenTelemetry shutdown timed out', { timeout_ms: config.exportTimeoutMs });
            resolve();
          }, config.exportTimeoutMs + 1000);
        });
        try {
          await Promise.race([sdk.shutdown().catch((err: unknown) => log.warn('OpenTelemetry shutdown failed', { err })), bound]);
        } finally {
          clearTimeout(timer);
          // Unregister, so that nothing uses the stopped providers (and a new SDK may start).
          trace.disable();
          metrics.disable();
          propagation.disable();
          context.disable();
          diag.disable();
        }
      })();
      return closed;
    },
  };
}
