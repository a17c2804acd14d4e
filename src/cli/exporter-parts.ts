import type { Registry } from 'prom-client';
import type { CollectorName } from '../collectors/catalogue.ts';
import type { Collection } from '../collectors/collection.ts';
import { settingsFor, type FlatSettings, type LoadedConfig } from '../config/load.ts';
import { ADMIN } from '../config/schema/admin.ts';
import { WEB } from '../config/schema/core.ts';
import type { WebGuard } from '../http/web-guard.ts';
import type { Logger } from '../util/logger.ts';
import type { Connection } from '../virt/connection.ts';
import { VirtError } from '../virt/errors.ts';

/** Optional parts of the exporter, loaded only when configured. */

export async function loadGuard(file: string, log: Logger): Promise<WebGuard> {
  const mod = (await import('../http/web-config.ts').catch(() => undefined)) as
    | { loadWebGuard?: (file: string, log: Logger) => Promise<WebGuard> }
    | undefined;
  if (mod?.loadWebGuard === undefined) throw new VirtError('VIRT_ERR_NO_SUPPORT', 'web configuration files are not supported by this build');
  return mod.loadWebGuard(file, log);
}

/**
 * Validates the admin configuration (file and listen address) before any
 * port is bound, so that a bad one fails start-up before "listening".
 */
export async function checkAdmin(config: LoadedConfig): Promise<void> {
  const adminSettings = settingsFor(config.settings, 'admin');
  const address = ADMIN.get(adminSettings, 'listen-address');
  if (address === '') return;
  const port = (a: string): string => a.slice(a.lastIndexOf(':') + 1);
  const web = WEB.get(config.settings, 'listen-address').split(',');
  if (port(address) !== '0' && web.some((w) => port(w.trim()) === port(address))) {
    throw new VirtError('VIRT_ERR_CONFIG', `--admin.listen-address=${address} uses the metrics port; give the admin API a port of its own`);
  }
  const file = ADMIN.get(adminSettings, 'config.file');
  if (file === '') return; // the admin server names the missing file itself
  const { loadAdminConfig } = await import('../http/admin/config.ts');
  await loadAdminConfig(file);
}

export async function startAdmin(
  config: LoadedConfig,
  uri: string,
  registry: Registry,
  log: Logger,
  driverSettings: FlatSettings,
): Promise<{ close(): Promise<void> } | undefined> {
  const adminSettings = settingsFor(config.settings, 'admin');
  if (ADMIN.get(adminSettings, 'listen-address') === '') return undefined;
  // Loaded only when configured; it opens its own read-write connection.
  const { startAdminEndpoint } = await import('../http/admin/endpoint.ts');
  return startAdminEndpoint({ uri, adminSettings, driverSettings, registry, logger: log });
}

/** Refuses bad telemetry flags and OTEL_* variables (VIRT_ERR_CONFIG) before anything is opened or bound. */
export async function checkTelemetry(config: LoadedConfig): Promise<void> {
  const { readOtlpConfig } = await import('../telemetry/settings.ts');
  readOtlpConfig(settingsFor(config.settings, 'telemetry'));
}

export async function startTelemetry(
  config: LoadedConfig,
  collection: Collection,
  collectors: ReadonlySet<CollectorName>,
  log: Logger,
  conn: Pick<Connection, 'hostInfo'>,
  exportFailures: Map<string, number>,
  registry: Registry,
): Promise<{ close(): Promise<void> } | undefined> {
  const settings = settingsFor(config.settings, 'telemetry');
  // Loaded only when a push is configured (flag or OTEL_EXPORTER_OTLP_*ENDPOINT): the OTel SDK is not needed otherwise.
  const { readOtlpConfig } = await import('../telemetry/settings.ts');
  if (readOtlpConfig(settings) === undefined) return undefined;
  const { startOtlpPush } = await import('../telemetry/otlp.ts');
  const { VERSION } = await import('../version.ts');
  return startOtlpPush({ settings, collection, collectors, logger: log, version: VERSION, hostInfo: () => conn.hostInfo(), exportFailures, registry });
}
