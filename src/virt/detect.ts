import { existsSync, readFileSync } from 'node:fs';
import { resolvePaths } from '../qemud/paths.ts';

export interface Detection {
  uri: string;
  reason: string;
}

export interface DetectProbe {
  exists(path: string): boolean;
  read(path: string): string | undefined;
  env: NodeJS.ProcessEnv;
}

const realProbe: DetectProbe = {
  exists: existsSync,
  read: (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
  env: process.env,
};

/** What --connect defaults to: Xen, then a running virt-qemud, else the embedded test host. */
export function detectHost(probe: DetectProbe = realProbe): Detection {
  const hv = probe.read('/sys/hypervisor/type')?.trim();
  if (hv === 'xen') return { uri: 'xen:///', reason: '/sys/hypervisor/type says xen' };
  if (probe.exists('/proc/xen/capabilities') || probe.exists('/proc/xen/privcmd')) return { uri: 'xen:///', reason: '/proc/xen exists' };
  const system = resolvePaths('system', {}, probe.env);
  if (probe.exists(system.roSocket)) return { uri: 'qemu:///system', reason: `virt-qemud socket ${system.roSocket} exists` };
  const session = resolvePaths('session', {}, probe.env);
  if (probe.exists(session.roSocket)) return { uri: 'qemu:///session', reason: `virt-qemud socket ${session.roSocket} exists` };
  // A host run by libvirt's own daemons: the modular virtqemud, else the monolithic libvirtd.
  for (const [file, what] of [
    ['virtqemud-sock-ro', 'modular virtqemud'],
    ['libvirt-sock-ro', 'monolithic libvirtd (or virtproxyd)'],
  ] as const) {
    const path = `/run/libvirt/${file}`;
    if (probe.exists(path)) return { uri: 'libvirt+qemu:///system', reason: `${what} read-only socket ${path} exists` };
  }
  return { uri: 'test:///default', reason: 'no Xen and no virt-qemud or libvirt daemon socket found; serving the embedded test host' };
}
