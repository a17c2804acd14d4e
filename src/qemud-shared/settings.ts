/**
 * Settings of the qemu area with their defaults: one table (config/settings.ts)
 * gives the convict fragment (part of the exporter's schema, src/config/schema.ts) and the typed reader
 * that the driver (settings['qemu.KEY']) and virt-qemud (--KEY, or
 * VIRT_EXPORTER_QEMU_KEY, through the same loader) both use.
 */
import { settingsArea } from '../config/settings.ts';
import { envName } from '../config/spec.ts';

export const QEMU = settingsArea('qemu', {
  'runtime-dir': { default: '', doc: 'Directory of virt-qemud sockets, pid and runtime files; empty: /run/virt-exporter/qemu for qemu:///system, $VIRT_EXPORTER_RUNTIME_DIR (else $XDG_RUNTIME_DIR/virt-exporter, else $HOME/.cache/virt-exporter, else /tmp/virt-exporter-$UID, each checked to be the caller\'s own and mode 0700) + /qemu for qemu:///session.' },
  'state-dir': { default: '', doc: 'Directory of domain definitions and managed-save records; empty: /var/lib/virt-exporter/qemu (system) or RUNTIME-DIR/state (session).' },
  emulator: { default: '', doc: 'QEMU binary; empty: qemu-system-<arch> from PATH.' },
  'qemud-binary': { default: '', doc: 'virt-qemud executable the driver starts when no supervisor answers; empty: bin/virt-qemud of this installation.' },
  autostart: { default: true, doc: 'Start virt-qemud in the background when no supervisor answers on the socket, for read-write connections only; a read-only one (virtctl -r, list, dominfo, domstats, the collectors) only restarts a supervisor that died.' },
  'idle-timeout-seconds': { default: 120, doc: 'Seconds an auto-started virt-qemud stays up with no running domain and no client before it exits (0: never). virt-qemud run by hand or by its unit has no idle timeout unless given --idle-timeout-seconds.' },
  'connect-timeout-ms': { default: 15000, doc: 'How long the driver waits for an auto-started virt-qemud socket.' },
  'request-timeout-ms': { default: 600000, doc: 'Deadline of one lifecycle request from the driver to virt-qemud (save/restore can be long).' },
  'read-timeout-ms': { default: 10000, doc: 'Deadline of one read request (bulk stats, info) from the driver to virt-qemud.' },
  'qmp-timeout-ms': { default: 2000, doc: 'virt-qemud: deadline of one QMP command on the read path; a domain whose monitor misses it fails alone.' },
  'command-timeout-ms': { default: 15000, doc: 'virt-qemud: deadline of one QMP command in a lifecycle operation.' },
  'start-timeout-ms': { default: 60000, doc: 'virt-qemud: how long QEMU may take to start (until it daemonizes).' },
  'save-timeout-ms': { default: 600000, doc: 'virt-qemud: how long a save or restore migration may take.' },
  'shutdown-grace-seconds': { default: 30, doc: 'How long shutdown waits for the guest to power off after the ACPI button press before failing (or destroying it, with force).' },
  'balloon-stats-interval-seconds': { default: 5, doc: 'Default guest memory statistics polling interval for domains with a balloon (0 disables); a definition can override it.' },
  'vcpu-refresh-seconds': { default: 300, doc: 'virt-qemud: how often vCPU thread ids are re-read with query-cpus-fast (also whenever a thread disappears).' },
  'max-frame-bytes': { default: 16 * 1024 * 1024, doc: 'Largest driver<->virt-qemud protocol frame; a larger one closes that connection.' },
  'ro-socket-group': { default: '', doc: 'virt-qemud: group owning the read-only socket (mode 0660); empty: mode 0666 for everyone.' },
  'qemu-user': { default: '', doc: 'virt-qemud: user QEMU runs as (as libvirt\'s libvirt-qemu); its files (disks, kernel, initrd, console log) are handed to it while the domain runs and given back after; empty: for qemu:///system the first existing of virt-qemu (created by the Debian package) and libvirt-qemu, else root with a warning at every start; for qemu:///session the session\'s own user. Naming virt-qemud\'s own user (root) keeps QEMU as that user.' },
  'image-dirs': { default: '', doc: 'virt-qemud: comma-separated directories that disks, kernels, initrds and console logs of a definition must lie in (after resolving links); empty: /var/lib/virt-exporter/images for qemu:///system, RUNTIME-DIR/images for qemu:///session; / allows any file of the host. Device nodes, FIFOs and sockets are always refused.' },
  'admin-group': { default: '', doc: 'virt-qemud: group whose members may use the read-write socket besides root (and, in session mode, the daemon\'s own user); the socket is then mode 0660 with that group. Peers are identified by SO_PEERCRED.' },
  'max-clients': { default: 64, doc: 'virt-qemud: most connections on the read-write socket at once (as libvirt\'s max_clients); more are refused with VIRT_ERR_RATE_LIMITED.' },
  'max-anonymous-clients': { default: 32, doc: 'virt-qemud: most connections on the read-only socket at once (as libvirt\'s max_anonymous_clients); more are refused with VIRT_ERR_RATE_LIMITED.' },
  'max-client-requests': { default: 8, doc: 'virt-qemud: requests of one client in progress at once (as libvirt\'s max_client_requests); the connection is not read further until one finishes.' },
  'client-idle-timeout-seconds': { default: 600, doc: 'virt-qemud: a connection with no request in progress and no traffic for this long is closed (0: never); clients reconnect.' },
  'ro-max-frame-bytes': { default: 64 * 1024, doc: 'virt-qemud: largest request frame on the read-only socket (its requests are small); a larger one closes that connection.' },
  'client-max-pending-reply-bytes': { default: 4 * 1024 * 1024, doc: 'virt-qemud: reply bytes queued for a client that does not read, beyond which its connection is not read further (back-pressure).' },
});

export const QEMU_SETTINGS = QEMU.table;
export type QemuSettingKey = keyof typeof QEMU_SETTINGS;

/** Settings passed on to an auto-started virt-qemud as --KEY VALUE. */
export const DAEMON_KEYS = [
  'runtime-dir',
  'state-dir',
  'emulator',
  'qmp-timeout-ms',
  'command-timeout-ms',
  'start-timeout-ms',
  'save-timeout-ms',
  'shutdown-grace-seconds',
  'balloon-stats-interval-seconds',
  'vcpu-refresh-seconds',
  'max-frame-bytes',
  'ro-socket-group',
  'qemu-user',
  'image-dirs',
  'admin-group',
  'max-clients',
  'max-anonymous-clients',
  'max-client-requests',
  'client-idle-timeout-seconds',
  'ro-max-frame-bytes',
  'client-max-pending-reply-bytes',
] as const satisfies readonly QemuSettingKey[];

type DaemonKey = (typeof DAEMON_KEYS)[number];

function daemonKeys(): { [K in DaemonKey]: (typeof QEMU_SETTINGS)[K] & { readonly env: string } } {
  // As --KEY on virt-qemud's command line, VIRT_EXPORTER_QEMU_KEY in the environment: the names the driver and the unit use.
  return Object.fromEntries(DAEMON_KEYS.map((k) => [k, { ...QEMU_SETTINGS[k], env: envName(`qemu.${k}`) }])) as { [K in DaemonKey]: (typeof QEMU_SETTINGS)[K] & { readonly env: string } };
}

/** virt-qemud's own command line (through the exporter's loader): its instance, its idle exit and the daemon keys. */
export const QEMUD = settingsArea('', {
  system: { doc: 'Serve the system instance (the default as root, unless VIRT_EXPORTER_RUNTIME_DIR is set).', format: Boolean, default: false },
  session: { doc: 'Serve the calling user\'s session instance (the default for other users).', format: Boolean, default: false },
  'idle-timeout-seconds': { doc: 'Exit after this many seconds with no running domain and no client (0: never; the driver passes its own for the supervisors it starts).', default: 0, env: envName('qemud.idle-timeout-seconds') },
  ...daemonKeys(),
});

/** virt-qemud's other flag names, as libvirt's daemons have. */
export const QEMUD_ALIASES: Readonly<Record<string, string>> = { timeout: 'idle-timeout-seconds' };
