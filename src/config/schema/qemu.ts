import { QEMU } from '../../qemud-shared/settings.ts';
import type { SchemaFragment } from './types.ts';

/** Settings of the qemu area (table: src/qemud-shared/settings.ts); keys are reached as settings['qemu.KEY']. */
export const qemuSchema: SchemaFragment = QEMU.schema;
