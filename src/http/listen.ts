import type { Server } from 'node:net';
import { VirtError } from '../virt/errors.ts';

export interface ListenTarget {
  host: string | undefined;
  port: number;
}

/** Splits "[HOST]:PORT" (":9477", "127.0.0.1:9477", "[::1]:9477"). An empty host means every interface. */
export function parseListenAddress(address: string): ListenTarget {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port > 65535) {
    throw new VirtError('VIRT_ERR_CONFIG', `listen address ${JSON.stringify(address)} is not [HOST]:PORT with a port from 0 to 65535`);
  }
  const host = m[1] ?? m[2];
  return { host: host === '' || host === undefined ? undefined : host, port };
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

/** Serves on an inherited listening descriptor. */
export function listenFd(server: Server, fd: number): Promise<{ address: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new VirtError('VIRT_ERR_CONFIG', `cannot serve on inherited socket descriptor ${fd}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ fd }, () => {
      server.off('error', onError);
      const a = server.address();
      if (a === null || typeof a === 'string') return resolve({ address: `fd:${fd}${a === null ? '' : ` (${a})`}`, port: 0 });
      resolve({ address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`, port: a.port });
    });
  });
}

export function listen(server: Server, target: ListenTarget): Promise<{ address: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new VirtError('VIRT_ERR_CONFIG', `cannot listen on ${target.host ?? ''}:${target.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(target.port, target.host, () => {
      server.off('error', onError);
      const a = server.address();
      if (a === null || typeof a === 'string') return resolve({ address: String(a), port: target.port });
      resolve({ address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`, port: a.port });
    });
  });
}

export function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
