/**
 * Xend client: HTTP/1.1 with S-expression replies (protocols.md §2), over
 * Xend's unix socket or TCP, through undici. Requests look like libvirt's
 * (no User-Agent, no Accept: Xend then answers in SXP, not HTML; POST bodies
 * form-encoded). Every request has a deadline, honours the caller's
 * AbortSignal and reads at most maxResponseBytes.
 */
import { inSpan } from '../../telemetry/tracing.ts';
import { Pool } from 'undici';
import type { Logger } from '../../util/logger.ts';
import { VirtError, type VirtErrorCode } from '../../virt/errors.ts';
import { isList, parseSexpr, parseSexprListEach, serializeSexpr, type Sexpr } from './sexpr.ts';
import { parseXendDomain, parseXendNode, xendConfigFormat, type XendDomain } from './xend-domain.ts';
import type { HostInfo } from '../types.ts';

export const XEND_DEFAULT_UNIX = '/var/lib/xend/xend-socket';
export const XEND_DEFAULT_TCP = 'http://localhost:8000/';
const DRIVER = 'xen/xend';

export type XendAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function describeAddress(a: XendAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `http://${a.host}:${a.port}/`;
}

/** An absolute path is a unix socket; http://host[:port]/ or host:port is TCP. */
export function parseXendAddress(text: string): XendAddress {
  const t = text.trim();
  if (t.startsWith('/')) return { kind: 'unix', path: t };
  const m = /^(?:http:\/\/)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(t);
  const port = m?.[2] === undefined ? 8000 : Number(m[2]);
  if (m === null || port < 1 || port > 65535) {
    throw new VirtError('VIRT_ERR_CONFIG', `invalid Xend address ${JSON.stringify(text)}: expected an absolute unix socket path, http://HOST:PORT/ or HOST:PORT`, { driver: DRIVER });
  }
  return { kind: 'tcp', host: m[1] as string, port };
}

export interface XendClientOptions {
  address: XendAddress;
  timeoutMs: number;
  /** Deadline of operations that move a whole domain (save, restore, create, start); default timeoutMs. */
  opTimeoutMs?: number;
  maxResponseBytes: number;
  logger: Logger;
  /**
   * Connections used at once (one request each, as libvirt). Independent reads
   * (node, running list, halted list, one managed domain) never queue behind
   * each other up to this many; default 8.
   */
  connections?: number;
}

export interface XendRequestOptions {
  signal?: AbortSignal;
  /** Overrides the client's deadline for this request. */
  timeoutMs?: number;
}

interface RawReply {
  status: number;
  text: string;
  contentType: string;
}

const CONNECT_ERRNOS = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'ENOTSOCK', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

function errnoOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e instanceof Error; i++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string' && CONNECT_ERRNOS.has(code)) return code;
    e = e.cause;
  }
  return undefined;
}

/** Text of a (xend.err 'message') reply, if it is one. */
function xendErrMessage(text: string): string | undefined {
  const i = text.indexOf('xend.err');
  if (i < 0) return undefined;
  try {
    const sx = parseSexpr(text, { maxDepth: 4 });
    if (isList(sx) && sx[0] === 'xend.err') return sx.slice(1).map((x) => (typeof x === 'string' ? x : serializeSexpr(x))).join(' ');
  } catch {
    // Not a well-formed error expression; report the raw text.
  }
  return text.slice(i, i + 500).trim();
}

/** Classifies an error message from Xend into our codes. */
function codeForXendMessage(message: string, fallback: VirtErrorCode): VirtErrorCode {
  if (/not found|no such domain|invalid domain|unknown domain/i.test(message)) return 'VIRT_ERR_NO_DOMAIN';
  if (/already exists|already defined|is already in use/i.test(message)) return 'VIRT_ERR_DOM_EXIST';
  return fallback;
}

export class XendClient {
  readonly address: XendAddress;
  readonly #opts: XendClientOptions;
  readonly #client: Pool;
  #configFormat = 1;
  #closed = false;

  constructor(opts: XendClientOptions) {
    this.#opts = opts;
    this.address = opts.address;
    const a = opts.address;
    this.#client =
      a.kind === 'unix'
        ? new Pool('http://localhost:8000', { socketPath: a.path, connect: { timeout: opts.timeoutMs }, pipelining: 1, connections: opts.connections ?? 8 })
        : new Pool(`http://${a.host}:${a.port}`, { connect: { timeout: opts.timeoutMs, noDelay: true }, pipelining: 1, connections: opts.connections ?? 8 });
  }

  /**
   * Connects and reads /xend/node/ once (as libvirt's open did, to learn the
   * config format). With no explicit address: the unix socket first, then TCP.
   */
  static async open(opts: Omit<XendClientOptions, 'address'> & { address?: string; signal?: AbortSignal; defaults?: readonly string[] }): Promise<XendClient> {
    const candidates: XendAddress[] =
      opts.address !== undefined && opts.address.trim() !== ''
        ? [parseXendAddress(opts.address)]
        : (opts.defaults ?? [XEND_DEFAULT_UNIX, XEND_DEFAULT_TCP]).map(parseXendAddress);
    let last: unknown;
    for (const address of candidates) {
      const client = new XendClient({ ...opts, address });
      try {
        const node = await client.get('/xend/node/', { signal: opts.signal });
        client.#configFormat = xendConfigFormat(node);
        opts.logger.debug('xend connected', { address: describeAddress(address), config_format: client.#configFormat });
        return client;
      } catch (err) {
        last = err;
        opts.logger.debug('xend not reachable', { address: describeAddress(address), err });
        await client.close();
      }
    }
    if (last instanceof VirtError) throw last;
    throw new VirtError('VIRT_ERR_NO_CONNECT', 'Xend is not reachable', { driver: DRIVER, cause: last });
  }

  get #longTimeout(): number {
    return this.#opts.opTimeoutMs ?? this.#opts.timeoutMs;
  }

  get configFormat(): number {
    return this.#configFormat;
  }

  /** Xend is stateless per request: an opened client stays usable until closed. */
  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client.close().catch(() => undefined);
  }

  /** One Xend request, a child span of the read or operation being traced (several make up one read). */
  #request(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal | undefined, timeoutMs = this.#opts.timeoutMs): Promise<RawReply> {
    return inSpan(`xend ${method}`, { 'http.request.method': method, 'url.path': path }, () => this.#send(method, path, body, signal, timeoutMs));
  }

  async #send(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal | undefined, timeoutMs: number): Promise<RawReply> {
    const where = `${method} ${path} at ${describeAddress(this.address)}`;
    if (signal?.aborted === true) throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${where}: aborted before sending`, { driver: DRIVER });
    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${where}: no complete answer within ${timeoutMs} ms`, { driver: DRIVER }));
    }, timeoutMs);
    const onAbort = (): void => {
      ac.abort(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${where}: aborted by the caller`, { driver: DRIVER, cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = {
      'accept-encoding': 'identity',
      'content-type': 'application/x-www-form-urlencoded',
    };
    let gotHeaders = false;
    try {
      // reset: one connection per request, as libvirt did; Xend's server is not keep-alive friendly.
      const res = await this.#client.request({ method, path, headers, body, signal: ac.signal, reset: true, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      gotHeaders = true;
      const max = this.#opts.maxResponseBytes;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > max) {
        res.body.destroy();
        throw new VirtError('VIRT_ERR_RPC', `${where}: reply of ${declared} bytes exceeds the ${max}-byte limit`, { driver: DRIVER });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > max) {
          res.body.destroy();
          throw new VirtError('VIRT_ERR_RPC', `${where}: reply exceeds the ${max}-byte limit`, { driver: DRIVER });
        }
        chunks.push(chunk);
      }
      const ct = res.headers['content-type'];
      return { status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), contentType: (Array.isArray(ct) ? ct[0] : ct) ?? '' };
    } catch (err) {
      if (ac.signal.aborted && ac.signal.reason instanceof VirtError) throw ac.signal.reason;
      if (err instanceof VirtError) throw err;
      if (!gotHeaders && errnoOf(err) !== undefined) {
        throw new VirtError('VIRT_ERR_NO_CONNECT', `${where}: cannot connect (${errnoOf(err)})`, { driver: DRIVER, cause: err });
      }
      const msg = err instanceof Error ? err.message : String(err);
      throw new VirtError('VIRT_ERR_RPC', `${where}: ${gotHeaders ? 'reply truncated or broken' : 'request failed'}: ${msg}`, { driver: DRIVER, cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  #check(method: string, path: string, reply: RawReply, domain?: string): void {
    const where = `${method} ${path}`;
    const { status, text } = reply;
    const errMsg = xendErrMessage(text);
    if (status === 404) {
      const code: VirtErrorCode = domain !== undefined ? 'VIRT_ERR_NO_DOMAIN' : 'VIRT_ERR_OPERATION_FAILED';
      throw new VirtError(code, `${where}: not found (404)${domain !== undefined ? `: no domain ${JSON.stringify(domain)}` : ''}`, { driver: DRIVER, domain });
    }
    if (status === 501) throw new VirtError('VIRT_ERR_NO_SUPPORT', `${where}: Xend does not implement this (501): ${text.slice(0, 200).trim()}`, { driver: DRIVER, domain });
    if (status === 406) throw new VirtError('VIRT_ERR_INVALID_ARG', `${where}: Xend refused the request (406): ${text.slice(0, 200).trim()}`, { driver: DRIVER, domain });
    if (status < 200 || status >= 300) {
      const m = errMsg ?? text.slice(0, 300).trim();
      throw new VirtError(codeForXendMessage(m, 'VIRT_ERR_OPERATION_FAILED'), `${where}: HTTP ${status}: ${m}`, { driver: DRIVER, domain });
    }
    if (errMsg !== undefined) {
      throw new VirtError(codeForXendMessage(errMsg, 'VIRT_ERR_OPERATION_FAILED'), `${where}: Xend error (HTTP ${status}): ${errMsg}`, { driver: DRIVER, domain });
    }
    if (status === 202 && /failed/i.test(text)) {
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `${where}: Xend accepted but failed: ${text.slice(0, 300).trim()}`, { driver: DRIVER, domain });
    }
  }

  /** GET returning one S-expression. */
  async get(path: string, opts: XendRequestOptions & { domain?: string } = {}): Promise<Sexpr> {
    const reply = await this.#request('GET', path, undefined, opts.signal, opts.timeoutMs);
    this.#check('GET', path, reply, opts.domain);
    return parseSexpr(reply.text, { maxLength: this.#opts.maxResponseBytes });
  }

  /** GET returning one list, each element mapped as soon as it is parsed (see parseSexprListEach). */
  async getEach<T>(path: string, each: (item: Sexpr) => T, opts: XendRequestOptions & { domain?: string } = {}): Promise<T[]> {
    const reply = await this.#request('GET', path, undefined, opts.signal, opts.timeoutMs);
    this.#check('GET', path, reply, opts.domain);
    return parseSexprListEach(reply.text, each, { maxLength: this.#opts.maxResponseBytes });
  }

  /** POST of form fields; the op is the first field. */
  async post(path: string, fields: Record<string, string>, opts: XendRequestOptions & { domain?: string } = {}): Promise<string> {
    const body = new URLSearchParams(fields).toString();
    const reply = await this.#request('POST', path, body, opts.signal, opts.timeoutMs);
    this.#check('POST', path, reply, opts.domain);
    return reply.text;
  }

  async node(opts: XendRequestOptions = {}): Promise<HostInfo> {
    return parseXendNode(await this.get('/xend/node/', opts));
  }

  /** Names of running domains, or of inactive managed ones (state=halted). */
  async domainNames(opts: XendRequestOptions & { halted?: boolean } = {}): Promise<string[]> {
    const sx = await this.get(opts.halted === true ? '/xend/domain?state=halted' : '/xend/domain', opts);
    if (!isList(sx)) throw new VirtError('VIRT_ERR_RPC', 'unexpected Xend reply: domain list is not a list', { driver: DRIVER });
    return sx.map((x) => {
      if (typeof x !== 'string') throw new VirtError('VIRT_ERR_RPC', 'unexpected Xend reply: domain list holds a non-atom', { driver: DRIVER });
      return x;
    });
  }

  /** One domain by name, numeric id or UUID. 404 -> VIRT_ERR_NO_DOMAIN. */
  async domain(key: string, opts: XendRequestOptions = {}): Promise<XendDomain> {
    const sx = await this.get(`/xend/domain/${encodeURIComponent(key)}?detail=1`, { ...opts, domain: key });
    return parseXendDomain(sx);
  }

  /**
   * POST op=<op> to /xend/domain/<key>. Success is a 2xx whose body is empty
   * or one well-formed S-expression; anything else (HTML, garbage, a cut-off
   * expression) is VIRT_ERR_RPC: Xend did not say it did it.
   */
  async domainOp(key: string, op: string, args: Record<string, string> = {}, opts: XendRequestOptions = {}): Promise<void> {
    if (key === '') throw new VirtError('VIRT_ERR_INVALID_ARG', 'empty domain name', { driver: DRIVER });
    const path = `/xend/domain/${encodeURIComponent(key)}`;
    const body = new URLSearchParams({ op, ...args }).toString();
    const reply = await this.#request('POST', path, body, opts.signal, opts.timeoutMs);
    this.#check('POST', path, reply, key);
    const text = reply.text.trim();
    const bad = (why: string): never => {
      throw new VirtError('VIRT_ERR_RPC', `POST ${path} op=${op}: Xend answered ${reply.status} with ${why}; the ${op} is not known to have happened`, { driver: DRIVER, domain: key });
    };
    if (/html/i.test(reply.contentType)) bad(`an HTML page (${reply.contentType})`);
    if (text === '') return;
    let sx: Sexpr | undefined;
    try {
      sx = parseSexpr(text, { maxLength: this.#opts.maxResponseBytes });
    } catch {
      sx = undefined;
    }
    if (sx === undefined || !isList(sx)) bad(`a malformed body ${JSON.stringify(text.slice(0, 80))}`);
  }

  pause(key: string): Promise<void> { return this.domainOp(key, 'pause'); }
  unpause(key: string): Promise<void> { return this.domainOp(key, 'unpause'); }
  shutdown(key: string, reason: 'poweroff' | 'reboot' | 'halt' = 'poweroff'): Promise<void> { return this.domainOp(key, 'shutdown', { reason }); }
  destroy(key: string): Promise<void> { return this.domainOp(key, 'destroy'); }
  save(key: string, file: string): Promise<void> { return this.domainOp(key, 'save', { file }, { timeoutMs: this.#longTimeout }); }
  start(key: string): Promise<void> { return this.domainOp(key, 'start', {}, { timeoutMs: this.#longTimeout }); }
  delete(key: string): Promise<void> { return this.domainOp(key, 'delete'); }
  /** Balloon target; Xend takes MiB. */
  setMemoryTarget(key: string, bytes: number): Promise<void> { return this.domainOp(key, 'mem_target_set', { target: String(toMiB(bytes)) }); }
  setMaxMemory(key: string, bytes: number): Promise<void> { return this.domainOp(key, 'maxmem_set', { memory: String(toMiB(bytes)) }); }
  setVcpus(key: string, vcpus: number): Promise<void> {
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 4096) throw new VirtError('VIRT_ERR_INVALID_ARG', `invalid vCPU count ${vcpus}`, { driver: DRIVER });
    return this.domainOp(key, 'set_vcpus', { vcpus: String(vcpus) });
  }

  /** op=create: creates and starts (Xend leaves it paused until unpause, as libvirt did). */
  async create(config: Sexpr, opts: XendRequestOptions = {}): Promise<void> {
    await this.post('/xend/domain/', { op: 'create', config: serializeSexpr(config) }, { timeoutMs: this.#longTimeout, ...opts });
  }

  /** op=new: defines a managed domain (xend_config_format >= 3). */
  async define(config: Sexpr, opts: XendRequestOptions = {}): Promise<void> {
    await this.post('/xend/domain/', { op: 'new', config: serializeSexpr(config) }, opts);
  }

  async restore(file: string, opts: XendRequestOptions = {}): Promise<string> {
    return this.post('/xend/domain/', { op: 'restore', file }, { timeoutMs: this.#longTimeout, ...opts });
  }
}

function toMiB(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes <= 0) throw new VirtError('VIRT_ERR_INVALID_ARG', `invalid memory size ${bytes}`, { driver: DRIVER });
  return Math.max(1, Math.floor(bytes / (1024 * 1024)));
}
