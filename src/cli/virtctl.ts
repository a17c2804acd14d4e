import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadConfig, settingsFor } from '../config/load.ts';
import { STATS_GROUPS, type DomainStats } from '../drivers/types.ts';
import { open, type Connection } from '../virt/connection.ts';
import { detectHost } from '../virt/detect.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { VERSION } from '../version.ts';

const USAGE = `usage: virtctl [--connect URI] [--json] [--readonly] COMMAND [ARGS]

A virsh-like command line over virt-exporter's drivers.

Commands:
  list [--all]              running (and with --all, shut-off) domains
  dominfo DOMAIN            state, memory, vCPUs and CPU time of a domain
  domstats [DOMAIN]         every reading the collectors see (all domains or one)
  define FILE               define a domain from a JSON definition
  undefine DOMAIN           remove a shut-off domain's definition
  start DOMAIN              boot a shut-off domain
  shutdown DOMAIN [--force] ask the guest to power off (--force: destroy after the grace period)
  reboot DOMAIN             ask the guest to reboot
  destroy DOMAIN            power off at once
  suspend DOMAIN            pause the vCPUs
  resume DOMAIN             unpause the vCPUs
  save DOMAIN FILE          save the state to FILE and stop the domain
  restore FILE              bring a saved domain back in its saved state

Options:
  -c, --connect URI   test:///default, test:///PATH.json, xen:///, qemu:///system, qemu:///session
                      (default: $VIRT_EXPORTER_CONNECT, else detected)
  --json              machine-readable output
  -r, --readonly      open the connection read-only
  --xen.KEY=V, --qemu.KEY=V, --config FILE   driver settings, as for virt-exporter
  --help, --version

DOMAIN is a name, UUID or id. Errors print their stable code (VIRT_ERR_...) and
exit non-zero (see docs/errors.md).
`;

const WRITE_COMMANDS = new Set(['define', 'undefine', 'start', 'shutdown', 'reboot', 'destroy', 'suspend', 'resume', 'save', 'restore']);
const ARITY: Record<string, [number, number]> = {
  list: [0, 0], dominfo: [1, 1], domstats: [0, 1], define: [1, 1], undefine: [1, 1], start: [1, 1], shutdown: [1, 1],
  reboot: [1, 1], destroy: [1, 1], suspend: [1, 1], resume: [1, 1], save: [2, 2], restore: [1, 1],
};

interface Invocation {
  uri: string | undefined;
  json: boolean;
  readOnly: boolean;
  all: boolean;
  force: boolean;
  command: string;
  args: string[];
  settingFlags: string[];
}

function usageError(message: string): VirtError {
  return new VirtError('VIRT_ERR_INVALID_ARG', `${message}\n\n${USAGE}`);
}

function parse(argv: string[]): Invocation | 'help' | 'version' {
  const inv: Invocation = { uri: undefined, json: false, readOnly: false, all: false, force: false, command: '', args: [], settingFlags: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--version') return 'version';
    if (a === '--json') inv.json = true;
    else if (a === '--readonly' || a === '-r') inv.readOnly = true;
    else if (a === '--all') inv.all = true;
    else if (a === '--force') inv.force = true;
    else if (a === '--connect' || a === '-c') {
      inv.uri = argv[++i];
      if (inv.uri === undefined) throw usageError('--connect needs a URI');
    } else if (a.startsWith('--connect=')) inv.uri = a.slice('--connect='.length);
    else if (/^--(xen|qemu)\./.test(a) || a === '--config' || a.startsWith('--config=')) {
      inv.settingFlags.push(a);
      if (!a.includes('=') && argv[i + 1] !== undefined && !(argv[i + 1] ?? '').startsWith('--')) inv.settingFlags.push(argv[++i] ?? '');
    } else if (a.startsWith('-') && a !== '-') throw usageError(`unknown option ${a}`);
    else if (inv.command === '') inv.command = a;
    else inv.args.push(a);
  }
  if (inv.command === '') throw usageError('no command given');
  const arity = ARITY[inv.command];
  if (arity === undefined) throw usageError(`unknown command ${JSON.stringify(inv.command)}`);
  if (inv.args.length < arity[0] || inv.args.length > arity[1]) throw usageError(`${inv.command} takes ${arity[0] === arity[1] ? arity[0] : `${arity[0]} to ${arity[1]}`} argument(s)`);
  if (inv.all && inv.command !== 'list') throw usageError('--all goes with list');
  if (inv.force && inv.command !== 'shutdown') throw usageError('--force goes with shutdown');
  return inv;
}

async function readDefinition(file: string): Promise<unknown> {
  const path = resolve(file);
  try {
    const st = await stat(path);
    if (st.size > 1024 * 1024) throw new VirtError('VIRT_ERR_INVALID_ARG', `definition file ${path} is larger than 1 MiB`);
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (err) {
    if (err instanceof VirtError) throw err;
    throw new VirtError('VIRT_ERR_XML_ERROR', `cannot read definition ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function gib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

function flattenStats(d: DomainStats): Array<[string, string | number]> {
  const rows: Array<[string, string | number]> = [
    ['state', d.info.state],
    ['state.reason', d.info.stateReason ?? ''],
    ['cpu.time_seconds', d.info.cpuTimeSeconds],
    ['vcpu.current', d.info.vcpus],
    ['memory.maximum_bytes', d.memory?.maximumBytes ?? d.info.maxMemoryBytes],
    ['memory.current_bytes', d.memory?.currentBytes ?? d.info.memoryBytes],
  ];
  if (d.cpu?.userSeconds !== undefined) rows.push(['cpu.user_seconds', d.cpu.userSeconds]);
  if (d.cpu?.systemSeconds !== undefined) rows.push(['cpu.system_seconds', d.cpu.systemSeconds]);
  for (const v of d.vcpus ?? []) rows.push([`vcpu.${v.id}.state`, v.state], [`vcpu.${v.id}.time_seconds`, v.timeSeconds ?? '']);
  if (d.memory?.balloonBytes !== undefined) rows.push(['memory.balloon_bytes', d.memory.balloonBytes]);
  if (d.memory?.rssBytes !== undefined) rows.push(['memory.rss_bytes', d.memory.rssBytes]);
  for (const [k, v] of Object.entries(d.memory?.guest ?? {})) rows.push([`memory.guest.${k}`, v]);
  for (const b of d.block ?? []) for (const [k, v] of Object.entries(b) as Array<[string, string | number]>) if (k !== 'device') rows.push([`block.${b.device}.${k}`, v]);
  for (const n of d.net ?? []) {
    if (n.counters === null) rows.push([`net.${n.interface}.counters`, 'none']);
    else for (const [k, v] of Object.entries(n.counters) as Array<[string, number]>) rows.push([`net.${n.interface}.${k}`, v]);
  }
  return rows;
}

/** A reply the driver passed on must have the expected shape; a null or malformed one is a protocol error, not a crash. */
function reply<T>(value: T, what: string, shape: 'object' | 'array'): T {
  const ok = shape === 'array' ? Array.isArray(value) : value !== null && typeof value === 'object' && !Array.isArray(value);
  if (!ok) throw new VirtError('VIRT_ERR_RPC', `the driver answered ${what} with ${value === null ? 'null' : typeof value}, not ${shape === 'array' ? 'a list' : 'an object'}`);
  return value;
}

async function execute(conn: Connection, inv: Invocation, out: (s: string) => void): Promise<void> {
  const [a0 = '', a1 = ''] = inv.args;
  const done = (what: string, extra: Record<string, unknown> = {}): void => {
    out(inv.json ? JSON.stringify({ ok: true, command: inv.command, ...extra }) + '\n' : `${what}\n`);
  };
  switch (inv.command) {
    case 'list': {
      const refs = reply(await conn.listDomains({ active: true, inactive: inv.all }), 'list', 'array');
      const rows = [];
      for (const r of refs) {
        try {
          const info = reply(await conn.domainInfo(reply(r, 'list', 'object').uuid), 'dominfo', 'object');
          rows.push({ id: info.id, name: info.name, uuid: info.uuid, state: info.state });
        } catch (err) {
          // A domain that vanished between list and read is simply not listed.
          if (toVirtError(err).code !== 'VIRT_ERR_NO_DOMAIN') throw err;
        }
      }
      if (inv.json) return out(JSON.stringify(rows) + '\n');
      out(` ${'Id'.padEnd(5)} ${'Name'.padEnd(24)} State\n${'-'.repeat(44)}\n`);
      for (const r of rows) out(` ${String(r.id ?? '-').padEnd(5)} ${r.name.padEnd(24)} ${r.state}\n`);
      return;
    }
    case 'dominfo': {
      const info = reply(await conn.domainInfo(a0), 'dominfo', 'object');
      if (inv.json) return out(JSON.stringify(info) + '\n');
      const rows: Array<[string, string]> = [
        ['Id', String(info.id ?? '-')], ['Name', info.name], ['UUID', info.uuid], ['OS Type', info.osType ?? ''],
        ['State', info.state], ['Reason', info.stateReason ?? ''], ['CPU(s)', String(info.vcpus)],
        ['CPU time', `${info.cpuTimeSeconds.toFixed(1)}s`], ['Max memory', gib(info.maxMemoryBytes)], ['Used memory', gib(info.memoryBytes)],
      ];
      for (const [k, v] of rows) out(`${(k + ':').padEnd(16)}${v}\n`);
      return;
    }
    case 'domstats': {
      const bulk = reply(await conn.allDomainStats({ groups: STATS_GROUPS, inactive: true }), 'domstats', 'object');
      const selected = a0 === '' ? bulk.domains : bulk.domains.filter((d) => d.info.name === a0 || d.info.uuid === a0.toLowerCase() || String(d.info.id) === a0);
      if (a0 !== '' && selected.length === 0) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain with name, UUID or id ${JSON.stringify(a0)}`);
      if (inv.json) return out(JSON.stringify({ domains: selected, errors: bulk.errors }) + '\n');
      for (const d of selected) {
        out(`Domain: '${d.info.name}'\n`);
        for (const [k, v] of flattenStats(d)) out(`  ${k}=${v}\n`);
        out('\n');
      }
      for (const e of bulk.errors) out(`error: ${e.domain ?? ''} ${e.group ?? ''} ${e.code}: ${e.message}\n`);
      return;
    }
    case 'define': {
      const ref = reply(await conn.define(await readDefinition(a0)), 'define', 'object');
      return done(`Domain '${ref.name}' defined (${ref.uuid})`, { domain: ref });
    }
    case 'undefine': await conn.undefine(a0); return done(`Domain '${a0}' undefined`);
    case 'start': await conn.start(a0); return done(`Domain '${a0}' started`);
    case 'shutdown': await conn.shutdown(a0, { force: inv.force }); return done(`Domain '${a0}' is being shut down`);
    case 'reboot': await conn.reboot(a0); return done(`Domain '${a0}' is being rebooted`);
    case 'destroy': await conn.destroy(a0); return done(`Domain '${a0}' destroyed`);
    case 'suspend': await conn.suspend(a0); return done(`Domain '${a0}' suspended`);
    case 'resume': await conn.resume(a0); return done(`Domain '${a0}' resumed`);
    case 'save': await conn.save(a0, resolve(a1)); return done(`Domain '${a0}' saved to ${resolve(a1)}`);
    case 'restore': {
      const ref = reply(await conn.restore(resolve(a0)), 'restore', 'object');
      return done(`Domain '${ref.name}' restored from ${resolve(a0)}`, { domain: ref });
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  let json = argv.includes('--json');
  let conn: Connection | undefined;
  try {
    const inv = parse(argv);
    if (inv === 'help') return out(USAGE), 0;
    if (inv === 'version') return out(`virtctl ${VERSION}\n`), 0;
    json = inv.json;
    const config = loadConfig(inv.settingFlags);
    const uri = inv.uri ?? (process.env.VIRT_EXPORTER_CONNECT || detectHost().uri);
    const readOnly = inv.readOnly || !WRITE_COMMANDS.has(inv.command);
    conn = await open(uri, { readOnly, settings: settingsFor(config.settings, 'xen', 'qemu') });
    await execute(conn, inv, out);
    return 0;
  } catch (err) {
    const e = toVirtError(err);
    if (json) process.stderr.write(JSON.stringify({ ok: false, code: e.code, message: e.message }) + '\n');
    else process.stderr.write(`virtctl: error: ${e.code}: ${e.message}\n`);
    return e.exitCode;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`virtctl: ${String(err)}\n`);
    process.exit(1);
  },
);
