import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { settingsFor } from '../config/load.ts';
import { loadConfig } from '../config/schema.ts';
import { STATS_GROUPS, type DomainStats } from '../drivers/types.ts';
import { open, type Connection } from '../virt/connection.ts';
import { detectHostLive } from '../virt/detect.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { VERSION } from '../version.ts';
import { dominfoRows, friendlyStats, listTable, STATE_WORDS, suggest, virshStats } from './virsh-format.ts';

const USAGE = `usage: virtctl [--connect URI] [--json] [--readonly] COMMAND [ARGS]

A virsh-like command line over virt-exporter's drivers.

Commands:
  list [--all|--inactive]   running (with --all also shut-off) domains, by id
  dominfo DOMAIN            virsh's dominfo fields (memory in KiB)
  domstate DOMAIN [--reason]  the state (and why)
  domid DOMAIN, domuuid DOMAIN, domname DOMAIN
  domstats [DOMAIN] [--friendly]  every reading, with virsh domstats keys and units
                            (--friendly: by device name, in seconds and bytes)
  dumpdef DOMAIN            the definition as JSON (virsh dumpxml's counterpart)
  define FILE               define a domain from a JSON definition (or libvirt XML, libvirt+ URIs;
                            or xl configuration text, xen:/// on Xen >= 4.5)
  undefine DOMAIN           remove a shut-off domain's definition
  start DOMAIN              boot a shut-off domain
  shutdown DOMAIN [--wait[=SECONDS]] [--force]
                            press the power button and return; --wait: until it is off
                            (default: the grace period, --qemu.shutdown-grace-seconds, which
                            when set also makes shutdown wait); --force: destroy it if it
                            is not off after the wait
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
  -r, --readonly      open the connection read-only (reads never start virt-qemud)
  --xen.KEY=V, --qemu.KEY=V, --config FILE   driver settings, as for virt-exporter
  --help, --version

DOMAIN is a name, UUID or id. Errors print their stable code (VIRT_ERR_...) and
exit non-zero (see docs/errors.md).
`;

interface CommandSpec {
  arity: [number, number];
  write?: boolean;
  /** Options this command takes besides the global ones. */
  options?: readonly string[];
}

const COMMANDS: Record<string, CommandSpec> = {
  list: { arity: [0, 0], options: ['--all', '--inactive'] },
  dominfo: { arity: [1, 1] },
  domstate: { arity: [1, 1], options: ['--reason'] },
  domid: { arity: [1, 1] },
  domuuid: { arity: [1, 1] },
  domname: { arity: [1, 1] },
  domstats: { arity: [0, 1], options: ['--friendly'] },
  dumpdef: { arity: [1, 1] },
  define: { arity: [1, 1], write: true },
  undefine: { arity: [1, 1], write: true },
  start: { arity: [1, 1], write: true },
  shutdown: { arity: [1, 1], write: true, options: ['--wait', '--force'] },
  reboot: { arity: [1, 1], write: true },
  destroy: { arity: [1, 1], write: true },
  suspend: { arity: [1, 1], write: true },
  resume: { arity: [1, 1], write: true },
  save: { arity: [2, 2], write: true },
  restore: { arity: [1, 1], write: true },
};
const GLOBAL_OPTIONS = ['--connect', '--json', '--readonly', '--help', '--version', '--config'];
const COMMAND_OPTIONS = [...new Set(Object.values(COMMANDS).flatMap((c) => c.options ?? []))];

interface Invocation {
  uri: string | undefined;
  json: boolean;
  readOnly: boolean;
  /** Command options given, e.g. '--all' -> true, '--wait' -> '60'. */
  opts: Map<string, string | true>;
  command: string;
  args: string[];
  settingFlags: string[];
}

function usageError(message: string): VirtError {
  return new VirtError('VIRT_ERR_INVALID_ARG', `${message} (see virtctl --help)`);
}

function didYouMean(word: string, known: readonly string[]): string {
  const s = suggest(word, known);
  return s === undefined ? '' : `; did you mean ${s}?`;
}

function parse(argv: string[]): Invocation | 'help' | 'version' {
  const inv: Invocation = { uri: undefined, json: false, readOnly: false, opts: new Map(), command: '', args: [], settingFlags: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq !== -1 ? a.slice(0, eq) : a;
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--version') return 'version';
    if (a === '--json') inv.json = true;
    else if (a === '--readonly' || a === '-r') inv.readOnly = true;
    else if (a === '--connect' || a === '-c') {
      inv.uri = argv[++i];
      if (inv.uri === undefined) throw usageError('--connect needs a URI');
    } else if (a.startsWith('--connect=')) inv.uri = a.slice('--connect='.length);
    else if (/^--(xen|qemu)\./.test(a) || a === '--config' || a.startsWith('--config=')) {
      inv.settingFlags.push(a);
      if (!a.includes('=') && argv[i + 1] !== undefined && !(argv[i + 1] ?? '').startsWith('--')) inv.settingFlags.push(argv[++i] ?? '');
    } else if (COMMAND_OPTIONS.includes(flag)) {
      inv.opts.set(flag, eq === -1 ? true : a.slice(eq + 1));
    } else if (a.startsWith('-') && a !== '-') throw usageError(`unknown option ${a}${didYouMean(flag, [...GLOBAL_OPTIONS, ...COMMAND_OPTIONS])}`);
    else if (inv.command === '') inv.command = a;
    else inv.args.push(a);
  }
  if (inv.command === '') throw usageError('no command given');
  const spec = COMMANDS[inv.command];
  if (spec === undefined) throw usageError(`unknown command ${JSON.stringify(inv.command)}${didYouMean(inv.command, Object.keys(COMMANDS))}`);
  const [lo, hi] = spec.arity;
  if (inv.args.length < lo || inv.args.length > hi) throw usageError(`${inv.command} takes ${lo === hi ? lo : `${lo} to ${hi}`} argument(s), got ${inv.args.length}`);
  for (const [o, v] of inv.opts) {
    if (!(spec.options ?? []).includes(o)) {
      const owners = Object.entries(COMMANDS).filter(([, c]) => c.options?.includes(o)).map(([n]) => n);
      throw usageError(`${o} goes with ${owners.join(' or ')}, not ${inv.command}`);
    }
    if (o === '--wait' && v !== true && !/^\d+$/.test(v)) throw usageError(`--wait=${v}: give a whole number of seconds`);
    if (o !== '--wait' && v !== true) throw usageError(`${o} takes no value`);
  }
  return inv;
}

async function readDefinition(file: string): Promise<unknown> {
  const path = resolve(file);
  try {
    const st = await stat(path);
    if (st.size > 1024 * 1024) throw new VirtError('VIRT_ERR_INVALID_ARG', `definition file ${path} is larger than 1 MiB`);
    const text = await readFile(path, 'utf8');
    // libvirt domain XML is passed through as given (the libvirt driver validates it by libvirt itself).
    if (text.trimStart().startsWith('<')) return { xml: text };
    // JSON starts with a brace; anything else is xl configuration text (key = value lines), for Xen's libxl path.
    if (!text.trimStart().startsWith('{')) return { xl: text };
    return JSON.parse(text) as unknown;
  } catch (err) {
    if (err instanceof VirtError) throw err;
    throw new VirtError('VIRT_ERR_XML_ERROR', `cannot read definition ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * How long `shutdown` waits for the guest to power off: --wait=SECONDS; or
 * the grace period (qemu.shutdown-grace-seconds) with --wait, with --force,
 * or when that setting was given explicitly (flag, environment, config file);
 * otherwise undefined: press the button and return.
 */
function waitSeconds(inv: Invocation, grace: { seconds: number; explicit: boolean }): number | undefined {
  const w = inv.opts.get('--wait');
  if (w === undefined) return inv.opts.has('--force') || grace.explicit ? grace.seconds : undefined;
  return w === true ? grace.seconds : Number(w);
}

/** A reply the driver passed on must have the expected shape; a null or malformed one is a protocol error, not a crash. */
function reply<T>(value: T, what: string, shape: 'object' | 'array'): T {
  const ok = shape === 'array' ? Array.isArray(value) : value !== null && typeof value === 'object' && !Array.isArray(value);
  if (!ok) throw new VirtError('VIRT_ERR_RPC', `the driver answered ${what} with ${value === null ? 'null' : typeof value}, not ${shape === 'array' ? 'a list' : 'an object'}`);
  return value;
}

async function execute(conn: Connection, inv: Invocation, out: (s: string) => void, grace: { seconds: number; explicit: boolean }): Promise<void> {
  const [a0 = '', a1 = ''] = inv.args;
  const done = (what: string, extra: Record<string, unknown> = {}): void => {
    out(inv.json ? JSON.stringify({ ok: true, command: inv.command, ...extra }) + '\n' : `${what}\n`);
  };
  switch (inv.command) {
    case 'list': {
      const all = inv.opts.has('--all');
      const inactiveOnly = inv.opts.has('--inactive');
      const refs = reply(await conn.listDomains({ active: !inactiveOnly, inactive: all || inactiveOnly }), 'list', 'array');
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
      rows.sort((x, y) => (x.id ?? Infinity) - (y.id ?? Infinity) || x.name.localeCompare(y.name));
      if (inv.json) return out(JSON.stringify(rows) + '\n');
      return out(listTable(rows));
    }
    case 'dominfo': {
      const info = reply(await conn.domainInfo(a0), 'dominfo', 'object');
      if (inv.json) return out(JSON.stringify(info) + '\n');
      for (const [k, v] of dominfoRows(info)) out(`${(k + ':').padEnd(16)}${v}\n`);
      return;
    }
    case 'domstate': {
      const info = await conn.domainInfo(a0);
      if (inv.json) return out(JSON.stringify({ state: info.state, reason: info.stateReason ?? null }) + '\n');
      return out(`${STATE_WORDS[info.state]}${inv.opts.has('--reason') ? ` (${info.stateReason ?? 'unknown'})` : ''}\n`);
    }
    case 'domid': {
      const ref = await conn.lookupDomain(a0);
      return out(inv.json ? JSON.stringify({ id: ref.id }) + '\n' : `${ref.id ?? '-'}\n`);
    }
    case 'domuuid': {
      const ref = await conn.lookupDomain(a0);
      return out(inv.json ? JSON.stringify({ uuid: ref.uuid }) + '\n' : `${ref.uuid}\n`);
    }
    case 'domname': {
      const ref = await conn.lookupDomain(a0);
      return out(inv.json ? JSON.stringify({ name: ref.name }) + '\n' : `${ref.name}\n`);
    }
    case 'dumpdef':
      return out(JSON.stringify(await conn.domainDefinition(a0), null, 2) + '\n');
    case 'domstats': {
      const bulk = reply(await conn.allDomainStats({ groups: STATS_GROUPS, inactive: true }), 'domstats', 'object');
      const selected = a0 === '' ? bulk.domains : bulk.domains.filter((d) => d.info.name === a0 || d.info.uuid === a0.toLowerCase() || String(d.info.id) === a0);
      if (a0 !== '' && selected.length === 0) throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain with name, UUID or id ${JSON.stringify(a0)}`);
      if (inv.json) return out(JSON.stringify({ domains: selected, errors: bulk.errors }) + '\n');
      const rowsOf: (d: DomainStats) => Array<[string, string | number]> = inv.opts.has('--friendly') ? friendlyStats : virshStats;
      for (const d of selected) {
        out(`Domain: '${d.info.name}'\n`);
        for (const [k, v] of rowsOf(d)) out(`  ${k}=${v}\n`);
        out('\n');
      }
      for (const e of bulk.errors) out(`error: ${e.domain ?? ''} ${e.group ?? ''} ${e.code}: ${e.message}\n`);
      return;
    }
    case 'define': {
      const ref = reply(await conn.define(await readDefinition(a0)), 'define', 'object');
      return done(`Domain '${ref.name}' defined from ${a0} (${ref.uuid})`, { domain: ref });
    }
    case 'undefine': await conn.undefine(a0); return done(`Domain '${a0}' has been undefined`);
    case 'start': await conn.start(a0); return done(`Domain '${a0}' started`);
    case 'shutdown': {
      const wait = waitSeconds(inv, grace);
      const force = inv.opts.has('--force');
      if (wait === undefined) {
        // Return once the power button is pressed: a wait of 0 s, whose expiry is no failure here.
        try {
          await conn.shutdown(a0, { force: false });
        } catch (err) {
          if (toVirtError(err).code !== 'VIRT_ERR_OPERATION_TIMEOUT') throw err;
        }
        return done(`Domain '${a0}' is being shutdown`, { waited: false });
      }
      await conn.shutdown(a0, { force });
      const after = await conn.domainInfo(a0).catch(() => undefined);
      if (force && after?.stateReason === 'destroyed') return done(`Domain '${a0}' did not power off within ${wait} s; destroyed (--force)`, { destroyed: true });
      return done(`Domain '${a0}' is shut off`, { waited: true, destroyed: false });
    }
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
    const uri = inv.uri ?? (process.env.VIRT_EXPORTER_CONNECT || (await detectHostLive()).uri);
    const readOnly = inv.readOnly || COMMANDS[inv.command]?.write !== true;
    const settings: Record<string, string | number | boolean> = { ...settingsFor(config.settings, 'xen', 'qemu', 'libvirt') };
    const grace = { seconds: Number(settings['qemu.shutdown-grace-seconds'] ?? 30), explicit: config.explicit.has('qemu.shutdown-grace-seconds') };
    if (inv.command === 'shutdown') {
      const wait = waitSeconds(inv, grace);
      // The drivers wait this long for the guest to power off (0: press the button and return).
      settings['qemu.shutdown-grace-seconds'] = wait ?? 0;
    }
    conn = await open(uri, { readOnly, settings });
    await execute(conn, inv, out, grace);
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
