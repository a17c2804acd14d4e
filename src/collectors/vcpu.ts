import { METRICS } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectVcpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    emit(METRICS.vcpus, [d.info.name, d.info.uuid], d.info.vcpus);
    const seen = new Set<number>();
    for (const v of d.vcpus ?? []) {
      if (v.timeSeconds === undefined || seen.has(v.id)) continue;
      seen.add(v.id);
      const labels = [d.info.name, d.info.uuid, String(v.id)];
      emit(METRICS.vcpuTime, labels, v.timeSeconds);
      if (v.delaySeconds !== undefined) emit(METRICS.vcpuDelay, labels, v.delaySeconds);
    }
  }
};

export const vcpuCollector = registerCollector({ name: 'vcpu', reads: { domains: ['vcpu'] }, defaultOn: true, collect: collectVcpu });
