/**
 * A client of libvirt's remote protocol over one unix socket: the framing and
 * the handshake; serials, deadlines, liveness and reconnection come from the
 * generic transport (src/rpc/transport.ts). Stream-free calls only.
 *
 * Handshake on every (re)connection: auth-list (refusing SASL with a clear
 * error; polkit is attempted), connect-supports-feature(PROGRAM_KEEPALIVE) so
 * the daemon pings us, connect-open, and, when asked for, one registration
 * for domain lifecycle events.
 */
import { silentLogger, type Logger } from '../../util/logger.ts';
import { VirtError } from '../../virt/errors.ts';
import { LengthPrefixedDecoder, RpcTransport, type TransportConnection } from '../../rpc/transport.ts';
import {
  AuthType,
  AUTH_TYPE_LIST_MAX,
  callPacket,
  CONNECT_RO,
  decodePacket,
  decodeRemoteError,
  DOMAIN_EVENT_ID_LIFECYCLE,
  Feature,
  HEADER_BYTES,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  keepalivePacket,
  MessageStatus,
  MessageType,
  Proc,
  readLifecycleEvent,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  STRING_MAX,
  type LifecycleEvent,
  type Packet,
} from './protocol.ts';
import { XdrReader, type XdrWriter } from './xdr.ts';

export interface LibvirtClientOptions {
  socketPath: string;
  /** The URI passed to connect-open on the daemon, e.g. "qemu:///system". */
  name: string;
  readOnly: boolean;
  maxMessageBytes: number;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCount: number;
  /** Register for domain lifecycle events on each connection. */
  events?: (e: LifecycleEvent) => void;
  /** Called when a connection is lost (events may have been missed). */
  onDisconnect?: () => void;
  logger?: Logger;
}

export interface CallOpts {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

const PROC_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Proc).map(([k, v]) => [v, k.toLowerCase().replace(/_/g, '-')]));

export function procName(proc: number): string {
  return PROC_NAMES[proc] ?? `procedure ${proc}`;
}

export class LibvirtClient {
  readonly #o: LibvirtClientOptions;
  readonly #log: Logger;
  readonly #t: RpcTransport<Packet>;
  readonly peer: string;
  #calls = 0;
  #callbackId: number | null = null;

  constructor(o: LibvirtClientOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.peer = `libvirt daemon at ${o.socketPath}`;
    const peer = this.peer;
    this.#t = new RpcTransport<Packet>({
      peer,
      socketPath: o.socketPath,
      decoder: () => {
        const d = new LengthPrefixedDecoder({ maxFrameBytes: o.maxMessageBytes, minFrameBytes: HEADER_BYTES, inclusive: true, peer });
        return { push: (chunk: Buffer) => d.push(chunk).map(decodePacket) };
      },
      serialOf: (p) => this.#serialOf(p),
      onUnsolicited: (p, conn) => this.#onMessage(p, conn),
      handshake: (conn, signal) => this.#handshake(conn, signal),
      onDisconnect: () => {
        this.#callbackId = null;
        o.onDisconnect?.();
      },
      maxOutboundBytes: o.maxMessageBytes,
      connectTimeoutMs: o.connectTimeoutMs,
      liveness: { intervalMs: o.keepaliveIntervalMs, count: o.keepaliveCount, probe: () => keepalivePacket(KEEPALIVE_PROC_PING) },
      backoff: { initialMs: 100, maxMs: 2000 },
      logger: this.#log,
    });
  }

  /** RPCs sent so far (handshakes included); tests count them. */
  get calls(): number {
    return this.#calls;
  }

  get connected(): boolean {
    return this.#t.connected;
  }

  #serialOf(p: Packet): number | undefined {
    const h = p.header;
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.type !== MessageType.MESSAGE || (h.proc !== KEEPALIVE_PROC_PING && h.proc !== KEEPALIVE_PROC_PONG)) {
        throw new VirtError('VIRT_ERR_RPC', `${this.peer} sent a keepalive packet of type ${h.type}, procedure ${h.proc}; connection closed`);
      }
      return undefined;
    }
    if (h.prog !== REMOTE_PROGRAM) throw new VirtError('VIRT_ERR_RPC', `${this.peer} sent a packet of unknown program 0x${h.prog.toString(16)}; connection closed`);
    if (h.vers !== REMOTE_PROTOCOL_VERSION) throw new VirtError('VIRT_ERR_RPC', `${this.peer} speaks remote protocol version ${h.vers}, expected ${REMOTE_PROTOCOL_VERSION}; connection closed`);
    if (h.type === MessageType.MESSAGE) return undefined;
    if (h.type !== MessageType.REPLY) throw new VirtError('VIRT_ERR_RPC', `${this.peer} sent a packet of type ${h.type} (streams and fd passing are not used); connection closed`);
    return h.serial;
  }

  #onMessage(p: Packet, conn: TransportConnection<Packet>): void {
    const h = p.header;
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KEEPALIVE_PROC_PING) conn.send(keepalivePacket(KEEPALIVE_PROC_PONG));
      return;
    }
    if (h.proc === Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
      const e = readLifecycleEvent(p.body);
      if (e.callbackId !== this.#callbackId) return; // a registration from before a reconnect
      this.#o.events?.(e);
      return;
    }
    throw new VirtError('VIRT_ERR_RPC', `${this.peer} sent an event for ${procName(h.proc)}, which this client never registered for; connection closed`);
  }

  async #rawCall(conn: TransportConnection<Packet> | null, proc: number, payload: ((w: XdrWriter) => void) | undefined, opts: CallOpts): Promise<Buffer> {
    const what = procName(proc);
    const encode = (serial: number): Buffer => callPacket(proc, serial, payload);
    this.#calls++;
    const callOpts = { timeoutMs: opts.timeoutMs, signal: opts.signal, what };
    const reply = conn === null ? await this.#t.call(encode, callOpts) : await conn.call(encode, callOpts);
    if (reply.header.proc !== proc) {
      const err = new VirtError('VIRT_ERR_RPC', `${this.peer} answered ${what} with a reply for ${procName(reply.header.proc)}; connection closed`);
      this.#t.reset(err);
      throw err;
    }
    if (reply.header.status === MessageStatus.ERROR) {
      let e: VirtError;
      try {
        e = decodeRemoteError(reply.body);
      } catch (err) {
        e = new VirtError('VIRT_ERR_RPC', `${this.peer} sent a bad error reply to ${what}: ${(err as Error).message}; connection closed`, { cause: err });
        this.#t.reset(e);
      }
      throw e;
    }
    if (reply.header.status !== MessageStatus.OK) {
      const err = new VirtError('VIRT_ERR_RPC', `${this.peer} answered ${what} with status ${reply.header.status}; connection closed`);
      this.#t.reset(err);
      throw err;
    }
    return reply.body;
  }

  /**
   * One procedure call; `decode` reads the reply body (and must consume it
   * whole). A reply that does not decode closes the connection.
   */
  async call<T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T, opts: CallOpts): Promise<T> {
    const body = await this.#rawCall(null, proc, payload, opts);
    return this.#decode(body, decode, proc);
  }

  #decode<T>(body: Buffer, decode: (r: XdrReader) => T, proc: number): T {
    try {
      const r = new XdrReader(body);
      const v = decode(r);
      r.end(`${procName(proc)} reply`);
      return v;
    } catch (err) {
      const e = err instanceof VirtError ? err : new VirtError('VIRT_ERR_RPC', String(err));
      const wrapped = new VirtError('VIRT_ERR_RPC', `${this.peer} sent a bad ${procName(proc)} reply: ${e.message}; connection closed`, { cause: e });
      this.#t.reset(wrapped);
      throw wrapped;
    }
  }

  async #handshake(conn: TransportConnection<Packet>, signal: AbortSignal | undefined): Promise<void> {
    const opts = { timeoutMs: this.#o.connectTimeoutMs, signal };
    const step = async <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T): Promise<T> => this.#decode(await this.#rawCall(conn, proc, payload, opts), decode, proc);

    const types = await step(Proc.AUTH_LIST, undefined, (r) => r.array(AUTH_TYPE_LIST_MAX, (x) => x.int()));
    if (types.length > 0 && !types.includes(AuthType.NONE)) {
      if (types.includes(AuthType.POLKIT)) {
        try {
          await step(Proc.AUTH_POLKIT, undefined, (r) => r.int());
        } catch (err) {
          throw new VirtError(
            'VIRT_ERR_AUTH_UNAVAILABLE',
            `${this.peer} requires polkit authorization and refused it (${(err as Error).message}); allow this user in a polkit rule for org.libvirt.unix.manage/monitor, or set auth_unix_${this.#o.readOnly ? 'ro' : 'rw'} = "none" on a socket only the right group may open (docs/libvirt.md)`,
            { cause: err },
          );
        }
      } else {
        const names = types.map((t) => (t === AuthType.SASL ? 'sasl' : t === AuthType.POLKIT ? 'polkit' : String(t))).join(', ');
        throw new VirtError(
          'VIRT_ERR_AUTH_UNAVAILABLE',
          `${this.peer} requires authentication (${names}), which virt-exporter does not speak; set auth_unix_${this.#o.readOnly ? 'ro' : 'rw'} = "none" in libvirtd.conf (or virtqemud.conf) and restrict the socket by group with unix_sock_group/unix_sock_${this.#o.readOnly ? 'ro_' : 'rw_'}perms (docs/libvirt.md)`,
        );
      }
    }
    const keepalive = await step(Proc.CONNECT_SUPPORTS_FEATURE, (w) => w.int(Feature.PROGRAM_KEEPALIVE), (r) => r.int());
    if (keepalive !== 1) this.#log.info('libvirt daemon does not do keepalive; relying on our own probes only', { peer: this.peer });
    await step(Proc.CONNECT_OPEN, (w) => w.optional(this.#o.name, (x, n) => x.string(n, STRING_MAX)).uint(this.#o.readOnly ? CONNECT_RO : 0), () => undefined);
    if (this.#o.events !== undefined) {
      this.#callbackId = await step(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, (w) => w.int(DOMAIN_EVENT_ID_LIFECYCLE).bool(false), (r) => r.int());
    }
  }

  /** Connects now (handshake included), so a broken setup fails at open. */
  async connect(opts: CallOpts): Promise<void> {
    await this.#t.connection(opts.signal ?? AbortSignal.timeout(opts.timeoutMs));
  }

  close(): void {
    this.#t.close();
  }
}
