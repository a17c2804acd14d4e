import { DOMAIN_STATES } from '../drivers/types.ts';
import { domainInfoWith, METRICS } from './catalogue.ts';
import { registerCollector } from './registry.ts';
import type { CollectorFn } from './snapshot.ts';

const collectDomain: CollectorFn = (snap, emit) => {
  // A failed read is not an empty host: an alert on virt_domains == 0 must not fire on it.
  if (snap.domainsKnown !== false) emit(METRICS.domains, [], snap.domains.length);
  // Configured extra labels (libvirt <metadata>) go on virt_domain_info only; names from the first domain that has any.
  const extra = Object.keys(snap.domains.find((d) => d.info.labels !== undefined)?.info.labels ?? {});
  const infoSpec = domainInfoWith(extra);
  for (const { info } of snap.domains) {
    const base = [info.name, info.uuid, info.osType ?? '', info.arch ?? '', info.machine ?? ''];
    emit(infoSpec, extra.length === 0 ? base : [...base, ...extra.map((k) => info.labels?.[k] ?? '')], 1);
    // Only running domains are read (a shut-off one keeps just info and state).
    if (info.state !== 'shutoff') emit(METRICS.domainReadTimeouts, [info.name, info.uuid], snap.readTimeouts?.get(info.name) ?? 0);
    for (const state of DOMAIN_STATES) {
      emit(METRICS.domainState, [info.name, info.uuid, state], info.state === state ? 1 : 0);
    }
  }
};

export const domainCollector = registerCollector({ name: 'domain', reads: { domains: ['state'] }, defaultOn: true, collect: collectDomain });
