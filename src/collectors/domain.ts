import { DOMAIN_STATES } from '../drivers/types.ts';
import { METRICS } from './catalogue.ts';
import type { CollectorFn } from './snapshot.ts';

export const collectDomain: CollectorFn = (snap, emit) => {
  emit({ metric: METRICS.domains, labels: [], value: snap.domains.length });
  for (const { info } of snap.domains) {
    emit({ metric: METRICS.domainInfo, labels: [info.name, info.uuid, info.osType ?? '', info.arch ?? '', info.machine ?? ''], value: 1 });
    for (const state of DOMAIN_STATES) {
      emit({ metric: METRICS.domainState, labels: [info.name, info.uuid, state], value: info.state === state ? 1 : 0 });
    }
  }
};
