/**
 * XenStore client over the xenstored unix socket (protocols.md §3): request
 * ids matched on replies, transactions, watches, ERROR replies as typed
 * errors. A read-only client refuses every write locally (the daemon's
 * socket_ro is gone since 4.15, pitfall 5); payloads above 4096 bytes are
 * refused before anything is sent (pitfall 7: the daemon would kill the link).
 */
import { RpcTransport } from '../../rpc/transport.ts';
import { unixSocket } from '../../rpc/streams.ts';
import type { Logger } from '../../util/logger.ts';
import { VirtError, isVirtError, toVirtError, type VirtErrorCode, type VirtErrorOptions } from '../../virt/errors.ts';
import { encodeMessage, splitNul, XS, XS_HEADER_BYTES, XS_PAYLOAD_MAX, XsDecoder, type XsMessage } from './xenstore-wire.ts';

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

/** Whether err is xenstored's ERROR reply `errno` (by field, so it holds across module copies). */
export function isXsErrno(err: unknown, errno: string): err is XenStoreError {
  return isVirtError(err) && (err as Partial<XenStoreError>).errno === errno;
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

export type WatchListener = (path: string, token: string) => void;

export class XenStoreClient {
  readonly socketPath: string;
  readonly readOnly: boolean;
  readonly #t: RpcTransport<XsMessage>;
  readonly #opts: XenStoreClientOptions;
  readonly #watches = new Map<string, WatchListener>();

  private constructor(opts: XenStoreClientOptions) {
    this.#opts = opts;
    this.socketPath = opts.socketPath;
    this.readOnly = opts.readOnly;
    this.#t = new RpcTransport<XsMessage>({
      peer: `xenstore socket ${opts.socketPath}`,
      open: unixSocket(opts.socketPath, { ENOENT: 'is xenstored running? see XENSTORED_PATH', ECONNREFUSED: 'is xenstored running?', EACCES: 'only root may open it' }),
      decoder: () => new XsDecoder(),
      serialOf: (m) => (m.type === XS.WATCH_EVENT ? undefined : m.reqId),
      onUnsolicited: (m) => this.#onWatch(m),
      maxOutboundBytes: XS_HEADER_BYTES + XS_PAYLOAD_MAX,
      connectTimeoutMs: opts.timeoutMs,
      reconnect: false,
      logger: opts.logger,
    });
  }

  /** True once the connection is gone (closed by us, or the daemon went away). */
  get closed(): boolean {
    return this.#t.closed;
  }

  static async connect(opts: XenStoreClientOptions): Promise<XenStoreClient> {
    const client = new XenStoreClient(opts);
    try {
      await client.#t.connection();
    } catch (err) {
      client.#t.close();
      throw withDriver(err);
    }
    return client;
  }

  #onWatch(m: XsMessage): void {
    const [path, token] = splitNul(m.payload);
    if (path === undefined || token === undefined) return;
    const listener = this.#watches.get(token);
    try {
      listener?.(path, token);
    } catch (err) {
      this.#opts.logger.warn('xenstore watch listener threw', { token, err });
    }
  }

  /** Sends one request and waits for its reply (matched on req_id). */
  async request(type: number, payload: Buffer, opts: XsCallOptions = {}): Promise<XsMessage> {
    const name = TYPE_NAMES.get(type) ?? String(type);
    if (this.readOnly && WRITE_TYPES.has(type)) {
      throw new VirtError('VIRT_ERR_OPERATION_DENIED', `xenstore ${name} refused: this connection is read-only`, { driver: DRIVER });
    }
    if (payload.length > XS_PAYLOAD_MAX) {
      throw new VirtError('VIRT_ERR_INVALID_ARG', `xenstore ${name} payload of ${payload.length} bytes exceeds the ${XS_PAYLOAD_MAX}-byte limit`, { driver: DRIVER });
    }
    let m: XsMessage;
    try {
      m = await this.#t.call((reqId) => encodeMessage({ type, reqId, txId: opts.tx ?? 0, payload }), { timeoutMs: this.#opts.timeoutMs, signal: opts.signal, what: `xenstore ${name}` });
    } catch (err) {
      throw withDriver(err);
    }
    if (m.type === XS.ERROR) {
      const errno = m.payload.toString('latin1').replace(/\0.*$/s, '');
      const e = /^E[A-Z0-9]{1,15}$/.test(errno) ? errno : 'EIO';
      throw new XenStoreError(e, `xenstore ${name} failed: ${e}`);
    }
    if (m.type !== type) throw new VirtError('VIRT_ERR_RPC', `xenstore answered type ${m.type} to a ${name}`, { driver: DRIVER });
    return m;
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
    return this.#t.closeAndWait(new VirtError('VIRT_ERR_NO_CONNECT', `xenstore client ${this.socketPath} closed`, { driver: DRIVER }));
  }
}

/** Marks transport errors as the xenstore sub-driver's. */
function withDriver(err: unknown): VirtError {
  const e = toVirtError(err, 'VIRT_ERR_RPC');
  return e.driver !== undefined ? e : new VirtError(e.code, e.message, { driver: DRIVER, cause: e.cause });
}
