import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectCpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    const labels = [d.info.name, d.info.uuid];
    emit({ metric: METRICS.cpuTime, labels, value: d.info.cpuTimeSeconds });
    if (d.cpu?.userSeconds !== undefined) emit({ metric: METRICS.cpuUser, labels, value: d.cpu.userSeconds });
    if (d.cpu?.systemSeconds !== undefined) emit({ metric: METRICS.cpuSystem, labels, value: d.cpu.systemSeconds });
  }
};
