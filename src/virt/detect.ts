import { existsSync, readFileSync } from 'node:fs';
import { OPERATIONS } from '../drivers/ops.ts';
import { QemudClient } from '../drivers/qemu/client.ts';
import { resolvePaths } from '../qemud-shared/paths.ts';

export interface Detection {
  uri: string;
  reason: string;
}

export interface DetectProbe {
  /** For the virt-qemud sockets: whether a supervisor answers there (see detectHostLive). */
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

/**
 * What --connect defaults to: Xen, then a virt-qemud (the caller's own
 * session first, then the system one), else the embedded test host. Pure:
 * the probe says what is there; detectHostLive asks the sockets.
 */
export function detectHost(probe: DetectProbe): Detection {
  const hv = probe.read('/sys/hypervisor/type')?.trim();
  if (hv === 'xen') return { uri: 'xen:///', reason: '/sys/hypervisor/type says xen' };
  if (probe.exists('/proc/xen/capabilities') || probe.exists('/proc/xen/privcmd')) return { uri: 'xen:///', reason: '/proc/xen exists' };
  const session = resolvePaths('session', {}, probe.env);
  if (probe.exists(session.roSocket)) return { uri: 'qemu:///session', reason: `virt-qemud answers on ${session.roSocket}` };
  const system = resolvePaths('system', {}, probe.env);
  if (probe.exists(system.roSocket)) return { uri: 'qemu:///system', reason: `virt-qemud answers on ${system.roSocket}` };
  // A host run by libvirt's own daemons: the modular virtqemud, else the monolithic libvirtd.
  for (const [file, what] of [
    ['virtqemud-sock-ro', 'modular virtqemud'],
    ['libvirt-sock-ro', 'monolithic libvirtd (or virtproxyd)'],
  ] as const) {
    const path = `/run/libvirt/${file}`;
    if (probe.exists(path)) return { uri: 'libvirt+qemu:///system', reason: `${what} read-only socket ${path} exists` };
  }
  return { uri: 'test:///default', reason: 'no Xen and no virt-qemud answering, and no libvirt daemon socket found; serving the embedded test host' };
}

/** Whether a virt-qemud answers a ping on this socket within timeoutMs (never starts one). */
export async function qemudAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  const client = new QemudClient({ socketPath, maxFrameBytes: 1024 * 1024, connectTimeoutMs: timeoutMs });
  try {
    OPERATIONS.ping.result(await client.call('ping', [], { timeoutMs }), socketPath);
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

export interface LiveDetection extends Detection {
  /** Socket files that exist but where nothing answered (a stopped or dead virt-qemud). */
  silent: string[];
}

/**
 * detectHost with a live answer: a virt-qemud socket counts only when a
 * supervisor answers a ping on it, not because the file exists.
 */
export async function detectHostLive(env: NodeJS.ProcessEnv = process.env, timeoutMs = 1000): Promise<LiveDetection> {
  const sockets = [resolvePaths('session', {}, env).roSocket, resolvePaths('system', {}, env).roSocket];
  const live = new Set<string>();
  const silent: string[] = [];
  await Promise.all(
    sockets.map(async (s) => {
      if (!existsSync(s)) return;
      if (await qemudAnswers(s, timeoutMs)) live.add(s);
      else silent.push(s);
    }),
  );
  const d = detectHost({ ...realProbe, env, exists: (p) => (sockets.includes(p) ? live.has(p) : existsSync(p)) });
  const reason = silent.length > 0 && !d.uri.startsWith('qemu:') ? `${d.reason} (nothing answers on ${silent.join(', ')})` : d.reason;
  return { ...d, reason, silent };
}
