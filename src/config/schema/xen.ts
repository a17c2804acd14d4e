import { settingsArea } from '../settings.ts';

/**
 * Settings of the xen area; keys are reached as settings['xen.KEY'] by the
 * driver (src/drivers/xen/settings.ts reads them through XEN.read). Deadlines
 * and sizes must be at least 1.
 */
export const XEN = settingsArea('xen', {
  // virt-proxy (native helper) settings, used by the hypervisor and proxy sub-drivers.
  'proxy-binary': { doc: 'Path of the virt-proxy helper run as a child (--stdio) when the exporter is root; relative paths are taken from the project directory.', default: 'native/build/virt-proxy' },
  'proxy-socket': { doc: 'Unix socket of a virt-proxy daemon (virt-proxy --socket), used when the exporter is not root.', default: '/run/virt-exporter/virt-proxy.sock' },
  xenctrl: { doc: 'Xen control library virt-proxy loads at run time (passed as --xenctrl); empty means the system libxenctrl.', default: '' },
  'proxy-timeout-ms': { doc: 'Deadline in milliseconds for one virt-proxy request (and for starting or connecting to it).', min: 1, default: 5000 },
  // XenStore, Xend and privilege settings, used by the xend/xenstore sub-drivers and the unified driver.
  'xenstore-socket': { doc: 'XenStore daemon socket. Empty: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket (as libxenstore).', default: '' },
  'xend-address': { doc: 'Xend server: an absolute unix socket path or http://HOST:PORT/. Empty: /var/lib/xend/xend-socket, then http://localhost:8000/ (as libvirt).', default: '' },
  timeout: { doc: 'Deadline in milliseconds for one Xend or XenStore request (and for connecting).', min: 1, default: 5000 },
  'xend-op-timeout': { doc: 'Deadline in milliseconds for Xend operations that move a whole domain (save, restore, create, start).', min: 1, default: 600000 },
  'xend-max-response-bytes': { doc: 'Largest Xend reply accepted, in bytes; bigger or truncated replies are errors.', min: 1, default: 4194304 },
  privileged: { doc: 'Which Xen sub-drivers to open: root (hypervisor via virt-proxy --stdio, Xend, XenStore), user (virt-proxy socket, read-only XenStore, Xend read-only if reachable), or auto (root when running as uid 0).', format: ['auto', 'root', 'user'], default: 'auto' },
  'sysfs-root': { doc: 'Root of sysfs where virt-proxy reads vbd statistics (xen-backend devices), passed as --sysfs-root.', default: '/sys' },
  'xl-binary': { doc: 'The xl toolstack binary the libxl sub-driver runs (Xen >= 4.5, when Xend does not answer).', default: 'xl' },
  'xl-channel': { doc: 'Unix socket of an xl channel (a relay running xl as root in dom0, as the Xen lab has); empty: run xl-binary locally. Setting it lets this exporter change domains through xl whatever its own uid.', default: '' },
  'libxl-config-dir': { doc: 'Configuration store of the libxl sub-driver: the xl configurations of defined domains (shut off ones are listed from here).', default: '/var/lib/virt-exporter/libxl' },
  'retry-ms': { doc: 'First wait in milliseconds before a Xen backend (virt-proxy, Xend, XenStore, xl) that failed to open or dropped is tried again; it doubles on each further failure, up to 60 s.', min: 1, default: 1000 },
  'inactive-timeout-ms': { doc: 'Deadline in milliseconds of the shut-off managed domains part of a bulk read; when missed, the running domains are still reported, with an error for the rest. Keep it below collection.timeout.', min: 1, default: 2000 },
  'proc-net-dev': { doc: 'File virt-proxy reads vif counters from, passed as --proc-net-dev.', default: '/proc/net/dev' },
});
