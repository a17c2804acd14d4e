/**
 * A Xend stand-in: the HTTP/S-expression API under /xend (protocols.md §2)
 * on a unix socket and optionally TCP, over the fake host. Like Xend it
 * answers HTML to requests with a User-Agent and no SXP Accept, so a client
 * that sends browser-like headers gets something it cannot parse. Tests can
 * inject faults (status, body, truncation, silence) per request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { isList, lookup, nodeValue, parseSexpr, serializeSexpr, children, type Sexpr } from '../../src/drivers/xen/sexpr.ts';
import { FakeHostError, type DomainSpec, type FakeDomain, type FakeXenHost } from './host.ts';

export interface XendFault {
  status?: number;
  body?: string;
  contentType?: string;
  /** Announce this Content-Length but send only body and close. */
  declaredLength?: number;
  /** Never answer (the client's deadline must cut it off). */
  hang?: boolean;
  /** Answer normally, but only after this many ms (a slow Xend). */
  delayMs?: number;
}

export type FaultHook = (method: string, url: string) => XendFault | undefined;

export interface XendServer {
  readonly socketPath: string;
  tcpPort: number | undefined;
  fault: FaultHook | undefined;
  /** Requests seen: method, url and raw headers (for header checks). */
  readonly log: Array<{ method: string; url: string; headers: Record<string, string | string[] | undefined>; body: string }>;
  close(): Promise<void>;
}

function stateLetters(d: FakeDomain): string {
  const s = d.status;
  return [s === 'running' ? 'r' : '-', s === 'blocked' ? 'b' : '-', s === 'paused' ? 'p' : '-', s === 'shutdown' ? 's' : '-', s === 'crashed' ? 'c' : '-', s === 'dying' ? 'd' : '-'].join('');
}

export function domainSexpr(d: FakeDomain): Sexpr {
  const out: Sexpr[] = ['domain'];
  if (d.domid !== null) out.push(['domid', String(d.domid)]);
  out.push(['uuid', d.uuid], ['vcpus', String(d.vcpus)], ['cpu_weight', '256.0'], ['memory', String(d.memoryMiB)], ['maxmem', String(d.maxmemMiB)], ['name', d.name]);
  out.push(['on_poweroff', 'destroy'], ['on_reboot', 'restart'], ['on_crash', 'restart']);
  out.push(['image', d.osType === 'hvm' ? ['hvm', ['kernel', '/usr/lib/xen/boot/hvmloader'], ['device_model', '/usr/lib/xen/bin/qemu-dm']] : ['linux', ['kernel', '/boot/vmlinuz-xen'], ['args', "root=/dev/xvda1 console=hvc0 quiet 'x'"]]]);
  for (const k of d.disks) out.push(['device', ['vbd', ['dev', `${k.dev}:disk`], ['uname', k.uname], ['mode', k.mode]]]);
  for (const n of d.nics) out.push(['device', ['vif', ['bridge', n.bridge], ['mac', n.mac], ['script', 'vif-bridge']]]);
  if (d.domid !== null) {
    out.push(['state', stateLetters(d)], ['shutdown_reason', 'poweroff'], ['cpu_time', (d.cpuTimeNs / 1e9).toFixed(9)], ['online_vcpus', String(d.vcpus)]);
    out.push(['up_time', (Date.now() / 1000 - d.startTime).toFixed(2)], ['start_time', d.startTime.toFixed(2)], ['store_mfn', '196600'], ['console_mfn', '196599']);
  }
  out.push(['on_xend_start', d.managed ? 'start' : 'ignore'], ['reboots', String(d.reboots)]);
  return out;
}

function nodeSexpr(host: FakeXenHost): Sexpr {
  const h = host.host;
  const [major = '4', minor = '0', micro = '0'] = h.version.split('.');
  return ['node', ['host', 'fakexen'], ['release', '6.1.0-fake'], ['version', '#1 SMP'], ['machine', 'x86_64'], ['nr_cpus', String(h.cpus)], ['nr_nodes', String(h.nodes)],
    ['sockets_per_node', String(h.sockets / h.nodes)], ['cores_per_socket', String(h.cores)], ['threads_per_core', String(h.threads)], ['cpu_mhz', String(h.mhz)],
    ['hw_caps', 'bfebfbff:20100800'], ['total_memory', String((h.totalPages * 4096) / 1048576)], ['free_memory', String((h.freePages * 4096) / 1048576)],
    ['xen_major', major], ['xen_minor', minor], ['xen_extra', `.${micro}`], ['xen_caps', 'xen-3.0-x86_64 hvm-3.0-x86_64'], ['xen_scheduler', 'credit'],
    ['xend_config_format', '4']];
}

/** (vm (name ..)(uuid ..)(memory MiB)(maxmem)(vcpus)(image (linux|hvm ...))(device (vbd ...))(device (vif ...))) -> spec. */
export function specFromConfig(sx: Sexpr): DomainSpec {
  if (!isList(sx) || (sx[0] !== 'vm' && sx[0] !== 'domain')) throw new FakeHostError(500, 'config is not a (vm ...) expression');
  const name = nodeValue(sx, 'name');
  if (name === undefined || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) throw new FakeHostError(500, `Invalid domain name: ${String(name)}`);
  const int = (k: string): number | undefined => {
    const v = nodeValue(sx, k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new FakeHostError(500, `Invalid ${k}: ${v}`);
    return n;
  };
  const image = lookup(sx, 'image');
  const osType = isList(image) && isList(image[1]) && image[1][0] === 'hvm' ? 'hvm' : 'linux';
  const disks: NonNullable<DomainSpec['disks']> = [];
  const nics: NonNullable<DomainSpec['nics']> = [];
  for (const dev of children(sx, 'device')) {
    const inner = dev[1];
    if (!isList(inner)) continue;
    if (inner[0] === 'vbd' || inner[0] === 'tap') {
      disks.push({ dev: (nodeValue(inner, 'dev') ?? 'xvda').replace(/:.*$/, ''), uname: nodeValue(inner, 'uname') ?? 'file:/dev/null', mode: nodeValue(inner, 'mode') });
    } else if (inner[0] === 'vif') {
      nics.push({ mac: nodeValue(inner, 'mac'), bridge: nodeValue(inner, 'bridge') });
    }
  }
  return { name, uuid: nodeValue(sx, 'uuid'), memoryMiB: int('memory'), maxmemMiB: int('maxmem'), vcpus: int('vcpus'), osType, disks, nics };
}

export async function startXendServer(host: FakeXenHost, opts: { socketPath: string; tcp?: boolean }): Promise<XendServer> {
  const sockets = new Set<Socket>();
  const state: XendServer = {
    socketPath: opts.socketPath,
    tcpPort: undefined,
    fault: undefined,
    log: [],
    close: () => Promise.resolve(),
  };

  const send = (res: ServerResponse, status: number, body: string, type = 'application/sxp'): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  // State changes reach the state files before Xend answers, so the next hypercall read sees them.
  const reply = async (res: ServerResponse, status: number, body: string, type?: string): Promise<void> => {
    await host.flushed();
    send(res, status, body, type);
  };
  const sendErr = (res: ServerResponse, err: unknown): void => {
    if (err instanceof FakeHostError && err.status === 404) send(res, 404, err.message, 'text/plain');
    else send(res, 500, serializeSexpr(['xend.err', err instanceof Error ? err.message : String(err)]));
  };

  async function handle(req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const ua = req.headers['user-agent'];
    const accept = req.headers.accept;
    if (ua !== undefined && accept !== undefined && !accept.includes('application/sxp')) {
      send(res, 200, '<html><body><h1>Xend</h1></body></html>', 'text/html');
      return;
    }
    const parts = url.pathname.split('/').filter((p) => p !== '');
    if (parts[0] !== 'xend') {
      send(res, 404, `Not found: ${url.pathname}`, 'text/plain');
      return;
    }
    if (req.method === 'GET') {
      if (parts[1] === 'node' && parts.length === 2) return send(res, 200, serializeSexpr(nodeSexpr(host)));
      if (parts[1] === 'domain' && parts.length === 2) {
        // As real Xend (SrvDomainDir.ls_domain): with detail it answers the running
        // domains and ignores state=; only the name list honours state=halted.
        if (url.searchParams.has('detail')) return send(res, 200, serializeSexpr(host.domains.filter((d) => d.domid !== null).map(domainSexpr)));
        const halted = url.searchParams.get('state') === 'halted';
        const doms = host.domains.filter((d) => (halted ? d.domid === null : d.domid !== null));
        return send(res, 200, serializeSexpr(doms.map((d) => d.name)));
      }
      if (parts[1] === 'domain' && parts.length === 3) {
        const d = host.get(decodeURIComponent(parts[2] as string));
        return send(res, 200, serializeSexpr(domainSexpr(d)));
      }
      return send(res, 404, `Not found: ${url.pathname}`, 'text/plain');
    }
    if (req.method !== 'POST') return send(res, 405, 'Method not allowed', 'text/plain');
    const form = new URLSearchParams(body);
    const ops = form.getAll('op');
    if (ops.length !== 1) return await reply(res, 406, 'Invalid request', 'text/plain');
    const op = ops[0] as string;
    const arg = (k: string): string => {
      const v = form.get(k);
      if (v === null) throw new FakeHostError(500, `Missing argument: ${k}`);
      return v;
    };
    const int = (k: string): number => {
      const n = Number(arg(k));
      if (!Number.isInteger(n)) throw new FakeHostError(500, `Invalid ${k}: ${arg(k)}`);
      return n;
    };
    if (parts[1] === 'domain' && parts.length === 2) {
      switch (op) {
        case 'create': {
          const d = host.create(specFromConfig(parseSexpr(arg('config'))));
          return await reply(res, 201, serializeSexpr(domainSexpr(d)));
        }
        case 'new': {
          const d = host.define(specFromConfig(parseSexpr(arg('config'))));
          return await reply(res, 200, serializeSexpr(domainSexpr(d)));
        }
        case 'restore': {
          const d = await host.restore(arg('file'), (f) => readFile(f, 'utf8'));
          return await reply(res, 201, serializeSexpr(domainSexpr(d)));
        }
        default:
          return await reply(res, 501, `Operation not implemented: ${op}`, 'text/plain');
      }
    }
    if (parts[1] === 'domain' && parts.length === 3) {
      const key = decodeURIComponent(parts[2] as string);
      host.get(key);
      switch (op) {
        case 'pause': host.pause(key); break;
        case 'unpause': host.unpause(key); break;
        case 'wait_for_devices': host.get(key); return await reply(res, 202, '');
        case 'shutdown': host.shutdown(key, arg('reason')); return await reply(res, 202, '');
        case 'destroy': host.destroy(key); return await reply(res, 202, '');
        case 'save': await host.save(key, arg('file')); return await reply(res, 202, '');
        case 'start': host.start(key); return await reply(res, 202, '');
        case 'delete': host.undefine(key); return await reply(res, 202, '');
        case 'mem_target_set': host.setMemory(key, int('target')); break;
        case 'maxmem_set': host.setMaxMemory(key, int('memory')); break;
        case 'set_vcpus': host.setVcpus(key, int('vcpus')); break;
        default:
          return await reply(res, 501, `Operation not implemented: ${op}`, 'text/plain');
      }
      return await reply(res, 200, '');
    }
    return await reply(res, 404, `Not found: ${url.pathname}`, 'text/plain');
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1024 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      state.log.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, body });
      const f = state.fault?.(req.method ?? '', req.url ?? '');
      if (f?.delayMs !== undefined) {
        const t = setTimeout(() => void handle(req, res, body).catch((err: unknown) => sendErr(res, err)), f.delayMs);
        res.once('close', () => clearTimeout(t));
        return;
      }
      if (f !== undefined) {
        if (f.hang === true) return;
        const text = f.body ?? '';
        res.writeHead(f.status ?? 200, { 'content-type': f.contentType ?? 'application/sxp', 'content-length': f.declaredLength ?? Buffer.byteLength(text) });
        if (f.declaredLength !== undefined) {
          res.write(text);
          res.socket?.destroy();
          return;
        }
        res.end(text);
        return;
      }
      handle(req, res, body).catch((err: unknown) => sendErr(res, err));
    });
  };

  const servers: Server[] = [];
  const listen = (srv: Server, where: string | number): Promise<void> =>
    new Promise((resolve, reject) => {
      srv.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      srv.once('error', reject);
      if (typeof where === 'string') srv.listen(where, () => resolve());
      else srv.listen(where, '127.0.0.1', () => resolve());
    });
  await rm(opts.socketPath, { force: true });
  const unix = createServer(onRequest);
  await listen(unix, opts.socketPath);
  servers.push(unix);
  if (opts.tcp === true) {
    const tcp = createServer(onRequest);
    await listen(tcp, 0);
    servers.push(tcp);
    const addr = tcp.address();
    state.tcpPort = typeof addr === 'object' && addr !== null ? addr.port : undefined;
  }
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    await rm(opts.socketPath, { force: true });
  };
  return state;
}
