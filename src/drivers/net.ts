import type { NetCounters } from './types.ts';

/**
 * Host-side counters of a guest's backend interface (tap, vif) turned to the
 * guest's point of view: what the host receives, the guest sent. Not for
 * macvtap, whose counters are already the guest's.
 */
export function guestView(host: NetCounters): NetCounters {
  return {
    rxBytes: host.txBytes,
    rxPackets: host.txPackets,
    rxErrors: host.txErrors,
    rxDrops: host.txDrops,
    txBytes: host.rxBytes,
    txPackets: host.rxPackets,
    txErrors: host.rxErrors,
    txDrops: host.rxDrops,
  };
}
