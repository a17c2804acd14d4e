/**
 * virt-qemud's two listeners: a read-write socket (0600) and a read-only one
 * (0666, or 0660 with a configured group) that answers reads only. Each
 * connection decodes bounded frames; an oversized frame gets one error reply
 * and closes that connection alone; a malformed frame gets an error reply and
 * the connection goes on.
 */
import { chmodSync, chownSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { isWrite, operation, type OpArgs, type OpName, type PingReply } from '../drivers/ops.ts';
import type { Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { checkRequest, encodeFrame, FrameDecoder, PROTOCOL_VERSION, type Decoded, type Reply } from '../qemud-shared/protocol.ts';
import { unlinkQuiet } from './store.ts';
import { groupId as gidOf, loadPeerCred, processGroups, socketPeer, type PeerCred } from './peercred.ts';
import type { Supervisor } from './supervisor.ts';

/** Per-client limits, as libvirt's virtqemud.conf has them. */
export interface ClientLimits {
  /** Connections on the read-write socket. */
  maxClients: number;
  /** Connections on the read-only socket. */
  maxAnonymousClients: number;
  /** Requests of one connection in progress at once; the connection is not read further meanwhile. */
  maxClientRequests: number;
  /** A connection with nothing in progress and no traffic for this long is closed (0: never). */
  idleTimeoutMs: number;
  /** Request frame limit on the read-only socket. */
  roMaxFrameBytes: number;
  /** Queued reply bytes beyond which a connection is not read further until the client reads. */
  maxPendingReplyBytes: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  maxClients: 64,
  maxAnonymousClients: 32,
  maxClientRequests: 8,
  idleTimeoutMs: 600_000,
  roMaxFrameBytes: 64 * 1024,
  maxPendingReplyBytes: 4 * 1024 * 1024,
};

export interface ServerOptions {
  supervisor: Supervisor;
  logger: Logger;
  maxFrameBytes: number;
  roSocketGroup?: string;
  /** Group whose members may use the read-write socket besides root and the daemon's own user. */
  adminGroup?: string;
  limits?: Partial<ClientLimits>;
}

/** What the read-only socket shows instead of a secrets-bearing field. */
export const REDACTED = '(redacted on the read-only socket)';

interface Call {
  readonly readOnly: boolean;
  readonly signal: AbortSignal;
}

/**
 * What virt-qemud does for each operation of the table, given the arguments
 * its argument check returned; the table decides what is known, what the
 * read-only socket refuses and what arguments are acceptable.
 */
const HANDLERS: { [K in OpName]: (sup: Supervisor, args: OpArgs<K>, call: Call) => unknown } = {
  ping: (_sup, _args, call): PingReply => ({ protocol: PROTOCOL_VERSION, pid: process.pid, readOnly: call.readOnly }),
  version: (sup) => sup.version(),
  hostInfo: (sup) => sup.hostInfo(),
  listDomains: (sup, [opts]) => sup.listDomains(opts),
  lookupDomain: (sup, [key]) => sup.lookupDomain(key),
  domainInfo: (sup, [key], call) => sup.domainInfo(key, call.signal),
  allDomainStats: (sup, [opts], call) => sup.allDomainStats(opts, call.signal),
  domainDefinition: (sup, [key], call) => {
    const def = sup.domainDefinition(key);
    // The read-only socket is open to every local user (0666 by default): no kernel command line (it may carry secrets).
    if (call.readOnly && def.kernel?.cmdline !== undefined) return { ...def, kernel: { ...def.kernel, cmdline: REDACTED } };
    return def;
  },
  define: (sup, [definition]) => sup.define(definition),
  undefine: (sup, [key]) => sup.undefine(key),
  start: (sup, [key]) => sup.start(key),
  shutdown: (sup, [key, opts]) => sup.shutdown(key, opts),
  reboot: (sup, [key]) => sup.reboot(key),
  destroy: (sup, [key]) => sup.destroy(key),
  suspend: (sup, [key]) => sup.suspend(key),
  resume: (sup, [key]) => sup.resume(key),
  save: (sup, [key, file]) => sup.save(key, file),
  restore: (sup, [file, opts]) => sup.restore(file, opts),
  managedSaveRemove: (sup, [key]) => sup.managedSaveRemove(key),
};

/**
 * Runs one request against the supervisor: an operation the table does not
 * have is VIRT_ERR_NO_SUPPORT, a write on the read-only socket
 * VIRT_ERR_OPERATION_DENIED, arguments its check refuses VIRT_ERR_INVALID_ARG.
 */
export function dispatch(sup: Supervisor, op: string, args: unknown[], readOnly: boolean, signal: AbortSignal): Promise<unknown> {
  try {
    const spec = operation(op);
    if (spec === undefined) throw new VirtError('VIRT_ERR_NO_SUPPORT', `unknown operation ${JSON.stringify(op.slice(0, 64))}`);
    if (spec.write && readOnly) throw new VirtError('VIRT_ERR_OPERATION_DENIED', `operation ${op} is not allowed on the read-only socket`);
    const checked = spec.args(args);
    const handler = HANDLERS[op as OpName] as (sup: Supervisor, args: readonly unknown[], call: Call) => unknown;
    return Promise.resolve(handler(sup, checked, { readOnly, signal }));
  } catch (err) {
    return Promise.reject(toVirtError(err, 'VIRT_ERR_INTERNAL_ERROR'));
  }
}

export class QemudServer {
  readonly #o: ServerOptions;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #paths: string[] = [];
  readonly #limits: ClientLimits;
  readonly #count = { rw: 0, ro: 0 };
  #adminGid: number | undefined;

  /** Root, the daemon's own user, and members of the admin group may use the read-write socket. */
  #mayWrite(peer: PeerCred): boolean {
    if (peer.uid === 0 || peer.uid === (process.geteuid?.() ?? 0)) return true;
    const gid = this.#adminGid;
    return gid !== undefined && (peer.gid === gid || processGroups(peer.pid).includes(gid));
  }

  constructor(opts: ServerOptions) {
    this.#o = opts;
    this.#limits = { ...DEFAULT_CLIENT_LIMITS, ...opts.limits };
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async listen(rwPath: string, roPath: string): Promise<void> {
    // Without peer credentials the read-write socket could not be checked: refuse to start.
    loadPeerCred();
    if (this.#o.adminGroup) {
      const gid = gidOf(this.#o.adminGroup);
      if (gid === undefined) throw new VirtError('VIRT_ERR_CONFIG', `unknown admin group ${JSON.stringify(this.#o.adminGroup)} for the read-write socket`);
      this.#adminGid = gid;
    }
    await this.#listen(rwPath, false, this.#adminGid === undefined ? 0o600 : 0o660);
    if (this.#adminGid !== undefined) chownSync(rwPath, process.geteuid?.() ?? 0, this.#adminGid);
    await this.#listen(roPath, true, this.#o.roSocketGroup ? 0o660 : 0o666);
    if (this.#o.roSocketGroup) chownSync(roPath, process.getuid?.() ?? 0, groupId(this.#o.roSocketGroup));
  }

  /** Serves on listening sockets passed by systemd (socket activation); systemd owns their files and modes. */
  async listenFds(rwFd: number, roFd: number): Promise<void> {
    await this.#listen({ fd: rwFd }, false, 0);
    await this.#listen({ fd: roFd }, true, 0);
  }

  async #listen(target: string | { fd: number }, readOnly: boolean, mode: number): Promise<void> {
    if (typeof target === 'string') unlinkQuiet(target);
    const server = createServer((sock) => this.#onConnection(sock, readOnly));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket file is created by the (synchronous) bind inside listen():
      // under this umask it has its final mode from the first instant, so no
      // client ever finds it wider, or narrower, than configured.
      const umask = typeof target === 'string' ? process.umask(~mode & 0o777) : undefined;
      try {
        server.listen(target, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        if (umask !== undefined) process.umask(umask);
      }
    });
    this.#servers.push(server);
    if (typeof target !== 'string') return;
    chmodSync(target, mode);
    this.#paths.push(target);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const p of this.#paths) unlinkQuiet(p);
  }

  #onConnection(sock: Socket, readOnly: boolean): void {
    const log = this.#o.logger;
    const lim = this.#limits;
    const kind = readOnly ? 'ro' : 'rw';
    let peer: PeerCred | undefined;
    try {
      peer = socketPeer(sock);
    } catch (err) {
      log.warn('cannot read the peer credentials of a client', { socket: kind, err });
    }
    const who = peer === undefined ? {} : { peer_pid: peer.pid, peer_uid: peer.uid, peer_gid: peer.gid };
    if (!readOnly && (peer === undefined || !this.#mayWrite(peer))) {
      log.warn('refusing a client on the read-write socket: not root, not the daemon user, not in the admin group', { ...who, admin_group: this.#o.adminGroup ?? '' });
      sock.on('error', () => undefined);
      sock.write(encodeFrame({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_OPERATION_DENIED', message: `uid ${peer?.uid ?? '?'} may not use the read-write socket; use the read-only one, or ask for membership of the admin group` } }));
      // Close once the client has sent its first request (or after a second): closing at once
      // races the request it is writing, and it would see EPIPE instead of the refusal.
      const close = (): void => {
        clearTimeout(timer);
        sock.destroySoon();
      };
      const timer = setTimeout(close, 1000);
      sock.once('data', close);
      sock.once('close', () => clearTimeout(timer));
      return;
    }
    if (readOnly) log.debug('client connected', { socket: kind, ...who });
    else log.info('client connected', { socket: kind, ...who });
    const max = readOnly ? lim.maxAnonymousClients : lim.maxClients;
    if (this.#count[kind] >= max) {
      log.warn('refusing a client: too many connections', { socket: kind, limit: max });
      sock.on('error', () => undefined);
      sock.end(encodeFrame({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_RATE_LIMITED', message: `virt-qemud already serves ${max} clients on the ${readOnly ? 'read-only' : 'read-write'} socket; retry later` } }));
      sock.destroySoon();
      return;
    }
    this.#count[kind]++;
    this.#sockets.add(sock);
    const abort = new AbortController();
    const frameLimit = readOnly ? Math.min(lim.roMaxFrameBytes, this.#o.maxFrameBytes) : this.#o.maxFrameBytes;
    const decoder = new FrameDecoder(frameLimit);
    // Decoded requests wait here while the client has too many in progress or does not read its replies.
    const queue: Decoded[] = [];
    let inFlight = 0;
    let paused = false;
    const blocked = (): boolean => inFlight >= lim.maxClientRequests || sock.writableLength > lim.maxPendingReplyBytes;
    const flow = (): void => {
      while (queue.length > 0 && !blocked() && !sock.destroyed) handle(queue.shift() as Decoded);
      const stop = blocked() || queue.length > 0;
      if (stop && !paused) {
        paused = true;
        sock.pause();
      } else if (!stop && paused) {
        paused = false;
        sock.resume();
      }
    };
    if (lim.idleTimeoutMs > 0) {
      sock.setTimeout(lim.idleTimeoutMs, () => {
        if (inFlight > 0) return;
        log.info('closing an idle client', { socket: kind, idleMs: lim.idleTimeoutMs });
        sock.destroy();
      });
    }
    const send = (reply: Reply): void => {
      if (sock.destroyed) return;
      let frame = encodeFrame(reply);
      if (frame.length - 4 > this.#o.maxFrameBytes) {
        frame = encodeFrame({ v: PROTOCOL_VERSION, id: reply.id, error: { code: 'VIRT_ERR_RPC', message: `reply of ${frame.length} bytes exceeds the frame limit ${this.#o.maxFrameBytes}` } });
      }
      sock.write(frame);
    };
    const handle = (m: Decoded): void => {
      if (m.kind === 'oversized') return;
      if (m.kind === 'malformed') {
        send({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_RPC', message: `malformed frame: ${m.message}` } });
        return;
      }
      let req;
      try {
        req = checkRequest(m.value);
      } catch (err) {
        const e = toVirtError(err, 'VIRT_ERR_RPC');
        const id = typeof m.value === 'object' && m.value !== null ? (m.value as Record<string, unknown>)['id'] : null;
        send({ v: PROTOCOL_VERSION, id: typeof id === 'number' || typeof id === 'string' ? id : null, error: { code: e.code, message: e.message } });
        return;
      }
      const { id, op, args } = req;
      inFlight++;
      dispatch(this.#o.supervisor, op, args, readOnly, abort.signal)
        .then(
          (result) => send({ v: PROTOCOL_VERSION, id, result: result ?? null }),
          (err: unknown) => {
            const e = toVirtError(err, 'VIRT_ERR_INTERNAL_ERROR');
            if (e.code === 'VIRT_ERR_INTERNAL_ERROR') log.error('request failed', { op, err: e });
            // Refused state-changing requests are the daemon's audit trail: what was asked, of which domain and file.
            else if (isWrite(op)) log.warn('write request refused', { op, code: e.code, message: e.message, domain: e.domain, readOnly, ...who });
            else log.debug('request refused', { op, code: e.code, message: e.message });
            send({ v: PROTOCOL_VERSION, id, error: { code: e.code, message: e.message } });
          },
        )
        .finally(() => {
          inFlight--;
          flow();
        });
    };
    sock.on('drain', flow);
    sock.on('data', (chunk: Buffer) => {
      for (const m of decoder.push(chunk)) {
        if (m.kind === 'oversized') {
          log.warn('closing connection after an oversized frame', { length: m.length, limit: frameLimit, readOnly });
          queue.length = 0;
          sock.end(encodeFrame({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_RPC', message: `frame of ${m.length} bytes exceeds the limit of ${frameLimit} bytes; closing the connection` } }));
          sock.destroySoon();
          return;
        }
        queue.push(m);
      }
      flow();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.#sockets.delete(sock);
      this.#count[kind]--;
      queue.length = 0;
      abort.abort();
    });
  }
}

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid !== undefined) return Number(gid);
  }
  throw new VirtError('VIRT_ERR_CONFIG', `unknown group ${JSON.stringify(name)} for the read-only socket`);
}
