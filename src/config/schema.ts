import convict from 'convict';
import { parseDuration } from '../util/deadline.ts';
import { parseUri } from '../virt/uri.ts';
import { adminSchema } from './schema/admin.ts';
import { coreSchema } from './schema/core.ts';
import { libvirtSchema } from './schema/libvirt.ts';
import { qemuSchema } from './schema/qemu.ts';
import { telemetrySchema } from './schema/telemetry.ts';
import type { SchemaFragment, SettingSpec } from './schema/types.ts';
import { xenSchema } from './schema/xen.ts';
import { VirtError } from '../virt/errors.ts';

export const ENV_PREFIX = 'VIRT_EXPORTER_';

export function isSetting(node: SettingSpec | SchemaFragment): node is SettingSpec {
  return typeof node === 'object' && node !== null && 'doc' in node && 'default' in node && 'format' in node;
}

/** Leaves of a schema with their dotted keys, in declaration order. */
export function settingsOf(schema: SchemaFragment, prefix = ''): Array<[string, SettingSpec]> {
  const out: Array<[string, SettingSpec]> = [];
  for (const [k, node] of Object.entries(schema)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (isSetting(node)) out.push([key, node]);
    else out.push(...settingsOf(node, key));
  }
  return out;
}

export function envName(key: string): string {
  return ENV_PREFIX + key.toUpperCase().replace(/[.-]/g, '_');
}

/** The whole schema: every area's fragment, each leaf given its environment variable. */
export function fullSchema(): SchemaFragment {
  const merged: SchemaFragment = { ...coreSchema, ...qemuSchema, ...xenSchema, ...libvirtSchema, ...adminSchema, ...telemetrySchema };
  const withEnv = (node: SchemaFragment, prefix: string): SchemaFragment => {
    const out: SchemaFragment = {};
    for (const [k, child] of Object.entries(node)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      out[k] = isSetting(child) ? { ...child, env: child.env ?? envName(key) } : withEnv(child, key);
    }
    return out;
  };
  return withEnv(merged, '');
}

let formatsAdded = false;
/** Formats with messages that say what was expected. */
export function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  convict.addFormat({
    name: 'listen-address',
    validate(v: unknown) {
      const m = typeof v === 'string' ? /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)):(\d{1,5})$/.exec(v) : null;
      if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', 'must be [HOST]:PORT with a port from 0 to 65535');
    },
  });
  convict.addFormat({
    name: 'listen-addresses',
    validate(v: unknown) {
      const list = typeof v === 'string' ? v.split(',') : [];
      if (list.length === 0) throw new VirtError('VIRT_ERR_CONFIG', 'must be one or more [HOST]:PORT separated by commas');
      for (const a of list) {
        const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)):(\d{1,5})$/.exec(a.trim());
        if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', `${JSON.stringify(a)} is not [HOST]:PORT with a port from 0 to 65535`);
      }
    },
  });
  convict.addFormat({
    name: 'listen-address-or-empty',
    validate(v: unknown) {
      if (v === '') return;
      const m = typeof v === 'string' ? /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)):(\d{1,5})$/.exec(v) : null;
      if (m === null || Number(m[2]) > 65535) throw new VirtError('VIRT_ERR_CONFIG', 'must be empty or [HOST]:PORT with a port from 0 to 65535');
    },
  });
  convict.addFormat({
    name: 'url-path',
    validate(v: unknown) {
      if (typeof v !== 'string' || !/^\/[A-Za-z0-9._~\/-]*$/.test(v) || v.includes('//')) throw new VirtError('VIRT_ERR_CONFIG', 'must be an absolute URL path like /metrics');
    },
  });
  convict.addFormat({
    name: 'duration',
    validate(v: unknown) {
      const ms = parseDuration(String(v));
      if (ms <= 0 || ms > 3_600_000) throw new VirtError('VIRT_ERR_CONFIG', 'must be a duration between 1ms and 1h');
    },
  });
  convict.addFormat({
    name: 'duration-or-zero',
    validate(v: unknown) {
      const ms = parseDuration(String(v));
      if (ms > 3_600_000) throw new VirtError('VIRT_ERR_CONFIG', 'must be 0s or a duration up to 1h');
    },
  });
  convict.addFormat({
    name: 'regex',
    validate(v: unknown) {
      if (typeof v !== 'string') throw new VirtError('VIRT_ERR_CONFIG', 'must be a regular expression');
      if (v.length > 1024) throw new VirtError('VIRT_ERR_CONFIG', 'must be at most 1024 characters');
      try {
        new RegExp(v);
      } catch (err) {
        throw new VirtError('VIRT_ERR_CONFIG', `is not a valid regular expression (${(err as Error).message})`);
      }
    },
  });
  convict.addFormat({
    name: 'virt-uri',
    validate(v: unknown) {
      if (v === '') return;
      parseUri(String(v));
    },
  });
}
