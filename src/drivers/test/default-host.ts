import type { TestHostFile } from './host-file.ts';

/** The embedded host behind test:///default: a handful of domains in different states. */
export const DEFAULT_HOST: TestHostFile = {
  host: { hostname: 'testhost', model: 'x86_64', cpus: 16, mhz: 2400, nodes: 1, sockets: 1, cores: 8, threads: 2, memoryMiB: 65536 },
  domains: [
    domain('web-1', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e61', 'running', 2048, 2, 0.35, 1, 1),
    domain('web-2', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e62', 'running', 2048, 2, 0.25, 1, 1),
    domain('db-1', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e63', 'running', 8192, 4, 0.6, 3, 2),
    domain('batch-1', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e64', 'paused', 4096, 4, 0.9, 1, 1),
    domain('legacy-1', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e65', 'shutoff', 1024, 1, 0.1, 1, 1),
    { ...domain('build-1', '8a6f2c1e-0c1d-4b7a-9f3e-1d2c3b4a5e66', 'running', 4096, 2, 0.5, 1, 0), nics: [nic(0, 'user')], balloon: false },
  ],
};

function nic(i: number, type: 'tap' | 'user' = 'tap'): TestHostFile['domains'][number]['nics'][number] {
  return { name: `vnet${i}`, mac: `52:54:00:12:34:${(0x50 + i).toString(16)}`, type, rxBytesPerSecond: 60_000 * (i + 1), txBytesPerSecond: 25_000 * (i + 1) };
}

function domain(
  name: string,
  uuid: string,
  state: 'running' | 'paused' | 'shutoff',
  memoryMiB: number,
  vcpus: number,
  load: number,
  disks: number,
  nics: number,
): TestHostFile['domains'][number] {
  return {
    name,
    uuid,
    state,
    memoryMiB,
    maxMemoryMiB: memoryMiB * 2,
    vcpus,
    maxVcpus: vcpus * 2,
    osType: 'hvm',
    arch: 'x86_64',
    machine: 'pc-q35-7.2',
    load,
    balloon: true,
    autostart: state !== 'shutoff',
    disks: Array.from({ length: disks }, (_, i) => ({
      target: `vd${String.fromCharCode(97 + i)}`,
      path: `/var/lib/virt-exporter/images/${name}-${i}.qcow2`,
      capacityGiB: 20 * (i + 1),
      readBytesPerSecond: 400_000 * (i + 1),
      writeBytesPerSecond: 150_000 * (i + 1),
    })),
    nics: Array.from({ length: nics }, (_, i) => nic(i)),
  };
}

/** A generated host with `count` domains, for benchmarks (all running, 2 disks, 2 NICs). */
export function generateHost(count: number): TestHostFile {
  const domains: TestHostFile['domains'] = [];
  for (let i = 0; i < count; i++) {
    const hex = i.toString(16).padStart(12, '0');
    const d = domain(`vm-${i}`, `00000000-0000-4000-8000-${hex}`, 'running', 1024 + (i % 4) * 1024, 1 + (i % 4), 0.1 + (i % 7) / 10, 2, 2);
    domains.push(d);
  }
  return { host: { ...DEFAULT_HOST.host, cpus: 128, memoryMiB: 4 << 20 }, domains };
}
