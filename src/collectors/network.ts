import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectNetwork: CollectorFn = (snap, emit) => {
  for (const d of snap.domains) {
    const seen = new Set<string>();
    for (const n of d.net ?? []) {
      if (seen.has(n.interface)) continue;
      seen.add(n.interface);
      emit({ metric: METRICS.netInfo, labels: [d.info.name, d.info.uuid, n.interface, n.mac ?? ''], value: 1 });
      // No counters (user-mode NIC): the series are absent, not zero.
      const c = n.counters;
      if (c === null) continue;
      const labels = [d.info.name, d.info.uuid, n.interface];
      emit({ metric: METRICS.netRxBytes, labels, value: c.rxBytes });
      emit({ metric: METRICS.netRxPackets, labels, value: c.rxPackets });
      emit({ metric: METRICS.netRxErrors, labels, value: c.rxErrors });
      emit({ metric: METRICS.netRxDrops, labels, value: c.rxDrops });
      emit({ metric: METRICS.netTxBytes, labels, value: c.txBytes });
      emit({ metric: METRICS.netTxPackets, labels, value: c.txPackets });
      emit({ metric: METRICS.netTxErrors, labels, value: c.txErrors });
      emit({ metric: METRICS.netTxDrops, labels, value: c.txDrops });
    }
  }
};
