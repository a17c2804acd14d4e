/**
 * A QMP monitor client: the framing (CRLF-terminated JSON, ids "v<serial>"),
 * the greeting and capabilities negotiation. Ids, deadlines, AbortSignals,
 * "fail everything when the socket dies" and spans come from the generic
 * transport (src/rpc/transport.ts). One connection: when QEMU's monitor goes
 * away the client stays closed and its owner (the supervisor) reattaches.
 */
import { LineDecoder, RpcTransport, type TransportConnection } from '../rpc/transport.ts';
import { unixSocket } from '../rpc/streams.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';
import { isRecord, parseQmpJson } from './json.ts';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

export interface QmpConnectOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** Longest line accepted from the peer; a longer one is a protocol error. */
  maxLineBytes?: number;
  onEvent?: (ev: QmpEvent) => void;
  onClose?: (reason: Error | undefined) => void;
}

export interface QmpCallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A QMP command that QEMU answered with an error object. */
export class QmpCommandError extends VirtError {
  readonly qmpClass: string;
  constructor(command: string, qmpClass: string, desc: string) {
    super('VIRT_ERR_OPERATION_FAILED', `QMP ${command} failed: ${qmpClass}: ${desc}`);
    this.qmpClass = qmpClass;
  }
}

type QmpMessage = Record<string, unknown>;

const DEFAULT_MAX_LINE = 16 * 1024 * 1024;
/** QMP limits requests only by its JSON parser; ours are small. */
const MAX_REQUEST_BYTES = 1024 * 1024;

function preview(line: unknown): string {
  return JSON.stringify(line)?.slice(0, 80) ?? String(line);
}

/**
 * One QMP monitor connection: greeting, capabilities negotiation, commands
 * matched to replies by id, events delivered (never mistaken for replies)
 * wherever they fall between a command and its reply.
 */
export class QmpClient {
  readonly #t: RpcTransport<QmpMessage>;
  readonly #logger: Logger;
  #greeting: Record<string, unknown> | undefined;
  onEvent: ((ev: QmpEvent) => void) | undefined;
  onClose: ((reason: Error | undefined) => void) | undefined;

  private constructor(path: string, opts: QmpConnectOptions) {
    this.#logger = opts.logger ?? silentLogger;
    this.onEvent = opts.onEvent;
    this.onClose = opts.onClose;
    const peer = `QMP monitor ${path}`;
    const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE;
    this.#t = new RpcTransport<QmpMessage>({
      peer,
      open: unixSocket(path),
      decoder: () => {
        const lines = new LineDecoder({ maxLineBytes, peer });
        return {
          push: (chunk) => lines.push(chunk).map((line) => QmpClient.#parse(line, peer)),
          get pendingBytes() {
            return lines.pendingBytes;
          },
        };
      },
      serialOf: (m) => QmpClient.#serialOf(m, peer),
      onUnsolicited: (m) => this.#onEvent(m, peer),
      handshake: (conn, signal) => this.#handshake(conn, signal, opts.timeoutMs),
      onDisconnect: (err) => {
        const cb = this.onClose;
        this.onClose = undefined;
        cb?.(err);
      },
      maxOutboundBytes: MAX_REQUEST_BYTES,
      connectTimeoutMs: opts.timeoutMs,
      reconnect: false,
      logger: this.#logger,
    });
  }

  get closed(): boolean {
    return this.#t.closed;
  }

  get greeting(): Record<string, unknown> | undefined {
    return this.#greeting;
  }

  /** Connects, reads the greeting and negotiates capabilities, all within timeoutMs. */
  static async connect(path: string, opts: QmpConnectOptions): Promise<QmpClient> {
    const client = new QmpClient(path, opts);
    try {
      await client.#t.connection(opts.signal);
    } catch (err) {
      client.#t.close();
      throw err;
    }
    return client;
  }

  static #parse(line: string, peer: string): QmpMessage {
    let msg: unknown;
    try {
      msg = parseQmpJson(line);
    } catch {
      throw new VirtError('VIRT_ERR_RPC', `${peer} sent non-JSON: ${preview(line)}`);
    }
    if (!isRecord(msg)) throw new VirtError('VIRT_ERR_RPC', `${peer} sent a non-object: ${preview(line)}`);
    return msg;
  }

  static #serialOf(m: QmpMessage, peer: string): number | undefined {
    if (typeof m['event'] === 'string' || 'QMP' in m) return undefined;
    const id = m['id'];
    const serial = typeof id === 'string' && /^v\d{1,10}$/.test(id) ? Number(id.slice(1)) : undefined;
    if (serial !== undefined) return serial;
    // QEMU omits the id when it could not parse a command: the stream is out of step.
    const why = isRecord(m['error']) ? String(m['error']['desc']) : `reply with id ${preview(id)}`;
    throw new VirtError('VIRT_ERR_RPC', `${peer} sent a reply that answers no command (${why}); connection closed`);
  }

  #onEvent(m: QmpMessage, peer: string): void {
    if (typeof m['event'] !== 'string') throw new VirtError('VIRT_ERR_RPC', `${peer} greeted twice: ${preview(m)}`);
    const data = isRecord(m['data']) ? m['data'] : {};
    try {
      this.onEvent?.({ event: m['event'], data });
    } catch (err) {
      this.#logger.warn('QMP event handler failed', { event: m['event'], err });
    }
  }

  async #handshake(conn: TransportConnection<QmpMessage>, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    const first = await conn.next({ timeoutMs, signal, what: 'the QMP greeting' });
    if (!isRecord(first['QMP'])) throw new VirtError('VIRT_ERR_RPC', `${this.#t.options.peer} did not greet: ${preview(first)}`);
    this.#greeting = first['QMP'];
    QmpClient.#result('qmp_capabilities', await conn.call(QmpClient.#encode('qmp_capabilities', undefined), { timeoutMs, signal, what: 'qmp_capabilities' }));
  }

  static #encode(command: string, args: Record<string, unknown> | undefined): (serial: number) => Buffer {
    return (serial) => Buffer.from(JSON.stringify(args === undefined ? { execute: command, id: `v${serial}` } : { execute: command, arguments: args, id: `v${serial}` }) + '\r\n');
  }

  static #result(command: string, reply: QmpMessage): unknown {
    if ('return' in reply) return reply['return'];
    const e = reply['error'];
    if (isRecord(e)) throw new QmpCommandError(command, String(e['class']), String(e['desc']));
    throw new VirtError('VIRT_ERR_RPC', `QMP ${command}: reply has neither return nor error`);
  }

  async execute(command: string, args: Record<string, unknown> | undefined, opts: QmpCallOptions): Promise<unknown> {
    const reply = await this.#t.call(QmpClient.#encode(command, args), { timeoutMs: opts.timeoutMs, signal: opts.signal, what: command });
    return QmpClient.#result(command, reply);
  }

  close(): void {
    this.#t.close(new VirtError('VIRT_ERR_RPC', `${this.#t.options.peer} closed`));
  }
}
