import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One decoded data point of an OTLP/JSON metrics request. */
export interface OtlpPoint {
  metric: string;
  unit: string;
  kind: 'sum' | 'gauge';
  monotonic: boolean;
  /** 2 = cumulative (AGGREGATION_TEMPORALITY_CUMULATIVE). */
  temporality: number | undefined;
  attributes: Record<string, string>;
  value: number;
  timeUnixNano: string;
}

export interface OtlpRequest {
  headers: IncomingMessage['headers'];
  resource: Record<string, string>;
  scopes: string[];
  points: OtlpPoint[];
}

export interface Receiver {
  url: string;
  requests: OtlpRequest[];
  /** Resolves once `count` requests in total have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<OtlpRequest[]>;
  /** HTTP status to answer from now on (200 accepts). */
  setStatus(status: number): void;
  close(): Promise<void>;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`OTLP payload: ${what} is not an object`);
  return v as Record<string, unknown>;
}
function arr(v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`OTLP payload: ${what} is not an array`);
  return v;
}

function anyValue(v: unknown): string {
  const o = obj(v, 'AnyValue');
  if (typeof o.stringValue === 'string') return o.stringValue;
  for (const k of ['intValue', 'doubleValue', 'boolValue'] as const) {
    const x = o[k];
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') return String(x);
  }
  throw new Error(`OTLP payload: unsupported AnyValue ${JSON.stringify(v)}`);
}

function attributes(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of arr(v, 'attributes')) {
    const o = obj(kv, 'KeyValue');
    out[String(o.key)] = anyValue(o.value);
  }
  return out;
}

/** Decodes an ExportMetricsServiceRequest in the OTLP/JSON encoding, strictly enough to catch mistakes. */
export function decodeOtlpJson(body: unknown, headers: IncomingMessage['headers'] = {}): OtlpRequest {
  const req = obj(body, 'request');
  const rms = arr(req.resourceMetrics, 'resourceMetrics');
  if (rms.length !== 1) throw new Error(`expected one resourceMetrics, got ${rms.length}`);
  const rm = obj(rms[0], 'resourceMetrics[0]');
  const resource = attributes(obj(rm.resource, 'resource').attributes);
  const scopes: string[] = [];
  const points: OtlpPoint[] = [];
  for (const smv of arr(rm.scopeMetrics, 'scopeMetrics')) {
    const sm = obj(smv, 'scopeMetrics');
    scopes.push(String(obj(sm.scope, 'scope').name));
    for (const mv of arr(sm.metrics, 'metrics')) {
      const m = obj(mv, 'metric');
      const name = String(m.name);
      const unit = typeof m.unit === 'string' ? m.unit : '';
      const data = m.sum !== undefined ? obj(m.sum, 'sum') : m.gauge !== undefined ? obj(m.gauge, 'gauge') : undefined;
      if (data === undefined) throw new Error(`OTLP payload: metric ${name} is neither sum nor gauge`);
      const kind = m.sum !== undefined ? 'sum' : 'gauge';
      for (const dpv of arr(data.dataPoints, 'dataPoints')) {
        const dp = obj(dpv, 'dataPoint');
        const value = dp.asDouble !== undefined ? Number(dp.asDouble) : Number(dp.asInt);
        points.push({
          metric: name,
          unit,
          kind,
          monotonic: data.isMonotonic === true,
          temporality: typeof data.aggregationTemporality === 'number' ? data.aggregationTemporality : undefined,
          attributes: attributes(dp.attributes),
          value,
          timeUnixNano: String(dp.timeUnixNano),
        });
      }
    }
  }
  return { headers, resource, scopes, points };
}

/** A local OTLP/HTTP receiver on 127.0.0.1 that accepts JSON pushes and keeps them decoded. */
export async function startReceiver(status = 200): Promise<Receiver> {
  const requests: OtlpRequest[] = [];
  let current = status;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const errors: Error[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        if (req.method !== 'POST' || req.url !== '/v1/metrics') throw new Error(`unexpected ${String(req.method)} ${String(req.url)}`);
        if (!String(req.headers['content-type']).startsWith('application/json')) throw new Error(`unexpected content-type ${String(req.headers['content-type'])}`);
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        requests.push(decodeOtlpJson(JSON.parse(body.toString('utf8')) as unknown, req.headers));
      } catch (err) {
        errors.push(err as Error);
      }
      res.writeHead(current, { 'content-type': 'application/json' });
      res.end('{}');
      for (const w of waiters.splice(0)) {
        if (requests.length >= w.count) w.resolve();
        else waiters.push(w);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/metrics`,
    requests,
    waitFor: (count, timeoutMs = 20_000) =>
      new Promise<OtlpRequest[]>((resolve, reject) => {
        const check = (): void => {
          if (errors.length > 0) reject(errors[0] ?? new Error('receiver error'));
          else resolve(requests);
        };
        if (requests.length >= count) return check();
        const timer = setTimeout(() => reject(new Error(`receiver got ${requests.length} of ${count} pushes within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            check();
          },
        });
      }),
    setStatus: (s) => {
      current = s;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
