import { parseEndpoint, parseHeaders, parseInterval, parseResourceAttributes, parseTimeout, TELEMETRY_DEFAULTS } from '../../telemetry/settings.ts';
import type { SchemaFragment } from './types.ts';

// convict calls a function format with the value and reports what it throws,
// so a bad value is refused at load time with the same message startOtlpPush gives.
const endpointFormat = (v: unknown): void => {
  if (String(v) !== '') parseEndpoint(String(v));
};

/** OpenTelemetry (OTLP push) settings; keys are reached as settings['telemetry.KEY']. */
export const telemetrySchema: SchemaFragment = {
  telemetry: {
    'otlp-endpoint': {
      doc: 'OTLP/HTTP (JSON) metrics endpoint to push to, e.g. http://collector:4318/v1/metrics (a bare http://collector:4318 gets /v1/metrics). Empty (the default) keeps the push off.',
      format: endpointFormat,
      default: TELEMETRY_DEFAULTS['telemetry.otlp-endpoint'],
    },
    'otlp-interval': {
      doc: 'Time between two pushes (e.g. 30s, 1m); each push reads one collection, shared with concurrent scrapes.',
      format: (v: unknown) => void parseInterval(String(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-interval'],
    },
    'otlp-timeout': {
      doc: 'Deadline of one push request, retries included (capped at the interval).',
      format: (v: unknown) => void parseTimeout(String(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-timeout'],
    },
    'otlp-headers': {
      doc: 'Extra HTTP headers for the push, as comma-separated key=value pairs with %-encoded values (e.g. authorization=Bearer%20TOKEN).',
      format: (v: unknown) => void parseHeaders(String(v)),
      default: TELEMETRY_DEFAULTS['telemetry.otlp-headers'],
      sensitive: true,
    },
    'resource-attributes': {
      doc: 'Extra OpenTelemetry resource attributes as comma-separated key=value pairs (e.g. k8s.node.name=node1,deployment.environment=prod); they override service.name, service.version and host.name.',
      format: (v: unknown) => void parseResourceAttributes(String(v)),
      default: TELEMETRY_DEFAULTS['telemetry.resource-attributes'],
    },
  },
};
