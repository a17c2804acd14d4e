import type { DomainStats, HostInfo, ReadError } from '../drivers/types.ts';
import type { CollectorName, MetricSpec } from './catalogue.ts';

/** Outcome of one part (collector) of a collection. */
export interface PartResult {
  success: boolean;
  /**
   * The driver read this collector alone needed (the host read; the bulk
   * domain read when it is the only collector reading it). A read shared by
   * several collectors is counted in the collection's duration, not copied to each.
   */
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
  /** The collectors this collection ran for (absent: those with a part). */
  collectors?: ReadonlySet<CollectorName>;
  /** Read errors by "collector\0code" since start, as of this collection (virt_collection_errors_total). */
  errorCounts?: ReadonlyMap<string, number>;
}

export interface Sample {
  metric: MetricSpec;
  /** Values in the order of metric.labels. */
  labels: readonly string[];
  value: number;
}

/** Receives one sample: label values in the order of metric.labels (the array may be shared by several samples). */
export type Emit = (metric: MetricSpec, labels: readonly string[], value: number) => void;

/** A collector: a pure function from a snapshot to samples. */
export type CollectorFn = (snapshot: Snapshot, emit: Emit) => void;
