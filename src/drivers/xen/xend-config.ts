/**
 * Domain definitions for Xend's op=new / op=create: either a ready
 * (vm ...) S-expression string, or a JSON definition in the test driver's
 * shape ({name, uuid?, memoryMiB, maxMemoryMiB?, vcpus, osType?, kernel?,
 * disks?: [{target, path, readonly?}], nics?: [{mac?, bridge?}]}).
 * Every bad field is named in the error.
 */
import { VirtError } from '../../virt/errors.ts';
import { isList, parseSexpr, type Sexpr } from './sexpr.ts';

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DEV_RE = /^(xvd|hd|sd)[a-z]{1,2}$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const BRIDGE_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const KNOWN = new Set(['name', 'uuid', 'memoryMiB', 'maxMemoryMiB', 'vcpus', 'osType', 'kernel', 'ramdisk', 'cmdline', 'disks', 'nics', 'state', 'maxVcpus', 'arch', 'machine', 'autostart', 'load', 'balloon']);

function bad(field: string, why: string): never {
  throw new VirtError('VIRT_ERR_XML_ERROR', `invalid Xen domain definition: ${field} ${why}`, { driver: 'xen/xend' });
}

function str(o: Record<string, unknown>, k: string, re: RegExp, what: string, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined) {
    if (required) bad(k, 'is required');
    return undefined;
  }
  if (typeof v !== 'string' || !re.test(v)) bad(k, `must be ${what}, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

function int(o: Record<string, unknown>, k: string, min: number, max: number, required: boolean): number | undefined {
  const v = o[k];
  if (v === undefined) {
    if (required) bad(k, 'is required');
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(k, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'must be an object');
  return v as Record<string, unknown>;
}

export function definitionToConfig(definition: unknown): Sexpr {
  if (typeof definition === 'string') {
    let sx: Sexpr;
    try {
      sx = parseSexpr(definition, { maxLength: 64 * 1024 });
    } catch (err) {
      throw new VirtError('VIRT_ERR_XML_ERROR', `invalid Xen domain definition: ${(err as Error).message}`, { driver: 'xen/xend', cause: err });
    }
    if (!isList(sx) || sx[0] !== 'vm') bad('S-expression', 'must be a (vm ...) list');
    return sx;
  }
  const o = record(definition, 'definition');
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) bad(k, 'is not a known field');
  const name = str(o, 'name', NAME_RE, 'a domain name (letters, digits, _ . -, at most 64)', true) as string;
  const uuid = str(o, 'uuid', UUID_RE, 'a UUID', false);
  const memory = int(o, 'memoryMiB', 1, 16 << 20, true) as number;
  const maxmem = int(o, 'maxMemoryMiB', memory, 16 << 20, false) ?? memory;
  const vcpus = int(o, 'vcpus', 1, 4096, true) as number;
  const osType = o.osType ?? 'linux';
  if (osType !== 'linux' && osType !== 'hvm' && osType !== 'xen') bad('osType', `must be "linux" or "hvm", got ${JSON.stringify(osType)}`);
  const vm: Sexpr[] = ['vm', ['name', name]];
  if (uuid !== undefined) vm.push(['uuid', uuid.toLowerCase()]);
  vm.push(['memory', String(memory)], ['maxmem', String(maxmem)], ['vcpus', String(vcpus)]);
  const pathRe = /^\/[^\0\n]{0,1023}$/;
  if (osType === 'hvm') {
    vm.push(['image', ['hvm', ['kernel', '/usr/lib/xen/boot/hvmloader']]]);
  } else {
    const linux: Sexpr[] = ['linux'];
    const kernel = str(o, 'kernel', pathRe, 'an absolute path', false);
    const ramdisk = str(o, 'ramdisk', pathRe, 'an absolute path', false);
    const cmdline = str(o, 'cmdline', /^[^\0\n]{0,1024}$/, 'a command line', false);
    if (kernel !== undefined) linux.push(['kernel', kernel]);
    if (ramdisk !== undefined) linux.push(['ramdisk', ramdisk]);
    if (cmdline !== undefined) linux.push(['args', cmdline]);
    vm.push(['image', linux]);
  }
  const disks = o.disks ?? [];
  if (!Array.isArray(disks) || disks.length > 64) bad('disks', 'must be an array of at most 64 disks');
  (disks as unknown[]).forEach((d, i) => {
    const r = record(d, `disks[${i}]`);
    const target = str(r, 'target', DEV_RE, 'a Xen disk name like xvda', true) as string;
    const path = str(r, 'path', pathRe, 'an absolute path', true) as string;
    const ro = r.readonly === true;
    const uname = path.startsWith('/dev/') ? `phy:${path}` : `file:${path}`;
    vm.push(['device', ['vbd', ['dev', target], ['uname', uname], ['mode', ro ? 'r' : 'w']]]);
  });
  const nics = o.nics ?? [];
  if (!Array.isArray(nics) || nics.length > 64) bad('nics', 'must be an array of at most 64 interfaces');
  (nics as unknown[]).forEach((n, i) => {
    const r = record(n, `nics[${i}]`);
    const vif: Sexpr[] = ['vif'];
    const mac = str(r, 'mac', MAC_RE, 'a MAC address', false);
    const bridge = str(r, 'bridge', BRIDGE_RE, 'a bridge name', false);
    if (mac !== undefined) vif.push(['mac', mac.toLowerCase()]);
    vif.push(['bridge', bridge ?? 'xenbr0']);
    vm.push(['device', vif]);
  });
  return vm;
}
