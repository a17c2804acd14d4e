import type { DomainStats, HostInfo, ReadError } from '../drivers/types.ts';
import type { CollectorName, MetricSpec } from './catalogue.ts';

/** Outcome of one part (collector) of a collection. */
export interface PartResult {
  success: boolean;
  durationSeconds: number;
  errors: ReadError[];
}

/** Everything one collection read; every renderer (Prometheus, OTLP) reads only this. */
export interface Snapshot {
  driver: string;
  /** Milliseconds since the epoch when the collection started. */
  startedAt: number;
  durationSeconds: number;
  up: boolean;
  host: HostInfo | undefined;
  domains: DomainStats[];
  /**
   * False when the bulk read failed as a whole: the domain list is unknown,
   * not empty, and no domain count is reported. Absent means true.
   */
  domainsKnown?: boolean;
  /** Reads of each reported domain (by name) that missed their deadline, since start. */
  readTimeouts?: ReadonlyMap<string, number>;
  parts: Partial<Record<CollectorName, PartResult>>;
}

export interface Sample {
  metric: MetricSpec;
  /** Values in the order of metric.labels. */
  labels: readonly string[];
  value: number;
}

/** A collector: a pure function from a snapshot to samples. */
export type CollectorFn = (snapshot: Snapshot, emit: (sample: Sample) => void) => void;
