import type { SchemaFragment } from './types.ts';

/** Settings of the qemu area; keys are reached as settings['qemu.KEY'] by the driver/server. */
export const qemuSchema: SchemaFragment = {
  qemu: {},
};
