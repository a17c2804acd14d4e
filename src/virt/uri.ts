import { isAbsolute } from 'node:path';
import { VirtError } from './errors.ts';

export type DriverScheme = 'test' | 'xen' | 'qemu' | 'libvirt';

/** Hypervisor drivers reached through a libvirt daemon (libvirt+HV:///PATH). */
export const LIBVIRT_HYPERVISORS = ['qemu', 'xen', 'test'] as const;
export type LibvirtHypervisor = (typeof LIBVIRT_HYPERVISORS)[number];

export interface VirtUri {
  /** The URI as given (trimmed). */
  readonly text: string;
  readonly scheme: DriverScheme;
  /** "/default", "/system", "/session", "/" or an absolute host-file path. */
  readonly path: string;
  /** For scheme "libvirt": the daemon's hypervisor driver and an explicit socket (?socket=PATH). */
  readonly libvirt?: { readonly hypervisor: LibvirtHypervisor; readonly socket?: string };
}

export const ACCEPTED_URIS = [
  'test:///default',
  'test:///ABSOLUTE/PATH/host.json',
  'xen:///',
  'qemu:///system',
  'qemu:///session',
  'libvirt+qemu:///system[?socket=PATH]',
  'libvirt+qemu:///session[?socket=PATH]',
  'libvirt+xen:///system[?socket=PATH]',
  'libvirt+test:///default[?socket=PATH]',
] as const;

function invalid(text: string, reason: string): VirtError {
  return new VirtError(
    'VIRT_ERR_INVALID_URI',
    `invalid connection URI ${JSON.stringify(text)}: ${reason}; accepted forms: ${ACCEPTED_URIS.join(', ')}`,
  );
}

/** Parses and checks a connection URI; every refusal names the accepted forms. */
export function parseUri(input: string): VirtUri {
  const text = input.trim();
  if (text === '') throw invalid(input, 'empty');
  if (text.length > 4096) throw invalid(text.slice(0, 64) + '...', 'longer than 4096 characters');
  if (/[\u0000-\u001f\u007f]/.test(text)) throw invalid(text, 'contains control characters');
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/i.exec(text);
  if (m === null) throw invalid(text, 'not of the form SCHEME:///PATH');
  const [, rawScheme = '', host = '', path = '/', query, fragment] = m;
  const scheme = rawScheme.toLowerCase();
  if (host !== '') throw invalid(text, `remote host ${JSON.stringify(host)} is not supported; run one exporter per host`);
  if (scheme.startsWith('libvirt+')) return parseLibvirtUri(text, scheme.slice('libvirt+'.length), path, query, fragment);
  if (query !== undefined || fragment !== undefined) throw invalid(text, 'query strings and fragments are not supported');
  switch (scheme) {
    case 'test': {
      if (path === '/default') return { text, scheme, path };
      let file: string;
      try {
        file = decodeURIComponent(path);
      } catch {
        throw invalid(text, 'the path has a malformed %-escape');
      }
      if (!isAbsolute(file) || !file.endsWith('.json')) {
        throw invalid(text, 'the test driver takes /default or an absolute path to a .json host file');
      }
      if (file.split('/').includes('..')) throw invalid(text, 'host file path must not contain ".."');
      return { text, scheme, path: file };
    }
    case 'xen':
      if (path === '/' || path === '/system') return { text, scheme, path: '/' };
      throw invalid(text, 'the xen driver takes only xen:///');
    case 'qemu':
      if (path === '/system' || path === '/session') return { text, scheme, path };
      throw invalid(text, 'the qemu driver takes /system or /session');
    default:
      throw invalid(text, `unknown driver ${JSON.stringify(scheme)}`);
  }
}

function parseLibvirtUri(text: string, hv: string, path: string, query: string | undefined, fragment: string | undefined): VirtUri {
  if (fragment !== undefined) throw invalid(text, 'fragments are not supported');
  if (!(LIBVIRT_HYPERVISORS as readonly string[]).includes(hv)) throw invalid(text, `libvirt hypervisor driver ${JSON.stringify(hv)} is not one of ${LIBVIRT_HYPERVISORS.join(', ')}`);
  const hypervisor = hv as LibvirtHypervisor;
  const paths: Record<LibvirtHypervisor, readonly string[]> = { qemu: ['/system', '/session'], xen: ['/system'], test: ['/default'] };
  if (!paths[hypervisor].includes(path)) throw invalid(text, `libvirt+${hypervisor} takes ${paths[hypervisor].join(' or ')}`);
  let socket: string | undefined;
  if (query !== undefined) {
    const params = new URLSearchParams(query.slice(1));
    for (const k of params.keys()) if (k !== 'socket') throw invalid(text, `unknown parameter ${JSON.stringify(k)}; only socket=PATH is accepted`);
    const all = params.getAll('socket');
    if (all.length > 1) throw invalid(text, 'socket given more than once');
    socket = all[0];
    if (socket !== undefined && (!isAbsolute(socket) || socket.split('/').includes('..'))) throw invalid(text, 'socket must be an absolute path without ".."');
  }
  return { text, scheme: 'libvirt', path, libvirt: socket === undefined ? { hypervisor } : { hypervisor, socket } };
}
