/**
 * Who is on the other end of a unix socket: SO_PEERCRED through the small
 * native addon in native/peercred (Node has no API for it), built at install
 * time like virt-proxy. virt-qemud refuses to start without it rather than
 * serve a read-write socket it cannot check.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../project.ts';
import { VirtError } from '../virt/errors.ts';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export const PEERCRED_ADDON = join(PROJECT_ROOT, 'native', 'peercred', 'build', 'peercred.node');

type Addon = { peerCred(fd: number): PeerCred };
const loaded = new Map<string, Addon>();

/** Loads the addon; VIRT_ERR_CONFIG naming the build step when it is missing. */
export function loadPeerCred(path: string = PEERCRED_ADDON): Addon {
  let addon = loaded.get(path);
  if (addon !== undefined) return addon;
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
    loaded.set(path, addon);
  } catch (err) {
    throw new VirtError(
      'VIRT_ERR_CONFIG',
      `the peer-credentials addon ${path} cannot be loaded (${(err as Error).message.split('\n')[0] ?? ''}); it is built at install time with a C compiler: install gcc and run "sh native/peercred/build.sh" (or npm ci)`,
      { cause: err },
    );
  }
  return addon;
}

/** The peer of a connected unix socket. */
export function socketPeer(sock: Socket): PeerCred {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', 'cannot find the file descriptor of a client socket');
  return loadPeerCred().peerCred(fd);
}

/** Supplementary groups of a process, from /proc (empty when it is gone). */
export function processGroups(pid: number): number[] {
  try {
    const m = /^Groups:\s*([\d\s]*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? [] : (m[1] ?? '').trim().split(/\s+/).filter((g) => g !== '').map(Number);
  } catch {
    return [];
  }
}

/** A group name or number to its gid; undefined when unknown. */
export function groupId(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid !== undefined) return Number(gid);
  }
  return undefined;
}
