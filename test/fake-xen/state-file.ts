/**
 * The state file the stub libxenctrl reads on every call (the contract
 * between the fake Xen host and native/virt-proxy's test stub). One writer
 * for the fake host and the native tests.
 */
import type { HostTopology } from '../../src/drivers/types.ts';

export interface StateHost extends HostTopology {
  totalPages: number;
  freePages: number;
  version: string;
}

export interface StateDomain {
  domid: number;
  uuid: string;
  flags: number;
  totPages: number;
  maxPages: number;
  cpuTimeNs: bigint | number;
  onlineVcpus: number;
  maxVcpuId: number;
}

export function stateFileText(host: StateHost, doms: readonly StateDomain[], comment?: string): string {
  const lines = comment === undefined ? [] : [`# ${comment}`, ''];
  lines.push(
    `host cpus=${host.cpus} mhz=${host.mhz} nodes=${host.nodes} sockets=${host.sockets} cores=${host.cores} threads=${host.threads} total_pages=${host.totalPages} free_pages=${host.freePages} version=${host.version}`,
  );
  for (const d of doms) {
    lines.push(
      `dom domid=${d.domid} uuid=${d.uuid} flags=0x${d.flags.toString(16)} tot_pages=${d.totPages} max_pages=${d.maxPages} cpu_time_ns=${d.cpuTimeNs} online_vcpus=${d.onlineVcpus} max_vcpu_id=${d.maxVcpuId}`,
    );
  }
  return lines.join('\n') + '\n';
}
