/**
 * A generic multiplexed RPC transport over one stream socket, in the manner
 * of undici's dispatcher base: the transport owns the connection, request
 * serials, the pending map, per-call deadlines and AbortSignals, liveness
 * (keepalive) and reconnection with backoff; each client supplies only its
 * framing (a FrameDecoder and how to read a serial out of a frame) and its
 * handshake. Every failure is a typed VirtError:
 *
 * - the peer unreachable, or the connection lost: VIRT_ERR_NO_CONNECT, and
 *   every request pending on that connection fails at once;
 * - a deadline or an aborted signal: VIRT_ERR_OPERATION_TIMEOUT (the
 *   connection stays; a late reply to that serial is dropped);
 * - a malformed, oversized or unsolicited frame, or a reply to a serial never
 *   sent: VIRT_ERR_RPC, and the connection is closed (the stream can no longer
 *   be trusted to be in step).
 */
import { inSpan } from '../telemetry/tracing.ts';
import { withDeadline } from '../util/deadline.ts';
import { createConnection, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';

/** Splits a byte stream into frames; throws a VirtError (VIRT_ERR_RPC) on a bad one. */
export interface FrameDecoder<F> {
  push(chunk: Buffer): F[];
}

export interface LivenessOptions {
  /** Send a probe after this much inbound silence. */
  intervalMs: number;
  /** Close the connection after this many silent intervals. */
  count: number;
  /** The probe frame (e.g. a keepalive ping). */
  probe: () => Buffer;
}

export interface TransportOptions<F> {
  /** Peer description used in every error message, e.g. "libvirtd at /run/libvirt/libvirt-sock-ro". */
  peer: string;
  socketPath: string;
  decoder: () => FrameDecoder<F>;
  /** The serial a frame answers, or undefined for frames that answer nothing (events, pings). */
  serialOf: (frame: F) => number | undefined;
  /** Frames that answer nothing. */
  onUnsolicited?: (frame: F, conn: TransportConnection<F>) => void;
  /** Runs on every new connection before any queued request is sent on it. */
  handshake?: (conn: TransportConnection<F>, signal: AbortSignal | undefined) => Promise<void>;
  /** Called once per lost connection (after its pending requests failed). */
  onDisconnect?: (err: VirtError) => void;
  maxOutboundBytes: number;
  connectTimeoutMs: number;
  liveness?: LivenessOptions;
  /** Reconnect backoff after failed connection attempts. */
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
}

export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Short name of the call for error messages. */
  what: string;
}

interface Pending<F> {
  what: string;
  resolve: (f: F) => void;
  reject: (e: Error) => void;
}

const ABANDONED_MAX = 4096;

/** One live connection; requests made on it fail when it dies. */
export class TransportConnection<F> {
  readonly socket: Socket;
  readonly #t: RpcTransport<F>;
  readonly pending = new Map<number, Pending<F>>();
  /** Serials whose callers gave up: their late replies are dropped, not treated as hostile. */
  readonly abandoned = new Set<number>();
  #closed: VirtError | null = null;
  #lastInbound = Date.now();
  #liveTimer: NodeJS.Timeout | null = null;
  #silentIntervals = 0;

  constructor(t: RpcTransport<F>, socket: Socket) {
    this.#t = t;
    this.socket = socket;
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Fails every pending request with err and closes the socket (idempotent). */
  fail(err: VirtError): void {
    if (this.#closed !== null) return;
    this.#closed = err;
    if (this.#liveTimer !== null) clearInterval(this.#liveTimer);
    this.socket.destroy();
    for (const [serial, p] of this.pending) {
      this.pending.delete(serial);
      p.reject(err);
    }
    this.#t.connectionLost(this, err);
  }

  /** Writes a frame that expects no answer (a keepalive pong, an event ack). */
  send(frame: Buffer): void {
    if (this.#closed !== null) return;
    if (frame.length > this.#t.options.maxOutboundBytes) {
      throw new VirtError('VIRT_ERR_RPC', `refusing to send a ${frame.length}-byte message to ${this.#t.options.peer}: over the ${this.#t.options.maxOutboundBytes}-byte limit`);
    }
    this.socket.write(frame);
  }

  /** One call on this connection; used by handshakes and by RpcTransport.call. */
  call(encode: (serial: number) => Buffer, opts: CallOptions): Promise<F> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    if (opts.signal?.aborted === true) return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${opts.what} to ${this.#t.options.peer} aborted`));
    const serial = this.#t.nextSerial();
    let frame: Buffer;
    try {
      frame = encode(serial);
    } catch (err) {
      return Promise.reject(toVirtError(err, 'VIRT_ERR_INVALID_ARG'));
    }
    const limit = this.#t.options.maxOutboundBytes;
    if (frame.length > limit) {
      return Promise.reject(new VirtError('VIRT_ERR_INVALID_ARG', `${opts.what}: the request is ${frame.length} bytes, over the ${limit}-byte message limit of ${this.#t.options.peer}`));
    }
    return new Promise<F>((resolve, reject) => {
      const giveUp = (err: VirtError): void => {
        if (!this.pending.delete(serial)) return;
        this.abandoned.add(serial);
        if (this.abandoned.size > ABANDONED_MAX) {
          const first = this.abandoned.values().next().value;
          if (first !== undefined) this.abandoned.delete(first);
        }
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => giveUp(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${this.#t.options.peer} did not answer ${opts.what} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      const onAbort = (): void => giveUp(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${opts.what} to ${this.#t.options.peer} aborted (deadline)`));
      const cleanup = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(serial, {
        what: opts.what,
        resolve: (f) => {
          cleanup();
          resolve(f);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      this.socket.write(frame);
    });
  }

  /** Wires the socket: decoding, reply matching, liveness. */
  attach(): void {
    const o = this.#t.options;
    const decoder = o.decoder();
    this.socket.on('data', (chunk: Buffer) => {
      this.#lastInbound = Date.now();
      this.#silentIntervals = 0;
      let frames: F[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.fail(toVirtError(err, 'VIRT_ERR_RPC'));
        return;
      }
      for (const f of frames) {
        if (this.#closed !== null) return;
        this.#dispatch(f);
      }
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.fail(new VirtError('VIRT_ERR_NO_CONNECT', `connection to ${o.peer} closed`)));
    const live = o.liveness;
    if (live !== undefined) {
      this.#liveTimer = setInterval(() => {
        if (Date.now() - this.#lastInbound < live.intervalMs) return;
        this.#silentIntervals++;
        if (this.#silentIntervals >= live.count) {
          this.fail(new VirtError('VIRT_ERR_NO_CONNECT', `${o.peer} sent nothing for ${live.count} keepalive intervals of ${live.intervalMs} ms; connection closed`));
          return;
        }
        try {
          this.send(live.probe());
        } catch {
          // An over-limit probe is a programming error; liveness then just times out.
        }
      }, live.intervalMs);
      this.#liveTimer.unref();
    }
  }

  #dispatch(f: F): void {
    const o = this.#t.options;
    let serial: number | undefined;
    try {
      serial = o.serialOf(f);
    } catch (err) {
      this.fail(toVirtError(err, 'VIRT_ERR_RPC'));
      return;
    }
    if (serial === undefined) {
      try {
        o.onUnsolicited?.(f, this);
      } catch (err) {
        this.fail(toVirtError(err, 'VIRT_ERR_RPC'));
      }
      return;
    }
    const p = this.pending.get(serial);
    if (p !== undefined) {
      this.pending.delete(serial);
      p.resolve(f);
      return;
    }
    if (this.abandoned.delete(serial)) return;
    this.fail(new VirtError('VIRT_ERR_RPC', `${o.peer} sent a reply with serial ${serial}, which answers no request; connection closed`));
  }
}

function connectSocket(path: string, timeoutMs: number, signal: AbortSignal | undefined, peer: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      s.off('connect', onConnect);
      s.off('error', onError);
      if (err === null) resolve(s);
      else {
        s.destroy();
        reject(err);
      }
    };
    const onConnect = (): void => done(null);
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'ENOENT' ? ' (no socket there: is the daemon running, and is this the right socket?)' : err.code === 'EACCES' ? ' (permission denied: see docs/libvirt.md for the group that may use it)' : '';
      done(new VirtError('VIRT_ERR_NO_CONNECT', `cannot connect to ${peer}: ${err.message}${hint}`, { cause: err }));
    };
    const onAbort = (): void => done(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `connecting to ${peer} aborted (deadline)`));
    const timer = setTimeout(() => done(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `connecting to ${peer} took over ${timeoutMs} ms`)), timeoutMs);
    s.once('connect', onConnect);
    s.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class RpcTransport<F> {
  readonly options: TransportOptions<F>;
  readonly #log: Logger;
  #conn: TransportConnection<F> | null = null;
  #connecting: Promise<TransportConnection<F>> | null = null;
  #serial = 1;
  #closed = false;
  #failures = 0;
  #nextAttemptAt = 0;
  #lastError: VirtError | null = null;

  constructor(options: TransportOptions<F>) {
    this.options = options;
    this.#log = options.logger ?? silentLogger;
  }

  nextSerial(): number {
    const s = this.#serial;
    this.#serial = this.#serial >= 0x7fffffff ? 1 : this.#serial + 1;
    return s;
  }

  /** Whether a connection is up right now (no I/O). */
  get connected(): boolean {
    return this.#conn !== null && !this.#conn.closed;
  }

  /** @internal called by a connection when it dies. */
  connectionLost(conn: TransportConnection<F>, err: VirtError): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    this.#log.info('connection lost', { peer: this.options.peer, err });
    this.options.onDisconnect?.(err);
  }

  /** The live connection, connecting (with handshake) when there is none. */
  connection(signal?: AbortSignal): Promise<TransportConnection<F>> {
    if (this.#closed) return Promise.reject(new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${this.options.peer} is closed`));
    if (this.#conn !== null && !this.#conn.closed) return Promise.resolve(this.#conn);
    this.#connecting ??= this.#open(signal).finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #open(signal: AbortSignal | undefined): Promise<TransportConnection<F>> {
    const wait = this.#nextAttemptAt - Date.now();
    if (wait > 0 && this.#lastError !== null) {
      throw new VirtError(this.#lastError.code, `${this.#lastError.message} (next reconnect attempt in ${wait} ms)`, { cause: this.#lastError });
    }
    const o = this.options;
    let conn: TransportConnection<F> | null = null;
    try {
      const socket = await connectSocket(o.socketPath, o.connectTimeoutMs, signal, o.peer);
      conn = new TransportConnection(this, socket);
      conn.attach();
      if (this.#closed) throw new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${o.peer} is closed`);
      if (o.handshake !== undefined) {
        const hs = AbortSignal.timeout(o.connectTimeoutMs);
        await o.handshake(conn, signal === undefined ? hs : AbortSignal.any([hs, signal]));
      }
      if (conn.closed) throw new VirtError('VIRT_ERR_NO_CONNECT', `connection to ${o.peer} closed during the handshake`);
      if (this.#closed) throw new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${o.peer} is closed`);
      this.#conn = conn;
      if (this.#failures > 0) this.#log.info('reconnected', { peer: o.peer, attempts: this.#failures });
      this.#failures = 0;
      this.#lastError = null;
      return conn;
    } catch (err) {
      const e = toVirtError(err, 'VIRT_ERR_NO_CONNECT');
      conn?.fail(e);
      // Auth and configuration refusals are not worth hammering; neither is a dead socket.
      const b = o.backoff ?? { initialMs: 100, maxMs: 2000 };
      this.#failures++;
      this.#lastError = e;
      this.#nextAttemptAt = Date.now() + Math.min(b.maxMs, b.initialMs * 2 ** Math.min(this.#failures - 1, 16));
      throw e;
    }
  }

  /** One request: connects if needed, then waits for the reply frame to its serial. */
  async call(encode: (serial: number) => Buffer, opts: CallOptions): Promise<F> {
    // A child span per RPC of whatever read or operation is being traced (a no-op without tracing).
    return inSpan(`rpc ${opts.what}`, { 'rpc.method': opts.what, 'server.address': this.options.peer }, async () => {
      const conn = await this.#withDeadline(this.connection(opts.signal), opts);
      return conn.call(encode, opts);
    });
  }

  #withDeadline<T>(p: Promise<T>, opts: CallOptions): Promise<T> {
    return opts.signal === undefined ? p : withDeadline(p, opts.signal, `${opts.what} to ${this.options.peer}`);
  }


  /** Drops the current connection (its pending requests fail with err); the next call reconnects. */
  reset(err: VirtError): void {
    this.#conn?.fail(err);
  }

  close(): void {
    this.#closed = true;
    this.#conn?.fail(new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${this.options.peer} closed by the client`));
    this.#conn = null;
  }
}

/**
 * A decoder for frames prefixed by a 4-byte big-endian length, checked against
 * the limit before any buffer for the frame is allocated. `inclusive`: the
 * length counts its own 4 bytes (libvirt, XDR record marking does not).
 */
export class LengthPrefixedDecoder implements FrameDecoder<Buffer> {
  readonly #max: number;
  readonly #min: number;
  readonly #inclusive: boolean;
  readonly #peer: string;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(opts: { maxFrameBytes: number; minFrameBytes: number; inclusive: boolean; peer: string }) {
    this.#max = opts.maxFrameBytes;
    this.#min = opts.minFrameBytes;
    this.#inclusive = opts.inclusive;
    this.#peer = opts.peer;
  }

  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.#buffered < 4) break;
      const head = this.#peek4();
      const total = this.#inclusive ? head : head + 4;
      if (total - 4 < this.#min || head < 0) {
        throw new VirtError('VIRT_ERR_RPC', `${this.#peer} sent a frame whose length word (${head}) is below the ${this.#min}-byte minimum`);
      }
      if (total > this.#max) {
        throw new VirtError('VIRT_ERR_RPC', `${this.#peer} announced a ${total}-byte frame, over the ${this.#max}-byte limit; connection closed before reading it`);
      }
      if (this.#buffered < total) break;
      const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#buffered);
      out.push(all.subarray(4, total));
      const rest = all.subarray(total);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
    }
    return out;
  }

  #peek4(): number {
    const first = this.#chunks[0] as Buffer;
    if (first.length >= 4) return first.readUInt32BE(0);
    const b = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [b];
    return b.readUInt32BE(0);
  }
}
