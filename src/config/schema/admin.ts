import type { SchemaFragment } from './types.ts';

/**
 * Settings of the admin area; keys are reached as settings['admin.KEY'] by the
 * admin server. Secrets (token digests, TLS material, role mappings) live in
 * the admin config file, never in flags or the environment.
 */
export const adminSchema: SchemaFragment = {
  admin: {
    'listen-address': {
      doc: 'Address (host:port) of the admin API listener. Empty (the default) keeps the admin endpoint off. Never the metrics port.',
      format: 'listen-address-or-empty',
      default: '',
    },
    config: {
      file: {
        doc: 'Admin configuration file (YAML): TLS material, token digests and client-certificate mappings to roles, rate limit, audit log, save directory. Required when the admin listener is on.',
        format: String,
        default: '',
      },
    },
    'insecure-loopback': {
      doc: 'Allow the admin listener without TLS, only on a loopback address (127.0.0.0/8, ::1). Tokens then travel in clear text on the host.',
      format: Boolean,
      default: false,
    },
    'max-body-bytes': {
      doc: 'Largest request body the admin API accepts, in bytes.',
      format: 'nat',
      default: 65536,
    },
    'max-header-bytes': {
      doc: 'Largest request header block the admin API accepts, in bytes.',
      format: 'nat',
      default: 16384,
    },
    'request-timeout-ms': {
      doc: 'Time a client has to send a complete admin request, in milliseconds.',
      format: 'nat',
      default: 30000,
    },
    'headers-timeout-ms': {
      doc: 'Time a client has to send the request headers, in milliseconds.',
      format: 'nat',
      default: 10000,
    },
    'max-connections': {
      doc: 'Most simultaneous connections to the admin listener.',
      format: 'nat',
      default: 64,
    },
    'max-unauthenticated-connections': {
      doc: 'Most simultaneous admin connections that have not yet carried an authenticated request; more are closed at once, so authenticated clients still get in.',
      format: 'nat',
      default: 16,
    },
    'unauthenticated-timeout-ms': {
      doc: 'Time a new admin connection has to complete an authenticated request before it is closed, in milliseconds.',
      format: 'nat',
      default: 5000,
    },
  },
};

export interface AdminSettingValues {
  'admin.listen-address': string;
  'admin.config.file': string;
  'admin.insecure-loopback': boolean;
  'admin.max-body-bytes': number;
  'admin.max-header-bytes': number;
  'admin.request-timeout-ms': number;
  'admin.headers-timeout-ms': number;
  'admin.max-connections': number;
  'admin.max-unauthenticated-connections': number;
  'admin.unauthenticated-timeout-ms': number;
}

/** Defaults applied when a key is absent from the flattened settings. */
export const ADMIN_DEFAULTS: Readonly<AdminSettingValues> = {
  'admin.listen-address': '',
  'admin.config.file': '',
  'admin.insecure-loopback': false,
  'admin.max-body-bytes': 65536,
  'admin.max-header-bytes': 16384,
  'admin.request-timeout-ms': 30000,
  'admin.headers-timeout-ms': 10000,
  'admin.max-connections': 64,
  'admin.max-unauthenticated-connections': 16,
  'admin.unauthenticated-timeout-ms': 5000,
};
