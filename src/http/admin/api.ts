import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import type { DomainRef } from '../../drivers/types.ts';
import type { Logger } from '../../util/logger.ts';
import type { Connection } from '../../virt/connection.ts';
import { isVirtError, VirtError } from '../../virt/errors.ts';
import type { AuditEntry, AuditLog } from './audit.ts';
import type { AuthResult, Authenticator, Principal } from './auth.ts';
import type { DomainGate, FailedAuthLimiter, PrincipalRateLimiter } from './limits.ts';
import { outcomeFor } from './metrics.ts';
import { Problem, quote, sendJson, sendProblem } from './problem.ts';
import { CAPABILITY_ROLE, DOMAIN_ACTIONS, isStateChanging, REQUIRED_ROLE, roleAllows, roleHas, type Action, type DomainAction } from './roles.ts';
import { actionBody, confinedFile, domainKey, jsonObject, readBody } from './validate.ts';

export const API_PREFIX = '/api/v1/domains';

export interface AdminApiDeps {
  connection: Connection;
  authenticator: Authenticator;
  limiter: PrincipalRateLimiter;
  /** Failed authentications: per source address (IPv6: per /64) and a global budget. */
  failedAuth: FailedAuthLimiter;
  /** Called once a request on a connection has authenticated (the listener's unauthenticated cap). */
  onAuthenticated?: (req: IncomingMessage) => void;
  gate: DomainGate;
  audit: AuditLog;
  counter: Counter<'action' | 'outcome'>;
  logger: Logger;
  maxBodyBytes: number;
  operationTimeoutMs: number;
  /** Real path of the save directory; undefined disables save and restore. */
  saveDirectory: string | undefined;
}

interface RouteMatch {
  /** Route template for the audit log (never the raw path). */
  route: string;
  action: Action | null;
  segment?: string;
  /** Why the request matched no route (404/405/400), raised after authentication. */
  problem?: Problem;
}

/** Maps method and URL to an action without side effects; problems wait until the caller is authenticated. */
export function matchRoute(method: string, url: string): RouteMatch {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (q >= 0 && url.length > q + 1) {
    return { route: 'unknown', action: null, problem: new Problem(400, 'VIRT_ERR_INVALID_ARG', 'query parameters are not accepted') };
  }
  const notFound = (route: string): RouteMatch => ({ route, action: null, problem: new Problem(404, 'VIRT_ERR_INVALID_ARG', `no such route: ${method} ${quote(path, 80)}`) });
  const wrongMethod = (route: string, allow: string[], action: Action | null, segment?: string): RouteMatch => ({
    route,
    action,
    ...(segment === undefined ? {} : { segment }),
    problem: new Problem(405, 'VIRT_ERR_INVALID_ARG', `method ${quote(method, 16)} is not allowed on ${route}; allowed: ${allow.join(', ')}`, { Allow: allow.join(', ') }),
  });
  if (path !== API_PREFIX && !path.startsWith(API_PREFIX + '/')) return notFound('unknown');
  const rest = path.slice(API_PREFIX.length);
  const parts = rest === '' ? [] : rest.slice(1).split('/');
  if (parts.length === 0) {
    if (method === 'GET') return { route: API_PREFIX, action: 'list' };
    if (method === 'POST') return { route: API_PREFIX, action: 'define' };
    return wrongMethod(API_PREFIX, ['GET', 'POST'], null);
  }
  const [segment = '', actionText] = parts;
  if (parts.length === 1) {
    const route = `${API_PREFIX}/{id}`;
    if (method === 'GET') return { route, action: 'get', segment };
    if (method === 'DELETE') return { route, action: 'undefine', segment };
    return wrongMethod(route, ['GET', 'DELETE'], null, segment);
  }
  if (parts.length === 2 && actionText !== undefined) {
    const action = (DOMAIN_ACTIONS as readonly string[]).includes(actionText) ? (actionText as DomainAction) : null;
    const route = action === null ? `${API_PREFIX}/{id}/{action}` : `${API_PREFIX}/{id}/${action}`;
    if (action === null) {
      return { route, action: null, problem: new Problem(404, 'VIRT_ERR_INVALID_ARG', `unknown action ${quote(actionText)}; actions: ${DOMAIN_ACTIONS.join(', ')}`) };
    }
    if (method !== 'POST') return wrongMethod(route, ['POST'], action, segment);
    return { route, action, segment };
  }
  return notFound('unknown');
}

const AUTH_DETAIL: Record<Exclude<AuthResult, { ok: true }>['reason'], string> = {
  missing: 'credentials required: a bearer token or a client certificate',
  malformed: 'the Authorization header is not a well-formed bearer token',
  'unknown-token': 'the bearer token is not valid',
  'untrusted-certificate': 'the client certificate is not signed by the configured client CA',
  'unmapped-certificate': 'the client certificate is trusted but no role is mapped to its subject alternative names',
};

function toProblem(err: unknown, logger: Logger): Problem {
  if (err instanceof Problem) return err;
  if (isVirtError(err)) return new Problem(err.httpStatus, err.code, err.message);
  logger.error('admin request failed unexpectedly', { err });
  return new Problem(500, 'VIRT_ERR_INTERNAL_ERROR', 'internal error; see the exporter log');
}

function withDeadline<T>(op: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${what} did not finish within ${ms} ms; it may still complete`)), ms);
  });
  return Promise.race([op, deadline]).finally(() => clearTimeout(timer));
}

interface Outcome {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** What the audit line says a request acted on, filled in as the request goes. */
interface AuditTarget {
  /** The domain named by the request (path segment or definition name), validated, even when refused. */
  target: string | null;
  /** Name and UUID of the domain actually acted on. */
  domain: string | null;
  uuid: string | null;
  /** Save or restore file, relative to the save directory. */
  file: string | null;
  /** Writes the intent line of a state-changing request (fsynced); rejects when the audit log cannot take it. */
  intend: () => Promise<void>;
}

/** The admin request pipeline: route, authenticate, rate-limit, authorize, validate, gate, execute, audit, answer. */
export function createAdminHandler(deps: AdminApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { connection, logger } = deps;

  async function lookup(key: string): Promise<DomainRef> {
    return connection.lookupDomain(key);
  }

  /**
   * Runs a state-changing operation holding the domain's gate until the driver
   * is done. Fails closed: without its intent line in the audit log the driver
   * is not called.
   */
  async function gated<T>(gateKey: string, what: string, audit: AuditTarget, run: () => Promise<T>): Promise<T> {
    if (!deps.gate.enter(gateKey)) {
      throw new Problem(409, 'VIRT_ERR_OPERATION_IN_PROGRESS', `another state-changing operation on ${what} is under way; retry when it has finished`);
    }
    try {
      await audit.intend();
    } catch (err) {
      deps.gate.leave(gateKey);
      throw new Problem(503, 'VIRT_ERR_AUDIT_FAILED', `the audit log ${deps.audit.file} cannot be written (${(err as Error).message}); nothing was changed`);
    }
    const op = run();
    op.finally(() => deps.gate.leave(gateKey)).catch(() => undefined);
    return withDeadline(op, deps.operationTimeoutMs, what);
  }

  async function stateOf(key: string): Promise<string | undefined> {
    try {
      return (await connection.domainInfo(key)).state;
    } catch {
      return undefined;
    }
  }

  async function execute(req: IncomingMessage, action: Action, segment: string | undefined, principal: Principal, audit: AuditTarget): Promise<Outcome> {
    const actedOn = (ref: DomainRef): void => {
      audit.domain = ref.name;
      audit.uuid = ref.uuid;
    };
    if (action === 'list') {
      const refs = await connection.listDomains();
      const domains = await Promise.all(refs.map(async (r) => ({ name: r.name, uuid: r.uuid, id: r.id, state: await stateOf(r.uuid) })));
      return { status: 200, body: { domains } };
    }
    if (action === 'define') {
      const definition = jsonObject(req, await readBody(req, deps.maxBodyBytes), false);
      if (typeof definition.name === 'string') audit.target = definition.name.slice(0, 64);
      const gateKey = `define:${typeof definition.name === 'string' ? definition.name : ''}`;
      const ref = await gated(gateKey, 'the definition', audit, () => connection.define(definition));
      actedOn(ref);
      return { status: 201, body: { action, domain: ref }, headers: { Location: `${API_PREFIX}/${ref.uuid}` } };
    }
    const key = domainKey(segment ?? '');
    if (action === 'get') {
      const info = await connection.domainInfo(key);
      const definition = connection.supports('domainDefinition') ? await connection.domainDefinition(key) : undefined;
      return { status: 200, body: definition === undefined ? { domain: info } : { domain: info, definition } };
    }
    if (action === 'undefine') {
      const body = await readBody(req, deps.maxBodyBytes);
      if (body.length > 0) throw new Problem(400, 'VIRT_ERR_INVALID_ARG', 'DELETE takes no body');
      const ref = await lookup(key);
      actedOn(ref);
      await gated(ref.uuid, `domain ${ref.name}`, audit, () => connection.undefine(ref.uuid));
      return { status: 200, body: { action, domain: ref } };
    }
    const params = actionBody(action, jsonObject(req, await readBody(req, deps.maxBodyBytes), true));
    if (params.file !== undefined) audit.file = params.file.slice(0, 512);
    if (action === 'shutdown' && params.force === true && !roleHas(principal.role, 'shutdown.force')) {
      throw new Problem(403, 'VIRT_ERR_OPERATION_DENIED', `role ${principal.role} may not shut down with force (it destroys the domain); it needs ${CAPABILITY_ROLE['shutdown.force']}`);
    }
    let file: string | undefined;
    if (action === 'save' || action === 'restore') {
      if (deps.saveDirectory === undefined) {
        throw new Problem(403, 'VIRT_ERR_OPERATION_DENIED', `${action} is disabled: the admin config sets no save_directory`);
      }
      file = await confinedFile(deps.saveDirectory, params.file ?? '', action === 'save' ? 'create' : 'existing');
    }
    if (action === 'restore') {
      // Only the domain named in the path, defined now, comes back with its current definition; the
      // image must be of it. A domain that is no longer defined is re-created from the image by admins only.
      let ref: DomainRef | undefined;
      try {
        ref = await lookup(key);
      } catch (err) {
        if (!isVirtError(err, 'VIRT_ERR_NO_DOMAIN')) throw err;
      }
      if (ref === undefined && !roleHas(principal.role, 'restore.define')) {
        throw new Problem(403, 'VIRT_ERR_OPERATION_DENIED', `domain ${quote(key)} is not defined; re-creating a domain from a save image needs role ${CAPABILITY_ROLE['restore.define']}`);
      }
      if (ref !== undefined) actedOn(ref);
      const opts = ref === undefined ? { domain: key, define: true } : { domain: ref.uuid };
      const restored = await gated(ref?.uuid ?? key, `domain ${ref?.name ?? key}`, audit, () => connection.restore(file as string, opts));
      actedOn(restored);
      return { status: 200, body: { action, domain: restored, state: await stateOf(restored.uuid) } };
    }
    const ref = await lookup(key);
    actedOn(ref);
    const target = ref.uuid;
    await gated(target, `domain ${ref.name}`, audit, () => {
      switch (action) {
        case 'start': return connection.start(target);
        case 'shutdown': return connection.shutdown(target, params.force === undefined ? {} : { force: params.force });
        case 'reboot': return connection.reboot(target);
        case 'destroy': return connection.destroy(target);
        case 'suspend': return connection.suspend(target);
        case 'resume': return connection.resume(target);
        case 'save': return connection.save(target, file as string);
      }
    });
    return { status: 200, body: { action, domain: ref, state: await stateOf(target) } };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    const base: Record<string, string> = { 'X-Request-Id': requestId, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
    const peer = `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`;
    const method = req.method ?? 'UNKNOWN';
    const match = matchRoute(method, req.url ?? '/');
    let principal: Principal | null = null;
    let authReason = 'none';
    const entry = (phase: 'intent' | 'done', status: number | null, code: string | null): AuditEntry => ({
      time: new Date().toISOString(),
      request_id: requestId,
      peer,
      principal: principal?.name ?? null,
      role: principal?.role ?? null,
      auth: authReason,
      method: method.slice(0, 16),
      route: match.route,
      action: match.action ?? 'unknown',
      target: audit.target,
      domain: audit.domain,
      uuid: audit.uuid,
      file: audit.file,
      phase,
      outcome: status === null ? 'pending' : outcomeFor(status),
      status,
      code,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
    });
    const audit: AuditTarget = { target: null, domain: null, uuid: null, file: null, intend: () => deps.audit.write(entry('intent', null, null), true) };
    if (match.segment !== undefined) {
      try {
        audit.target = domainKey(match.segment);
      } catch {
        audit.target = null;
      }
    }
    let outcome: Outcome | undefined;
    let problem: Problem | undefined;
    try {
      const auth = deps.authenticator.authenticate(req);
      if (!auth.ok) {
        authReason = auth.reason;
        // Failed attempts share one bucket per source (IPv6: per /64) and one global budget, which slows token guessing.
        const wait = deps.failedAuth.take(req.socket.remoteAddress);
        if (wait > 0) throw new Problem(429, 'VIRT_ERR_RATE_LIMITED', 'too many failed attempts; retry later', { 'Retry-After': String(Math.ceil(wait / 1000)) });
        const invalidToken = auth.reason === 'malformed' || auth.reason === 'unknown-token';
        throw new Problem(401, 'VIRT_ERR_AUTH_FAILED', AUTH_DETAIL[auth.reason], {
          'WWW-Authenticate': `Bearer realm="virt-exporter-admin"${invalidToken ? ', error="invalid_token"' : ''}`,
        });
      }
      principal = auth.principal;
      authReason = principal.kind;
      deps.onAuthenticated?.(req);
      const wait = deps.limiter.take(`principal:${principal.name}`);
      if (wait > 0) throw new Problem(429, 'VIRT_ERR_RATE_LIMITED', `rate limit for ${principal.name} exceeded; retry later`, { 'Retry-After': String(Math.ceil(wait / 1000)) });
      if (match.problem !== undefined) throw match.problem;
      const action = match.action as Action;
      if (!roleAllows(principal.role, action)) {
        throw new Problem(403, 'VIRT_ERR_OPERATION_DENIED', `role ${principal.role} may not ${action}; it needs ${REQUIRED_ROLE[action]}`);
      }
      outcome = await execute(req, action, match.segment, principal, audit);
    } catch (err) {
      problem = toProblem(err, logger);
    }

    const status = problem?.status ?? outcome?.status ?? 500;
    const action = match.action ?? 'unknown';
    deps.counter.inc({ action, outcome: outcomeFor(status) });
    try {
      await deps.audit.write(
        entry('done', status, problem?.code ?? null),
        match.action !== null && isStateChanging(match.action),
      );
    } catch {
      // Already logged by the audit log; the response still tells the truth about the operation.
    }
    if (res.headersSent || res.destroyed) return;
    // A refused request's unread body is not drained: the connection closes instead.
    if (!req.complete) base.Connection = 'close';
    if (problem !== undefined) sendProblem(res, problem, requestId, base);
    else if (outcome !== undefined) sendJson(res, outcome.status, outcome.body ?? {}, { ...base, ...outcome.headers });
    if (!req.complete) res.once('finish', () => req.destroy());
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error('admin handler crashed', { err });
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'application/problem+json' });
        res.end(JSON.stringify({ code: 'VIRT_ERR_INTERNAL_ERROR', status: 500 }));
      } else {
        res.destroy();
      }
    });
  };
}
