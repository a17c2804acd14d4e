/**
 * The driver's side of the virt-qemud protocol on the generic RPC transport
 * (src/rpc/transport.ts: one multiplexed connection, replies matched by id,
 * deadlines and AbortSignals, every pending request failed when the
 * connection dies, reconnect on demand). This file keeps only what is
 * virt-qemud's: the frames and the envelope, starting a supervisor when none
 * answers, and the retry of reads across a supervisor restart.
 */
import { silentLogger, type Logger } from '../../util/logger.ts';
import { VirtError } from '../../virt/errors.ts';
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, replyError } from '../../qemud-shared/protocol.ts';
import type { FrameDecoder as TransportDecoder } from '../../rpc/frames.ts';
import { unixSocket, type StreamOpener } from '../../rpc/streams.ts';
import { RpcTransport } from '../../rpc/transport.ts';
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

type Reply = Record<string, unknown>;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** virt-qemud's frames, as the transport takes them: a bad frame throws VIRT_ERR_RPC, which closes the connection. */
function replyDecoder(maxFrameBytes: number): TransportDecoder<Reply> {
  const frames = new FrameDecoder(maxFrameBytes);
  return {
    push(chunk) {
      const out: Reply[] = [];
      for (const m of frames.push(chunk)) {
        if (m.kind === 'oversized') throw new VirtError('VIRT_ERR_RPC', `virt-qemud sent a frame of ${m.length} bytes, over the limit`);
        if (m.kind === 'malformed') throw new VirtError('VIRT_ERR_RPC', `virt-qemud sent a malformed frame: ${m.message}`);
        if (typeof m.value === 'object' && m.value !== null) out.push(m.value as Reply);
      }
      return out;
    },
  };
}

function errnoOf(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown }).cause;
  return (cause as NodeJS.ErrnoException | undefined)?.code;
}

/** Connects to the socket; when nothing answers there, asks autostart for a supervisor and waits for its socket. */
function qemudOpener(o: ClientOptions, log: Logger): StreamOpener {
  const plain = unixSocket(o.socketPath, {});
  return async (timeoutMs, signal, peer) => {
    try {
      return await plain(timeoutMs, signal, peer);
    } catch (err) {
      const code = errnoOf(err);
      const refuse = (): never => {
        const hint = o.noConnectHint === undefined ? '' : `; ${o.noConnectHint}`;
        const detail = code === 'ENOENT' ? 'no socket' : ((err as { cause?: Error }).cause?.message ?? (err as Error).message);
        throw new VirtError('VIRT_ERR_NO_CONNECT', `no virt-qemud answers at ${o.socketPath} (${detail})${hint}`, { cause: err });
      };
      const start = o.autostart;
      if (start === undefined || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) return refuse();
      const why = code === 'ENOENT' ? 'missing' : 'refused';
      if (!(await start(why))) return refuse();
      log.info('no virt-qemud answered; started one', { socket: o.socketPath, why });
      const until = Date.now() + o.connectTimeoutMs;
      for (;;) {
        try {
          return await plain(timeoutMs, signal, peer);
        } catch (e) {
          if (Date.now() > until) throw new VirtError('VIRT_ERR_NO_CONNECT', `virt-qemud did not open ${o.socketPath} within ${o.connectTimeoutMs} ms: ${((e as { cause?: Error }).cause ?? (e as Error)).message}`);
        }
        await sleep(50);
      }
    }
  };
}

export class QemudClient {
  readonly #log: Logger;
  readonly #t: RpcTransport<Reply>;

  constructor(o: ClientOptions) {
    this.#log = o.logger ?? silentLogger;
    this.#t = new RpcTransport<Reply>({
      peer: `virt-qemud at ${o.socketPath}`,
      open: qemudOpener(o, this.#log),
      decoder: () => replyDecoder(o.maxFrameBytes),
      serialOf: (r) => (typeof r['id'] === 'number' ? r['id'] : undefined),
      // A reply to no request: the server could not read one of ours.
      onUnsolicited: (r) => {
        if (r['error'] !== undefined) this.#log.warn('virt-qemud refused a frame', { error: replyError(r['error']).message });
      },
      maxOutboundBytes: o.maxFrameBytes,
      connectTimeoutMs: o.connectTimeoutMs,
      // Every call tries the socket afresh: a supervisor restarts in milliseconds.
      backoff: { initialMs: 0, maxMs: 0 },
      logger: this.#log,
    });
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
        const retry = opts.idempotent === true && attempt < 4 && !this.#t.closed && err instanceof VirtError && err.code === 'VIRT_ERR_NO_CONNECT' && opts.signal?.aborted !== true;
        if (!retry) throw err;
        this.#log.info('connection to virt-qemud lost; retrying', { op, attempt: attempt + 1 });
        if (attempt > 0) await sleep(50 * attempt);
      }
    }
  }

  async #call(op: OpName, args: unknown[], opts: CallOptions): Promise<unknown> {
    if (this.#t.closed) throw new VirtError('VIRT_ERR_INVALID_CONN', 'connection to virt-qemud is closed');
    const r = await this.#t.call((id) => encodeFrame({ v: PROTOCOL_VERSION, id, op, args }), { timeoutMs: opts.timeoutMs, signal: opts.signal, what: op });
    if (r['v'] !== PROTOCOL_VERSION) throw new VirtError('VIRT_ERR_RPC', `virt-qemud speaks protocol version ${JSON.stringify(r['v'])}, expected ${PROTOCOL_VERSION}`);
    if (r['error'] !== undefined) throw replyError(r['error']);
    return r['result'];
  }

  close(): void {
    this.#t.close(new VirtError('VIRT_ERR_INVALID_CONN', 'connection closed'));
  }
}
