import type { Registry } from 'prom-client';
import type { CollectorName } from '../collectors/catalogue.ts';
import type { Collection } from '../collectors/collection.ts';
import { settingsFor, type FlatSettings, type LoadedConfig } from '../config/load.ts';
import type { WebGuard } from '../http/web-guard.ts';
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';

/** Optional parts of the exporter, loaded only when configured. */

export async function loadGuard(file: string, log: Logger): Promise<WebGuard> {
  const mod = (await import('../http/web-config.ts').catch(() => undefined)) as
    | { loadWebGuard?: (file: string, log: Logger) => Promise<WebGuard> }
    | undefined;
  if (mod?.loadWebGuard === undefined) throw new VirtError('VIRT_ERR_NO_SUPPORT', 'web configuration files are not supported by this build');
  return mod.loadWebGuard(file, log);
}

export function startAdmin(
  config: LoadedConfig,
  _uri: string,
  _registry: Registry,
  _log: Logger,
  _driverSettings: FlatSettings,
): Promise<{ close(): Promise<void> } | undefined> {
  const admin = settingsFor(config.settings, 'admin');
  if (String(admin['admin.listen-address'] ?? '') === '') return Promise.resolve(undefined);
  return Promise.reject(new VirtError('VIRT_ERR_NO_SUPPORT', 'the admin endpoint is not available in this build yet'));
}

export function startTelemetry(
  _config: LoadedConfig,
  _collection: Collection,
  _collectors: ReadonlySet<CollectorName>,
  _log: Logger,
): Promise<{ close(): Promise<void> } | undefined> {
  return Promise.resolve(undefined);
}
