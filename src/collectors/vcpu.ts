import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectVcpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    emit({ metric: METRICS.vcpus, labels: [d.info.name, d.info.uuid], value: d.info.vcpus });
    const seen = new Set<number>();
    for (const v of d.vcpus ?? []) {
      if (v.timeSeconds === undefined || seen.has(v.id)) continue;
      seen.add(v.id);
      emit({ metric: METRICS.vcpuTime, labels: [d.info.name, d.info.uuid, String(v.id)], value: v.timeSeconds });
    }
  }
};
