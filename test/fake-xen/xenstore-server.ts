/**
 * A XenStore daemon stand-in speaking the real wire protocol on a unix
 * socket, enough for Debian's xenstore-ls/-read/-write and our client:
 * READ, WRITE, MKDIR, RM, DIRECTORY, GET/SET_PERMS, WATCH/UNWATCH (+events),
 * TRANSACTION_START/END, GET_DOMAIN_PATH, IS_DOMAIN_INTRODUCED, RESET_WATCHES;
 * everything else gets ENOSYS. A payload above 4096 bytes kills the connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { encodeMessage, splitNul, XS, XS_PAYLOAD_MAX, XsDecoder, type XsMessage } from '../../src/drivers/xen/xenstore-wire.ts';
import { XsFailure, type XsTree, type XsWatch } from './xenstore-tree.ts';

const OK = Buffer.from('OK\0');

export interface XenStoreServer {
  readonly path: string;
  /** Requests served so far, by type number (for tests). */
  readonly counts: Map<number, number>;
  close(): Promise<void>;
}

export async function startXenStoreServer(tree: XsTree, socketPath: string): Promise<XenStoreServer> {
  const sockets = new Set<Socket>();
  const counts = new Map<number, number>();

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const decoder = new XsDecoder();
    const myWatches = new Set<XsWatch>();
    const send = (m: XsMessage): void => {
      if (!sock.destroyed) sock.write(encodeMessage(m));
    };
    const cleanup = (): void => {
      for (const w of myWatches) tree.watches.delete(w);
      myWatches.clear();
      sockets.delete(sock);
    };
    sock.on('close', cleanup);
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      let msgs: XsMessage[];
      try {
        msgs = decoder.push(chunk);
      } catch {
        // Oversized payload: xenstored drops such a client.
        sock.destroy();
        return;
      }
      for (const m of msgs) {
        counts.set(m.type, (counts.get(m.type) ?? 0) + 1);
        try {
          const payload = handle(m, myWatches, send);
          send({ type: m.type, reqId: m.reqId, txId: m.txId, payload });
        } catch (err) {
          const errno = err instanceof XsFailure ? err.errno : 'EIO';
          send({ type: XS.ERROR, reqId: m.reqId, txId: m.txId, payload: Buffer.from(errno + '\0') });
        }
      }
    });
  });

  const absolute = (p: string): string => (p.startsWith('/') || p.startsWith('@') ? p : `/local/domain/0/${p}`);

  function handle(m: XsMessage, myWatches: Set<XsWatch>, send: (m: XsMessage) => void): Buffer {
    const args = splitNul(m.payload);
    const arg0 = (): string => {
      const a = args[0];
      if (a === undefined || a === '') throw new XsFailure('EINVAL');
      return absolute(a);
    };
    const mutating = (fn: (v: ReturnType<XsTree['view']>) => void): Buffer => {
      if (m.txId === 0) tree.mutate(fn);
      else fn(tree.view(m.txId));
      return OK;
    };
    switch (m.type) {
      case XS.READ:
        return Buffer.from(tree.view(m.txId).read(arg0()));
      case XS.DIRECTORY: {
        const names = tree.view(m.txId).directory(arg0());
        const out = Buffer.from(names.map((n) => n + '\0').join(''));
        // As xenstored: a list that does not fit one payload needs DIRECTORY_PART.
        if (out.length > XS_PAYLOAD_MAX) throw new XsFailure('E2BIG');
        return out;
      }
      case XS.DIRECTORY_PART: {
        const offset = Number(args[1]);
        if (args[1] === undefined || !/^\d+$/.test(args[1])) throw new XsFailure('EINVAL');
        const all = Buffer.from(tree.view(m.txId).directory(arg0()).map((n) => n + '\0').join(''));
        if (offset > all.length) throw new XsFailure('EINVAL');
        const head = Buffer.from(`${tree.generation}\0`);
        // Whole names only, as many as fit; an empty name (extra NUL) marks the end.
        let end = offset;
        while (end < all.length) {
          const next = all.indexOf(0, end) + 1;
          if (head.length + (next - offset) + 1 > XS_PAYLOAD_MAX) break;
          end = next;
        }
        const last = end >= all.length;
        return Buffer.concat([head, all.subarray(offset, end), last ? Buffer.from('\0') : Buffer.alloc(0)]);
      }
      case XS.WRITE: {
        const nul = m.payload.indexOf(0);
        if (nul <= 0) throw new XsFailure('EINVAL');
        const path = absolute(m.payload.subarray(0, nul).toString('utf8'));
        const value = Buffer.from(m.payload.subarray(nul + 1));
        return mutating((v) => v.write(path, value));
      }
      case XS.MKDIR: {
        const path = arg0();
        return mutating((v) => v.mkdir(path));
      }
      case XS.RM: {
        const path = arg0();
        return mutating((v) => v.rm(path));
      }
      case XS.GET_PERMS:
        return Buffer.from(tree.view(m.txId).getPerms(arg0()).map((p) => p + '\0').join(''));
      case XS.SET_PERMS: {
        const path = arg0();
        const perms = args.slice(1);
        return mutating((v) => v.setPerms(path, perms));
      }
      case XS.WATCH: {
        const path = arg0();
        const token = args[1];
        if (token === undefined) throw new XsFailure('EINVAL');
        for (const w of myWatches) if (w.path === path && w.token === token) throw new XsFailure('EEXIST');
        const w: XsWatch = {
          path,
          token,
          fire: (p, t) => send({ type: XS.WATCH_EVENT, reqId: 0, txId: 0, payload: Buffer.from(`${p}\0${t}\0`) }),
        };
        myWatches.add(w);
        tree.watches.add(w);
        // The reply goes first; the initial event follows it.
        setImmediate(() => w.fire(path, token));
        return OK;
      }
      case XS.UNWATCH: {
        const path = arg0();
        for (const w of myWatches) {
          if (w.path === path && w.token === args[1]) {
            myWatches.delete(w);
            tree.watches.delete(w);
            return OK;
          }
        }
        throw new XsFailure('ENOENT');
      }
      case XS.RESET_WATCHES:
        for (const w of myWatches) tree.watches.delete(w);
        myWatches.clear();
        return OK;
      case XS.TRANSACTION_START:
        if (m.txId !== 0) throw new XsFailure('EBUSY');
        return Buffer.from(`${tree.startTransaction()}\0`);
      case XS.TRANSACTION_END: {
        const flag = args[0];
        if (flag !== 'T' && flag !== 'F') throw new XsFailure('EINVAL');
        tree.endTransaction(m.txId, flag === 'T');
        return OK;
      }
      case XS.GET_DOMAIN_PATH: {
        const id = args[0] ?? '';
        if (!/^\d+$/.test(id)) throw new XsFailure('EINVAL');
        return Buffer.from(`/local/domain/${id}\0`);
      }
      case XS.IS_DOMAIN_INTRODUCED: {
        const id = args[0] ?? '';
        if (!/^\d+$/.test(id)) throw new XsFailure('EINVAL');
        return Buffer.from(tree.live.find(`/local/domain/${id}`) !== undefined ? 'T\0' : 'F\0');
      }
      default:
        throw new XsFailure('ENOSYS');
    }
  }

  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    path: socketPath,
    counts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socketPath, { force: true });
    },
  };
}
