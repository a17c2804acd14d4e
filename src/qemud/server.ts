/**
 * virt-qemud's two listeners: a read-write socket (0600) and a read-only one
 * (0666, or 0660 with a configured group) that answers reads only. Each
 * connection decodes bounded frames; an oversized frame gets one error reply
 * and closes that connection alone; a malformed frame gets an error reply and
 * the connection goes on.
 */
import { chmodSync, chownSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { STATS_GROUPS, type StatsGroup } from '../drivers/types.ts';
import type { Logger } from '../util/logger.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { checkRequest, encodeFrame, FrameDecoder, PROTOCOL_VERSION, READ_OPS, WRITE_OPS, type Reply } from './protocol.ts';
import { unlinkQuiet } from './store.ts';
import type { Supervisor } from './supervisor.ts';

export interface ServerOptions {
  supervisor: Supervisor;
  logger: Logger;
  maxFrameBytes: number;
  roSocketGroup?: string;
}

function argKey(args: unknown[], i: number): string {
  const v = args[i];
  if (typeof v !== 'string' || v === '' || v.length > 256) throw new VirtError('VIRT_ERR_INVALID_ARG', `argument ${i + 1} must be a domain name, UUID or id`);
  return v;
}

function argObj(args: unknown[], i: number): Record<string, unknown> {
  const v = args[i];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new VirtError('VIRT_ERR_INVALID_ARG', `argument ${i + 1} must be an options object`);
  return v as Record<string, unknown>;
}

function optBool(o: Record<string, unknown>, k: string): boolean | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new VirtError('VIRT_ERR_INVALID_ARG', `option ${k} must be a boolean`);
  return v;
}

function optNum(o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new VirtError('VIRT_ERR_INVALID_ARG', `option ${k} must be a number from ${min} to ${max}`);
  return v;
}

/** Runs one request against the supervisor. */
export async function dispatch(sup: Supervisor, op: string, args: unknown[], readOnly: boolean, signal: AbortSignal): Promise<unknown> {
  const isRead = (READ_OPS as readonly string[]).includes(op);
  const isWrite = (WRITE_OPS as readonly string[]).includes(op);
  if (!isRead && !isWrite) throw new VirtError('VIRT_ERR_NO_SUPPORT', `unknown operation ${JSON.stringify(op)}`);
  if (isWrite && readOnly) throw new VirtError('VIRT_ERR_OPERATION_DENIED', `operation ${op} is not allowed on the read-only socket`);
  switch (op) {
    case 'ping':
      return { protocol: PROTOCOL_VERSION, pid: process.pid, readOnly };
    case 'version':
      return sup.version();
    case 'hostInfo':
      return sup.hostInfo();
    case 'listDomains': {
      const o = argObj(args, 0);
      const active = optBool(o, 'active');
      const inactive = optBool(o, 'inactive');
      return sup.listDomains({ ...(active !== undefined ? { active } : {}), ...(inactive !== undefined ? { inactive } : {}) });
    }
    case 'lookupDomain':
      return sup.lookupDomain(argKey(args, 0));
    case 'domainInfo':
      return sup.domainInfo(argKey(args, 0), signal);
    case 'domainDefinition':
      return sup.domainDefinition(argKey(args, 0));
    case 'allDomainStats': {
      const o = argObj(args, 0);
      const groups = o['groups'] ?? [...STATS_GROUPS];
      if (!Array.isArray(groups) || groups.some((g) => !(STATS_GROUPS as readonly unknown[]).includes(g))) {
        throw new VirtError('VIRT_ERR_INVALID_ARG', `groups must be a list of ${STATS_GROUPS.join(', ')}`);
      }
      const inactive = optBool(o, 'inactive');
      const timeoutMs = optNum(o, 'timeoutMs', 1, 3_600_000);
      return sup.allDomainStats({ groups: groups as StatsGroup[], ...(inactive !== undefined ? { inactive } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) }, signal);
    }
    case 'define':
      return sup.define(args[0]);
    case 'undefine':
      return sup.undefine(argKey(args, 0));
    case 'start':
      return sup.start(argKey(args, 0));
    case 'shutdown': {
      const o = argObj(args, 1);
      const force = optBool(o, 'force');
      const graceSeconds = optNum(o, 'graceSeconds', 0, 86400);
      return sup.shutdown(argKey(args, 0), { ...(force !== undefined ? { force } : {}), ...(graceSeconds !== undefined ? { graceSeconds } : {}) });
    }
    case 'reboot':
      return sup.reboot(argKey(args, 0));
    case 'destroy':
      return sup.destroy(argKey(args, 0));
    case 'suspend':
      return sup.suspend(argKey(args, 0));
    case 'resume':
      return sup.resume(argKey(args, 0));
    case 'save': {
      const file = args[1];
      if (typeof file !== 'string') throw new VirtError('VIRT_ERR_INVALID_ARG', 'save needs a file path');
      return sup.save(argKey(args, 0), file);
    }
    case 'restore': {
      const file = args[0];
      if (typeof file !== 'string') throw new VirtError('VIRT_ERR_INVALID_ARG', 'restore needs a file path');
      const o = argObj(args, 1);
      for (const k of Object.keys(o)) if (k !== 'domain' && k !== 'define') throw new VirtError('VIRT_ERR_INVALID_ARG', `unknown restore option ${JSON.stringify(k)}`);
      const define = optBool(o, 'define');
      const domain = o['domain'] === undefined ? undefined : argKey([o['domain']], 0);
      return sup.restore(file, { ...(domain !== undefined ? { domain } : {}), ...(define !== undefined ? { define } : {}) });
    }
    case 'managedSaveRemove': {
      return sup.managedSaveRemove(argKey(args, 0));
    }
    default:
      throw new VirtError('VIRT_ERR_NO_SUPPORT', `unknown operation ${JSON.stringify(op)}`);
  }
}

export class QemudServer {
  readonly #o: ServerOptions;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #paths: string[] = [];

  constructor(opts: ServerOptions) {
    this.#o = opts;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async listen(rwPath: string, roPath: string): Promise<void> {
    await this.#listen(rwPath, false, 0o600);
    await this.#listen(roPath, true, this.#o.roSocketGroup ? 0o660 : 0o666);
    if (this.#o.roSocketGroup) chownSync(roPath, process.getuid?.() ?? 0, groupId(this.#o.roSocketGroup));
  }

  async #listen(path: string, readOnly: boolean, mode: number): Promise<void> {
    unlinkQuiet(path);
    const server = createServer((sock) => this.#onConnection(sock, readOnly));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, mode);
    this.#servers.push(server);
    this.#paths.push(path);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const p of this.#paths) unlinkQuiet(p);
  }

  #onConnection(sock: Socket, readOnly: boolean): void {
    const log = this.#o.logger;
    this.#sockets.add(sock);
    const abort = new AbortController();
    const decoder = new FrameDecoder(this.#o.maxFrameBytes);
    const send = (reply: Reply): void => {
      if (sock.destroyed) return;
      let frame = encodeFrame(reply);
      if (frame.length - 4 > this.#o.maxFrameBytes) {
        frame = encodeFrame({ v: PROTOCOL_VERSION, id: reply.id, error: { code: 'VIRT_ERR_RPC', message: `reply of ${frame.length} bytes exceeds the frame limit ${this.#o.maxFrameBytes}` } });
      }
      sock.write(frame);
    };
    sock.on('data', (chunk: Buffer) => {
      for (const m of decoder.push(chunk)) {
        if (m.kind === 'oversized') {
          log.warn('closing connection after an oversized frame', { length: m.length, limit: this.#o.maxFrameBytes, readOnly });
          sock.end(encodeFrame({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_RPC', message: `frame of ${m.length} bytes exceeds the limit of ${this.#o.maxFrameBytes} bytes; closing the connection` } }));
          sock.destroySoon();
          return;
        }
        if (m.kind === 'malformed') {
          send({ v: PROTOCOL_VERSION, id: null, error: { code: 'VIRT_ERR_RPC', message: `malformed frame: ${m.message}` } });
          continue;
        }
        let req;
        try {
          req = checkRequest(m.value);
        } catch (err) {
          const e = toVirtError(err, 'VIRT_ERR_RPC');
          const id = typeof m.value === 'object' && m.value !== null ? (m.value as Record<string, unknown>)['id'] : null;
          send({ v: PROTOCOL_VERSION, id: typeof id === 'number' || typeof id === 'string' ? id : null, error: { code: e.code, message: e.message } });
          continue;
        }
        const { id, op, args } = req;
        dispatch(this.#o.supervisor, op, args, readOnly, abort.signal).then(
          (result) => send({ v: PROTOCOL_VERSION, id, result: result ?? null }),
          (err: unknown) => {
            const e = toVirtError(err, 'VIRT_ERR_INTERNAL_ERROR');
            if (e.code === 'VIRT_ERR_INTERNAL_ERROR') log.error('request failed', { op, err: e });
            // Refused state-changing requests are the daemon's audit trail: what was asked, of which domain and file.
            else if ((WRITE_OPS as readonly string[]).includes(op)) log.warn('write request refused', { op, code: e.code, message: e.message, domain: e.domain, readOnly });
            else log.debug('request refused', { op, code: e.code, message: e.message });
            send({ v: PROTOCOL_VERSION, id, error: { code: e.code, message: e.message } });
          },
        );
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.#sockets.delete(sock);
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
