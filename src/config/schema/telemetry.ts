import type { SchemaFragment } from './types.ts';

/** OpenTelemetry (OTLP push) settings; keys are reached as settings['telemetry.KEY']. */
export const telemetrySchema: SchemaFragment = {
  telemetry: {},
};
