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
import { QEMUD, QEMUD_ALIASES } from '../qemud-shared/settings.ts';
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
  const logger = createLogger(LOG.read(config.settings)).child({ component: 'virt-qemud' });
  // The daemon keys, read and checked by QEMUD's table (the qemu area's entries).
  const s = <K extends keyof typeof daemon>(k: K): (typeof daemon)[K] => daemon[k];
  return startDaemon({
    mode,
    runtimeDir: s('runtime-dir'),
    stateDir: s('state-dir'),
    emulator: s('emulator'),
    qmpTimeoutMs: s('qmp-timeout-ms'),
    commandTimeoutMs: s('command-timeout-ms'),
    startTimeoutMs: s('start-timeout-ms'),
    saveTimeoutMs: s('save-timeout-ms'),
    shutdownGraceSeconds: s('shutdown-grace-seconds'),
    balloonStatsIntervalSeconds: s('balloon-stats-interval-seconds'),
    vcpuRefreshSeconds: s('vcpu-refresh-seconds'),
    maxFrameBytes: s('max-frame-bytes'),
    roSocketGroup: s('ro-socket-group'),
    adminGroup: s('admin-group'),
    qemuUser: s('qemu-user'),
    imageDirs: s('image-dirs').split(',').map((d) => d.trim()).filter((d) => d !== ''),
    limits: {
      maxClients: s('max-clients'),
      maxAnonymousClients: s('max-anonymous-clients'),
      maxClientRequests: s('max-client-requests'),
      idleTimeoutMs: s('client-idle-timeout-seconds') * 1000,
      roMaxFrameBytes: s('ro-max-frame-bytes'),
      maxPendingReplyBytes: s('client-max-pending-reply-bytes'),
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
