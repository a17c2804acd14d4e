/**
 * Client of the native virt-proxy helper: as a child over a pipe
 * (`virt-proxy --stdio`, when the exporter is root) or over its unix socket
 * (`virt-proxy --socket`, for non-root exporters). One request in flight at
 * a time; every reply is bounded and validated (proxy-protocol.ts); a late,
 * garbled or missing reply kills the connection rather than desynchronising
 * it. A dead client stays dead: open a new one.
 */
import { XEN } from '../../config/schema/xen.ts';
import { PROJECT_ROOT } from '../../project.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants as fsConstants } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { ReadOptions } from '../types.ts';
import type { Logger } from '../../util/logger.ts';
import { VirtError, toVirtError } from '../../virt/errors.ts';
import {
  DOMID_FIRST_RESERVED,
  HELLO,
  MAX_DOMAINS_PER_REPLY,
  REPLY_BIT,
  REQ,
  TYPE_ERROR,
  STATUS,
  decodeDomainList,
  decodeFrame,
  decodeHello,
  decodeHostInfo,
  decodeVersion,
  encodeRequest,
  isKnownStatus,
  listDomainsPayload,
  replyFrameLength,
  rpcError,
  statusError,
  xenVersionString,
  type ReplyFrame,
} from './proxy-protocol.ts';
import type { XenDomainReading, XenHostReading } from './types.ts';

const DRIVER = 'xen/proxy';

/** Resolves the xen.proxy-binary setting: relative paths are taken from the project directory. */
export function resolveProxyBinary(setting?: string): string {
  const value = setting === undefined || setting === '' ? XEN.table['proxy-binary'].default : setting;
  return isAbsolute(value) ? value : resolve(PROJECT_ROOT, value);
}

export interface SpawnStdioOptions {
  binary: string;
  /** Control library passed as --xenctrl (empty/undefined: the system libxenctrl). */
  xenctrl?: string;
  /** Extra arguments, e.g. ['--sysfs-root', dir]. */
  args?: readonly string[];
  logger: Logger;
  timeoutMs: number;
  /** Environment of the child (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface ConnectOptions {
  socketPath: string;
  logger: Logger;
  timeoutMs: number;
}

export interface ListDomainsOptions extends ReadOptions {
  /** Read vbd/vif counters too (default true). */
  devices?: boolean;
}

interface Pending {
  serial: number;
  type: number;
  resolve: (frame: ReplyFrame) => void;
  reject: (err: VirtError) => void;
}

/** The byte pipe under the client: a socket or a child's stdin/stdout. */
interface Transport {
  write(buf: Buffer): void;
  /** Tears the transport down; resolves once it is gone. */
  destroy(): Promise<void>;
}

const MAX_STDERR_KEEP = 2048;

export class VirtProxyClient {
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly where: string;
  private transport: Transport | undefined;
  private inbuf: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private serial = 0;
  private fatal: VirtError | undefined;
  private closing = false;
  /** Last lines the child wrote to stderr, for error messages. */
  private stderrTail = '';

  private constructor(logger: Logger, timeoutMs: number, where: string) {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new VirtError('VIRT_ERR_CONFIG', `virt-proxy timeout must be a positive number of ms, got ${String(timeoutMs)}`);
    this.logger = logger;
    this.timeoutMs = timeoutMs;
    this.where = where;
  }

  /** Runs `binary --stdio` as a child and talks to it over its stdin/stdout. */
  static async spawnStdio(opts: SpawnStdioOptions): Promise<VirtProxyClient> {
    const client = new VirtProxyClient(opts.logger, opts.timeoutMs, opts.binary);
    try {
      await access(opts.binary, fsConstants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      const hint = code === 'ENOENT' ? ' (native/build/virt-proxy is not built: run `make -C native`, or npm install with a C compiler present)' : '';
      throw new VirtError('VIRT_ERR_NO_CONNECT', `virt-proxy binary ${opts.binary} is not executable: ${code}${hint}`, { driver: DRIVER, cause: err });
    }
    const args = ['--stdio'];
    if (opts.xenctrl !== undefined && opts.xenctrl !== '') args.push('--xenctrl', opts.xenctrl);
    args.push(...(opts.args ?? []));
    const child = spawn(opts.binary, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, shell: false });
    await new Promise<void>((ok, fail) => {
      child.once('spawn', ok);
      child.once('error', (err) => fail(new VirtError('VIRT_ERR_NO_CONNECT', `cannot start virt-proxy ${opts.binary}: ${err.message}`, { driver: DRIVER, cause: err })));
    });
    client.attachChild(child);
    await client.greet();
    return client;
  }

  /** Connects to a virt-proxy daemon's unix socket. */
  static async connect(opts: ConnectOptions): Promise<VirtProxyClient> {
    const client = new VirtProxyClient(opts.logger, opts.timeoutMs, opts.socketPath);
    const sock = createConnection({ path: opts.socketPath });
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => {
        sock.destroy();
        fail(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `connecting to virt-proxy socket ${opts.socketPath} took longer than ${opts.timeoutMs} ms`, { driver: DRIVER }));
      }, opts.timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        ok();
      });
      sock.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? ' (is the virt-proxy daemon running? start it with `virt-proxy --socket PATH`)' : err.code === 'EACCES' ? ' (the socket is mode 0660: add this user to the virt-proxy group)' : '';
        fail(new VirtError('VIRT_ERR_NO_CONNECT', `cannot connect to virt-proxy socket ${opts.socketPath}: ${err.code ?? err.message}${hint}`, { driver: DRIVER, cause: err }));
      });
    });
    client.attachSocket(sock);
    await client.greet();
    return client;
  }

  /** True once the connection is gone (closed, timed out or broken). */
  get closed(): boolean {
    return this.transport === undefined;
  }

  /** The hypervisor's version, e.g. "4.17.0". */
  async version(opts: ReadOptions = {}): Promise<string> {
    const frame = await this.request(REQ.version, undefined, opts);
    const v = this.decode(() => decodeVersion(frame.payload));
    return xenVersionString(v.major, v.minor, v.extra);
  }

  async hostInfo(opts: ReadOptions = {}): Promise<XenHostReading> {
    const frame = await this.request(REQ.hostInfo, undefined, opts);
    return this.decode(() => decodeHostInfo(frame.payload));
  }

  /** Every domain, in domain id order, paging through the proxy's bounded replies. */
  async listDomains(opts: ListDomainsOptions = {}): Promise<XenDomainReading[]> {
    const devices = opts.devices ?? true;
    const all: XenDomainReading[] = [];
    let first = 0;
    // At most DOMID_FIRST_RESERVED / MAX_DOMAINS_PER_REPLY pages, since ids strictly increase.
    while (first < DOMID_FIRST_RESERVED) {
      const frame = await this.request(REQ.listDomains, listDomainsPayload(first, MAX_DOMAINS_PER_REPLY, devices), opts);
      const page = this.decode(() => decodeDomainList(frame.payload, first, MAX_DOMAINS_PER_REPLY));
      all.push(...page);
      const last = page.at(-1);
      if (page.length < MAX_DOMAINS_PER_REPLY || last === undefined) break;
      first = last.domid + 1;
    }
    return all;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.failAll(new VirtError('VIRT_ERR_NO_CONNECT', `virt-proxy connection (${this.where}) closed`, { driver: DRIVER }));
    const t = this.transport;
    this.transport = undefined;
    if (t !== undefined) await t.destroy();
  }

  // ---- internals ----

  /** A payload that does not decode means the proxy is broken: drop the connection, keep the error. */
  private decode<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const e = toVirtError(err, 'VIRT_ERR_RPC');
      this.kill(e);
      throw e;
    }
  }

  private request(type: number, payload: Buffer | undefined, opts: ReadOptions): Promise<ReplyFrame> {
    // Serialise: the proxy answers one request at a time per connection.
    const run = this.queue.then(() => this.send(type, payload, opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Waits for the proxy's greeting (or its refusal: denied, busy) before any request. */
  private async greet(): Promise<void> {
    try {
      const frame = await this.expect(HELLO & ~REPLY_BIT, 0, undefined, {});
      decodeHello(frame.payload);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private send(type: number, payload: Buffer | undefined, opts: ReadOptions): Promise<ReplyFrame> {
    this.serial = (this.serial + 1) >>> 0 || 1;
    const serial = this.serial;
    return this.expect(type, serial, encodeRequest(type, serial, payload), opts);
  }

  /** Registers the one pending exchange, writes its request (if any) and waits for the matching reply. */
  private expect(type: number, serial: number, request: Buffer | undefined, opts: ReadOptions): Promise<ReplyFrame> {
    if (this.fatal !== undefined) return Promise.reject(this.fatal);
    const transport = this.transport;
    if (transport === undefined) return Promise.reject(new VirtError('VIRT_ERR_NO_CONNECT', `virt-proxy connection (${this.where}) is closed`, { driver: DRIVER }));
    if (opts.signal?.aborted === true) return Promise.reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', 'virt-proxy request aborted before it was sent', { driver: DRIVER }));
    return new Promise<ReplyFrame>((resolveReply, rejectReply) => {
      const timer = setTimeout(() => this.kill(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `virt-proxy (${this.where}) did not answer within ${this.timeoutMs} ms`, { driver: DRIVER })), this.timeoutMs);
      const onAbort = (): void => this.kill(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', 'virt-proxy request aborted (deadline passed)', { driver: DRIVER }));
      const done = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.pending = undefined;
      };
      this.pending = {
        serial,
        type,
        resolve: (f) => {
          done();
          resolveReply(f);
        },
        reject: (e) => {
          done();
          rejectReply(e);
        },
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        if (request !== undefined) transport.write(request);
      } catch (err) {
        this.kill(toVirtError(err, 'VIRT_ERR_NO_CONNECT'));
      }
    });
  }

  private onData(chunk: Buffer): void {
    this.inbuf = this.inbuf.length === 0 ? chunk : Buffer.concat([this.inbuf, chunk]);
    try {
      for (;;) {
        const len = replyFrameLength(this.inbuf);
        if (len === 0) return;
        const frame = decodeFrame(this.inbuf.subarray(0, len));
        this.inbuf = this.inbuf.subarray(len);
        this.deliver(frame);
        if (this.transport === undefined) return;
      }
    } catch (err) {
      this.kill(toVirtError(err, 'VIRT_ERR_RPC'));
    }
  }

  private deliver(frame: ReplyFrame): void {
    const p = this.pending;
    if (frame.type === TYPE_ERROR && (p === undefined || frame.serial === 0 || frame.serial === p.serial)) {
      // Connection-level refusal (denied, busy, bad frame): the proxy closes after it.
      this.kill(statusError(frame.status, frame.payload));
      return;
    }
    if (p === undefined) throw rpcError(`unsolicited reply (type ${frame.type}, serial ${frame.serial})`);
    if (frame.serial !== p.serial) throw rpcError(`reply serial ${frame.serial} does not match request ${p.serial}`);
    if (frame.type !== (p.type | REPLY_BIT)) throw rpcError(`reply type ${frame.type} does not answer request type ${p.type}`);
    if (!isKnownStatus(frame.status)) throw rpcError(`unknown reply status ${frame.status}`);
    if (frame.status !== STATUS.ok) {
      p.reject(statusError(frame.status, frame.payload));
      return;
    }
    p.resolve(frame);
  }

  private failAll(err: VirtError): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }

  /** Fails the pending request and tears the connection down for good. */
  private kill(err: VirtError): void {
    if (this.fatal === undefined && !this.closing) this.fatal = err;
    this.failAll(err);
    const t = this.transport;
    this.transport = undefined;
    if (t !== undefined) t.destroy().catch(() => undefined);
  }

  private onGone(what: string): void {
    if (this.transport === undefined) return;
    if (this.inbuf.length > 0) {
      this.kill(rpcError(`reply truncated: the connection ended ${this.inbuf.length} bytes into a frame`));
      return;
    }
    const tail = this.stderrTail.trim().split('\n').at(-1) ?? '';
    this.kill(new VirtError('VIRT_ERR_NO_CONNECT', `virt-proxy (${this.where}) ${what}${tail !== '' ? `: ${tail}` : ''}`, { driver: DRIVER }));
  }

  private attachSocket(sock: Socket): void {
    sock.on('data', (c: Buffer) => this.onData(c));
    sock.on('error', (err) => this.onGone(`socket error: ${err.message}`));
    sock.on('close', () => this.onGone('closed the connection'));
    this.transport = {
      write: (buf) => {
        sock.write(buf);
      },
      destroy: () =>
        new Promise<void>((ok) => {
          if (sock.destroyed) {
            ok();
            return;
          }
          sock.once('close', () => ok());
          sock.destroy();
        }),
    };
  }

  private attachChild(child: ChildProcess): void {
    const { stdin, stdout, stderr } = child;
    if (stdin === null || stdout === null || stderr === null) throw new VirtError('VIRT_ERR_INTERNAL_ERROR', 'virt-proxy child has no pipes');
    stdout.on('data', (c: Buffer) => this.onData(c));
    stderr.setEncoding('utf8');
    stderr.on('data', (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-MAX_STDERR_KEEP);
      for (const line of s.split('\n')) if (line.trim() !== '') this.logger.debug('virt-proxy stderr', { line: line.slice(0, 500) });
    });
    // EPIPE on a dead child surfaces here; the exit handler reports it.
    stdin.on('error', () => undefined);
    child.on('error', (err) => this.onGone(`failed: ${err.message}`));
    let exited = false;
    const exitedP = new Promise<void>((ok) => {
      child.once('exit', (code, signal) => {
        exited = true;
        this.onGone(`exited (${signal !== null ? `signal ${signal}` : `code ${String(code)}`})`);
        ok();
      });
    });
    this.transport = {
      write: (buf) => {
        stdin.write(buf);
      },
      destroy: async () => {
        if (exited) return;
        stdin.end();
        const grace = setTimeout(() => child.kill('SIGKILL'), Math.min(this.timeoutMs, 2000));
        await exitedP;
        clearTimeout(grace);
      },
    };
  }
}
