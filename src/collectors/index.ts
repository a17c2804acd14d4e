import { collectBlock } from './block.ts';
import type { CollectorName } from './catalogue.ts';
import { collectCpu } from './cpu.ts';
import { collectDomain } from './domain.ts';
import { collectHost } from './host.ts';
import { collectMemory } from './memory.ts';
import { collectNetwork } from './network.ts';
import type { CollectorFn } from './snapshot.ts';
import { collectVcpu } from './vcpu.ts';

export const COLLECTOR_FNS: Record<CollectorName, CollectorFn> = {
  domain: collectDomain,
  cpu: collectCpu,
  vcpu: collectVcpu,
  memory: collectMemory,
  block: collectBlock,
  network: collectNetwork,
  host: collectHost,
};
