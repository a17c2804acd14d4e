import { Registry } from 'prom-client';
import { COLLECTORS, type CollectorName } from '../collectors/catalogue.ts';
import { Collection } from '../collectors/collection.ts';
import { registerProcessMetrics } from '../collectors/process-metrics.ts';
import { settingsFor, type LoadedConfig } from '../config/load.ts';
import { helpText, loadConfig } from '../config/schema.ts';
import { COLLECT, COLLECTOR, CORE, WEB } from '../config/schema/core.ts';
import { LOG } from '../config/schema/log.ts';
import { startMetricsServer, type RunningServer } from '../http/server.ts';
import { openGuard, type WebGuard } from '../http/web-guard.ts';
import { parseDuration } from '../util/deadline.ts';
import { createLogger, type Logger } from '../util/logger.ts';
import { VERSION } from '../version.ts';
import { open, type Connection } from '../virt/connection.ts';
import { detectHostLive } from '../virt/detect.ts';
import { isVirtError, toVirtError } from '../virt/errors.ts';
import { checkAdmin, checkTelemetry, startAdmin, startTelemetry, loadGuard } from './exporter-parts.ts';

interface Running {
  close(): Promise<void>;
}

function errorLine(err: unknown): string {
  const e = toVirtError(err);
  return `virt-exporter: error: ${e.code}: ${e.message}\n`;
}

async function main(argv: string[]): Promise<number> {
  let config: LoadedConfig;
  try {
    config = loadConfig(argv);
  } catch (err) {
    // One format for flag and start-up errors: `virt-exporter: error: CODE: message`.
    process.stderr.write(errorLine(err));
    return 2;
  }
  if (config.help) {
    process.stdout.write(helpText('virt-exporter', 'Exports the domains of one Xen or QEMU/KVM host to Prometheus (/metrics) and OpenTelemetry (OTLP).'));
    return 0;
  }
  if (config.version) {
    process.stdout.write(`virt-exporter ${VERSION} (node ${process.versions.node})\n`);
    return 0;
  }
  const log = createLogger(LOG.read(config.settings));
  const parts: Running[] = [];
  try {
    return await run(config, log, parts);
  } catch (err) {
    log.error('startup failed', { err, code: isVirtError(err) ? err.code : undefined });
    process.stderr.write(errorLine(err));
    for (const p of parts.reverse()) await p.close().catch(() => undefined);
    return isVirtError(err) ? Math.max(2, err.exitCode) : 1;
  }
}

async function run(config: LoadedConfig, log: Logger, parts: Running[]): Promise<number> {
  // Handlers first, so a SIGTERM during start-up also ends in an orderly close.
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const core = CORE.read(config.settings);
  const web = WEB.read(config.settings);
  const collect = COLLECT.read(config.settings);
  const toggles = COLLECTOR.read(config.settings);
  let uri: string = core.connect;
  if (uri === '') {
    const found = await detectHostLive();
    uri = found.uri;
    log.info('detected host', { uri, reason: found.reason });
  }
  // --collector.disable-defaults: only the collectors enabled explicitly.
  const onlyExplicit = toggles['disable-defaults'];
  const collectors = new Set<CollectorName>(COLLECTORS.filter((c) => toggles[c] && (!onlyExplicit || config.explicit.has(`collector.${c}`))));
  log.debug('collectors', { enabled: [...collectors].join(','), disableDefaults: onlyExplicit });
  const regex = (v: string): RegExp | undefined => (v === '' ? undefined : new RegExp(v));
  const driverSettings = settingsFor(config.settings, 'xen', 'qemu', 'libvirt');

  // Validate everything that can fail on bad input before opening or binding anything.
  await checkTelemetry(config);
  const guard: WebGuard = web['config.file'] === '' ? openGuard : await loadGuard(web['config.file'], log);
  parts.push({ close: () => Promise.resolve(guard.close()) });
  await checkAdmin(config);

  const conn: Connection = await open(uri, { readOnly: true, logger: log, settings: driverSettings });
  parts.push({ close: () => conn.close() });
  log.info('connected', { uri, driver: conn.driverName, readOnly: true });

  const registry = new Registry();
  registerProcessMetrics(registry);
  const collection = new Collection(conn, {
    collectors,
    timeoutMs: parseDuration(collect.timeout),
    maxAgeMs: parseDuration(collect['max-age']),
    inactive: collect['inactive-domains'],
    include: regex(collect['domain-include']),
    exclude: regex(collect['domain-exclude']),
    logger: log.child({ component: 'collector' }),
  });

  // Failed OTLP exports, counted by the push and rendered on /metrics (virt_otel_export_failures_total).
  const otelExportFailures = new Map<string, number>();
  const server: RunningServer = await startMetricsServer({
    listenAddress: web['listen-address'],
    systemdSocket: web['systemd-socket'],
    telemetryPath: web['telemetry-path'],
    collection,
    collectors,
    registry,
    version: VERSION,
    guard,
    logger: log,
    maxRequests: web['max-requests'],
    isReady: () => true,
    connectionUri: uri,
    compat: core.compat,
    otelExportFailures,
  });
  parts.push({ close: () => server.close() });

  const admin = await startAdmin(config, uri, registry, log, driverSettings);
  if (admin !== undefined) parts.push(admin);
  const telemetry = await startTelemetry(config, collection, collectors, log, conn, otelExportFailures, registry);
  if (telemetry !== undefined) parts.push(telemetry);

  log.info('shutting down', { signal: await stopped });
  // Reverse order: stop taking scrapes first, let in-flight ones finish, then close the driver.
  for (const p of parts.reverse()) await p.close().catch((err: unknown) => log.warn('error while closing', { err }));
  log.info('stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`virt-exporter: ${String(err)}\n`);
    process.exit(1);
  },
);
