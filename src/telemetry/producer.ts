import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type CollectionResult,
  type DataPoint,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Registry } from 'prom-client';
import { METRIC_LIST, REGISTRY_METRICS, type CollectorName, type MetricSpec, type OtelSpec } from '../collectors/catalogue.ts';
import { collectSamples } from '../collectors/samples.ts';
import type { Emit, Sample, Snapshot } from '../collectors/snapshot.ts';
import { otelAttributeNames } from './attributes.ts';

export interface SnapshotProducerOptions {
  /** The collection /metrics reads too (in-flight reads are shared). */
  collection: { collect(): Promise<Snapshot>; readonly errorCounts: ReadonlyMap<string, number> };
  collectors: ReadonlySet<CollectorName>;
  version: string;
  /** The prom-client registry /metrics also renders: its catalogue counters (virt_admin_requests_total) are sent too. */
  registry?: Registry;
  /** The OTLP export failures so far, by "signal\0reason". */
  exportFailures?: ReadonlyMap<string, number>;
  /** Temporality the exporter wants for counters (asked on every collection; default cumulative). */
  temporality?: (type: InstrumentType) => AggregationTemporality;
  scope: { name: string; version: string };
  /** Milliseconds since the epoch when the exporter process started: the start of its own counters. */
  processStartMs?: number;
  now?: () => number;
}

/** What is remembered of one counter series between two collections (only while it exists). */
interface SeriesState {
  /** Start of the cumulative stream (ms). */
  startMs: number;
  lastValue: number;
  lastMs: number;
}

/**
 * When a driver knows when a domain started, or when a device was attached
 * (seconds since the epoch), it may report it on the reading under these
 * optional names; a counter of that domain or device then starts there.
 * DomainInfo.startTimeSeconds is one (qemu and test drivers); where no driver
 * knows, the first observation rule applies.
 */
export interface KnownStart {
  startTimeSeconds?: number;
  attachTimeSeconds?: number;
}

function knownStartMs(spec: MetricSpec, labels: readonly string[], byUuid: ReadonlyMap<string, Snapshot['domains'][number]>, nowMs: number): number | undefined {
  const u = spec.labels.indexOf('uuid');
  if (u < 0) return undefined;
  const d = byUuid.get(labels[u] ?? '');
  if (d === undefined) return undefined;
  const dev = spec.labels.indexOf('device');
  const nic = spec.labels.indexOf('interface');
  const reading: KnownStart | undefined =
    dev >= 0 ? (d.block?.find((b) => b.device === labels[dev]) as KnownStart | undefined) : nic >= 0 ? (d.net?.find((n) => n.interface === labels[nic]) as KnownStart | undefined) : undefined;
  const seconds = reading?.attachTimeSeconds ?? (d.info as KnownStart).startTimeSeconds;
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0 || seconds * 1000 > nowMs) return undefined;
  return seconds * 1000;
}

function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

function key(name: string, attributes: Attributes): string {
  let s = name;
  for (const k of Object.keys(attributes).sort()) s += `\0${k}\0${String(attributes[k])}`;
  return s;
}

/**
 * The OTel SDK's extension point for an external source of metrics: each
 * collect() reads ONE snapshot through the Collection that /metrics renders
 * from, runs the same collector functions, and turns their samples into
 * OTLP metric data. Nothing of a series outlives its last appearance: a
 * domain that is gone is absent from the next export, and the state kept
 * (per counter: its start time and last value) is bounded by what exists now.
 *
 * Start times of cumulative counters: the exporter's own counters started
 * with the process; a domain's counters when the domain started and a
 * device's when it was attached, where the driver reports it (KnownStart);
 * otherwise a counter starts, per the data model's rule for an unknown start, at its first
 * observation (that point is a "true reset point": start = time), and a
 * counter that goes down has been reset and starts again at the previous
 * observation. Values are the hypervisor's, unchanged, as /metrics shows.
 * With delta temporality a counter reports the increase since the previous
 * export (nothing for a first observation, whose increase is unknown).
 */
export class SnapshotMetricProducer implements MetricProducer {
  readonly #opts: SnapshotProducerOptions;
  readonly #now: () => number;
  readonly #specs: MetricSpec[];
  #series = new Map<string, SeriesState>();

  constructor(opts: SnapshotProducerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#specs = [...METRIC_LIST.filter((s) => s.collector === 'exporter' || opts.collectors.has(s.collector)), ...Object.values(REGISTRY_METRICS)];
  }

  /** Counter series remembered now (for tests of bounded memory). */
  get seriesCount(): number {
    return this.#series.size;
  }

  async collect(): Promise<CollectionResult> {
    const [snapshot, extra] = await Promise.all([this.#opts.collection.collect(), this.#registrySamples()]);
    return { resourceMetrics: { resource: resourceFromAttributes({}), scopeMetrics: [{ scope: this.#opts.scope, metrics: this.toMetricData(snapshot, extra) }] }, errors: [] };
  }

  /** The event counters kept in the prom-client registry (they count since the process started). */
  async #registrySamples(): Promise<Sample[]> {
    const registry = this.#opts.registry;
    if (registry === undefined) return [];
    const out: Sample[] = [];
    for (const spec of Object.values(REGISTRY_METRICS)) {
      const metric = registry.getSingleMetric(spec.name);
      if (metric === undefined) continue;
      for (const v of (await metric.get()).values) out.push({ metric: spec, labels: spec.labels.map((l) => String(v.labels[l] ?? '')), value: v.value });
    }
    return out;
  }

  /** The snapshot (and the registry's counters) as OTLP metric data, one MetricData per OTel name. */
  toMetricData(snapshot: Snapshot, extra: readonly Sample[] = []): MetricData[] {
    const nowMs = this.#now();
    const end = hr(nowMs);
    const delta = (this.#opts.temporality?.(InstrumentType.OBSERVABLE_COUNTER) ?? AggregationTemporality.CUMULATIVE) === AggregationTemporality.DELTA;
    // By name: virt_domain_info with configured metadata labels is a variant of the catalogue's spec.
    const enabled = new Set(this.#specs.map((s) => s.name));
    const groups = new Map<string, { otel: OtelSpec; counter: boolean; points: DataPoint<number>[] }>();
    const nextSeries = new Map<string, SeriesState>();
    const processStart = this.#opts.processStartMs ?? nowMs;
    const byUuid = new Map(snapshot.domains.map((d) => [d.info.uuid, d]));

    const emit: Emit = (spec, labels, sampleValue) => {
      if (!enabled.has(spec.name)) return;
      const attributes: Attributes = {};
      const names = otelAttributeNames(spec);
      for (let i = 0; i < names.length; i++) attributes[names[i] as string] = labels[i] ?? '';
      for (const [k, v] of Object.entries(spec.otel.attributes)) attributes[k] = v;
      let value = sampleValue;
      if (spec.otel.int && !Number.isInteger(value)) value = Math.round(value);
      let group = groups.get(spec.otel.name);
      if (group === undefined) {
        group = { otel: spec.otel, counter: spec.type === 'counter', points: [] };
        groups.set(spec.otel.name, group);
      }
      if (spec.type !== 'counter') {
        group.points.push({ startTime: end, endTime: end, attributes, value });
        return;
      }
      const k = key(spec.otel.name, attributes);
      if (nextSeries.has(k)) return; // duplicate series: /metrics keeps the first too
      const prev = this.#series.get(k);
      let state: SeriesState;
      if (prev === undefined) {
        // Exporter counters count since the process started; hypervisor counters since the domain's
        // start or the device's attach when the driver knows it, else from their first observation.
        const known = spec.collector === 'exporter' ? processStart : knownStartMs(spec, labels, byUuid, nowMs);
        const startMs = known ?? nowMs;
        state = { startMs, lastValue: value, lastMs: nowMs };
        // Delta: a first observation is an increase over [start, now] only when the start is known.
        if (!delta || known !== undefined) group.points.push({ startTime: hr(startMs), endTime: end, attributes, value });
      } else {
        const reset = value < prev.lastValue;
        state = { startMs: reset ? prev.lastMs : prev.startMs, lastValue: value, lastMs: nowMs };
        if (delta) group.points.push({ startTime: hr(prev.lastMs), endTime: end, attributes, value: reset ? value : value - prev.lastValue });
        else group.points.push({ startTime: hr(state.startMs), endTime: end, attributes, value });
      }
      nextSeries.set(k, state);
    };

    // The same samples /metrics renders (the one samples path), then the registry's event counters.
    collectSamples(snapshot, emit, {
      collectors: this.#opts.collectors,
      version: this.#opts.version,
      errorCounts: this.#opts.collection.errorCounts,
      otelExportFailures: this.#opts.exportFailures,
    });
    for (const s of extra) emit(s.metric, s.labels, s.value);
    // Only what this snapshot has is remembered: vanished series are forgotten at once.
    this.#series = nextSeries;

    const out: MetricData[] = [];
    for (const [name, g] of groups) {
      if (g.points.length === 0) continue;
      const descriptor = { name, description: g.otel.description, unit: g.otel.unit, valueType: g.otel.int ? ValueType.INT : ValueType.DOUBLE };
      if (g.counter) {
        out.push({
          descriptor,
          aggregationTemporality: delta ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: g.points,
        });
      } else {
        out.push({ descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints: g.points });
      }
    }
    return out;
  }
}
