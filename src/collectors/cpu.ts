import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectCpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    // A shut-off domain has no process and so no CPU counter (it would restart from zero anyway).
    if (d.info.state === 'shutoff') continue;
    const labels = [d.info.name, d.info.uuid];
    emit({ metric: METRICS.cpuTime, labels, value: d.info.cpuTimeSeconds });
    if (d.cpu?.userSeconds !== undefined) emit({ metric: METRICS.cpuUser, labels, value: d.cpu.userSeconds });
    if (d.cpu?.systemSeconds !== undefined) emit({ metric: METRICS.cpuSystem, labels, value: d.cpu.systemSeconds });
  }
};
