/**
 * A hostile peer on a unix socket: for each connection it optionally sends a
 * greeting, then answers the first bytes it receives with a scripted byte
 * sequence, written in the given chunks, and then either closes or goes silent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PeerScript {
  greeting?: Uint8Array;
  /** Sent after the first request arrives, split at these chunk sizes. */
  reply: Uint8Array;
  chunks: number[];
  close: boolean;
}

export class HostilePeer {
  readonly path: string;
  readonly #dir: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  script: PeerScript = { reply: new Uint8Array(0), chunks: [], close: true };

  private constructor(dir: string, server: Server) {
    this.#dir = dir;
    this.path = join(dir, 'peer.sock');
    this.#server = server;
  }

  static async start(): Promise<HostilePeer> {
    const dir = mkdtempSync(join(tmpdir(), 'virt-hostile-'));
    const server = createServer();
    const peer = new HostilePeer(dir, server);
    server.on('connection', (s) => peer.#serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(peer.path, resolve);
    });
    return peer;
  }

  #serve(s: Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
    s.on('error', () => undefined);
    const script = this.script;
    if (script.greeting !== undefined) s.write(script.greeting);
    s.once('data', () => {
      let off = 0;
      for (const n of script.chunks) {
        if (off >= script.reply.length) break;
        s.write(script.reply.subarray(off, off + n));
        off += n;
      }
      if (off < script.reply.length) s.write(script.reply.subarray(off));
      if (script.close) s.end();
    });
  }

  /** Open connections the peer still holds (a client that leaks shows here). */
  get connections(): number {
    return this.#sockets.size;
  }

  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.#server.close(() => r()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
