/**
 * Which unix socket of a libvirt daemon a connection uses. System daemons
 * listen under /run/libvirt: the modular per-driver daemons (virtqemud,
 * virtxend) on DAEMON-sock and DAEMON-sock-ro, the monolithic libvirtd (or
 * virtproxyd in front of modular daemons) on libvirt-sock and
 * libvirt-sock-ro. Read-only connections (the collectors) take the -ro
 * socket; read-write ones (the admin endpoint, virtctl) the other. Session
 * daemons have one socket, under $XDG_RUNTIME_DIR/libvirt.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { LibvirtHypervisor } from '../../virt/uri.ts';

export interface SocketChoice {
  path: string;
  reason: string;
}

export const DEFAULT_RUN_DIR = '/run/libvirt';

const MODULAR: Record<LibvirtHypervisor, string | undefined> = { qemu: 'virtqemud', xen: 'virtxend', test: undefined };

export function sessionDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_RUNTIME_DIR'];
  return xdg !== undefined && xdg !== '' ? join(xdg, 'libvirt') : join(homedir(), '.cache', 'libvirt');
}

/** Candidate sockets, preferred first. */
export function candidateSockets(hv: LibvirtHypervisor, path: string, readOnly: boolean, runDir = DEFAULT_RUN_DIR, env: NodeJS.ProcessEnv = process.env): string[] {
  const daemons = [MODULAR[hv], 'libvirt'].filter((d): d is string => d !== undefined);
  if (path === '/session') return daemons.map((d) => join(sessionDir(env), `${d}-sock`));
  return daemons.map((d) => join(runDir, `${d}-sock${readOnly ? '-ro' : ''}`));
}

export function chooseSocket(
  hv: LibvirtHypervisor,
  path: string,
  readOnly: boolean,
  opts: { explicit?: string | undefined; runDir?: string | undefined; exists?: (p: string) => boolean; env?: NodeJS.ProcessEnv } = {},
): SocketChoice {
  const exists = opts.exists ?? existsSync;
  const explicit = opts.explicit;
  if (explicit !== undefined) {
    // One ?socket= serves both kinds of connection: its -ro sibling for reads, the plain one for writes.
    if (readOnly && explicit.endsWith('-sock') && exists(`${explicit}-ro`)) return { path: `${explicit}-ro`, reason: `read-only sibling of ?socket=${explicit}` };
    if (!readOnly && explicit.endsWith('-sock-ro')) return { path: explicit.slice(0, -3), reason: `read-write sibling of ?socket=${explicit}` };
    return { path: explicit, reason: 'given by ?socket=' };
  }
  const cands = candidateSockets(hv, path, readOnly, opts.runDir ?? DEFAULT_RUN_DIR, opts.env);
  for (const c of cands) {
    if (exists(c)) return { path: c, reason: c.includes('/libvirt-sock') ? `monolithic libvirtd socket ${c} exists` : `modular daemon socket ${c} exists` };
  }
  const last = cands[cands.length - 1] as string;
  return { path: last, reason: `none of ${cands.join(', ')} exists; trying ${last}` };
}
