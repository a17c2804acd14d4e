import { METRICS } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectCpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    // A shut-off domain has no process and so no CPU counter (it would restart from zero anyway).
    if (d.info.state === 'shutoff') continue;
    const labels = [d.info.name, d.info.uuid];
    emit(METRICS.cpuTime, labels, d.info.cpuTimeSeconds);
    if (d.cpu?.userSeconds !== undefined) emit(METRICS.cpuUser, labels, d.cpu.userSeconds);
    if (d.cpu?.systemSeconds !== undefined) emit(METRICS.cpuSystem, labels, d.cpu.systemSeconds);
  }
};

export const cpuCollector = registerCollector({ name: 'cpu', reads: { domains: ['cpu'] }, defaultOn: true, collect: collectCpu });
