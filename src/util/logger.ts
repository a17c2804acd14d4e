import { isSpanContextValid, trace } from '@opentelemetry/api';

/**
 * A small structured logger (logfmt or JSON lines), injected everywhere so
 * src/ never writes to the console directly.
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['logfmt', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  write?: (line: string) => void;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function fieldValue(v: unknown): string {
  if (v instanceof Error) {
    const code = (v as Error & { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${v.message}` : v.message;
  }
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : typeof v;
}

function logfmtValue(v: unknown): string {
  const s = fieldValue(v);
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Error) return fieldValue(v);
  if (typeof v === 'bigint') return v.toString();
  return v;
}

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const format = opts.format ?? 'logfmt';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = opts.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < min) return;
    // Inside an active span (traces on), the line names it, so logs and traces join.
    const span = trace.getActiveSpan()?.spanContext();
    const ids = span !== undefined && isSpanContextValid(span) ? { trace_id: span.traceId, span_id: span.spanId } : undefined;
    const all: LogFields = { ts: now().toISOString(), level, ...base, msg, ...ids, ...fields };
    if (format === 'json') {
      write(JSON.stringify(all, (_k, v: unknown) => jsonValue(v)));
    } else {
      write(
        Object.entries(all)
          .map(([k, v]) => `${k}=${logfmtValue(v)}`)
          .join(' '),
      );
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
    isLevelEnabled: (level) => RANK[level] >= min,
  };
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger: Logger = createLogger({ write: () => undefined, level: 'error' });
