import { METRICS, type MetricSpec } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectBlock: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    const seen = new Set<string>();
    for (const b of d.block ?? []) {
      // Duplicate device names (hostile or buggy backends) would make the scrape invalid.
      if (seen.has(b.device)) continue;
      seen.add(b.device);
      const labels = [d.info.name, d.info.uuid, b.device];
      const put = (metric: MetricSpec, value: number | undefined): void => {
        if (value !== undefined) emit(metric, labels, value);
      };
      emit(METRICS.blockInfo, [d.info.name, d.info.uuid, b.device, b.path ?? ''], 1);
      put(METRICS.blockReadBytes, b.readBytes);
      put(METRICS.blockWriteBytes, b.writeBytes);
      put(METRICS.blockReadRequests, b.readRequests);
      put(METRICS.blockWriteRequests, b.writeRequests);
      put(METRICS.blockFlushRequests, b.flushRequests);
      put(METRICS.blockReadTime, b.readTimeSeconds);
      put(METRICS.blockWriteTime, b.writeTimeSeconds);
      put(METRICS.blockFlushTime, b.flushTimeSeconds);
      put(METRICS.blockErrors, b.errors);
      put(METRICS.blockCapacity, b.capacityBytes);
      put(METRICS.blockAllocation, b.allocationBytes);
    }
  }
};

export const blockCollector = registerCollector({ name: 'block', reads: { domains: ['block'] }, defaultOn: true, collect: collectBlock });
