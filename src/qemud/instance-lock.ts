/**
 * One virt-qemud per runtime directory. The lock is a listening unix socket
 * in Linux's abstract namespace, named after the directory: the kernel
 * releases it when its holder dies in any way, so there is no stale lock to
 * judge and no race between two starters that both find a stale pid file.
 * (Abstract names belong to a network namespace; two virt-qemuds in different
 * network namespaces sharing one directory are not detected.)
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { VirtError } from '../virt/errors.ts';

export interface InstanceLock {
  release(): Promise<void>;
}

export function lockName(runtimeDir: string): string {
  let dir = runtimeDir;
  try {
    dir = realpathSync(runtimeDir);
  } catch {
    // not created yet: the name of the path as given
  }
  return `\0virt-qemud-${createHash('sha256').update(dir).digest('hex').slice(0, 32)}`;
}

/** Takes the lock of a runtime directory; VIRT_ERR_OPERATION_INVALID when another virt-qemud holds it. */
export function acquireInstanceLock(runtimeDir: string): Promise<InstanceLock> {
  const server: Server = createServer((s) => s.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new VirtError('VIRT_ERR_OPERATION_INVALID', `another virt-qemud is already running for ${runtimeDir}`));
      else reject(new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot take the instance lock of ${runtimeDir}: ${err.message}`, { cause: err }));
    });
    server.listen(lockName(runtimeDir), () => {
      // The lock must not keep the process alive on its own.
      server.unref();
      resolve({ release: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}
