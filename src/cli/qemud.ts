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
import { startDaemon } from '../qemud/daemon.ts';
import { watchIdle } from '../qemud/idle-exit.ts';
import { DAEMON_KEYS, QEMU_SETTINGS, setting, type QemuSettingKey } from '../qemud-shared/settings.ts';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../util/logger.ts';
import { isVirtError } from '../virt/errors.ts';
import { VERSION } from '../version.ts';

// ps and top show the program, not "node .../qemud.js".
process.title = 'virt-qemud';

function usage(): string {
  const lines = [
    'usage: virt-qemud [--system|--session] [--idle-timeout-seconds N] [--log.level L] [--log.format F] [--KEY VALUE ...]',
    '',
    'The QEMU supervisor of virt-exporter: keeps domain definitions, runs and watches QEMU.',
    '',
    '  --system, --session         which instance (default: --system as root, else --session)',
    '  --idle-timeout-seconds N    exit after N s with no running domain and no client (alias --timeout; default 0: never)',
    '  --log.level L               ' + LOG_LEVELS.join(', ') + ' (default info)',
    '  --log.format F              ' + LOG_FORMATS.join(', ') + ' (default logfmt)',
    '  --help, --version',
    '',
    'KEY:',
  ];
  for (const k of DAEMON_KEYS) lines.push(`  --${k}  ${QEMU_SETTINGS[k].doc} (default ${JSON.stringify(QEMU_SETTINGS[k].default)})`);
  return lines.join('\n') + '\n';
}

function fail(msg: string): never {
  process.stderr.write(`virt-qemud: ${msg}\n`);
  process.exit(2);
}

function main(argv: string[]): Promise<void> | void {
  const settings: Record<string, string | number | boolean | undefined> = {};
  for (const k of DAEMON_KEYS) {
    const env = process.env[`VIRT_EXPORTER_QEMU_${k.toUpperCase().replaceAll('-', '_')}`];
    if (env !== undefined && env !== '') settings[`qemu.${k}`] = env;
  }
  let mode: 'system' | 'session' = process.getuid?.() === 0 && process.env['VIRT_EXPORTER_RUNTIME_DIR'] === undefined ? 'system' : 'session';
  let level: LogLevel = 'info';
  let format: LogFormat = 'logfmt';
  let idleSeconds = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) fail(`${flag} needs a value`);
      return v;
    };
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(usage());
      return;
    } else if (flag === '--version') {
      process.stdout.write(`virt-qemud ${VERSION} (node ${process.versions.node})\n`);
      return;
    } else if (flag === '--idle-timeout-seconds' || flag === '--timeout') {
      const v = value();
      if (!/^\d+$/.test(v)) fail(`${flag} must be a whole number of seconds, got ${JSON.stringify(v)}`);
      idleSeconds = Number(v);
    } else if (flag === '--system') mode = 'system';
    else if (flag === '--session') mode = 'session';
    else if (flag === '--log.level') {
      const v = value();
      if (!(LOG_LEVELS as readonly string[]).includes(v)) fail(`--log.level must be one of ${LOG_LEVELS.join(', ')}`);
      level = v as LogLevel;
    } else if (flag === '--log.format') {
      const v = value();
      if (!(LOG_FORMATS as readonly string[]).includes(v)) fail(`--log.format must be one of ${LOG_FORMATS.join(', ')}`);
      format = v as LogFormat;
    } else if (flag.startsWith('--') && (DAEMON_KEYS as readonly string[]).includes(flag.slice(2))) {
      const key = flag.slice(2) as QemuSettingKey;
      const v = value();
      if (typeof QEMU_SETTINGS[key].default === 'number' && !/^\d+$/.test(v)) fail(`${flag} must be a non-negative integer, got ${JSON.stringify(v)}`);
      settings[`qemu.${key}`] = v;
    } else fail(`unknown argument ${JSON.stringify(a)} (see virt-qemud --help)`);
  }
  const logger = createLogger({ level, format }).child({ component: 'virt-qemud' });
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
