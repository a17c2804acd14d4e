import { DOMAIN_STATES } from '../drivers/types.ts';
import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectDomain: CollectorFn = (snap, emit) => {
  // A failed read is not an empty host: an alert on virt_domains == 0 must not fire on it.
  if (snap.domainsKnown !== false) emit({ metric: METRICS.domains, labels: [], value: snap.domains.length });
  for (const { info } of snap.domains) {
    emit({ metric: METRICS.domainInfo, labels: [info.name, info.uuid, info.osType ?? '', info.arch ?? '', info.machine ?? ''], value: 1 });
    emit({ metric: METRICS.domainReadTimeouts, labels: [info.name, info.uuid], value: snap.readTimeouts?.get(info.name) ?? 0 });
    for (const state of DOMAIN_STATES) {
      emit({ metric: METRICS.domainState, labels: [info.name, info.uuid, state], value: info.state === state ? 1 : 0 });
    }
  }
};
