import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Server as TlsServer } from 'node:https';

/**
 * What protects the metrics listener: how its server is made (plain or TLS)
 * and whether a request may pass (basic auth). src/http/web-config.ts builds
 * one from a --web.config.file in the exporter-toolkit format.
 */
export interface WebGuard {
  createServer(handler: RequestListener): Server | TlsServer;
  /**
   * True when the request may proceed; false when it has already answered
   * (401, 403, 429). A promise when a password must be verified: bcrypt runs
   * off the event loop, so the answer comes later.
   */
  check(req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean>;
  /** Extra response headers (http_server_config.headers). */
  readonly headers: Readonly<Record<string, string>>;
  close(): void;
}

/** No --web.config.file: plain HTTP, no authentication. */
export const openGuard: WebGuard = {
  createServer: (handler) => createServer(handler),
  check: () => true,
  headers: {},
  close: () => undefined,
};
