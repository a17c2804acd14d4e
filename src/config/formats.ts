/**
 * The named formats of settings (convict formats): each throws an Error
 * saying what was expected. The schema registers them with convict; the typed
 * readers (config/settings.ts) apply the same checks.
 */
import { parseDuration } from '../util/deadline.ts';
import { VirtError } from '../virt/errors.ts';
import { parseUri } from '../virt/uri.ts';

const ADDRESS = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)):(\d{1,5})$/;

export const FORMATS: Readonly<Record<string, (v: unknown) => void>> = {
  'listen-address': (v: unknown): void => {
    const m = typeof v === 'string' ? ADDRESS.exec(v) : null;
    if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', 'must be [HOST]:PORT with a port from 0 to 65535');
  },
  'listen-addresses': (v: unknown): void => {
    const list = typeof v === 'string' ? v.split(',') : [];
    if (list.length === 0) throw new VirtError('VIRT_ERR_CONFIG', 'must be one or more [HOST]:PORT separated by commas');
    for (const a of list) {
      const m = ADDRESS.exec(a.trim());
      if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', `${JSON.stringify(a)} is not [HOST]:PORT with a port from 0 to 65535`);
    }
  },
  'listen-address-or-empty': (v: unknown): void => {
    if (v === '') return;
    const m = typeof v === 'string' ? ADDRESS.exec(v) : null;
    if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', 'must be empty or [HOST]:PORT with a port from 0 to 65535');
  },
  'url-path': (v: unknown): void => {
    if (typeof v !== 'string' || !/^\/[A-Za-z0-9._~\/-]*$/.test(v) || v.includes('//')) throw new VirtError('VIRT_ERR_CONFIG', 'must be an absolute URL path like /metrics');
  },
  'duration': (v: unknown): void => {
    const ms = parseDuration(String(v));
    if (ms <= 0 || ms > 3_600_000) throw new VirtError('VIRT_ERR_CONFIG', 'must be a duration between 1ms and 1h');
  },
  'duration-or-zero': (v: unknown): void => {
    const ms = parseDuration(String(v));
    if (ms > 3_600_000) throw new VirtError('VIRT_ERR_CONFIG', 'must be 0s or a duration up to 1h');
  },
  'regex': (v: unknown): void => {
    if (typeof v !== 'string') throw new VirtError('VIRT_ERR_CONFIG', 'must be a regular expression');
    if (v.length > 1024) throw new VirtError('VIRT_ERR_CONFIG', 'must be at most 1024 characters');
    try {
      new RegExp(v);
    } catch (err) {
      throw new VirtError('VIRT_ERR_CONFIG', `is not a valid regular expression (${(err as Error).message})`);
    }
  },
  'virt-uri': (v: unknown): void => {
    if (v === '') return;
    parseUri(String(v));
  },
};
