/**
 * The driver's side of the virt-qemud protocol: one multiplexed connection,
 * replies matched by id, every request bounded by a deadline and an optional
 * AbortSignal. Reconnects (and, when allowed, starts virt-qemud) on demand.
 */
import { createConnection, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../../util/logger.ts';
import { VirtError } from '../../virt/errors.ts';
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, replyError } from '../../qemud-shared/protocol.ts';
import type { OpName } from '../ops.ts';

export interface ClientOptions {
  socketPath: string;
  maxFrameBytes: number;
  connectTimeoutMs: number;
  logger?: Logger;
  /**
   * Starts a supervisor when none answers; omitted: no auto-start. Told why
   * nothing answered: 'missing' (no socket file: none runs or one was stopped
   * cleanly) or 'refused' (a socket left behind by one that died). Returns
   * false to decline, and the connection fails with VIRT_ERR_NO_CONNECT.
   */
  autostart?: (why: 'missing' | 'refused') => Promise<boolean>;
  /** Appended to the message when nothing answers and no supervisor is started. */
  noConnectHint?: string;
}

export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

interface Pending {
  op: OpName;
  /** The connection the request went out on; only its loss fails the request. */
  socket: Socket;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export class QemudClient {
  readonly #o: ClientOptions;
  readonly #log: Logger;
  #socket: Socket | null = null;
  #connecting: Promise<Socket> | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(o: ClientOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
  }

  async #connect(): Promise<Socket> {
    if (this.#socket !== null && !this.#socket.destroyed && this.#socket.writable) return this.#socket;
    this.#connecting ??= this.#doConnect().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #doConnect(): Promise<Socket> {
    let sock: Socket;
    try {
      sock = await connectOnce(this.#o.socketPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const refuse = (): never => {
        const hint = this.#o.noConnectHint === undefined ? '' : `; ${this.#o.noConnectHint}`;
        throw new VirtError('VIRT_ERR_NO_CONNECT', `no virt-qemud answers at ${this.#o.socketPath} (${code === 'ENOENT' ? 'no socket' : (err as Error).message})${hint}`, { cause: err });
      };
      const start = this.#o.autostart;
      if (start === undefined || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) return refuse();
      const why = code === 'ENOENT' ? 'missing' : 'refused';
      if (!(await start(why))) return refuse();
      this.#log.info('no virt-qemud answered; started one', { socket: this.#o.socketPath, why });
      const until = Date.now() + this.#o.connectTimeoutMs;
      let last: unknown = err;
      for (;;) {
        try {
          sock = await connectOnce(this.#o.socketPath);
          break;
        } catch (e) {
          last = e;
        }
        if (Date.now() > until) {
          throw new VirtError('VIRT_ERR_NO_CONNECT', `virt-qemud did not open ${this.#o.socketPath} within ${this.#o.connectTimeoutMs} ms: ${(last as Error).message}`);
        }
        await sleep(50);
      }
    }
    if (this.#closed) {
      sock.destroy();
      throw new VirtError('VIRT_ERR_INVALID_CONN', 'connection closed');
    }
    const decoder = new FrameDecoder(this.#o.maxFrameBytes);
    sock.on('data', (chunk: Buffer) => {
      for (const m of decoder.push(chunk)) {
        if (m.kind !== 'message') {
          this.#failAll(sock, new VirtError('VIRT_ERR_RPC', m.kind === 'oversized' ? `virt-qemud sent a frame of ${m.length} bytes, over the limit` : `virt-qemud sent a malformed frame: ${m.message}`));
          sock.destroy();
          return;
        }
        this.#onReply(m.value);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.#failAll(sock, new VirtError('VIRT_ERR_NO_CONNECT', 'connection to virt-qemud closed')));
    this.#socket = sock;
    return sock;
  }

  #onReply(v: unknown): void {
    if (typeof v !== 'object' || v === null) return;
    const r = v as Record<string, unknown>;
    const id = r['id'];
    if (typeof id !== 'number') {
      // A reply to no request: the server could not read one of ours.
      if (r['error'] !== undefined) this.#log.warn('virt-qemud refused a frame', { error: replyError(r['error']).message });
      return;
    }
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    if (r['v'] !== PROTOCOL_VERSION) p.reject(new VirtError('VIRT_ERR_RPC', `virt-qemud speaks protocol version ${JSON.stringify(r['v'])}, expected ${PROTOCOL_VERSION}`));
    else if (r['error'] !== undefined) p.reject(replyError(r['error']));
    else p.resolve(r['result']);
  }

  #failAll(sock: Socket, err: Error): void {
    if (this.#socket === sock) this.#socket = null;
    for (const [id, p] of this.#pending) {
      if (p.socket !== sock) continue;
      this.#pending.delete(id);
      p.reject(err);
    }
  }

  /**
   * One request. A read that finds the connection dead (a supervisor that was
   * killed or restarted) is retried on a fresh connection a few times; a dying
   * supervisor can still accept a connection for a moment while its last
   * threads exit. Writes are never retried, as they may have run.
   */
  async call(op: OpName, args: unknown[], opts: CallOptions & { idempotent?: boolean }): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#call(op, args, opts);
      } catch (err) {
        const retry = opts.idempotent === true && attempt < 4 && !this.#closed && err instanceof VirtError && err.code === 'VIRT_ERR_NO_CONNECT' && opts.signal?.aborted !== true;
        if (!retry) throw err;
        this.#log.info('connection to virt-qemud lost; retrying', { op, attempt: attempt + 1 });
        if (attempt > 0) await sleep(50 * attempt);
      }
    }
  }

  async #call(op: OpName, args: unknown[], opts: CallOptions): Promise<unknown> {
    if (this.#closed) throw new VirtError('VIRT_ERR_INVALID_CONN', 'connection to virt-qemud is closed');
    if (opts.signal?.aborted === true) throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${op} aborted`);
    const sock = await this.#connect();
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      if (opts.signal?.aborted === true) {
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${op} aborted`));
        return;
      }
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `virt-qemud did not answer ${op} within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onAbort = (): void => {
        this.#pending.delete(id);
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${op} aborted`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        op,
        socket: sock,
        resolve: (v) => {
          cleanup();
          resolve(v);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      sock.write(encodeFrame({ v: PROTOCOL_VERSION, id, op, args }));
    });
  }

  close(): void {
    this.#closed = true;
    const s = this.#socket;
    this.#socket = null;
    if (s !== null) {
      this.#failAll(s, new VirtError('VIRT_ERR_INVALID_CONN', 'connection closed'));
      s.destroy();
    }
  }
}
