/**
 * A generic multiplexed RPC transport over one byte stream, in the manner of
 * undici's dispatcher base: it owns the connection, request serials, the
 * pending map, per-call deadlines and AbortSignals, liveness, one span per
 * call, and reconnection with backoff; each client supplies only its framing
 * (a FrameDecoder, the serial of a frame) and its handshake. Failures:
 *
 * - the peer unreachable, or the connection lost: VIRT_ERR_NO_CONNECT, and
 *   every request pending on that connection fails at once;
 * - a deadline or an aborted signal: VIRT_ERR_OPERATION_TIMEOUT (the
 *   connection stays and a late reply to that serial is dropped, unless
 *   `timeoutCloses`);
 * - a malformed, oversized, truncated or unsolicited frame, or a reply to a
 *   serial never sent: VIRT_ERR_RPC, and the connection is closed (the stream
 *   can no longer be trusted to be in step).
 *
 * With `reconnect: false` the transport is one connection: once it is lost,
 * every call fails with the reason it was lost (QMP monitors, whose owner
 * decides when to reattach; the xen backends, reopened by Reconnecting).
 */
import { inSpan } from '../telemetry/tracing.ts';
import { armDeadline, withDeadline } from '../util/deadline.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { Backoff } from './backoff.ts';
import type { FrameDecoder } from './frames.ts';
import { unixSocket, type ByteStream, type StreamOpener } from './streams.ts';

export { LengthPrefixedDecoder, LineDecoder, type FrameDecoder } from './frames.ts';

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
  /** The unix socket to connect to (shorthand for `open: unixSocket(socketPath)`). */
  socketPath?: string;
  /** How to open a pipe to the peer (src/rpc/streams.ts); wins over socketPath. */
  open?: StreamOpener;
  decoder: () => FrameDecoder<F>;
  /** The serial a frame answers, or undefined for frames that answer nothing (events, pings, greetings). */
  serialOf: (frame: F) => number | undefined;
  /** Frames that answer nothing; a throw closes the connection with that error. */
  onUnsolicited?: (frame: F, conn: TransportConnection<F>) => void;
  /** Runs on every new connection before any queued request is sent on it. */
  handshake?: (conn: TransportConnection<F>, signal: AbortSignal | undefined) => Promise<void>;
  /** Called once per lost connection (after its pending requests failed). */
  onDisconnect?: (err: VirtError) => void;
  maxOutboundBytes: number;
  /** Bounds the connect and the handshake together. */
  connectTimeoutMs: number;
  liveness?: LivenessOptions;
  /** Reconnect backoff after failed connection attempts. */
  backoff?: { initialMs: number; maxMs: number };
  /** false: one connection only; once lost the transport stays closed (default true). */
  reconnect?: boolean;
  /** A deadline closes the connection instead of abandoning the serial (peers that answer strictly in turn). */
  timeoutCloses?: boolean;
  /** One call at a time: each waits until the previous one settled (peers that serve one request per connection at a time). */
  exclusive?: boolean;
  logger?: Logger;
}

export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Short name of the call for error messages and span names. */
  what: string;
}

interface Pending<F> {
  resolve: (f: F) => void;
  reject: (e: VirtError) => void;
}

const ABANDONED_MAX = 4096;

/** Arms the call's deadline: onExpire gets VIRT_ERR_OPERATION_TIMEOUT; returns the disarm function. */
function deadline(opts: CallOptions, peer: string, onExpire: (err: VirtError) => void): () => void {
  const expired = (aborted: boolean): VirtError => new VirtError('VIRT_ERR_OPERATION_TIMEOUT', aborted ? `${opts.what} to ${peer} aborted (deadline)` : `${peer} did not answer ${opts.what} within ${opts.timeoutMs} ms`);
  return armDeadline(opts.timeoutMs, opts.signal, (aborted) => onExpire(expired(aborted)));
}

/** A pending entry whose settling first disarms its deadline. */
function settling<F>(settle: () => void, resolve: (f: F) => void, reject: (e: VirtError) => void): Pending<F> {
  return {
    resolve: (f) => {
      settle();
      resolve(f);
    },
    reject: (e) => {
      settle();
      reject(e);
    },
  };
}

/** One live connection; requests made on it fail when it dies. */
export class TransportConnection<F> {
  readonly stream: ByteStream;
  readonly #t: RpcTransport<F>;
  readonly #o: TransportOptions<F>;
  readonly pending = new Map<number, Pending<F>>();
  /** Serials whose callers gave up: their late replies are dropped, not treated as hostile. */
  readonly abandoned = new Set<number>();
  /** Waiters for the next frame that answers nothing (greetings). */
  readonly #waiters: Array<Pending<F>> = [];
  #closed: VirtError | null = null;
  #gone: Promise<void> = Promise.resolve();
  #lastInbound = Date.now();
  #liveTimer: NodeJS.Timeout | null = null;
  #silentIntervals = 0;

  constructor(t: RpcTransport<F>, stream: ByteStream) {
    this.#t = t;
    this.#o = t.options;
    this.stream = stream;
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Why the connection ended, once it has. */
  get error(): VirtError | null {
    return this.#closed;
  }

  /** Fails every pending request with err and tears the stream down (idempotent); resolves once it is gone. */
  fail(err: VirtError): Promise<void> {
    if (this.#closed !== null) return this.#gone;
    this.#closed = err;
    if (this.#liveTimer !== null) clearInterval(this.#liveTimer);
    this.#gone = this.stream.destroy().catch(() => undefined);
    for (const [serial, p] of this.pending) {
      this.pending.delete(serial);
      p.reject(err);
    }
    for (const w of this.#waiters.splice(0)) w.reject(err);
    this.#t.connectionLost(this, err);
    return this.#gone;
  }

  /** Writes a frame that expects no answer (a keepalive pong, an event ack). */
  send(frame: Buffer): void {
    if (this.#closed !== null) return;
    if (frame.length > this.#o.maxOutboundBytes) {
      throw new VirtError('VIRT_ERR_RPC', `refusing to send a ${frame.length}-byte message to ${this.#o.peer}: over the ${this.#o.maxOutboundBytes}-byte limit`);
    }
    this.stream.write(frame);
  }

  /** Waits for the next frame that answers no request (a greeting); used by handshakes. */
  next(opts: CallOptions): Promise<F> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    return new Promise<F>((resolve, reject) => {
      const settle = deadline(opts, this.#o.peer, (err) => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        w.reject(err);
      });
      const w = settling(settle, resolve, reject);
      if (opts.signal?.aborted === true) w.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${opts.what} to ${this.#o.peer} aborted`));
      else this.#waiters.push(w);
    });
  }

  /** One call on this connection; used by handshakes and by RpcTransport.call. */
  call(encode: (serial: number) => Buffer, opts: CallOptions): Promise<F> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    if (opts.signal?.aborted === true) return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${opts.what} to ${this.#o.peer} aborted`));
    const serial = this.#t.nextSerial();
    let frame: Buffer;
    try {
      frame = encode(serial);
    } catch (err) {
      return Promise.reject(toVirtError(err, 'VIRT_ERR_INVALID_ARG'));
    }
    const limit = this.#o.maxOutboundBytes;
    if (frame.length > limit) {
      return Promise.reject(new VirtError('VIRT_ERR_INVALID_ARG', `${opts.what}: the request is ${frame.length} bytes, over the ${limit}-byte message limit of ${this.#o.peer}`));
    }
    return new Promise<F>((resolve, reject) => {
      const settle = deadline(opts, this.#o.peer, (err) => {
        const p = this.pending.get(serial);
        if (p === undefined) return;
        if (this.#o.timeoutCloses === true) {
          void this.fail(err);
          return;
        }
        this.pending.delete(serial);
        this.abandoned.add(serial);
        if (this.abandoned.size > ABANDONED_MAX) this.abandoned.delete(this.abandoned.values().next().value as number);
        p.reject(err);
      });
      this.pending.set(serial, settling(settle, resolve, reject));
      this.stream.write(frame);
    });
  }

  /** Wires the stream: decoding, reply matching, liveness. */
  attach(): void {
    const o = this.#o;
    const decoder = o.decoder();
    this.stream.attach(
      (chunk) => {
        this.#lastInbound = Date.now();
        this.#silentIntervals = 0;
        let frames: F[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          void this.fail(toVirtError(err, 'VIRT_ERR_RPC'));
          return;
        }
        for (const f of frames) {
          if (this.#closed !== null) return;
          this.#dispatch(f);
        }
      },
      (detail) => {
        const held = decoder.pendingBytes ?? 0;
        if (held > 0 && this.#closed === null) {
          void this.fail(new VirtError('VIRT_ERR_RPC', `${o.peer} sent a truncated reply: the connection ended ${held} bytes into a frame`));
          return;
        }
        void this.fail(new VirtError('VIRT_ERR_NO_CONNECT', detail === undefined ? `connection to ${o.peer} closed` : `${o.peer} ${detail}`));
      },
    );
    const live = o.liveness;
    if (live !== undefined) {
      this.#liveTimer = setInterval(() => {
        if (Date.now() - this.#lastInbound < live.intervalMs) return;
        this.#silentIntervals++;
        if (this.#silentIntervals >= live.count) {
          void this.fail(new VirtError('VIRT_ERR_NO_CONNECT', `${o.peer} sent nothing for ${live.count} keepalive intervals of ${live.intervalMs} ms; connection closed`));
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
    const o = this.#o;
    let serial: number | undefined;
    try {
      serial = o.serialOf(f);
      if (serial === undefined) {
        const w = this.#waiters.shift();
        if (w !== undefined) w.resolve(f);
        else o.onUnsolicited?.(f, this);
        return;
      }
    } catch (err) {
      void this.fail(toVirtError(err, 'VIRT_ERR_RPC'));
      return;
    }
    const p = this.pending.get(serial);
    if (p !== undefined) {
      this.pending.delete(serial);
      p.resolve(f);
      return;
    }
    if (this.abandoned.delete(serial)) return;
    void this.fail(new VirtError('VIRT_ERR_RPC', `${o.peer} sent a reply with serial ${serial}, which answers no request; connection closed`));
  }
}

export class RpcTransport<F> {
  readonly options: TransportOptions<F>;
  readonly #log: Logger;
  readonly #open: StreamOpener;
  readonly #backoff: Backoff;
  #conn: TransportConnection<F> | null = null;
  #connecting: Promise<TransportConnection<F>> | null = null;
  #serial = 1;
  #closed: VirtError | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: TransportOptions<F>) {
    this.options = options;
    this.#log = options.logger ?? silentLogger;
    const open = options.open ?? (options.socketPath !== undefined ? unixSocket(options.socketPath) : undefined);
    if (open === undefined) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', `transport to ${options.peer} has neither open nor socketPath`);
    this.#open = open;
    this.#backoff = new Backoff(options.backoff ?? { initialMs: 100, maxMs: 2000 });
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

  /** Whether the transport is closed for good (closed by the client, or lost without reconnect). */
  get closed(): boolean {
    return this.#closed !== null;
  }

  /** @internal called by a connection when it dies. */
  connectionLost(conn: TransportConnection<F>, err: VirtError): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    if (this.options.reconnect === false) this.#closed ??= err;
    this.#log.info('connection lost', { peer: this.options.peer, err });
    this.options.onDisconnect?.(err);
  }

  /** The live connection, connecting (with handshake) when there is none. */
  connection(signal?: AbortSignal): Promise<TransportConnection<F>> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    if (this.#conn !== null && !this.#conn.closed) return Promise.resolve(this.#conn);
    this.#connecting ??= this.#connect(signal).finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #connect(signal: AbortSignal | undefined): Promise<TransportConnection<F>> {
    this.#backoff.check(`${this.options.peer} is not reachable`);
    const o = this.options;
    let conn: TransportConnection<F> | null = null;
    try {
      const hs = AbortSignal.timeout(o.connectTimeoutMs);
      const both = signal === undefined ? hs : AbortSignal.any([hs, signal]);
      conn = new TransportConnection(this, await this.#open(o.connectTimeoutMs, signal, o.peer));
      conn.attach();
      this.#throwIfClosed();
      if (o.handshake !== undefined) await o.handshake(conn, both);
      if (conn.closed) throw conn.error ?? new VirtError('VIRT_ERR_NO_CONNECT', `connection to ${o.peer} closed during the handshake`);
      this.#throwIfClosed();
      this.#conn = conn;
      if (this.#backoff.failures > 0) this.#log.info('reconnected', { peer: o.peer, attempts: this.#backoff.failures });
      this.#backoff.succeeded();
      return conn;
    } catch (err) {
      const e = this.#backoff.failed(err);
      await conn?.fail(e);
      throw e;
    }
  }

  #throwIfClosed(): void {
    if (this.#closed !== null) throw this.#closed;
  }

  /** One request: connects if needed, then waits for the reply frame to its serial. */
  call(encode: (serial: number) => Buffer, opts: CallOptions): Promise<F> {
    if (this.options.exclusive !== true) return this.#call(encode, opts);
    const run = this.#queue.then(() => this.#call(encode, opts));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #call(encode: (serial: number) => Buffer, opts: CallOptions): Promise<F> {
    // A child span per RPC of whatever read or operation is being traced (a no-op without tracing).
    return inSpan(`rpc ${opts.what}`, { 'rpc.method': opts.what, 'server.address': this.options.peer }, async () => {
      const connecting = this.connection(opts.signal);
      const conn = await (opts.signal === undefined ? connecting : withDeadline(connecting, opts.signal, `${opts.what} to ${this.options.peer}`));
      return conn.call(encode, opts);
    });
  }

  /** Drops the current connection (its pending requests fail with err); the next call reconnects, unless reconnect is off. */
  reset(err: VirtError): void {
    void this.#conn?.fail(err);
  }

  /** Closes for good: later calls fail with err (default VIRT_ERR_INVALID_CONN); a transport already lost keeps its reason. */
  close(err?: VirtError): void {
    void this.closeAndWait(err);
  }

  /** close(), resolving once the underlying stream is gone (a child exited, a socket closed). */
  closeAndWait(err?: VirtError): Promise<void> {
    this.#closed ??= err ?? new VirtError('VIRT_ERR_INVALID_CONN', `connection to ${this.options.peer} closed by the client`);
    const gone = this.#conn?.fail(this.#closed) ?? Promise.resolve();
    this.#conn = null;
    return gone;
  }
}
