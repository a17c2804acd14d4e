import { settingsArea } from '../settings.ts';

/**
 * Settings of the libvirt driver (libvirt+qemu://, libvirt+xen://, libvirt+test://);
 * keys are reached as settings['libvirt.KEY'], through LIBVIRT.get.
 */
export const LIBVIRT = settingsArea('libvirt', {
  'run-dir': { doc: 'Directory of the system libvirt daemons\' sockets (libvirt-sock-ro, virtqemud-sock-ro, ...), used when the URI has no ?socket=.', default: '/run/libvirt' },
  'connect-timeout-ms': { doc: 'Deadline in milliseconds for connecting to the libvirt daemon and its handshake (auth, keepalive, connect-open, event registration).', default: 5000 },
  'read-timeout-ms': { doc: 'Deadline in milliseconds for one read call to the libvirt daemon (the collection deadline applies too).', default: 10_000 },
  'write-timeout-ms': { doc: 'Deadline in milliseconds for one lifecycle call (define, start, save, ...) to the libvirt daemon.', default: 120_000 },
  'keepalive-interval-ms': { doc: 'Silence in milliseconds after which a keepalive ping is sent to the libvirt daemon.', default: 5000 },
  'keepalive-count': { doc: 'Keepalive intervals without any answer after which the connection is closed and reopened on the next call.', default: 5 },
  'max-message-bytes': { doc: 'Largest libvirt RPC message accepted or sent, length word included (libvirt\'s own limit is 32 MiB).', default: 33_554_436 },
  'shutdown-grace-seconds': { doc: 'How long shutdown waits for the guest to power off after the ACPI request before failing (or destroying it, with force).', default: 30 },
  'host-refresh-seconds': { doc: 'How long host facts (node info, hostname, versions, free memory) are reused before being read again; a steady-state scrape then makes one RPC.', default: 30 },
  'metadata-preset': { doc: 'Built-in <metadata> labels for virt_domain_info: "" (none), "nova-1.0" or "nova-1.1" (OpenStack Nova: instance_name, flavor, project_id, project_name, user_id, user_name).', default: '' },
  'metadata-labels': { doc: 'More virt_domain_info labels from <metadata>: "LABEL=NAMESPACE-URI PATH[@ATTR]; ..." with PATH the slash-separated element names below <metadata>; a missing element gives an empty label.', default: '' },
});

