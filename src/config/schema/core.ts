import { COLLECTORS, type CollectorName } from '../../collectors/catalogue.ts';
import { COMPAT_SETS } from '../../collectors/compat.ts';
import { defaultOn } from '../../collectors/index.ts';
import { settingsArea, type SettingDef } from '../settings.ts';

type Toggle = SettingDef & { readonly default: boolean };
const collectorToggles = {} as Record<CollectorName | 'disable-defaults', Toggle>;
for (const name of COLLECTORS) {
  collectorToggles[name] = { doc: `Enable the ${name} collector (--no-collector.${name} disables it).`, format: Boolean, default: defaultOn(name) };
}
collectorToggles['disable-defaults'] = {
  doc: 'Turn every collector off except those enabled explicitly (--collector.NAME, its environment variable or config key), as node_exporter does.',
  format: Boolean,
  default: false,
};

/** Settings of the exporter itself: connection, web listener, collection, logging. */
export const CORE = settingsArea('', {
  connect: {
    doc: 'Connection URI (test:///default, test:///PATH.json, xen:///, qemu:///system, qemu:///session, libvirt+qemu:///system[?socket=PATH], libvirt+xen:///system, libvirt+test:///default); empty detects the host.',
    format: 'virt-uri',
    default: '',
  },
  compat: {
    doc: 'Also serve the metrics under another exporter\'s names, for its dashboards and alerts (libvirt-exporter), or nothing (empty).',
    format: [...COMPAT_SETS],
    default: '',
  },
});

export const WEB = settingsArea('web', {
  'listen-address': {
    doc: 'Address to listen on for /metrics, as [HOST]:PORT; repeat the flag (or separate with commas) to listen on several.',
    format: 'listen-addresses',
    default: ':9477',
    repeatable: true,
  },
  'systemd-socket': {
    doc: 'Serve on the sockets systemd passes (socket activation, LISTEN_FDS) instead of --web.listen-address.',
    format: Boolean,
    default: false,
  },
  'telemetry-path': { doc: 'Path under which metrics are served.', format: 'url-path', default: '/metrics' },
  'config.file': {
    doc: 'Path to a web configuration file (exporter-toolkit format) for TLS and basic auth on the metrics listener.',
    default: '',
  },
  'max-requests': { doc: 'Maximum concurrent scrape requests; more get 503 (0 = unlimited).', default: 40 },
});

export const COLLECTOR = settingsArea('collector', collectorToggles);

export const COLLECT = settingsArea('collect', {
  timeout: { doc: 'Deadline of one collection (e.g. 500ms, 5s, 1m; a bare number is seconds); parts that miss it report collector_success 0.', format: 'duration', default: '5s' },
  'max-age': {
    doc: 'Scrapes that arrive within this time after a collection finished are served that collection (for many concurrent scrapers); 0 collects afresh for every scrape that cannot join one in flight.',
    format: 'duration-or-zero',
    default: '0s',
  },
  'inactive-domains': { doc: 'Report shut-off (defined but inactive) domains too.', format: Boolean, default: true },
  'domain-include': { doc: 'Regular expression; only domains whose name matches are reported (empty = all).', format: 'regex', default: '' },
  'domain-exclude': { doc: 'Regular expression; domains whose name matches are not reported (empty = none).', format: 'regex', default: '' },
});
