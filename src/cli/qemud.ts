/**
 * virt-qemud: the QEMU supervisor. Usually started in the background by the
 * qemu driver; can be run by hand or by a service manager.
 *
 *   virt-qemud [--system | --session] [--idle-timeout-seconds N] [--KEY VALUE ...]
 *
 * --idle-timeout-seconds N (alias --timeout, as libvirt's daemons have):
 * exit after N seconds with no running domain and no client; the driver
 * passes it to the supervisors it starts; 0 (the default here) never exits.
 * KEY is any qemu setting (see docs/qemu.md); each also comes from the
 * environment as VIRT_EXPORTER_QEMU_KEY (upper case, dashes as underscores).
 */
import { loadSettings, settingsHelp } from '../config/load.ts';
import { LOG } from '../config/schema/log.ts';
import { startDaemon } from '../qemud/daemon.ts';
import { watchIdle } from '../qemud/idle-exit.ts';
import { DAEMON_KEYS, QEMUD, QEMUD_ALIASES, setting, type QemuSettingKey } from '../qemud-shared/settings.ts';
import { createLogger } from '../util/logger.ts';
import { isVirtError, toVirtError, VirtError } from '../virt/errors.ts';
import { VERSION } from '../version.ts';

// ps and top show the program, not "node .../qemud.js".
process.title = 'virt-qemud';

const AREAS = [QEMUD, LOG] as const;
const LOAD = { aliases: QEMUD_ALIASES, configEnv: 'VIRT_EXPORTER_QEMUD_CONFIG' };

function main(argv: string[]): Promise<void> | void {
  let config;
  try {
    config = loadSettings(argv, process.env, AREAS, LOAD);
    if (QEMUD.get(config.settings, 'system') && QEMUD.get(config.settings, 'session')) throw new VirtError('VIRT_ERR_CONFIG', '--system and --session exclude each other');
  } catch (err) {
    // One format for flag errors, as the exporter's: `virt-qemud: error: CODE: message`.
    const e = toVirtError(err);
    process.stderr.write(`virt-qemud: error: ${e.code}: ${e.message}\n`);
    process.exit(2);
  }
  if (config.help) {
    process.stdout.write(settingsHelp('virt-qemud', 'The QEMU supervisor of virt-exporter: keeps domain definitions, runs and watches QEMU.', AREAS, LOAD));
    return;
  }
  if (config.version) {
    process.stdout.write(`virt-qemud ${VERSION} (node ${process.versions.node})\n`);
    return;
  }
  const daemon = QEMUD.read(config.settings);
  const asRoot = process.getuid?.() === 0 && process.env['VIRT_EXPORTER_RUNTIME_DIR'] === undefined;
  const mode: 'system' | 'session' = daemon.system ? 'system' : daemon.session ? 'session' : asRoot ? 'system' : 'session';
  const idleSeconds = daemon['idle-timeout-seconds'];
  // The daemon keys as the qemu area's settings, which the supervisor's readers take.
  const settings: Record<string, string | number | boolean> = {};
  for (const k of DAEMON_KEYS) settings[`qemu.${k}`] = daemon[k];
  const logger = createLogger(LOG.read(config.settings)).child({ component: 'virt-qemud' });
  const s = (k: QemuSettingKey): string | number | boolean => setting(settings, k);
  return startDaemon({
    mode,
    runtimeDir: String(s('runtime-dir')),
    stateDir: String(s('state-dir')),
    emulator: String(s('emulator')),
    qmpTimeoutMs: Number(s('qmp-timeout-ms')),
    commandTimeoutMs: Number(s('command-timeout-ms')),
    startTimeoutMs: Number(s('start-timeout-ms')),
    saveTimeoutMs: Number(s('save-timeout-ms')),
    shutdownGraceSeconds: Number(s('shutdown-grace-seconds')),
    balloonStatsIntervalSeconds: Number(s('balloon-stats-interval-seconds')),
    vcpuRefreshSeconds: Number(s('vcpu-refresh-seconds')),
    maxFrameBytes: Number(s('max-frame-bytes')),
    roSocketGroup: String(s('ro-socket-group')),
    adminGroup: String(s('admin-group')),
    qemuUser: String(s('qemu-user')),
    imageDirs: String(s('image-dirs')).split(',').map((d) => d.trim()).filter((d) => d !== ''),
    limits: {
      maxClients: Number(s('max-clients')),
      maxAnonymousClients: Number(s('max-anonymous-clients')),
      maxClientRequests: Number(s('max-client-requests')),
      idleTimeoutMs: Number(s('client-idle-timeout-seconds')) * 1000,
      roMaxFrameBytes: Number(s('ro-max-frame-bytes')),
      maxPendingReplyBytes: Number(s('client-max-pending-reply-bytes')),
    },
    logger,
  }).then(
    (d) => {
      const stop = (sig: string): void => {
        logger.info('stopping; QEMU processes keep running', { signal: sig });
        d.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      watchIdle({
        seconds: idleSeconds,
        activeDomains: () => d.supervisor.listDomains({ active: true, inactive: false }).length,
        clients: () => d.server.connections,
        onIdle: () => stop('idle'),
        logger,
      });
    },
    (err: unknown) => {
      if (isVirtError(err, 'VIRT_ERR_OPERATION_INVALID')) {
        // Another instance serves this directory. The driver's auto-start
        // race loses quietly (it connects to the winner); a person is told.
        logger.error('virt-qemud not started', { reason: err.message });
        process.exit(1);
      }
      logger.error('virt-qemud failed to start', { err });
      process.exit(1);
    },
  );
}

void main(process.argv.slice(2));
