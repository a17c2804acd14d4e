/**
 * A local OTLP receiver for the tests: OTLP/HTTP (protobuf and JSON) and
 * OTLP/gRPC on 127.0.0.1, for metrics and traces. Protobuf is decoded with
 * the official opentelemetry-proto definitions (.proto files shipped in an
 * npm package, loaded with protobufjs and, for the gRPC service, with
 * @grpc/proto-loader), never with a hand-written decoder.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
/** opentelemetry-proto's .proto files, as shipped in the npm package (package.json "opentelemetry-proto-files"). */
export const PROTO_DIR = join(dirname(require.resolve('opentelemetry-proto-files/package.json')), 'build', 'protos');
const METRICS_SERVICE = 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto';
const TRACE_SERVICE = 'opentelemetry/proto/collector/trace/v1/trace_service.proto';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
root.loadSync([METRICS_SERVICE, TRACE_SERVICE], { keepCase: false });
const MetricsRequest = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
const TraceRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const MetricsResponse = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse');
const TraceResponse = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: true };

/** One decoded data point. */
export interface OtlpPoint {
  metric: string;
  unit: string;
  description: string;
  kind: 'sum' | 'gauge';
  monotonic: boolean;
  /** 1 = delta, 2 = cumulative (AggregationTemporality). */
  temporality: number | undefined;
  attributes: Record<string, string>;
  value: number;
  /** Which field of the point's oneof carried the value. */
  valueType: 'int' | 'double';
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
}

export interface OtlpRequest {
  signal: 'metrics' | 'traces';
  transport: 'http' | 'grpc';
  encoding: 'protobuf' | 'json';
  /** HTTP headers, or gRPC metadata, lower-case names. */
  headers: Record<string, string>;
  resource: Record<string, string>;
  scopes: string[];
  points: OtlpPoint[];
  spans: OtlpSpan[];
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface Receiver {
  /** OTLP/HTTP base URL (http://127.0.0.1:PORT). */
  url: string;
  /** OTLP/gRPC URL (http://127.0.0.1:PORT). */
  grpcUrl: string;
  requests: OtlpRequest[];
  metrics(): OtlpRequest[];
  spans(): OtlpSpan[];
  /** Resolves once `count` metrics requests in total have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<OtlpRequest[]>;
  /** Resolves once pred() holds (checked on every request). */
  waitUntil(pred: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** HTTP status to answer from now on (200 accepts; otherwise gRPC answers UNAVAILABLE). */
  setStatus(status: number): void;
  /** Delay before answering (a slow receiver). */
  setDelay(ms: number): void;
  /** Down: every HTTP connection is reset at once and gRPC answers UNAVAILABLE at once. */
  setDown(down: boolean): void;
  /** Requests held right now (answer not sent yet), and the most ever held at once. */
  pending(): { now: number; max: number };
  /** Requests that could not be decoded (a test fails on any). */
  errors: Error[];
  close(): Promise<void>;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : JSON.stringify(v);
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
  for (const k of ['stringValue', 'intValue', 'doubleValue', 'boolValue'] as const) {
    if (o[k] !== undefined) return str(o[k]);
  }
  throw new Error(`OTLP payload: unsupported AnyValue ${JSON.stringify(v)}`);
}

function attributes(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of arr(v, 'attributes')) {
    const o = obj(kv, 'KeyValue');
    out[str(o.key)] = anyValue(o.value);
  }
  return out;
}

/** Trace and span ids: hex in OTLP/JSON, bytes (base64 from toObject) in protobuf. */
function id(v: unknown, encoding: 'protobuf' | 'json'): string {
  const s = str(v);
  return encoding === 'json' ? s.toLowerCase() : Buffer.from(s, 'base64').toString('hex');
}

function nanos(v: unknown): bigint {
  return v === undefined ? 0n : BigInt(str(v));
}

/** Normalises a decoded request object (protobufjs toObject or OTLP/JSON; both lowerCamelCase). */
export function normalise(signal: 'metrics' | 'traces', body: unknown, encoding: 'protobuf' | 'json', transport: 'http' | 'grpc', headers: Record<string, string>): OtlpRequest {
  const req = obj(body, 'request');
  const list = arr(signal === 'metrics' ? req.resourceMetrics : req.resourceSpans, 'resource list');
  if (list.length !== 1) throw new Error(`expected one resource, got ${list.length}`);
  const r = obj(list[0], 'resource entry');
  const resource = attributes(obj(r.resource, 'resource').attributes);
  const scopes: string[] = [];
  const points: OtlpPoint[] = [];
  const spans: OtlpSpan[] = [];
  for (const smv of arr(signal === 'metrics' ? r.scopeMetrics : r.scopeSpans, 'scope list')) {
    const sm = obj(smv, 'scope entry');
    scopes.push(str(obj(sm.scope, 'scope').name));
    if (signal === 'traces') {
      for (const sv of arr(sm.spans, 'spans')) {
        const s = obj(sv, 'span');
        const status = s.status === undefined ? {} : obj(s.status, 'status');
        spans.push({
          traceId: id(s.traceId, encoding),
          spanId: id(s.spanId, encoding),
          parentSpanId: s.parentSpanId === undefined || s.parentSpanId === '' ? '' : id(s.parentSpanId, encoding),
          name: str(s.name),
          kind: Number(s.kind ?? 0),
          attributes: attributes(s.attributes),
          statusCode: Number(status.code ?? 0),
        });
      }
      continue;
    }
    for (const mv of arr(sm.metrics, 'metrics')) {
      const m = obj(mv, 'metric');
      const name = str(m.name);
      const data = m.sum !== undefined ? obj(m.sum, 'sum') : m.gauge !== undefined ? obj(m.gauge, 'gauge') : undefined;
      if (data === undefined) throw new Error(`OTLP payload: metric ${name} is neither sum nor gauge`);
      for (const dpv of arr(data.dataPoints, 'dataPoints')) {
        const dp = obj(dpv, 'dataPoint');
        const isInt = dp.asInt !== undefined;
        if (!isInt && dp.asDouble === undefined) throw new Error(`OTLP payload: point of ${name} has no value`);
        points.push({
          metric: name,
          unit: str(m.unit),
          description: str(m.description),
          kind: m.sum !== undefined ? 'sum' : 'gauge',
          monotonic: data.isMonotonic === true,
          temporality: data.aggregationTemporality === undefined ? undefined : Number(data.aggregationTemporality),
          attributes: attributes(dp.attributes),
          value: Number(isInt ? dp.asInt : dp.asDouble),
          valueType: isInt ? 'int' : 'double',
          startTimeUnixNano: nanos(dp.startTimeUnixNano),
          timeUnixNano: nanos(dp.timeUnixNano),
        });
      }
    }
  }
  return { signal, transport, encoding, headers, resource, scopes, points, spans, at: Date.now() };
}

function flatHeaders(h: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) ? v.join(', ') : str(v);
  return out;
}

/** PEM files for an OTLP/HTTP receiver on https (and client certificates required when `ca` is given). */
export interface ReceiverTls {
  cert: string;
  key: string;
  /** CA of the client certificates to require (mutual TLS). */
  ca?: string;
}

export async function startReceiver(status = 200, tls?: ReceiverTls): Promise<Receiver> {
  const requests: OtlpRequest[] = [];
  const errors: Error[] = [];
  let current = status;
  let delayMs = 0;
  let down = false;
  let held = 0;
  let maxHeld = 0;
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  const record = (r: OtlpRequest): void => {
    requests.push(r);
    for (const w of [...waiters]) w();
  };
  const later = (fn: () => void): void => {
    if (delayMs <= 0) return fn();
    held++;
    maxHeld = Math.max(maxHeld, held);
    const timer = setTimeout(() => {
      timers.delete(timer);
      held--;
      fn();
    }, delayMs);
    timers.add(timer);
  };

  const listener: RequestListener = (req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const signal = req.url === '/v1/metrics' ? 'metrics' : req.url === '/v1/traces' ? 'traces' : undefined;
      const type = str(req.headers['content-type']);
      const json = type.startsWith('application/json');
      try {
        if (req.method !== 'POST' || signal === undefined) throw new Error(`unexpected ${str(req.method)} ${str(req.url)}`);
        if (!json && !type.startsWith('application/x-protobuf')) throw new Error(`unexpected content-type ${type}`);
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const decoded: unknown = json
          ? JSON.parse(body.toString('utf8'))
          : (signal === 'metrics' ? MetricsRequest : TraceRequest).toObject((signal === 'metrics' ? MetricsRequest : TraceRequest).decode(body), TO_OBJECT);
        if (current === 200) record(normalise(signal, decoded, json ? 'json' : 'protobuf', 'http', flatHeaders(req.headers)));
      } catch (err) {
        errors.push(err as Error);
      }
      later(() => {
        if (res.destroyed) return;
        if (json) {
          res.writeHead(current, { 'content-type': 'application/json' });
          res.end('{}');
        } else {
          const payload = (signal === 'traces' ? TraceResponse : MetricsResponse).encode({}).finish();
          res.writeHead(current, { 'content-type': 'application/x-protobuf' });
          res.end(Buffer.from(payload));
        }
      });
    });
  };
  const http: Server =
    tls === undefined
      ? createServer(listener)
      : createHttpsServer(
          { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...(tls.ca === undefined ? {} : { ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: true }) },
          listener,
        );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const httpPort = (http.address() as AddressInfo).port;

  // gRPC: the services as the official .proto files define them.
  const definition = protoLoader.loadSync([METRICS_SERVICE, TRACE_SERVICE], { includeDirs: [PROTO_DIR], longs: String, enums: Number, bytes: String, defaults: false, oneofs: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    opentelemetry: { proto: { collector: { metrics: { v1: { MetricsService: { service: grpc.ServiceDefinition } } }; trace: { v1: { TraceService: { service: grpc.ServiceDefinition } } } } } };
  };
  const grpcServer = new grpc.Server();
  const handler =
    (signal: 'metrics' | 'traces'): grpc.handleUnaryCall<unknown, unknown> =>
    (call, callback) => {
      if (down) {
        callback({ code: grpc.status.UNAVAILABLE, details: 'receiver down' });
        return;
      }
      try {
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = str(v);
        if (current === 200) record(normalise(signal, call.request, 'protobuf', 'grpc', metadata));
      } catch (err) {
        errors.push(err as Error);
      }
      later(() => {
        if (current === 200) callback(null, {});
        else callback({ code: grpc.status.UNAVAILABLE, details: `receiver answers ${current}` });
      });
    };
  const c = loaded.opentelemetry.proto.collector;
  grpcServer.addService(c.metrics.v1.MetricsService.service, { Export: handler('metrics') });
  grpcServer.addService(c.trace.v1.TraceService.service, { Export: handler('traces') });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  const waitUntil = (pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (errors.length > 0) {
          cleanup();
          reject(errors[0] ?? new Error('receiver error'));
          return true;
        }
        if (!pred()) return false;
        cleanup();
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`receiver: ${what} not seen within ${timeoutMs} ms (got ${requests.length} requests)`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(onRequest);
      };
      const onRequest = (): void => void check();
      waiters.add(onRequest);
      check();
    });
  const metricsRequests = (): OtlpRequest[] => requests.filter((r) => r.signal === 'metrics');
  return {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${httpPort}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    requests,
    errors,
    metrics: metricsRequests,
    spans: () => requests.flatMap((r) => r.spans),
    waitFor: async (count, timeoutMs) => {
      await waitUntil(() => metricsRequests().length >= count, `${count} metrics requests`, timeoutMs);
      return metricsRequests();
    },
    waitUntil,
    setStatus: (s) => {
      current = s;
    },
    setDelay: (ms) => {
      delayMs = ms;
    },
    setDown: (d) => {
      down = d;
    },
    pending: () => ({ now: held, max: maxHeld }),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      grpcServer.forceShutdown();
    },
  };
}
