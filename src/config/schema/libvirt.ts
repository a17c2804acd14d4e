import type { SchemaFragment, SettingSpec } from './types.ts';

/**
 * Settings of the libvirt driver (libvirt+qemu://, libvirt+xen://, libvirt+test://);
 * keys are reached as settings['libvirt.KEY']. The defaults live here and in
 * LIBVIRT_DEFAULTS, which the driver applies when a key is absent.
 */
export const LIBVIRT_DEFAULTS = {
  'run-dir': '/run/libvirt',
  'connect-timeout-ms': 5000,
  'read-timeout-ms': 10_000,
  'write-timeout-ms': 120_000,
  'keepalive-interval-ms': 5000,
  'keepalive-count': 5,
  'max-message-bytes': 33_554_436,
  'shutdown-grace-seconds': 30,
  'host-refresh-seconds': 30,
  'metadata-preset': '',
  'metadata-labels': '',
} as const;

const DOCS: Record<keyof typeof LIBVIRT_DEFAULTS, string> = {
  'run-dir': 'Directory of the system libvirt daemons\' sockets (libvirt-sock-ro, virtqemud-sock-ro, ...), used when the URI has no ?socket=.',
  'connect-timeout-ms': 'Deadline in milliseconds for connecting to the libvirt daemon and its handshake (auth, keepalive, connect-open, event registration).',
  'read-timeout-ms': 'Deadline in milliseconds for one read call to the libvirt daemon (the collection deadline applies too).',
  'write-timeout-ms': 'Deadline in milliseconds for one lifecycle call (define, start, save, ...) to the libvirt daemon.',
  'keepalive-interval-ms': 'Silence in milliseconds after which a keepalive ping is sent to the libvirt daemon.',
  'keepalive-count': 'Keepalive intervals without any answer after which the connection is closed and reopened on the next call.',
  'max-message-bytes': 'Largest libvirt RPC message accepted or sent, length word included (libvirt\'s own limit is 32 MiB).',
  'shutdown-grace-seconds': 'How long shutdown waits for the guest to power off after the ACPI request before failing (or destroying it, with force).',
  'host-refresh-seconds': 'How long host facts (node info, hostname, versions, free memory) are reused before being read again; a steady-state scrape then makes one RPC.',
  'metadata-preset': 'Built-in <metadata> labels for virt_domain_info: "" (none), "nova-1.0" or "nova-1.1" (OpenStack Nova: instance_name, flavor, project_id, project_name, user_id, user_name).',
  'metadata-labels': 'More virt_domain_info labels from <metadata>: "LABEL=NAMESPACE-URI PATH[@ATTR]; ..." with PATH the slash-separated element names below <metadata>; a missing element gives an empty label.',
};

function spec(k: keyof typeof LIBVIRT_DEFAULTS): SettingSpec {
  const d = LIBVIRT_DEFAULTS[k];
  return { doc: DOCS[k], format: typeof d === 'number' ? 'nat' : String, default: d };
}

export const libvirtSchema: SchemaFragment = {
  libvirt: Object.fromEntries((Object.keys(LIBVIRT_DEFAULTS) as (keyof typeof LIBVIRT_DEFAULTS)[]).map((k) => [k, spec(k)])),
};
