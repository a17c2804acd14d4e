import type { Registry } from 'prom-client';
import { ADMIN } from '../../config/schema/admin.ts';
import type { Logger } from '../../util/logger.ts';
import { open } from '../../virt/connection.ts';
import { startAdminServer, type AdminServer, type AdminSettings } from './server.ts';

export interface AdminEndpointOptions {
  /** The exporter's connection URI (the collectors' one, opened here again read-write). */
  uri: string;
  /** Flattened 'admin.*' settings. */
  adminSettings: AdminSettings;
  /** Flattened driver settings ('qemu.*', 'xen.*'), as given to the collectors' connection. */
  driverSettings: AdminSettings;
  registry: Registry;
  logger: Logger;
}

/**
 * The exporter's entry point for the admin endpoint: nothing when
 * admin.listen-address is empty; otherwise its own read-write connection and
 * the listener. Closing stops the listener, then closes that connection.
 */
export async function startAdminEndpoint(opts: AdminEndpointOptions): Promise<(AdminServer & { close(): Promise<void> }) | undefined> {
  if (ADMIN.get(opts.adminSettings, 'listen-address') === '') return undefined;
  const connection = await open(opts.uri, { readOnly: false, logger: opts.logger, settings: opts.driverSettings });
  let server: AdminServer;
  try {
    server = await startAdminServer({ connection, settings: opts.adminSettings, logger: opts.logger, registry: opts.registry });
  } catch (err) {
    await connection.close();
    throw err;
  }
  return {
    ...server,
    async close() {
      await server.close();
      await connection.close();
    },
  };
}
