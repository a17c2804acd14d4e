import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectVcpu: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    emit({ metric: METRICS.vcpus, labels: [d.info.name, d.info.uuid], value: d.info.vcpus });
    const seen = new Set<number>();
    for (const v of d.vcpus ?? []) {
      if (v.timeSeconds === undefined || seen.has(v.id)) continue;
      seen.add(v.id);
      const labels = [d.info.name, d.info.uuid, String(v.id)];
      emit({ metric: METRICS.vcpuTime, labels, value: v.timeSeconds });
      if (v.delaySeconds !== undefined) emit({ metric: METRICS.vcpuDelay, labels, value: v.delaySeconds });
    }
  }
};
