/**
 * XenStore client over the xenstored unix socket (protocols.md §3): request
 * ids matched on replies, transactions, watches, ERROR replies as typed
 * errors. A read-only client refuses every write locally (the daemon's
 * socket_ro is gone since 4.15, pitfall 5); payloads above 4096 bytes are
 * refused before anything is sent (pitfall 7: the daemon would kill the link).
 */
import { createConnection, type Socket } from 'node:net';
import type { Logger } from '../../util/logger.ts';
import { VirtError, type VirtErrorCode, type VirtErrorOptions } from '../../virt/errors.ts';
import { encodeMessage, splitNul, XS, XS_PAYLOAD_MAX, XsDecoder, type XsMessage } from './xenstore-wire.ts';

const DRIVER = 'xen/xenstore';
export const XENSTORE_DEFAULT_SOCKET = '/var/run/xenstored/socket';

/** Socket choice like libxenstore: explicit setting, $XENSTORED_PATH, $XENSTORED_RUNDIR/socket, default. */
export function resolveXenStoreSocket(setting: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (setting !== undefined && setting.trim() !== '') return setting.trim();
  const p = env.XENSTORED_PATH;
  if (p !== undefined && p !== '') return p;
  const dir = env.XENSTORED_RUNDIR;
  if (dir !== undefined && dir !== '') return `${dir.replace(/\/+$/, '')}/socket`;
  return XENSTORE_DEFAULT_SOCKET;
}

const ERRNO_CODES: Record<string, VirtErrorCode> = {
  EACCES: 'VIRT_ERR_OPERATION_DENIED',
  EROFS: 'VIRT_ERR_OPERATION_DENIED',
  EPERM: 'VIRT_ERR_OPERATION_DENIED',
  EINVAL: 'VIRT_ERR_INVALID_ARG',
  E2BIG: 'VIRT_ERR_INVALID_ARG',
  ENOSYS: 'VIRT_ERR_NO_SUPPORT',
};

/** An ERROR reply from xenstored; errno is the daemon's name (ENOENT, EAGAIN, ...). */
export class XenStoreError extends VirtError {
  readonly errno: string;
  constructor(errno: string, message: string, options: VirtErrorOptions = {}) {
    super(ERRNO_CODES[errno] ?? 'VIRT_ERR_OPERATION_FAILED', message, { driver: DRIVER, ...options });
    this.errno = errno;
  }
}

export function isXsErrno(err: unknown, errno: string): err is XenStoreError {
  return err instanceof XenStoreError && err.errno === errno;
}

const TYPE_NAMES = new Map<number, string>(Object.entries(XS).map(([k, v]) => [v, k]));
const WRITE_TYPES = new Set<number>([XS.WRITE, XS.MKDIR, XS.RM, XS.SET_PERMS, XS.INTRODUCE, XS.RELEASE, XS.SET_TARGET, XS.RESUME]);

export interface XenStoreClientOptions {
  socketPath: string;
  readOnly: boolean;
  timeoutMs: number;
  logger: Logger;
}

export interface XsCallOptions {
  /** Transaction id (0 or absent: none). */
  tx?: number;
  signal?: AbortSignal;
}

interface Pending {
  type: number;
  resolve: (m: XsMessage) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

export type WatchListener = (path: string, token: string) => void;

export class XenStoreClient {
  readonly socketPath: string;
  readonly readOnly: boolean;
  readonly #socket: Socket;
  readonly #opts: XenStoreClientOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #watches = new Map<string, WatchListener>();
  readonly #decoder = new XsDecoder();
  #nextReqId = 1;
  #closed: Error | undefined;

  private constructor(socket: Socket, opts: XenStoreClientOptions) {
    this.#socket = socket;
    this.#opts = opts;
    this.socketPath = opts.socketPath;
    this.readOnly = opts.readOnly;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new VirtError('VIRT_ERR_RPC', `xenstore connection ${this.socketPath} failed: ${err.message}`, { driver: DRIVER, cause: err })));
    socket.on('close', () => this.#fail(new VirtError('VIRT_ERR_RPC', `xenstore connection ${this.socketPath} closed`, { driver: DRIVER })));
  }

  /** True once the connection is gone (closed by us, or the daemon went away). */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  static connect(opts: XenStoreClientOptions): Promise<XenStoreClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(opts.socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `xenstore socket ${opts.socketPath}: no connection within ${opts.timeoutMs} ms`, { driver: DRIVER }));
      }, opts.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new XenStoreClient(socket, opts));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new VirtError('VIRT_ERR_NO_CONNECT', `cannot connect to xenstore socket ${opts.socketPath}: ${err.code ?? err.message}`, { driver: DRIVER, cause: err }));
      });
    });
  }

  #onData(chunk: Buffer): void {
    let msgs: XsMessage[];
    try {
      msgs = this.#decoder.push(chunk);
    } catch (err) {
      this.#fail(new VirtError('VIRT_ERR_RPC', `xenstore reply refused: ${(err as Error).message}`, { driver: DRIVER }));
      this.#socket.destroy();
      return;
    }
    for (const m of msgs) {
      if (m.type === XS.WATCH_EVENT) {
        const [path, token] = splitNul(m.payload);
        if (path === undefined || token === undefined) continue;
        const listener = this.#watches.get(token);
        try {
          listener?.(path, token);
        } catch (err) {
          this.#opts.logger.warn('xenstore watch listener threw', { token, err });
        }
        continue;
      }
      const p = this.#pending.get(m.reqId);
      if (p === undefined) {
        this.#opts.logger.debug('xenstore reply for no pending request', { req_id: m.reqId, type: m.type });
        continue;
      }
      this.#pending.delete(m.reqId);
      p.cleanup();
      if (m.type === XS.ERROR) {
        const errno = m.payload.toString('latin1').replace(/\0.*$/s, '');
        const name = /^E[A-Z0-9]{1,15}$/.test(errno) ? errno : 'EIO';
        p.reject(new XenStoreError(name, `xenstore ${TYPE_NAMES.get(p.type) ?? p.type} failed: ${name}`));
      } else if (m.type !== p.type) {
        p.reject(new VirtError('VIRT_ERR_RPC', `xenstore answered type ${m.type} to a ${TYPE_NAMES.get(p.type) ?? p.type}`, { driver: DRIVER }));
      } else {
        p.resolve(m);
      }
    }
  }

  #fail(err: Error): void {
    if (this.#closed === undefined) this.#closed = err;
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.cleanup();
      p.reject(err);
    }
  }

  /** Sends one request and waits for its reply (matched on req_id). */
  request(type: number, payload: Buffer, opts: XsCallOptions = {}): Promise<XsMessage> {
    const name = TYPE_NAMES.get(type) ?? String(type);
    if (this.readOnly && WRITE_TYPES.has(type)) {
      return Promise.reject(new VirtError('VIRT_ERR_OPERATION_DENIED', `xenstore ${name} refused: this connection is read-only`, { driver: DRIVER }));
    }
    if (payload.length > XS_PAYLOAD_MAX) {
      return Promise.reject(new VirtError('VIRT_ERR_INVALID_ARG', `xenstore ${name} payload of ${payload.length} bytes exceeds the ${XS_PAYLOAD_MAX}-byte limit`, { driver: DRIVER }));
    }
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (opts.signal?.aborted === true) return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `xenstore ${name}: aborted`, { driver: DRIVER }));
    const reqId = this.#nextReqId;
    this.#nextReqId = (this.#nextReqId + 1) >>> 0 || 1;
    return new Promise<XsMessage>((resolve, reject) => {
      const timeout = (why: string): void => {
        this.#pending.delete(reqId);
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `xenstore ${name}: ${why}`, { driver: DRIVER }));
      };
      const timer = setTimeout(() => timeout(`no reply within ${this.#opts.timeoutMs} ms`), this.#opts.timeoutMs);
      const onAbort = (): void => timeout('aborted by the caller');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      this.#pending.set(reqId, { type, resolve, reject, cleanup });
      this.#socket.write(encodeMessage({ type, reqId, txId: opts.tx ?? 0, payload }));
    });
  }

  static #path(path: string): Buffer {
    if (path === '' || path.includes('\0')) throw new VirtError('VIRT_ERR_INVALID_ARG', `invalid xenstore path ${JSON.stringify(path)}`, { driver: DRIVER });
    return Buffer.from(path + '\0', 'utf8');
  }

  async read(path: string, opts?: XsCallOptions): Promise<string> {
    return (await this.request(XS.READ, XenStoreClient.#path(path), opts)).payload.toString('utf8');
  }

  /** read() that answers undefined for a missing node (ENOENT). */
  async readOptional(path: string, opts?: XsCallOptions): Promise<string | undefined> {
    try {
      return await this.read(path, opts);
    } catch (err) {
      if (isXsErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Child names; lists too big for one payload (E2BIG) are read with DIRECTORY_PART (pitfall 7). */
  async directory(path: string, opts?: XsCallOptions): Promise<string[]> {
    try {
      return splitNul((await this.request(XS.DIRECTORY, XenStoreClient.#path(path), opts)).payload);
    } catch (err) {
      if (!isXsErrno(err, 'E2BIG')) throw err;
      return this.#directoryParts(path, opts);
    }
  }

  async #directoryParts(path: string, opts?: XsCallOptions): Promise<string[]> {
    // Restart when the node changes between parts (its gencnt moves).
    for (let attempt = 0; attempt < 5; attempt++) {
      const names: string[] = [];
      let offset = 0;
      let gen: string | undefined;
      let restarted = false;
      for (let part = 0; part < 10_000; part++) {
        const reply = await this.request(XS.DIRECTORY_PART, Buffer.from(`${path}\0${offset}\0`, 'utf8'), opts);
        const nul = reply.payload.indexOf(0);
        if (nul < 0) throw new VirtError('VIRT_ERR_RPC', `xenstore DIRECTORY_PART reply without generation count for ${path}`, { driver: DRIVER });
        const g = reply.payload.subarray(0, nul).toString('latin1');
        if (gen !== undefined && g !== gen) {
          restarted = true;
          break;
        }
        gen = g;
        let chunk = reply.payload.subarray(nul + 1);
        const done = chunk.length === 0 || (chunk.length === 1 && chunk[0] === 0) || (chunk.length >= 2 && chunk[chunk.length - 1] === 0 && chunk[chunk.length - 2] === 0);
        if (done && chunk.length > 0) chunk = chunk.subarray(0, chunk.length - 1);
        if (chunk.length > 0 && chunk[chunk.length - 1] !== 0) throw new VirtError('VIRT_ERR_RPC', `xenstore DIRECTORY_PART reply cut inside a name for ${path}`, { driver: DRIVER });
        names.push(...splitNul(chunk));
        offset += chunk.length;
        if (done) return names;
        if (chunk.length === 0) throw new VirtError('VIRT_ERR_RPC', `xenstore DIRECTORY_PART made no progress for ${path}`, { driver: DRIVER });
      }
      if (!restarted) break;
    }
    throw new VirtError('VIRT_ERR_RPC', `xenstore directory ${path} kept changing or never ended`, { driver: DRIVER });
  }

  async write(path: string, value: string, opts?: XsCallOptions): Promise<void> {
    await this.request(XS.WRITE, Buffer.concat([XenStoreClient.#path(path), Buffer.from(value, 'utf8')]), opts);
  }

  async mkdir(path: string, opts?: XsCallOptions): Promise<void> {
    await this.request(XS.MKDIR, XenStoreClient.#path(path), opts);
  }

  async rm(path: string, opts?: XsCallOptions): Promise<void> {
    await this.request(XS.RM, XenStoreClient.#path(path), opts);
  }

  async getPerms(path: string, opts?: XsCallOptions): Promise<string[]> {
    return splitNul((await this.request(XS.GET_PERMS, XenStoreClient.#path(path), opts)).payload);
  }

  async getDomainPath(domid: number, opts?: XsCallOptions): Promise<string> {
    const reply = await this.request(XS.GET_DOMAIN_PATH, Buffer.from(`${domid}\0`), opts);
    return reply.payload.toString('utf8').replace(/\0$/, '');
  }

  async transactionStart(opts?: XsCallOptions): Promise<number> {
    const reply = await this.request(XS.TRANSACTION_START, Buffer.from('\0'), opts);
    const text = reply.payload.toString('latin1').replace(/\0$/, '');
    const id = Number(text);
    if (!/^\d{1,10}$/.test(text) || id === 0 || id > 0xffffffff) throw new VirtError('VIRT_ERR_RPC', `xenstore returned a bad transaction id ${JSON.stringify(text)}`, { driver: DRIVER });
    return id;
  }

  async transactionEnd(tx: number, commit: boolean, opts?: XsCallOptions): Promise<void> {
    await this.request(XS.TRANSACTION_END, Buffer.from(commit ? 'T\0' : 'F\0'), { ...opts, tx });
  }

  /** Runs fn in a transaction; retries on EAGAIN (a conflicting commit) up to `retries` times. */
  async transaction<T>(fn: (tx: number) => Promise<T>, opts: { retries?: number; signal?: AbortSignal } = {}): Promise<T> {
    const retries = opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      const tx = await this.transactionStart({ signal: opts.signal });
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await this.transactionEnd(tx, false).catch(() => undefined);
        throw err;
      }
      try {
        await this.transactionEnd(tx, true, { signal: opts.signal });
        return result;
      } catch (err) {
        if (!isXsErrno(err, 'EAGAIN') || attempt >= retries) throw err;
      }
    }
  }

  /** Registers a watch; xenstored fires it once at once, then on every change under path. */
  async watch(path: string, token: string, listener: WatchListener, opts?: XsCallOptions): Promise<void> {
    if (this.#watches.has(token)) throw new VirtError('VIRT_ERR_INVALID_ARG', `watch token ${JSON.stringify(token)} already in use`, { driver: DRIVER });
    this.#watches.set(token, listener);
    try {
      await this.request(XS.WATCH, Buffer.from(`${path}\0${token}\0`, 'utf8'), opts);
    } catch (err) {
      this.#watches.delete(token);
      throw err;
    }
  }

  async unwatch(path: string, token: string, opts?: XsCallOptions): Promise<void> {
    try {
      await this.request(XS.UNWATCH, Buffer.from(`${path}\0${token}\0`, 'utf8'), opts);
    } finally {
      this.#watches.delete(token);
    }
  }

  close(): Promise<void> {
    this.#fail(new VirtError('VIRT_ERR_RPC', 'xenstore client closed', { driver: DRIVER }));
    return new Promise((resolve) => {
      if (this.#socket.destroyed) {
        resolve();
        return;
      }
      this.#socket.once('close', () => resolve());
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), 200).unref();
    });
  }
}
