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
