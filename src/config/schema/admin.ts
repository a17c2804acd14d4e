import { settingsArea } from '../settings.ts';

/**
 * Settings of the admin area; keys are reached as settings['admin.KEY'] by the
 * admin server, through ADMIN.get. Secrets (token digests, TLS material, role
 * mappings) live in the admin config file, never in flags or the environment.
 */
export const ADMIN = settingsArea('admin', {
  'listen-address': { doc: 'Address (host:port) of the admin API listener. Empty (the default) keeps the admin endpoint off. Never the metrics port.', format: 'listen-address-or-empty', default: '' },
  'config.file': { doc: 'Admin configuration file (YAML): TLS material, token digests and client-certificate mappings to roles, rate limit, audit log, save directory. Required when the admin listener is on.', default: '' },
  'insecure-loopback': { doc: 'Allow the admin listener without TLS, only on a loopback address (127.0.0.0/8, ::1). Tokens then travel in clear text on the host.', default: false },
  'max-body-bytes': { doc: 'Largest request body the admin API accepts, in bytes.', default: 65536 },
  'max-header-bytes': { doc: 'Largest request header block the admin API accepts, in bytes.', default: 16384 },
  'request-timeout-ms': { doc: 'Time a client has to send a complete admin request, in milliseconds.', default: 30000 },
  'headers-timeout-ms': { doc: 'Time a client has to send the request headers, in milliseconds.', default: 10000 },
  'max-connections': { doc: 'Most simultaneous connections to the admin listener.', default: 64 },
  'max-unauthenticated-connections': { doc: 'Most simultaneous admin connections that have not yet carried an authenticated request; more are closed at once, so authenticated clients still get in.', default: 16 },
  'unauthenticated-timeout-ms': { doc: 'Time a new admin connection has to complete an authenticated request before it is closed, in milliseconds.', default: 5000 },
});
