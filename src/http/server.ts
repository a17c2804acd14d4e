import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished, pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gzip as gzipCallback } from 'node:zlib';
import type { Registry } from 'prom-client';
import type { CollectorName } from '../collectors/catalogue.ts';
import type { CompatSet } from '../collectors/compat.ts';
import type { Collection } from '../collectors/collection.ts';
import { tracedHandler } from '../telemetry/tracing.ts';
import type { Logger } from '../util/logger.ts';
import { CONTENT_TYPES, Exposition, negotiateFormat, type Rendered } from './exposition.ts';
import { COLLECTORS } from '../collectors/catalogue.ts';
import { scrapeWindowOf } from '../collectors/process-metrics.ts';
import { closeServer, listen, listenFd, parseListenAddresses, systemdListenFds } from './listen.ts';
import { landingPage } from './landing.ts';
import type { WebGuard } from './web-guard.ts';
import { VirtError } from '../virt/errors.ts';

const gzipAsync = promisify(gzipCallback);
const ONE_SHOT_GZIP_BYTES = 2 * 1024 * 1024;
/** Fastest zlib level: scrape bodies are repetitive text that level 1 already shrinks about 13x. */
export const GZIP_LEVEL = 1;

/** A scraper that hangs up mid-body is not an error of ours. */
function clientGone(res: ServerResponse): (err: unknown) => void {
  return (err) => {
    if (!res.destroyed && !res.writableEnded) throw err;
  };
}

export interface MetricsServerOptions {
  /** One [HOST]:PORT, or several separated by commas: served on each. */
  listenAddress: string;
  /** Serve on the sockets systemd passed (LISTEN_FDS) instead of listenAddress. */
  systemdSocket?: boolean;
  telemetryPath: string;
  collection: Collection;
  collectors: ReadonlySet<CollectorName>;
  registry: Registry;
  version: string;
  guard: WebGuard;
  logger: Logger;
  /** Concurrent scrapes allowed before 503 (0 = unlimited). */
  maxRequests: number;
  /** Ready once the driver connection is open. */
  isReady: () => boolean;
  connectionUri: string;
  /** Alias set served besides the native names ('' = none). */
  compat?: CompatSet;
  /** Failed OTLP exports by "signal\0reason" (virt_otel_export_failures_total), when the push is on. */
  otelExportFailures?: ReadonlyMap<string, number>;
}

export interface RunningServer {
  /** The first listener's address and port. */
  address: string;
  port: number;
  /** Every listener, in the order given. */
  listeners: Array<{ address: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes. */
  close(graceMs?: number): Promise<void>;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<RunningServer> {
  const log = opts.logger.child({ component: 'http' });
  const exposition = new Exposition(opts.compat ?? '');
  // collect[] scrapes: one renderer per distinct selection (at most 2^collectors), so cached bodies never mix.
  const filtered = new Map<string, Exposition>();
  let inFlight = 0;
  // Event-loop delay is sampled only while a scrape is in flight: an idle exporter runs no timer.
  const loopWindow = scrapeWindowOf(opts.registry);

  /** The collectors a scrape asks for with collect[]=NAME (node_exporter's parameter); null: all enabled ones. */
  const selection = (url: string): ReadonlySet<CollectorName> | null | Error => {
    const q = url.indexOf('?');
    if (q === -1) return null;
    const names = new URLSearchParams(url.slice(q + 1)).getAll('collect[]');
    if (names.length === 0) return null;
    const out = new Set<CollectorName>();
    for (const n of names) {
      if (!(COLLECTORS as readonly string[]).includes(n)) return new VirtError('VIRT_ERR_INVALID_ARG', `unknown collector ${JSON.stringify(n)} in collect[]; known: ${COLLECTORS.join(', ')}`);
      if (!opts.collectors.has(n as CollectorName)) return new VirtError('VIRT_ERR_INVALID_ARG', `collector ${JSON.stringify(n)} in collect[] is disabled (--collector.${n})`);
      out.add(n as CollectorName);
    }
    return out;
  };

  const send = (res: ServerResponse, status: number, type: string, body: string, req: IncomingMessage): void => {
    for (const [k, v] of Object.entries(opts.guard.headers)) res.setHeader(k, v);
    res.setHeader('Content-Type', type);
    const payload = Buffer.from(body);
    res.setHeader('Content-Length', payload.length);
    res.writeHead(status);
    res.end(req.method === 'HEAD' ? undefined : payload);
  };

  /** Streams a lent body (gzip on the libuv pool when accepted); resolves when the response is done. */
  /**
   * `handedOff` runs once the whole body is queued on the response: from then on
   * the scrape costs only the kernel's flush, and a scraper's next request on the
   * same keep-alive connection must not count twice against --web.max-requests
   * (as promhttp's in-flight gauge, which drops when the handler returns).
   */
  const sendBody = async (res: ServerResponse, req: IncomingMessage, type: string, body: Rendered, handedOff: () => void): Promise<void> => {
    for (const [k, v] of Object.entries(opts.guard.headers)) res.setHeader(k, v);
    res.setHeader('Content-Type', type);
    const gzip = body.bytes > 1024 && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (req.method === 'HEAD') {
      res.writeHead(200);
      res.end();
      handedOff();
      return;
    }
    if (gzip && body.bytes <= ONE_SHOT_GZIP_BYTES) {
      // Small bodies: one copy and one compression job beat a stream's per-chunk jobs.
      const payload = await gzipAsync(Buffer.concat(body.chunks), { level: GZIP_LEVEL });
      res.setHeader('Content-Encoding', 'gzip');
      res.setHeader('Content-Length', payload.length);
      res.writeHead(200);
      res.end(payload);
      handedOff();
      await finished(res).catch(clientGone(res));
      return;
    }
    if (gzip) {
      res.setHeader('Content-Encoding', 'gzip');
      res.writeHead(200);
      const gz = createGzip({ level: GZIP_LEVEL });
      const done = pipeline(gz, res);
      for (const c of body.chunks) gz.write(c);
      gz.end();
      handedOff();
      await done.catch(clientGone(res));
      return;
    }
    res.setHeader('Content-Length', body.bytes);
    res.writeHead(200);
    res.cork();
    for (const c of body.chunks) res.write(c);
    res.end();
    handedOff();
    await finished(res).catch(clientGone(res));
  };

  const scrape = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (opts.maxRequests > 0 && inFlight >= opts.maxRequests) {
      send(res, 503, 'text/plain; charset=utf-8', 'too many concurrent scrapes\n', req);
      return;
    }
    const selected = selection(req.url ?? '/');
    if (selected instanceof Error) {
      send(res, 400, 'text/plain; charset=utf-8', `${selected.message}\n`, req);
      return;
    }
    let renderer = exposition;
    if (selected !== null && selected.size !== opts.collectors.size) {
      const key = COLLECTORS.filter((c) => selected.has(c)).join(',');
      renderer = filtered.get(key) ?? new Exposition(opts.compat ?? '');
      filtered.set(key, renderer);
    }
    inFlight++;
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      inFlight--;
    };
    const started = performance.now();
    loopWindow.begin();
    try {
      const format = negotiateFormat(req.headers.accept);
      const snapshot = await opts.collection.collect();
      const body = await renderer.render(snapshot, selected ?? opts.collectors, { version: opts.version, otelExportFailures: opts.otelExportFailures }, opts.registry, format);
      try {
        await sendBody(res, req, CONTENT_TYPES[format], body, release);
      } finally {
        body.release();
      }
      log.debug('scrape', { remote: req.socket.remoteAddress, format, collectors: selected === null ? 'all' : [...selected].join(','), bytes: body.bytes, up: snapshot.up, seconds: Number(((performance.now() - started) / 1000).toFixed(4)) });
    } finally {
      loopWindow.end();
      release();
    }
  };

  // A span per scrape (child of the scraper's traceparent); the collection it reads is its child.
  const tracedScrape = tracedHandler(opts.telemetryPath, (req, res) => {
    scrape(req, res).catch((err: unknown) => {
      log.error('scrape failed', { err });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error while rendering metrics\n', req);
      else res.destroy();
    });
  });

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', req);
      return;
    }
    const allowed = opts.guard.check(req, res);
    if (allowed === true) route(req, res, path);
    else if (allowed !== false) {
      allowed.then(
        (ok) => {
          if (ok) route(req, res, path);
        },
        (err: unknown) => {
          log.error('request check failed', { err });
          if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', req);
        },
      );
    }
  };

  const route = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (path === opts.telemetryPath) {
      tracedScrape(req, res);
      return;
    }
    switch (path) {
      case '/':
        send(res, 200, 'text/html; charset=utf-8', landingPage(opts.telemetryPath, opts.version, opts.connectionUri), req);
        return;
      case '/-/healthy':
        send(res, 200, 'text/plain; charset=utf-8', 'OK\n', req);
        return;
      case '/-/ready':
        if (opts.isReady()) send(res, 200, 'text/plain; charset=utf-8', 'OK\n', req);
        else send(res, 503, 'text/plain; charset=utf-8', 'not ready: driver connection not open\n', req);
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n', req);
    }
  };

  const make = (): ReturnType<WebGuard['createServer']> => {
    const server = opts.guard.createServer(handler);
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    server.maxHeadersCount = 100;
    return server;
  };
  // Every address is checked before any is bound; a failure to bind one closes those already bound.
  const targets = opts.systemdSocket === true ? systemdListenFds().map((fd) => ({ fd })) : parseListenAddresses(opts.listenAddress);
  const servers: Array<ReturnType<WebGuard['createServer']>> = [];
  const listeners: Array<{ address: string; port: number }> = [];
  try {
    for (const t of targets) {
      const server = make();
      servers.push(server);
      listeners.push('fd' in t ? await listenFd(server, t.fd) : await listen(server, t));
    }
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s, 0)));
    throw err;
  }
  for (const l of listeners) log.info('listening', { address: l.address, path: opts.telemetryPath, ...(opts.systemdSocket === true ? { systemdSocket: true } : {}) });
  const first = listeners[0] ?? { address: '', port: 0 };

  return {
    address: first.address,
    port: first.port,
    listeners,
    close: async (graceMs = 10_000) => {
      await Promise.all(servers.map((s) => closeServer(s, graceMs)));
    },
  };
}
