import type { SchemaFragment } from './types.ts';

/** Settings of the xen area; keys are reached as settings['xen.KEY'] by the driver/server. */
export const xenSchema: SchemaFragment = {
  xen: {},
};
