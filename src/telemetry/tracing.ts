import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

/**
 * Spans of virt-exporter, through the OpenTelemetry API only: without a
 * started SDK (no endpoint configured) every call here is the API's no-op,
 * so the code paths cost next to nothing when traces are off.
 */
export const TRACER_NAME = 'virt-exporter';

function tracer() {
  return trace.getTracer(TRACER_NAME);
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'VIRT_ERR_INTERNAL_ERROR';
}

/** Marks a span failed with the stable error code (error.type) of `err`. */
export function recordFailure(span: Span, err: unknown): void {
  span.setAttribute('error.type', errorCode(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** Runs `fn` in a child span of the active one; the span ends (failed, with the error code, when `fn` throws) when it settles. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Wraps an HTTP request handler: a SERVER span per request, child of the
 * W3C traceparent the client sent (if any), active while the handler runs,
 * ended when the response is done, with the method, path and status code.
 */
export function tracedHandler(
  name: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const span = tracer().startSpan(
      `${req.method ?? 'GET'} ${name}`,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'url.path': path } },
      parent,
    );
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(trace.setSpan(parent, span), () => handler(req, res));
  };
}

/** The asynchronous operations of a Connection; those whose first argument names the domain. */
const OPERATIONS = new Set(['version', 'hostInfo', 'listDomains', 'lookupDomain', 'domainInfo', 'allDomainStats', 'domainDefinition', 'define', 'undefine', 'start', 'shutdown', 'reboot', 'destroy', 'suspend', 'resume', 'save', 'restore']);
const BY_DOMAIN = new Set(['lookupDomain', 'domainInfo', 'domainDefinition', 'undefine', 'start', 'shutdown', 'reboot', 'destroy', 'suspend', 'resume', 'save']);

/**
 * A connection whose operations each run in a child span of the active one
 * (virt.<operation>, only when a span is active), carrying the operation,
 * the domain, the outcome (success or failure) and, on failure, the stable
 * error code (error.type). Everything else passes through unchanged.
 */
export function tracedConnection<C extends object>(conn: C): C {
  return new Proxy(conn, {
    get(target, prop) {
      // The target itself as `this` (getters and methods may use private fields, which a proxy has not).
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (typeof prop !== 'string' || !OPERATIONS.has(prop)) return (value as (...args: unknown[]) => unknown).bind(target);
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      return (...args: unknown[]): Promise<unknown> => {
        if (trace.getActiveSpan() === undefined) return fn.apply(target, args);
        const attributes: Attributes = { 'virt.operation': prop };
        if (BY_DOMAIN.has(prop) && typeof args[0] === 'string') attributes['vm.name'] = args[0];
        return inSpan(`virt.${prop}`, attributes, async (span) => {
          try {
            const result = await fn.apply(target, args);
            span.setAttribute('virt.outcome', 'success');
            return result;
          } catch (err) {
            span.setAttribute('virt.outcome', 'failure');
            throw err;
          }
        });
      };
    },
  });
}
