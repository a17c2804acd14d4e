import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectHost: CollectorFn = (snap, emit) => {
  const h = snap.host;
  if (h === undefined) return;
  emit({ metric: METRICS.hostInfo, labels: [h.hostname, h.model, h.hypervisor, h.hypervisorVersion], value: 1 });
  emit({ metric: METRICS.hostCpus, labels: [], value: h.cpus });
  emit({ metric: METRICS.hostCpuFrequency, labels: [], value: h.mhz * 1e6 });
  emit({ metric: METRICS.hostNumaNodes, labels: [], value: h.nodes });
  emit({ metric: METRICS.hostMemory, labels: [], value: h.memoryBytes });
  if (h.freeMemoryBytes !== undefined) emit({ metric: METRICS.hostMemoryFree, labels: [], value: h.freeMemoryBytes });
};
