/**
 * Running the xl toolstack: locally (`xl` as a child process, as libvirt's
 * libxl driver links libxl in-process), or through an xl channel, a unix
 * socket to a relay that runs xl as root in dom0 (the Xen lab's way; see
 * docs/xen.md). Arguments are always passed as a word list, never through a
 * shell. Each run has a deadline.
 */
import { execFile } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { VirtError } from '../../virt/errors.ts';

export interface XlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface XlRunner {
  readonly closed: boolean;
  /** What it runs (for logs): "xl" or "xl via <socket>". */
  readonly describe: string;
  run(args: readonly string[], opts?: { timeoutMs?: number }): Promise<XlResult>;
  close(): Promise<void>;
}

const DRIVER = 'xen/libxl';

export function localXl(binary: string, defaultTimeoutMs: number): XlRunner {
  let closed = false;
  return {
    get closed() {
      return closed;
    },
    describe: binary,
    run: (args, o) =>
      new Promise((resolve, reject) => {
        execFile(binary, [...args], { timeout: o?.timeoutMs ?? defaultTimeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
          if (err !== null && typeof (err as { code?: unknown }).code !== 'number') {
            const code = (err as { code?: unknown }).code;
            reject(new VirtError(code === 'ENOENT' ? 'VIRT_ERR_NO_CONNECT' : 'VIRT_ERR_OPERATION_TIMEOUT', `${binary} ${args.join(' ')}: ${err.message}`, { driver: DRIVER, cause: err }));
            return;
          }
          resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout, stderr });
        });
      }),
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}

/** The xl channel: "ID BASE64(NUL-separated argv)\n" -> "ID EXIT BASE64(stdout) BASE64(stderr)\n" ("-" = empty). */
export async function channelXl(socketPath: string, defaultTimeoutMs: number): Promise<XlRunner> {
  const sock: Socket = createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new VirtError('VIRT_ERR_NO_CONNECT', `xl channel ${socketPath}: no connection within ${defaultTimeoutMs} ms`, { driver: DRIVER })), defaultTimeoutMs);
    sock.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(t);
      reject(new VirtError('VIRT_ERR_NO_CONNECT', `xl channel ${socketPath}: ${err.message}`, { driver: DRIVER, cause: err }));
    });
  });
  let closed = false;
  let buf = '';
  let next = 1;
  const waiting = new Map<string, (parts: string[] | undefined) => void>();
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    if (buf.length > 64 * 1024 * 1024) sock.destroy();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const parts = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      const cb = waiting.get(parts[0] ?? '');
      waiting.delete(parts[0] ?? '');
      cb?.(parts);
    }
  });
  const gone = (): void => {
    closed = true;
    for (const cb of waiting.values()) cb(undefined);
    waiting.clear();
  };
  sock.on('close', gone);
  sock.on('error', gone);
  const dec = (x: string | undefined): string => (x === undefined || x === '-' ? '' : Buffer.from(x, 'base64').toString('utf8'));
  return {
    get closed() {
      return closed || sock.destroyed;
    },
    describe: `xl via ${socketPath}`,
    run: (args, o) => {
      if (closed) return Promise.reject(new VirtError('VIRT_ERR_NO_CONNECT', `xl channel ${socketPath} is closed`, { driver: DRIVER }));
      if (args.some((a) => a.includes('\0'))) return Promise.reject(new VirtError('VIRT_ERR_INVALID_ARG', 'xl arguments may not contain NUL', { driver: DRIVER }));
      const id = String(next++);
      const timeoutMs = o?.timeoutMs ?? defaultTimeoutMs;
      return new Promise<XlResult>((resolve, reject) => {
        const t = setTimeout(() => {
          waiting.delete(id);
          reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `xl ${args.join(' ')}: no answer within ${timeoutMs} ms`, { driver: DRIVER }));
        }, timeoutMs);
        waiting.set(id, (parts) => {
          clearTimeout(t);
          if (parts === undefined || parts.length < 4) reject(new VirtError('VIRT_ERR_NO_CONNECT', `xl channel ${socketPath} closed during xl ${args.join(' ')}`, { driver: DRIVER }));
          else resolve({ code: Number(parts[1]), stdout: dec(parts[2]), stderr: dec(parts[3]) });
        });
        sock.write(`${id} ${Buffer.from(args.join('\0')).toString('base64')}\n`);
      });
    },
    close: () => {
      closed = true;
      sock.destroy();
      return Promise.resolve();
    },
  };
}
