/**
 * The byte pipes the RPC transport runs over: a unix socket, or a child
 * process's stdin/stdout (virt-proxy --stdio). The transport only writes,
 * reads and tears down; how the pipe is opened belongs here.
 */
import type { ChildProcess } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { armDeadline } from '../util/deadline.ts';
import { VirtError } from '../virt/errors.ts';

export interface ByteStream {
  /** Starts delivering bytes; onClose fires once, with why when known (for the error message). */
  attach(onData: (chunk: Buffer) => void, onClose: (detail?: string) => void): void;
  write(frame: Buffer): void;
  /** Tears the pipe down; resolves once it is gone. */
  destroy(): Promise<void>;
}

/** Opens one pipe to the peer; rejects with a VirtError (VIRT_ERR_NO_CONNECT or VIRT_ERR_OPERATION_TIMEOUT). */
export type StreamOpener = (timeoutMs: number, signal: AbortSignal | undefined, peer: string) => Promise<ByteStream>;

/** What to tell the user per connect errno, e.g. { EACCES: 'add this user to group X' }. */
export type ConnectHints = Partial<Record<string, string>>;

const DEFAULT_HINTS: ConnectHints = {
  ENOENT: 'no socket there: is the daemon running, and is this the right socket?',
  ECONNREFUSED: 'nobody listens there: is the daemon running?',
  EACCES: 'permission denied: see docs/libvirt.md for the group that may use it',
};

export function socketStream(s: Socket): ByteStream {
  return {
    attach(onData, onClose) {
      let why: string | undefined;
      s.on('data', onData);
      s.on('error', (err) => {
        why = `connection failed: ${err.message}`;
      });
      s.on('close', () => onClose(why));
    },
    write(frame) {
      s.write(frame);
    },
    destroy: () =>
      new Promise<void>((ok) => {
        if (s.destroyed && s.closed) return ok();
        s.once('close', () => ok());
        s.destroy();
      }),
  };
}

/** An opener for the unix socket at path; hints are added to connect errors by errno. */
export function unixSocket(path: string, hints: ConnectHints = DEFAULT_HINTS): StreamOpener {
  return (timeoutMs, signal, peer) =>
    new Promise((resolve, reject) => {
      const s = createConnection(path);
      const done = (err: Error | null): void => {
        disarm();
        s.off('connect', onConnect);
        s.off('error', onError);
        if (err === null) resolve(socketStream(s));
        else {
          s.destroy();
          reject(err);
        }
      };
      const onConnect = (): void => done(null);
      const onError = (err: NodeJS.ErrnoException): void => {
        const hint = hints[err.code ?? ''];
        done(new VirtError('VIRT_ERR_NO_CONNECT', `cannot connect to ${peer}: ${err.message}${hint === undefined ? '' : ` (${hint})`}`, { cause: err }));
      };
      const expired = (aborted: boolean): void => done(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', aborted ? `connecting to ${peer} aborted (deadline)` : `connecting to ${peer} took over ${timeoutMs} ms`));
      const disarm = armDeadline(timeoutMs, signal, expired);
      s.once('connect', onConnect);
      s.once('error', onError);
      if (signal?.aborted === true) expired(true);
    });
}

const MAX_STDERR_KEEP = 2048;

/**
 * A spawned child's stdin/stdout as a stream. Its stderr goes to onStderr
 * line by line, and its last line ends the close reason. destroy() closes
 * stdin and kills the child if it has not exited after graceMs.
 */
export function childStream(child: ChildProcess, opts: { graceMs: number; onStderr?: (line: string) => void }): ByteStream {
  const { stdin, stdout, stderr } = child;
  if (stdin === null || stdout === null || stderr === null) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', 'child process has no pipes');
  let tail = '';
  stderr.setEncoding('utf8');
  stderr.on('data', (s: string) => {
    tail = (tail + s).slice(-MAX_STDERR_KEEP);
    for (const line of s.split('\n')) if (line.trim() !== '') opts.onStderr?.(line.slice(0, 500));
  });
  // EPIPE on a dead child surfaces here; the close handler reports it.
  stdin.on('error', () => undefined);
  let exited = child.exitCode !== null || child.signalCode !== null;
  let failure: string | undefined;
  child.on('error', (err) => {
    failure = `failed: ${err.message}`;
  });
  const gone = new Promise<string>((ok) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = true;
      const last = tail.trim().split('\n').at(-1) ?? '';
      ok(`${failure ?? `exited (${signal !== null ? `signal ${signal}` : `code ${String(code)}`})`}${last !== '' ? `: ${last}` : ''}`);
    });
  });
  return {
    attach(onData, onClose) {
      stdout.on('data', onData);
      void gone.then(onClose);
    },
    write(frame) {
      stdin.write(frame);
    },
    async destroy() {
      if (exited) return;
      stdin.end();
      const grace = setTimeout(() => child.kill('SIGKILL'), opts.graceMs);
      await gone;
      clearTimeout(grace);
    },
  };
}
