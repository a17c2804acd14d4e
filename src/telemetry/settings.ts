import { parseDuration } from '../util/deadline.ts';
import { settingsArea } from '../config/settings.ts';
import { VirtError } from '../virt/errors.ts';

export type TelemetrySettings = Readonly<Record<string, string | number | boolean | undefined>>;

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
export type Signal = 'metrics' | 'traces';

/** One signal's exporter: what the flags decide; everything left undefined the OTel exporter reads from OTEL_* itself. */
export interface SignalConfig {
  protocol: OtlpProtocol;
  /** From --telemetry.otlp-endpoint; undefined: OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT. */
  url: string | undefined;
  /** From --telemetry.otlp-headers (merged over OTEL_EXPORTER_OTLP_HEADERS, these win). */
  headers: Record<string, string>;
  /** From --telemetry.otlp-timeout; undefined: OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT, else 10 s. */
  timeoutMs: number | undefined;
  /** The endpoint as shown in logs (no credentials). */
  shown: string;
}

export interface OtlpConfig {
  metrics: SignalConfig | undefined;
  traces: SignalConfig | undefined;
  /** Export interval: --telemetry.otlp-interval, else OTEL_METRIC_EXPORT_INTERVAL, else 60 s. */
  intervalMs: number;
  /** Bound of one export cycle (collection and request): OTEL_METRIC_EXPORT_TIMEOUT, else 30 s; never above the interval. */
  exportTimeoutMs: number;
  /** --telemetry.otlp-temporality, when set (else OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE applies). */
  temporality: 'cumulative' | 'delta' | undefined;
  /** --telemetry.resource-attributes: they win over OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME. */
  resourceAttributes: Record<string, string>;
}

function configError(key: string, value: string, why: string): VirtError {
  const name = key.startsWith('OTEL_') ? key : `telemetry.${key}`;
  return new VirtError('VIRT_ERR_CONFIG', `${name} ${JSON.stringify(value)}: ${why}`);
}

/** Hides a password in a URL before it is shown in an error or a log line. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

/**
 * Checks an endpoint URL (flag or variable) and returns it normalised. As
 * OTEL_EXPORTER_OTLP_ENDPOINT, it is a base URL to which each signal's path
 * is added; one whose path already ends in /v1/metrics is taken as the
 * metrics URL (as before), and the traces URL is its sibling /v1/traces.
 */
export function parseEndpoint(value: string, key = 'otlp-endpoint'): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(key, redactUrl(value), 'is not a URL; expected e.g. http://collector:4318 (HTTP) or http://collector:4317 (gRPC)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw configError(key, redactUrl(value), 'must be an http:// or https:// URL');
  }
  if (url.username !== '' || url.password !== '') {
    // Credentials in a URL end up in logs; headers are marked sensitive.
    throw configError(key, redactUrl(value), 'must not carry credentials; use telemetry.otlp-headers (e.g. authorization=Bearer%20TOKEN)');
  }
  if (url.hash !== '') throw configError(key, value, 'must not have a #fragment');
  return url;
}

/** The URL one signal is sent to over OTLP/HTTP, from the base endpoint. */
export function signalUrl(base: URL, signal: Signal): string {
  const url = new URL(base.toString());
  const path = url.pathname.replace(/\/+$/, '');
  if (/\/v1\/(metrics|traces)$/.test(path)) url.pathname = path.replace(/(metrics|traces)$/, signal);
  else url.pathname = `${path}/v1/${signal}`;
  return url.toString();
}

export function parseProtocol(value: string, key = 'otlp-protocol'): OtlpProtocol {
  const v = value.trim();
  if ((OTLP_PROTOCOLS as readonly string[]).includes(v)) return v as OtlpProtocol;
  throw configError(key, value, `is not one of ${OTLP_PROTOCOLS.join(', ')}`);
}

export function parseTemporality(value: string): 'cumulative' | 'delta' | undefined {
  const v = value.trim().toLowerCase();
  if (v === '') return undefined;
  if (v === 'cumulative' || v === 'delta') return v;
  throw configError('otlp-temporality', value, 'is not cumulative or delta');
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


// convict calls a function format with the value and reports what it throws,
// so a bad value is refused at load time with the same message startOtlpPush gives.
const unlessEmpty =
  (check: (v: string) => unknown) =>
  (v: unknown): void => {
    if (String(v).trim() !== '') check(String(v));
  };

/**
 * OpenTelemetry settings; keys are reached as settings['telemetry.KEY'].
 * Each one stands for a standard OTEL_* variable (`otel`) and, when set,
 * wins over it; left empty (the default), the variable (or the
 * specification's default) applies.
 */
export const TELEMETRY = settingsArea('telemetry', {
  'otlp-endpoint': { doc: 'OTLP endpoint to push metrics and traces to (as OTEL_EXPORTER_OTLP_ENDPOINT, which it overrides): a base URL such as http://collector:4318 gets /v1/metrics and /v1/traces; for grpc, http://collector:4317. Push is on when this or an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set.', format: unlessEmpty((v) => parseEndpoint(v)), default: '', otel: 'OTEL_EXPORTER_OTLP_ENDPOINT' },
  'otlp-protocol': { doc: 'OTLP protocol: http/protobuf, http/json or grpc (as OTEL_EXPORTER_OTLP_PROTOCOL; empty: that variable, else http/protobuf).', format: unlessEmpty((v) => parseProtocol(v)), default: '', otel: 'OTEL_EXPORTER_OTLP_PROTOCOL' },
  'otlp-interval': { doc: 'Time between two metric exports, e.g. 30s (as OTEL_METRIC_EXPORT_INTERVAL; empty: that variable, else 60s); each export reads one collection, shared with concurrent scrapes.', format: unlessEmpty((v) => parseInterval(v)), default: '', otel: 'OTEL_METRIC_EXPORT_INTERVAL' },
  'otlp-timeout': { doc: 'Deadline of one export request, retries included (as OTEL_EXPORTER_OTLP_TIMEOUT; empty: that variable, else 10s).', format: unlessEmpty((v) => parseTimeout(v)), default: '', otel: 'OTEL_EXPORTER_OTLP_TIMEOUT' },
  'otlp-headers': { doc: 'Extra request headers (gRPC metadata) as comma-separated key=value pairs with %-encoded values, e.g. authorization=Bearer%20TOKEN (as OTEL_EXPORTER_OTLP_HEADERS, whose pairs these extend and override).', format: unlessEmpty((v) => parseHeaders(v)), default: '', otel: 'OTEL_EXPORTER_OTLP_HEADERS', sensitive: true },
  'otlp-temporality': { doc: 'Temporality of counters: cumulative or delta (as OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE; empty: that variable, else cumulative).', format: unlessEmpty((v) => parseTemporality(v)), default: '', otel: 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE' },
  'resource-attributes': { doc: 'Resource attributes as comma-separated key=value pairs, e.g. k8s.node.name=node1,deployment.environment=prod (as OTEL_RESOURCE_ATTRIBUTES; these win over it, over OTEL_SERVICE_NAME and over the detected service.*, host.* and virt.hypervisor.* attributes).', format: unlessEmpty((v) => parseResourceAttributes(v)), default: '', otel: 'OTEL_RESOURCE_ATTRIBUTES' },
});

/** The standard OTEL_* variable each flag stands for (and wins over); --help and docs/opentelemetry.md list them. */
export const FLAG_VARIABLES: Readonly<Record<`telemetry.${keyof typeof TELEMETRY.table}`, string>> = Object.fromEntries(
  Object.entries(TELEMETRY.table).map(([k, d]) => [`telemetry.${k}`, d.otel]),
) as Record<`telemetry.${keyof typeof TELEMETRY.table}`, string>;

function str(settings: TelemetrySettings, key: keyof typeof TELEMETRY.table): string {
  return TELEMETRY.get(settings, key).trim();
}

function env(vars: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = vars[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** A positive number of milliseconds from an OTEL_* variable (the SDK's rule: invalid ones are ignored). */
function envMs(vars: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env(vars, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Whether OTEL_SDK_DISABLED turns the SDK off (only the value true, case-insensitive, does). */
export function sdkDisabled(vars: NodeJS.ProcessEnv = process.env): boolean {
  return env(vars, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true';
}

/**
 * Reads and validates the 'telemetry.*' settings and decides, with the
 * OTEL_* environment, which signals are pushed: a signal is on when the
 * endpoint flag, OTEL_EXPORTER_OTLP_ENDPOINT or its signal-specific variable
 * is set, and OTEL_<SIGNAL>_EXPORTER is not "none". Flags win over variables.
 * Undefined when nothing is pushed (or OTEL_SDK_DISABLED=true).
 */
export function readOtlpConfig(settings: TelemetrySettings, vars: NodeJS.ProcessEnv = process.env): OtlpConfig | undefined {
  // Validate everything even when off, so a typo is reported before it matters.
  const endpointFlag = str(settings, 'otlp-endpoint');
  const base = endpointFlag === '' ? undefined : parseEndpoint(endpointFlag);
  const protocolFlag = str(settings, 'otlp-protocol');
  const protocolFromFlag = protocolFlag === '' ? undefined : parseProtocol(protocolFlag);
  const intervalFlag = str(settings, 'otlp-interval');
  const intervalMs = intervalFlag === '' ? (envMs(vars, 'OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000) : parseInterval(intervalFlag);
  const timeoutFlag = str(settings, 'otlp-timeout');
  const timeoutMs = timeoutFlag === '' ? undefined : parseTimeout(timeoutFlag);
  const headers = parseHeaders(str(settings, 'otlp-headers'));
  const temporality = parseTemporality(str(settings, 'otlp-temporality'));
  const resourceAttributes = parseResourceAttributes(str(settings, 'resource-attributes'));
  if (sdkDisabled(vars)) return undefined;

  const signal = (s: Signal): SignalConfig | undefined => {
    const upper = s.toUpperCase();
    if (env(vars, `OTEL_${upper}_EXPORTER`)?.split(',').map((x) => x.trim()).includes('none') === true) return undefined;
    const envEndpoint = env(vars, `OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`) ?? env(vars, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    if (base === undefined && envEndpoint === undefined) return undefined;
    const protocol = protocolFromFlag ?? parseProtocol(env(vars, `OTEL_EXPORTER_OTLP_${upper}_PROTOCOL`) ?? env(vars, 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf', 'OTEL_EXPORTER_OTLP_PROTOCOL');
    let url: string | undefined;
    if (base !== undefined) url = protocol === 'grpc' ? base.origin : signalUrl(base, s);
    return { protocol, url, headers, timeoutMs, shown: redactUrl(url ?? envEndpoint ?? '') };
  };
  const metrics = signal('metrics');
  const traces = signal('traces');
  if (metrics === undefined && traces === undefined) return undefined;
  const exportTimeoutMs = Math.min(envMs(vars, 'OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000, intervalMs);
  return { metrics, traces, intervalMs, exportTimeoutMs, temporality, resourceAttributes };
}
