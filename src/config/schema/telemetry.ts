import { TELEMETRY } from '../../telemetry/settings.ts';
import type { SchemaFragment } from './types.ts';

/** OpenTelemetry settings (table: src/telemetry/settings.ts); keys are reached as settings['telemetry.KEY']. */
export const telemetrySchema: SchemaFragment = TELEMETRY.schema;
