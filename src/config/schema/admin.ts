import type { SchemaFragment } from './types.ts';

/** Settings of the admin area; keys are reached as settings['admin.KEY'] by the driver/server. */
export const adminSchema: SchemaFragment = {
  admin: {},
};
