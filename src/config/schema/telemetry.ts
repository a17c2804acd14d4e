import { parseEndpoint, parseHeaders, parseInterval, parseProtocol, parseResourceAttributes, parseTemporality, parseTimeout, TELEMETRY_DEFAULTS } from '../../telemetry/settings.ts';
import type { SchemaFragment } from './types.ts';

// convict calls a function format with the value and reports what it throws,
// so a bad value is refused at load time with the same message startOtlpPush gives.
const unlessEmpty =
  (check: (v: string) => unknown) =>
  (v: unknown): void => {
    if (String(v).trim() !== '') check(String(v));
  };

/**
 * OpenTelemetry settings; keys are reached as settings['telemetry.KEY'].
 * Each one stands for a standard OTEL_* variable and, when set, wins over it;
 * left empty, the variable (or the specification's default) applies.
 */
export const telemetrySchema: SchemaFragment = {
  telemetry: {
    'otlp-endpoint': {
      doc: 'OTLP endpoint to push metrics and traces to (as OTEL_EXPORTER_OTLP_ENDPOINT, which it overrides): a base URL such as http://collector:4318 gets /v1/metrics and /v1/traces; for grpc, http://collector:4317. Push is on when this or an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set.',
      format: unlessEmpty((v) => parseEndpoint(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-endpoint'],
    },
    'otlp-protocol': {
      doc: 'OTLP protocol: http/protobuf, http/json or grpc (as OTEL_EXPORTER_OTLP_PROTOCOL; empty: that variable, else http/protobuf).',
      format: unlessEmpty((v) => parseProtocol(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-protocol'],
    },
    'otlp-interval': {
      doc: 'Time between two metric exports, e.g. 30s (as OTEL_METRIC_EXPORT_INTERVAL; empty: that variable, else 60s); each export reads one collection, shared with concurrent scrapes.',
      format: unlessEmpty((v) => parseInterval(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-interval'],
    },
    'otlp-timeout': {
      doc: 'Deadline of one export request, retries included (as OTEL_EXPORTER_OTLP_TIMEOUT; empty: that variable, else 10s).',
      format: unlessEmpty((v) => parseTimeout(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-timeout'],
    },
    'otlp-headers': {
      doc: 'Extra request headers (gRPC metadata) as comma-separated key=value pairs with %-encoded values, e.g. authorization=Bearer%20TOKEN (as OTEL_EXPORTER_OTLP_HEADERS, whose pairs these extend and override).',
      format: unlessEmpty((v) => parseHeaders(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-headers'],
      sensitive: true,
    },
    'otlp-temporality': {
      doc: 'Temporality of counters: cumulative or delta (as OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE; empty: that variable, else cumulative).',
      format: unlessEmpty((v) => parseTemporality(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-temporality'],
    },
    'resource-attributes': {
      doc: 'Resource attributes as comma-separated key=value pairs, e.g. k8s.node.name=node1,deployment.environment=prod (as OTEL_RESOURCE_ATTRIBUTES; these win over it, over OTEL_SERVICE_NAME and over the detected service.*, host.* and virt.hypervisor.* attributes).',
      format: unlessEmpty((v) => parseResourceAttributes(v)),
      default: TELEMETRY_DEFAULTS['telemetry.resource-attributes'],
    },
  },
};
