import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { closeServer, isLoopback, listen as listenOn, parseListenAddress } from '../listen.ts';
import type { Registry } from 'prom-client';
import type { Logger } from '../../util/logger.ts';
import type { Connection } from '../../virt/connection.ts';
import { VirtError } from '../../virt/errors.ts';
import { ReloadingTls } from '../auth/tls-reload.ts';
import { ADMIN_DEFAULTS } from '../../config/schema/admin.ts';
import { createAdminHandler } from './api.ts';
import { AuditLog } from './audit.ts';
import { Authenticator } from './auth.ts';
import { loadAdminConfig } from './config.ts';
import { DomainGate, FailedAuthLimiter, PrincipalRateLimiter } from './limits.ts';
import type { Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { adminRequestsCounter } from './metrics.ts';
import { tracedConnection, tracedHandler } from '../../telemetry/tracing.ts';

export type AdminSettings = Readonly<Record<string, string | number | boolean | undefined>>;

export interface AdminServer {
  address: string;
  port: number;
  /** Whether the listener speaks TLS. */
  tls: boolean;
  close(): Promise<void>;
}

export interface StartAdminOptions {
  /** Read-write connection; the collectors keep their own read-only one. */
  connection: Connection;
  /** Flattened 'admin.*' settings. */
  settings: AdminSettings;
  logger: Logger;
  registry: Registry;
  /** Bound for state-changing driver calls before the client gets 504 (default 120 s). */
  operationTimeoutMs?: number;
}

function setting<K extends keyof typeof ADMIN_DEFAULTS>(settings: AdminSettings, key: K): (typeof ADMIN_DEFAULTS)[K] {
  const v = settings[key];
  const dflt = ADMIN_DEFAULTS[key];
  if (v === undefined) return dflt;
  if (typeof v !== typeof dflt) {
    throw new VirtError('VIRT_ERR_CONFIG', `setting ${key} must be a ${typeof dflt}, got ${JSON.stringify(v)}`);
  }
  if (typeof v === 'number' && (!Number.isSafeInteger(v) || v < 0)) {
    throw new VirtError('VIRT_ERR_CONFIG', `setting ${key} must be a non-negative integer, got ${v}`);
  }
  return v as (typeof ADMIN_DEFAULTS)[K];
}

export { isLoopback, parseListenAddress } from '../listen.ts';

/**
 * Starts the admin API listener. Refuses (VIRT_ERR_CONFIG) without a config
 * file, on a read-only connection, and without TLS unless the address is a
 * loopback one and admin.insecure-loopback is set.
 */
export async function startAdminServer(opts: StartAdminOptions): Promise<AdminServer> {
  const { connection, settings } = opts;
  const logger = opts.logger.child({ component: 'admin' });
  const listen = setting(settings, 'admin.listen-address');
  if (listen === '') throw new VirtError('VIRT_ERR_CONFIG', 'admin.listen-address is empty: the admin endpoint is off');
  const { host, port } = parseListenAddress(listen, 'admin.listen-address');
  if (connection.readOnly) throw new VirtError('VIRT_ERR_CONFIG', 'the admin endpoint needs a read-write connection');
  const configFile = setting(settings, 'admin.config.file');
  if (configFile === '') throw new VirtError('VIRT_ERR_CONFIG', 'admin.config.file is required when admin.listen-address is set (tokens, roles, audit log)');
  const config = await loadAdminConfig(configFile);

  const insecure = setting(settings, 'admin.insecure-loopback');
  if (config.tls === undefined) {
    if (!isLoopback(host)) {
      throw new VirtError('VIRT_ERR_CONFIG', `admin.listen-address ${listen} is not a loopback address, so TLS is required: set tls.cert_file and tls.key_file in ${configFile}`);
    }
    if (!insecure) {
      throw new VirtError('VIRT_ERR_CONFIG', `the admin endpoint needs TLS (tls in ${configFile}); on loopback ${listen} plain HTTP is allowed only with --admin.insecure-loopback`);
    }
  }

  const audit = await AuditLog.open(config.auditLog, logger);
  // Connections that have not yet carried an authenticated request: their own, smaller cap and a short deadline.
  const unauthenticated = new Map<Socket, NodeJS.Timeout>();
  const maxUnauthenticated = setting(settings, 'admin.max-unauthenticated-connections');
  const unauthenticatedMs = setting(settings, 'admin.unauthenticated-timeout-ms');
  let refusedSince = 0;
  let lastRefusalLog = 0;
  const rawSocket = (req: IncomingMessage): Socket => (req.socket as Socket & { _parent?: Socket | null })._parent ?? req.socket;
  const authenticated = (req: IncomingMessage): void => {
    const raw = rawSocket(req);
    const timer = unauthenticated.get(raw);
    if (timer === undefined) return;
    clearTimeout(timer);
    unauthenticated.delete(raw);
  };
  // Tracing hook: a span per request (child of its traceparent), the driver operation its child.
  const handler = tracedHandler('admin', createAdminHandler({
    connection: tracedConnection(connection),
    authenticator: new Authenticator(config.tokens, config.certificates),
    limiter: new PrincipalRateLimiter(config.rateLimit.intervalMs, config.rateLimit.burst),
    failedAuth: new FailedAuthLimiter(config.failedAuth.perAddress, config.failedAuth.global),
    onAuthenticated: authenticated,
    gate: new DomainGate(config.maxInFlightPerDomain),
    audit,
    counter: adminRequestsCounter(opts.registry),
    logger,
    maxBodyBytes: setting(settings, 'admin.max-body-bytes'),
    operationTimeoutMs: opts.operationTimeoutMs ?? 120_000,
    saveDirectory: config.saveDirectory,
  }));

  const serverOptions = {
    maxHeaderSize: setting(settings, 'admin.max-header-bytes'),
    requestTimeout: setting(settings, 'admin.request-timeout-ms'),
    headersTimeout: setting(settings, 'admin.headers-timeout-ms'),
    keepAliveTimeout: 5000,
    // Node checks the two timeouts above only this often (default 30 s); a slow client is cut off close to its deadline.
    connectionsCheckingInterval: 500,
  };
  let server: Server;
  try {
    if (config.tls !== undefined) {
      const tls = config.tls;
      const reloader = new ReloadingTls(tls.material, { minVersion: tls.minVersion }, logger);
      const https = createHttpsServer(
        { ...serverOptions, ...reloader.options(), requestCert: tls.clientAuth !== 'none', rejectUnauthorized: tls.clientAuth === 'required' },
        handler,
      );
      reloader.attach(https);
      server = https;
    } else {
      server = createHttpServer(serverOptions, handler);
    }
  } catch (err) {
    await audit.close();
    throw err;
  }
  server.maxConnections = setting(settings, 'admin.max-connections');
  server.on('connection', (sock: Socket) => {
    // Over the cap, the oldest unauthenticated connection goes (Map keeps insertion order): a new client
    // still gets in and has its moment to authenticate, while idle or slow ones cannot hold the slots.
    while (unauthenticated.size >= maxUnauthenticated) {
      const [oldest, t] = unauthenticated.entries().next().value as [Socket, NodeJS.Timeout];
      clearTimeout(t);
      unauthenticated.delete(oldest);
      oldest.destroy();
      refusedSince++;
    }
    if (refusedSince > 0 && Date.now() - lastRefusalLog > 10_000) {
      logger.warn('closed the oldest unauthenticated admin connections: too many at once', { limit: maxUnauthenticated, closed: refusedSince });
      lastRefusalLog = Date.now();
      refusedSince = 0;
    }
    const timer = setTimeout(() => {
      if (unauthenticated.get(sock) === timer) sock.destroy();
    }, unauthenticatedMs);
    timer.unref();
    unauthenticated.set(sock, timer);
    sock.once('close', () => {
      clearTimeout(timer);
      if (unauthenticated.get(sock) === timer) unauthenticated.delete(sock);
    });
  });
  server.on('clientError', (err, socket) => {
    // Malformed HTTP (bad request line, oversized headers): Node's own 400/431, then close.
    const code = (err as NodeJS.ErrnoException).code;
    // A response is already under way for this socket (e.g. a body broke mid-request): just cut it, as Node does.
    if ((socket as unknown as { _httpMessage?: unknown })._httpMessage != null) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (socket.writable) socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });

  try {
    await listenOn(server, { host, port }, 'admin.listen-address');
  } catch (err) {
    await audit.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  logger.info('admin endpoint listening', {
    address: addr.address,
    port: addr.port,
    tls: config.tls !== undefined,
    client_auth: config.tls?.clientAuth ?? 'none',
    tokens: config.tokens.length,
    certificates: config.certificates.length,
    audit_log: config.auditLog,
  });
  let closing: Promise<void> | undefined;
  return {
    address: addr.address,
    port: addr.port,
    tls: config.tls !== undefined,
    close() {
      closing ??= (async () => {
        // Bounded: in-flight requests get a moment, then their sockets go.
        await closeServer(server, 2000);
        await audit.close();
      })();
      return closing;
    },
  };
}
