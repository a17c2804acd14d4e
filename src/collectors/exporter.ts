import { COLLECTORS, METRICS, type CollectorName } from './catalogue.ts';
import type { Emit, Snapshot } from './snapshot.ts';
import { BUILD_INFO, VERSION } from '../version.ts';

/** What a render adds to a snapshot's own self-monitoring (all optional). */
export interface ExporterState {
  /** virt_exporter_build_info's version (default: this build's). */
  version?: string;
  /** Cumulative error counts by "collector\0code" (default: the snapshot's). */
  errorCounts?: ReadonlyMap<string, number> | undefined;
  /** Failed OTLP exports by "signal\0reason" (absent when the push is off). */
  otelExportFailures?: ReadonlyMap<string, number> | undefined;
}

/**
 * The exporter's own health, from the snapshot plus counters kept across
 * collections. `spent` is what each collector cost in this render (turning the
 * snapshot into its samples), added to the driver read it alone needed.
 */
export function collectExporter(snap: Snapshot, state: ExporterState, spent: ReadonlyMap<CollectorName, number>, emit: Emit): void {
  emit(METRICS.up, [snap.driver], snap.up ? 1 : 0);
  for (const name of COLLECTORS) {
    const part = snap.parts[name];
    if (part === undefined) continue;
    emit(METRICS.collectorSuccess, [name], part.success ? 1 : 0);
    emit(METRICS.collectorDuration, [name], part.durationSeconds + (spent.get(name) ?? 0));
  }
  emit(METRICS.collectionDuration, [], snap.durationSeconds);
  for (const [key, count] of state.errorCounts ?? snap.errorCounts ?? []) {
    const [collector = '', code = ''] = key.split('\0');
    emit(METRICS.collectionErrors, [collector, code], count);
  }
  for (const [key, count] of state.otelExportFailures ?? []) {
    const [signal = '', reason = ''] = key.split('\0');
    emit(METRICS.otelExportFailures, [signal, reason], count);
  }
  emit(METRICS.buildInfo, [state.version ?? VERSION, BUILD_INFO.revision, BUILD_INFO.branch, process.versions.node, process.versions.v8], 1);
}
