import { METRICS, type MetricSpec } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectMemory: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    const labels = [d.info.name, d.info.uuid];
    const put = (metric: MetricSpec, value: number | undefined): void => {
      if (value !== undefined) emit(metric, labels, value);
    };
    const mem = d.memory;
    put(METRICS.memoryMaximum, mem?.maximumBytes ?? d.info.maxMemoryBytes);
    put(METRICS.memoryCurrent, mem?.currentBytes ?? d.info.memoryBytes);
    if (mem === undefined) continue;
    put(METRICS.memoryBalloon, mem.balloonBytes);
    put(METRICS.memoryRss, mem.rssBytes);
    const g = mem.guest;
    if (g === undefined) continue;
    put(METRICS.memoryGuestTotal, g.totalBytes);
    put(METRICS.memoryGuestFree, g.freeBytes);
    put(METRICS.memoryGuestAvailable, g.availableBytes);
    put(METRICS.memoryGuestCaches, g.diskCachesBytes);
    put(METRICS.memorySwapIn, g.swapInBytes);
    put(METRICS.memorySwapOut, g.swapOutBytes);
    put(METRICS.memoryMajorFaults, g.majorFaults);
    put(METRICS.memoryMinorFaults, g.minorFaults);
  }
};

export const memoryCollector = registerCollector({ name: 'memory', reads: { domains: ['memory'] }, defaultOn: true, collect: collectMemory });
