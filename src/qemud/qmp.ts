import { createConnection, type Socket } from 'node:net';
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

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

const DEFAULT_MAX_LINE = 16 * 1024 * 1024;

/**
 * One QMP monitor connection: greeting, capabilities negotiation, commands
 * matched to replies by id, events delivered (never mistaken for replies)
 * wherever they fall between a command and its reply.
 */
export class QmpClient {
  readonly #socket: Socket;
  readonly #logger: Logger;
  readonly #maxLine: number;
  readonly #pending = new Map<string, Pending>();
  #buf = '';
  #nextId = 1;
  #closed = false;
  #greeting: Record<string, unknown> | undefined;
  #onGreeting: ((g: Record<string, unknown>) => void) | undefined;
  onEvent: ((ev: QmpEvent) => void) | undefined;
  onClose: ((reason: Error | undefined) => void) | undefined;

  private constructor(socket: Socket, opts: QmpConnectOptions) {
    this.#socket = socket;
    this.#logger = opts.logger ?? silentLogger;
    this.#maxLine = opts.maxLineBytes ?? DEFAULT_MAX_LINE;
    this.onEvent = opts.onEvent;
    this.onClose = opts.onClose;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new VirtError('VIRT_ERR_RPC', `QMP socket error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.#fail(undefined));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get greeting(): Record<string, unknown> | undefined {
    return this.#greeting;
  }

  /** Connects, reads the greeting and negotiates capabilities, all within timeoutMs. */
  static async connect(path: string, opts: QmpConnectOptions): Promise<QmpClient> {
    const deadline = Date.now() + opts.timeoutMs;
    const socket = createConnection(path);
    const client = new QmpClient(socket, opts);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `no QMP greeting from ${path} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
        const onAbort = (): void => reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `QMP connect to ${path} aborted`));
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        const done = (): void => {
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
        };
        client.#onGreeting = () => {
          done();
          resolve();
        };
        const prevClose = client.onClose;
        client.onClose = (reason) => {
          done();
          client.onClose = prevClose;
          reject(reason ?? new VirtError('VIRT_ERR_RPC', `QMP peer ${path} closed before its greeting`));
        };
        if (opts.signal?.aborted === true) onAbort();
      });
      client.onClose = opts.onClose;
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()), signal: opts.signal });
      return client;
    } catch (err) {
      client.close();
      if (err instanceof VirtError) throw err;
      throw new VirtError('VIRT_ERR_RPC', `QMP connect to ${path} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  execute(command: string, args: Record<string, unknown> | undefined, opts: QmpCallOptions): Promise<unknown> {
    if (this.#closed) return Promise.reject(new VirtError('VIRT_ERR_RPC', `QMP monitor closed (command ${command})`));
    const id = `v${this.#nextId++}`;
    const msg = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `QMP ${command} got no reply within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onAbort = (): void => {
        this.#pending.delete(id);
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `QMP ${command} aborted`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      if (opts.signal?.aborted === true) {
        cleanup();
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `QMP ${command} aborted`));
        return;
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, { command, resolve, reject, cleanup });
      this.#socket.write(msg + '\r\n');
    });
  }

  close(): void {
    if (!this.#closed) this.#socket.destroy();
    this.#fail(undefined);
  }

  #onData(chunk: string): void {
    this.#buf += chunk;
    let nl: number;
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, nl).trim();
      this.#buf = this.#buf.slice(nl + 1);
      if (line !== '') this.#onLine(line);
      if (this.#closed) return;
    }
    if (this.#buf.length > this.#maxLine) {
      this.#protocolError(`QMP line longer than ${this.#maxLine} bytes`);
    }
  }

  #onLine(line: string): void {
    let msg: unknown;
    try {
      msg = parseQmpJson(line);
    } catch {
      this.#protocolError(`QMP peer sent non-JSON: ${JSON.stringify(line.slice(0, 80))}`);
      return;
    }
    if (!isRecord(msg)) {
      this.#protocolError(`QMP peer sent a non-object: ${JSON.stringify(line.slice(0, 80))}`);
      return;
    }
    if (this.#greeting === undefined) {
      if (!isRecord(msg['QMP'])) {
        this.#protocolError(`QMP peer did not greet: ${JSON.stringify(line.slice(0, 80))}`);
        return;
      }
      this.#greeting = msg['QMP'];
      this.#onGreeting?.(msg['QMP']);
      return;
    }
    if (typeof msg['event'] === 'string') {
      const data = isRecord(msg['data']) ? msg['data'] : {};
      try {
        this.onEvent?.({ event: msg['event'], data });
      } catch (err) {
        this.#logger.warn('QMP event handler failed', { event: msg['event'], err });
      }
      return;
    }
    const id = msg['id'];
    if (typeof id !== 'string') {
      // QEMU omits the id when it could not parse our command: fail everything in flight.
      const err = isRecord(msg['error']) ? String(msg['error']['desc']) : 'reply without id';
      for (const [pid, p] of this.#pending) {
        this.#pending.delete(pid);
        p.cleanup();
        p.reject(new VirtError('VIRT_ERR_RPC', `QMP ${p.command}: ${err}`));
      }
      return;
    }
    const p = this.#pending.get(id);
    if (p === undefined) return; // late reply to a command that already timed out
    this.#pending.delete(id);
    p.cleanup();
    if ('return' in msg) p.resolve(msg['return']);
    else if (isRecord(msg['error'])) p.reject(new QmpCommandError(p.command, String(msg['error']['class']), String(msg['error']['desc'])));
    else p.reject(new VirtError('VIRT_ERR_RPC', `QMP ${p.command}: reply has neither return nor error`));
  }

  #protocolError(message: string): void {
    const err = new VirtError('VIRT_ERR_RPC', message);
    this.#socket.destroy();
    this.#fail(err);
  }

  #fail(reason: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = reason ?? new VirtError('VIRT_ERR_RPC', 'QMP monitor connection closed');
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.cleanup();
      p.reject(err);
    }
    this.#socket.destroy();
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(reason);
  }
}
