/**
 * The migration stream between QEMU and a save image, carried over a private
 * unix socket (in the 0700 QMP directory) instead of a shell command: QEMU
 * never opens the image itself, so it cannot be pointed at another file, and
 * virt-qemud writes and reads only through the descriptor it opened and
 * checked (save-image.ts). Back-pressure is the stream pipeline's.
 */
import { chownSync, createReadStream, createWriteStream, fsyncSync, openSync } from 'node:fs';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { VirtError } from '../virt/errors.ts';
import { unlinkQuiet } from './store.ts';

export interface Receiver {
  /** Resolves with the bytes written once QEMU has closed the stream and the data is on disk. */
  done: Promise<number>;
  close(): void;
}

/** Listens on `sockPath`; the one connection's bytes are written to fd from `offset`. */
export async function receiveInto(sockPath: string, fd: number, offset: number, owner?: { uid: number; gid: number }): Promise<Receiver> {
  unlinkQuiet(sockPath);
  let conn: Socket | undefined;
  const server: Server = createServer();
  let resolveDone!: (n: number) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<number>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => undefined);
  server.on('connection', (sock) => {
    if (conn !== undefined) {
      sock.destroy();
      return;
    }
    conn = sock;
    server.close();
    unlinkQuiet(sockPath);
    // The stream gets a descriptor of its own to the same open file (the /proc magic link names the
    // inode already checked, not the path), so its closing can never touch the caller's descriptor.
    const out = createWriteStream('', { fd: openSync(`/proc/self/fd/${fd}`, 'r+'), start: offset, autoClose: true });
    pipeline(sock, out).then(
      async () => {
        try {
          if (!out.closed) await once(out, 'close');
          fsyncSync(fd);
        } catch (err) {
          rejectDone(err);
          return;
        }
        resolveDone(out.bytesWritten);
      },
      (err: unknown) => rejectDone(new VirtError('VIRT_ERR_OPERATION_FAILED', `writing the save image failed: ${(err as Error).message}`, { cause: err })),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: sockPath }, () => {
      server.off('error', reject);
      // An unprivileged QEMU must be able to connect to it.
      if (owner !== undefined) chownSync(sockPath, owner.uid, owner.gid);
      resolve();
    });
  });
  return {
    done,
    close() {
      server.close();
      conn?.destroy();
      unlinkQuiet(sockPath);
    },
  };
}

/** Connects to QEMU's incoming socket and streams fd from `offset` to it. */
export async function sendFrom(sockPath: string, fd: number, offset: number): Promise<void> {
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ path: sockPath });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
  const input = createReadStream('', { fd: openSync(`/proc/self/fd/${fd}`, 'r'), start: offset, autoClose: true });
  let readFailed: Error | undefined;
  // A file-system error (it names its syscall) is a failure to read the image; stream errors are the socket's.
  input.once('error', (err) => {
    if ((err as NodeJS.ErrnoException).syscall !== undefined) readFailed = err;
  });
  try {
    await pipeline(input, sock);
  } catch (err) {
    sock.destroy();
    input.destroy();
    // QEMU closes its end as soon as it has read the stream's end marker, sometimes before this side has seen
    // the end of the file: only a failure to read the image is ours; QEMU's migration status decides the rest.
    if (readFailed === undefined) return;
    throw new VirtError('VIRT_ERR_OPERATION_FAILED', `reading the save image failed: ${readFailed.message}`, { cause: err });
  }
}
