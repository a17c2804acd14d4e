import { COLLECTORS } from './catalogue.ts';
import { METRICS } from './catalogue.ts';
import type { Snapshot, Sample } from './snapshot.ts';
import { BUILD_INFO } from '../version.ts';

export interface ExporterState {
  version: string;
  /** Cumulative error counts by "collector\0code". */
  errorCounts: ReadonlyMap<string, number>;
  /** Failed OTLP exports by "signal\0reason" (absent when the push is off). */
  otelExportFailures?: ReadonlyMap<string, number> | undefined;
}

/** The exporter's own health, from the snapshot plus counters kept across collections. */
export function collectExporter(snap: Snapshot, state: ExporterState, emit: (s: Sample) => void): void {
  emit({ metric: METRICS.up, labels: [snap.driver], value: snap.up ? 1 : 0 });
  for (const name of COLLECTORS) {
    const part = snap.parts[name];
    if (part === undefined) continue;
    emit({ metric: METRICS.collectorSuccess, labels: [name], value: part.success ? 1 : 0 });
    emit({ metric: METRICS.collectorDuration, labels: [name], value: part.durationSeconds });
  }
  emit({ metric: METRICS.collectionDuration, labels: [], value: snap.durationSeconds });
  for (const [key, count] of state.errorCounts) {
    const [collector = '', code = ''] = key.split('\0');
    emit({ metric: METRICS.collectionErrors, labels: [collector, code], value: count });
  }
  for (const [key, count] of state.otelExportFailures ?? []) {
    const [signal = '', reason = ''] = key.split('\0');
    emit({ metric: METRICS.otelExportFailures, labels: [signal, reason], value: count });
  }
  emit({ metric: METRICS.buildInfo, labels: [state.version, BUILD_INFO.revision, BUILD_INFO.branch, process.versions.node, process.versions.v8], value: 1 });
}
