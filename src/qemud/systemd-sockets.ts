/**
 * Socket activation of virt-qemud (virt-qemud.socket): systemd passes the
 * read-write and read-only listening sockets (LISTEN_FDS, from descriptor 3),
 * named by FileDescriptorName= in LISTEN_FDNAMES, as libvirt's units do.
 */
import { VirtError } from '../virt/errors.ts';

export interface ActivatedSockets {
  rw: number;
  ro: number;
}

export const RW_FD_NAME = 'virt-qemud-sock';
export const RO_FD_NAME = 'virt-qemud-sock-ro';

/** The passed sockets, or undefined when systemd passed none to this process. Clears the variables. */
export function activatedSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ActivatedSockets | undefined {
  const count = Number(env['LISTEN_FDS']);
  if (env['LISTEN_FDS'] === undefined || env['LISTEN_FDS'] === '' || !Number.isInteger(count) || count < 1) return undefined;
  if (env['LISTEN_PID'] !== undefined && env['LISTEN_PID'] !== '' && Number(env['LISTEN_PID']) !== pid) return undefined;
  const names = (env['LISTEN_FDNAMES'] ?? '').split(':');
  delete env['LISTEN_FDS'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDNAMES'];
  const fdOf = (name: string, fallback: number): number => {
    const i = names.indexOf(name);
    return i === -1 ? fallback : 3 + i;
  };
  if (count < 2) throw new VirtError('VIRT_ERR_CONFIG', `systemd passed ${count} socket to virt-qemud; it needs two (${RW_FD_NAME} and ${RO_FD_NAME}, see virt-qemud.socket)`);
  const rw = fdOf(RW_FD_NAME, 3);
  const ro = fdOf(RO_FD_NAME, 4);
  if (rw === ro) throw new VirtError('VIRT_ERR_CONFIG', 'systemd passed the same socket for read-write and read-only');
  return { rw, ro };
}
