/**
 * The one listener helper of the metrics and admin endpoints: address
 * parsing, the loopback check, the listen promise (inherited descriptors
 * included) and a bounded shutdown.
 */
import { isIP, type Server } from 'node:net';
import { VirtError } from '../virt/errors.ts';

export interface ListenTarget {
  /** '' means every interface. */
  host: string;
  port: number;
}

/** Splits "[HOST]:PORT" (":9477", "127.0.0.1:9477", "[::1]:9477"); `setting` names the flag in errors. */
export function parseListenAddress(address: string, setting = 'web.listen-address'): ListenTarget {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]*)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port > 65535) {
    throw new VirtError('VIRT_ERR_CONFIG', `${setting} ${JSON.stringify(address)} is not [HOST]:PORT with a port from 0 to 65535`);
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

/** Loopback: 127.0.0.0/8, ::1 (also v4-mapped) and the name localhost. An empty host (all interfaces) is not. */
export function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  if (host === 'localhost') return true;
  const v = isIP(host);
  if (v === 4) return host.startsWith('127.');
  if (v === 6) {
    const h = host.toLowerCase();
    return h === '::1' || h === '0:0:0:0:0:0:0:1' || h.startsWith('::ffff:127.');
  }
  return false;
}

/** Splits a comma-separated list of listen addresses (repeated --web.listen-address flags are joined so). */
export function parseListenAddresses(list: string): ListenTarget[] {
  return list.split(',').map((a) => parseListenAddress(a.trim()));
}

/** The first descriptor systemd passes (sd_listen_fds(3)). */
export const SD_LISTEN_FDS_START = 3;

/**
 * The listening sockets systemd passed by socket activation: LISTEN_FDS
 * descriptors from 3 on, meant for this process (LISTEN_PID). The variables
 * are removed from the environment so that children do not take them.
 */
export function systemdListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] {
  const count = Number(env['LISTEN_FDS']);
  const forPid = env['LISTEN_PID'];
  if (env['LISTEN_FDS'] === undefined || !Number.isInteger(count) || count < 1) {
    throw new VirtError('VIRT_ERR_CONFIG', '--web.systemd-socket: systemd passed no socket (LISTEN_FDS is not set); start the exporter from its .socket unit');
  }
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) {
    throw new VirtError('VIRT_ERR_CONFIG', `--web.systemd-socket: the sockets systemd passed are for process ${forPid}, not this one (${pid})`);
  }
  delete env['LISTEN_FDS'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDNAMES'];
  return Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i);
}

type Bound = { address: string; port: number };

/** server.listen as a promise; a failure is VIRT_ERR_CONFIG prefixed by `failure`. */
function listenWith(server: Server, start: (done: () => void) => void, failure: string, unnamed: (a: string | null) => Bound): Promise<Bound> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new VirtError('VIRT_ERR_CONFIG', `${failure}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    start(() => {
      server.off('error', onError);
      const a = server.address();
      resolve(a === null || typeof a === 'string' ? unnamed(a) : { address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`, port: a.port });
    });
  });
}

/** Serves on an inherited listening descriptor. */
export function listenFd(server: Server, fd: number): Promise<Bound> {
  return listenWith(server, (done) => server.listen({ fd }, done), `cannot serve on inherited socket descriptor ${fd}`, (a) => ({ address: `fd:${fd}${a === null ? '' : ` (${a})`}`, port: 0 }));
}

/** Listens on target; a failure is VIRT_ERR_CONFIG naming `setting` and the address. */
export function listen(server: Server, target: ListenTarget, setting = 'web.listen-address'): Promise<Bound> {
  const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  return listenWith(server, (done) => server.listen(target.port, target.host === '' ? undefined : target.host, done), `cannot listen on ${setting} ${where}`, (a) => ({ address: String(a), port: target.port }));
}

/** Stops accepting, closes idle connections, and after graceMs every connection still open. */
export function closeServer(server: Server & { closeIdleConnections?: () => void; closeAllConnections?: () => void }, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    const force = setTimeout(() => server.closeAllConnections?.(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections?.();
  });
}
