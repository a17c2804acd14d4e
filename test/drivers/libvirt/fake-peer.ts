/**
 * A hostile libvirt peer for protocol tests only (the functional tests use a
 * real libvirtd): it answers the handshake like a daemon, then does whatever
 * a scenario tells it for every later call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LengthPrefixedDecoder } from '../../../src/rpc/transport.ts';
import { decodePacket, encodePacket, MessageStatus, MessageType, Proc, REMOTE_PROGRAM, type Header, type Packet } from '../../../src/drivers/libvirt/protocol.ts';
import type { XdrWriter } from '../../../src/drivers/libvirt/xdr.ts';

export type Scenario = (p: Packet, sock: Socket, reply: (payload?: (w: XdrWriter) => void, h?: Partial<Header>) => void) => void;

export interface FakePeer {
  socketPath: string;
  /** Resolves when the server has seen a client connection close. */
  closed: Promise<void>;
  received: Packet[];
  sockets: Socket[];
  stop(): Promise<void>;
}

export async function startFakePeer(scenario: Scenario, opts: { auth?: number[] } = {}): Promise<FakePeer> {
  const dir = mkdtempSync(join(tmpdir(), 'virt-lv-fake-'));
  const socketPath = join(dir, 'libvirt-sock');
  const received: Packet[] = [];
  const sockets: Socket[] = [];
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((r) => (markClosed = r));
  const server: Server = createServer((sock) => {
    sockets.push(sock);
    const dec = new LengthPrefixedDecoder({ maxFrameBytes: 1 << 24, minFrameBytes: 24, inclusive: true, peer: 'client' });
    sock.on('error', () => undefined);
    sock.on('close', () => markClosed());
    sock.on('data', (chunk: Buffer) => {
      for (const f of dec.push(chunk)) {
        const p = decodePacket(f);
        received.push(p);
        const reply = (payload?: (w: XdrWriter) => void, h: Partial<Header> = {}): void => {
          if (sock.destroyed) return;
          sock.write(encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc: p.header.proc, type: MessageType.REPLY, serial: p.header.serial, status: MessageStatus.OK, ...h }, payload));
        };
        if (p.header.prog !== REMOTE_PROGRAM) continue; // keepalive pongs
        switch (p.header.proc) {
          case Proc.AUTH_LIST:
            reply((w) => {
              const a = opts.auth ?? [0];
              w.uint(a.length);
              for (const t of a) w.int(t);
            });
            break;
          case Proc.CONNECT_SUPPORTS_FEATURE:
            reply((w) => w.int(1));
            break;
          case Proc.CONNECT_OPEN:
            reply();
            break;
          case Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY:
            reply((w) => w.int(1));
            break;
          default:
            scenario(p, sock, reply);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return {
    socketPath,
    closed,
    received,
    sockets,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
