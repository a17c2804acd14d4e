import { METRICS } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectNetwork: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    const seen = new Set<string>();
    for (const n of d.net ?? []) {
      if (seen.has(n.interface)) continue;
      seen.add(n.interface);
      emit(METRICS.netInfo, [d.info.name, d.info.uuid, n.interface, n.mac ?? ''], 1);
      // No counters (user-mode NIC): the series are absent, not zero.
      const c = n.counters;
      if (c === null) continue;
      const labels = [d.info.name, d.info.uuid, n.interface];
      emit(METRICS.netRxBytes, labels, c.rxBytes);
      emit(METRICS.netRxPackets, labels, c.rxPackets);
      emit(METRICS.netRxErrors, labels, c.rxErrors);
      emit(METRICS.netRxDrops, labels, c.rxDrops);
      emit(METRICS.netTxBytes, labels, c.txBytes);
      emit(METRICS.netTxPackets, labels, c.txPackets);
      emit(METRICS.netTxErrors, labels, c.txErrors);
      emit(METRICS.netTxDrops, labels, c.txDrops);
    }
  }
};

export const networkCollector = registerCollector({ name: 'network', reads: { domains: ['net'] }, defaultOn: true, collect: collectNetwork });
