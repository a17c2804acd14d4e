import { METRICS } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectHost: CollectorFn = (snap, emit) => {
  const h = snap.host;
  if (h === undefined) return;
  emit(METRICS.hostInfo, [h.hostname, h.model, h.hypervisor, h.hypervisorVersion], 1);
  emit(METRICS.hostCpus, [], h.cpus);
  emit(METRICS.hostCpuFrequency, [], h.mhz * 1e6);
  emit(METRICS.hostNumaNodes, [], h.nodes);
  emit(METRICS.hostMemory, [], h.memoryBytes);
  if (h.freeMemoryBytes !== undefined) emit(METRICS.hostMemoryFree, [], h.freeMemoryBytes);
};

export const hostCollector = registerCollector({ name: 'host', reads: 'host', defaultOn: true, collect: collectHost });
