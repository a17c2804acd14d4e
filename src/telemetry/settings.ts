import { parseDuration } from '../util/deadline.ts';
import { VirtError } from '../virt/errors.ts';

/** Defaults applied when a 'telemetry.*' key is absent (library use without convict). */
export const TELEMETRY_DEFAULTS = {
  'telemetry.otlp-endpoint': '',
  'telemetry.otlp-interval': '30s',
  'telemetry.otlp-timeout': '10s',
  'telemetry.otlp-headers': '',
  'telemetry.resource-attributes': '',
} as const;

export type TelemetrySettings = Readonly<Record<string, string | number | boolean | undefined>>;

export interface OtlpConfig {
  /** Full URL the OTLP/HTTP JSON requests go to. */
  url: string;
  intervalMs: number;
  /** Per-export timeout, never longer than the interval. */
  timeoutMs: number;
  headers: Record<string, string>;
  resourceAttributes: Record<string, string>;
}

function configError(key: string, value: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_CONFIG', `telemetry.${key} ${JSON.stringify(value)}: ${why}`);
}

/** Hides a password in a URL before it is shown in an error or a log line. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

/**
 * The OTLP/HTTP metrics URL. As with OTEL_EXPORTER_OTLP_ENDPOINT, a bare base
 * URL (no path) gets the signal path /v1/metrics; any other path is used as is.
 */
export function parseEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError('otlp-endpoint', redactUrl(value), 'is not a URL; expected e.g. http://collector:4318/v1/metrics');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw configError('otlp-endpoint', redactUrl(value), 'must be an http:// or https:// URL (OTLP over HTTP with JSON)');
  }
  if (url.username !== '' || url.password !== '') {
    // Credentials in a URL end up in logs; headers are marked sensitive.
    throw configError('otlp-endpoint', redactUrl(value), 'must not carry credentials; use telemetry.otlp-headers (e.g. authorization=Bearer%20TOKEN)');
  }
  if (url.hash !== '') throw configError('otlp-endpoint', value, 'must not have a #fragment');
  if (url.pathname === '/') url.pathname = '/v1/metrics';
  return url.toString();
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ATTRIBUTE_KEY = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;

/**
 * Comma-separated key=value pairs, values percent-decoded, as in the
 * OTEL_EXPORTER_OTLP_HEADERS / OTEL_RESOURCE_ATTRIBUTES conventions.
 * `shown` controls whether values may appear in error messages.
 */
export function parseKeyValues(key: string, value: string, keyPattern: RegExp, shown: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (value.trim() === '') return out;
  // Sensitive values (headers) are never echoed: only a header name, or the pair's position.
  const reveal = (s: string, n: number): string => (shown ? s : /^[^=]+=/.test(s) ? s.replace(/=.*$/, '=***') : `pair ${n} (hidden)`);
  let n = 0;
  for (const raw of value.split(',')) {
    const pair = raw.trim();
    n++;
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw configError(key, reveal(pair, n), 'must be a comma-separated list of key=value pairs');
    const k = pair.slice(0, eq).trim();
    let v: string;
    try {
      v = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      throw configError(key, reveal(pair, n), 'has a malformed %-escape in its value');
    }
    if (!keyPattern.test(k)) throw configError(key, k, 'is not a valid key');
    if (/[\r\n\0]/.test(v)) throw configError(key, reveal(pair, n), 'has a control character in its value');
    out[k] = v;
  }
  return out;
}

export function parseHeaders(value: string): Record<string, string> {
  return parseKeyValues('otlp-headers', value, HEADER_NAME, false);
}

export function parseResourceAttributes(value: string): Record<string, string> {
  return parseKeyValues('resource-attributes', value, ATTRIBUTE_KEY, true);
}

function parseDurationSetting(key: string, value: string): number {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch {
    throw configError(key, value, 'is not a duration like 500ms, 30s or 1m');
  }
  if (ms < 100 || ms > 86_400_000) throw configError(key, value, 'must be between 100ms and 24h');
  return ms;
}

export function parseInterval(value: string): number {
  return parseDurationSetting('otlp-interval', value);
}

export function parseTimeout(value: string): number {
  return parseDurationSetting('otlp-timeout', value);
}

function str(settings: TelemetrySettings, key: keyof typeof TELEMETRY_DEFAULTS): string {
  const v = settings[key];
  return v === undefined ? TELEMETRY_DEFAULTS[key] : String(v);
}

/** Reads and validates the 'telemetry.*' settings; undefined when no endpoint is set (push off). */
export function readOtlpConfig(settings: TelemetrySettings): OtlpConfig | undefined {
  // Validate everything even when off, so a typo is reported before it matters.
  const endpoint = str(settings, 'telemetry.otlp-endpoint').trim();
  const intervalMs = parseInterval(str(settings, 'telemetry.otlp-interval'));
  const timeoutMs = Math.min(parseTimeout(str(settings, 'telemetry.otlp-timeout')), intervalMs);
  const headers = parseHeaders(str(settings, 'telemetry.otlp-headers'));
  const resourceAttributes = parseResourceAttributes(str(settings, 'telemetry.resource-attributes'));
  if (endpoint === '') return undefined;
  return { url: parseEndpoint(endpoint), intervalMs, timeoutMs, headers, resourceAttributes };
}
