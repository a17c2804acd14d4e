/**
 * Client of the native virt-proxy helper: as a child over a pipe
 * (`virt-proxy --stdio`, when the exporter is root) or over its unix socket
 * (`virt-proxy --socket`, for non-root exporters). This file keeps only the
 * framing (proxy-protocol.ts) and the greeting; serials, deadlines, "fail
 * everything when the pipe dies" and spans come from the generic transport
 * (src/rpc/transport.ts). One request in flight at a time; every reply is
 * bounded and validated; a late, garbled or missing reply kills the
 * connection rather than desynchronising it. A dead client stays dead: open
 * a new one (Reconnecting does).
 */
import { PROJECT_ROOT } from '../../project.ts';
import { spawn } from 'node:child_process';
import { access, constants as fsConstants } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { RpcTransport, type FrameDecoder, type TransportConnection } from '../../rpc/transport.ts';
import { childStream, unixSocket, type StreamOpener } from '../../rpc/streams.ts';
import type { ReadOptions } from '../types.ts';
import type { Logger } from '../../util/logger.ts';
import { VirtError, toVirtError } from '../../virt/errors.ts';
import {
  DOMID_FIRST_RESERVED,
  HELLO,
  MAX_DOMAINS_PER_REPLY,
  MAX_REQUEST_BODY,
  PREFIX_LEN,
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

/** Defaults of the xen.* settings this client reads (src/config/schema/xen.ts). */
export const PROXY_DEFAULTS = {
  binary: 'native/build/virt-proxy',
  socket: '/run/virt-exporter/virt-proxy.sock',
  timeoutMs: 5000,
} as const;

/** Resolves the xen.proxy-binary setting: relative paths are taken from the project directory. */
export function resolveProxyBinary(setting?: string): string {
  const value = setting === undefined || setting === '' ? PROXY_DEFAULTS.binary : setting;
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

/** Splits the proxy's length-prefixed reply frames; a bad length or version throws VIRT_ERR_RPC. */
class ReplyDecoder implements FrameDecoder<ReplyFrame> {
  #buf: Buffer = Buffer.alloc(0);

  get pendingBytes(): number {
    return this.#buf.length;
  }

  push(chunk: Buffer): ReplyFrame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: ReplyFrame[] = [];
    for (let len = replyFrameLength(this.#buf); len > 0; len = replyFrameLength(this.#buf)) {
      out.push(decodeFrame(this.#buf.subarray(0, len)));
      this.#buf = this.#buf.subarray(len);
    }
    return out;
  }
}

/** The greeting (serial 0) answers no request; a refusal at serial 0 ends the connection with its status. */
function serialOf(f: ReplyFrame): number | undefined {
  if (f.type === TYPE_ERROR && f.serial === 0) throw statusError(f.status, f.payload);
  return f.type === HELLO && f.serial === 0 ? undefined : f.serial;
}

const REQ_NAMES = new Map<number, string>(Object.entries(REQ).map(([k, v]) => [v, k]));

export class VirtProxyClient {
  readonly #t: RpcTransport<ReplyFrame>;
  readonly #where: string;

  private constructor(open: StreamOpener, timeoutMs: number, where: string, logger: Logger) {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new VirtError('VIRT_ERR_CONFIG', `virt-proxy timeout must be a positive number of ms, got ${String(timeoutMs)}`);
    this.#where = where;
    this.#t = new RpcTransport<ReplyFrame>({
      peer: `virt-proxy (${where})`,
      open,
      decoder: () => new ReplyDecoder(),
      serialOf,
      onUnsolicited: (f) => {
        throw rpcError(`unsolicited reply (type ${f.type}, serial ${f.serial})`);
      },
      handshake: (conn, signal) => VirtProxyClient.#greet(conn, signal, timeoutMs),
      maxOutboundBytes: PREFIX_LEN + MAX_REQUEST_BODY,
      connectTimeoutMs: timeoutMs,
      reconnect: false,
      timeoutCloses: true,
      exclusive: true,
      logger,
    });
  }

  static async #open(client: VirtProxyClient): Promise<VirtProxyClient> {
    try {
      await client.#t.connection();
    } catch (err) {
      await client.#t.closeAndWait();
      throw toVirtError(err, 'VIRT_ERR_NO_CONNECT');
    }
    return client;
  }

  /** Runs `binary --stdio` as a child and talks to it over its stdin/stdout. */
  static async spawnStdio(opts: SpawnStdioOptions): Promise<VirtProxyClient> {
    const open: StreamOpener = async () => {
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
      return childStream(child, { graceMs: Math.min(opts.timeoutMs, 2000), onStderr: (line) => opts.logger.debug('virt-proxy stderr', { line }) });
    };
    return VirtProxyClient.#open(new VirtProxyClient(open, opts.timeoutMs, opts.binary, opts.logger));
  }

  /** Connects to a virt-proxy daemon's unix socket. */
  static async connect(opts: ConnectOptions): Promise<VirtProxyClient> {
    const daemon = 'is the virt-proxy daemon running? start it with `virt-proxy --socket PATH`';
    const open = unixSocket(opts.socketPath, { ENOENT: daemon, ECONNREFUSED: daemon, EACCES: 'the socket is mode 0660: add this user to the virt-proxy group' });
    return VirtProxyClient.#open(new VirtProxyClient(open, opts.timeoutMs, opts.socketPath, opts.logger));
  }

  /** True once the connection is gone (closed, timed out or broken). */
  get closed(): boolean {
    return this.#t.closed;
  }

  /** The hypervisor's version, e.g. "4.17.0". */
  async version(opts: ReadOptions = {}): Promise<string> {
    const frame = await this.#request(REQ.version, undefined, opts);
    const v = this.#decode(() => decodeVersion(frame.payload));
    return xenVersionString(v.major, v.minor, v.extra);
  }

  async hostInfo(opts: ReadOptions = {}): Promise<XenHostReading> {
    const frame = await this.#request(REQ.hostInfo, undefined, opts);
    return this.#decode(() => decodeHostInfo(frame.payload));
  }

  /** Every domain, in domain id order, paging through the proxy's bounded replies. */
  async listDomains(opts: ListDomainsOptions = {}): Promise<XenDomainReading[]> {
    const devices = opts.devices ?? true;
    const all: XenDomainReading[] = [];
    let first = 0;
    // At most DOMID_FIRST_RESERVED / MAX_DOMAINS_PER_REPLY pages, since ids strictly increase.
    while (first < DOMID_FIRST_RESERVED) {
      const frame = await this.#request(REQ.listDomains, listDomainsPayload(first, MAX_DOMAINS_PER_REPLY, devices), opts);
      const page = this.#decode(() => decodeDomainList(frame.payload, first, MAX_DOMAINS_PER_REPLY));
      all.push(...page);
      const last = page.at(-1);
      if (page.length < MAX_DOMAINS_PER_REPLY || last === undefined) break;
      first = last.domid + 1;
    }
    return all;
  }

  async close(): Promise<void> {
    await this.#t.closeAndWait(new VirtError('VIRT_ERR_NO_CONNECT', `virt-proxy connection (${this.#where}) closed`, { driver: DRIVER }));
  }

  // ---- internals ----

  /** A reply that is wrong, or a payload that does not decode, means the proxy is broken: drop the connection, keep the error. */
  #decode<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const e = toVirtError(err, 'VIRT_ERR_RPC');
      this.#t.reset(e);
      throw e;
    }
  }

  /** Waits for the proxy's greeting (or its refusal: denied, busy) before any request. */
  static async #greet(conn: TransportConnection<ReplyFrame>, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    const frame = await conn.next({ timeoutMs, signal, what: 'the virt-proxy greeting' });
    decodeHello(frame.payload);
  }

  async #request(type: number, payload: Buffer | undefined, opts: ReadOptions): Promise<ReplyFrame> {
    const what = `virt-proxy ${REQ_NAMES.get(type) ?? `request ${type}`}`;
    const frame = await this.#t.call((serial) => encodeRequest(type, serial, payload), { timeoutMs: this.#t.options.connectTimeoutMs, signal: opts.signal, what });
    this.#decode(() => {
      if (frame.type === TYPE_ERROR) throw statusError(frame.status, frame.payload);
      if (frame.type !== (type | REPLY_BIT)) throw rpcError(`reply type ${frame.type} does not answer request type ${type}`);
      if (!isKnownStatus(frame.status)) throw rpcError(`unknown reply status ${frame.status}`);
    });
    if (frame.status !== STATUS.ok) throw statusError(frame.status, frame.payload);
    return frame;
  }
}
