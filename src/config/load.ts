import { readFileSync } from 'node:fs';
import convict from 'convict';
import YAML from 'yaml';
import { VirtError } from '../virt/errors.ts';
import { addFormats, checkAreas, envName, schemaOf, settingsOf, type AnyArea } from './spec.ts';
import type { SettingSpec } from './schema/types.ts';

export type SettingValue = string | number | boolean;
export type FlatSettings = Readonly<Record<string, SettingValue>>;

export interface ParsedArgs {
  flags: Map<string, string | boolean>;
  configFile: string | undefined;
  help: boolean;
  version: boolean;
}

function configError(message: string): VirtError {
  return new VirtError('VIRT_ERR_CONFIG', message);
}

/** Prometheus-style flags: --key value, --key=value, --bool, --no-bool; `aliases` maps another flag name to a key. */
export function parseArgs(argv: readonly string[], specs: ReadonlyMap<string, SettingSpec>, aliases: Readonly<Record<string, string>> = {}): ParsedArgs {
  const flags = new Map<string, string | boolean>();
  let configFile: string | undefined;
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (arg === '--version') { version = true; continue; }
    if (!arg.startsWith('--')) throw configError(`unexpected argument ${JSON.stringify(arg)}; flags look like --web.listen-address=:9477 (see --help)`);
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    name = aliases[name] ?? name;
    let value: string | boolean | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === 'config' || name === 'config.file') {
      if (value === undefined) value = argv[++i];
      if (value === undefined || value === '') throw configError('--config needs a file name');
      configFile = value;
      continue;
    }
    let negated = false;
    if (!specs.has(name) && name.startsWith('no-') && specs.get(name.slice(3))?.format === Boolean) {
      name = name.slice(3);
      negated = true;
    }
    const spec = specs.get(name);
    if (spec === undefined) throw configError(`unknown flag --${name} (see --help for the list)`);
    if (spec.format === Boolean) {
      if (value === undefined) value = !negated;
      else if (negated) throw configError(`--no-${name} takes no value`);
      else if (value === 'true' || value === 'false') value = value === 'true';
      else throw configError(`--${name}=${value}: must be true or false`);
    } else if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw configError(`--${name} needs a value`);
    }
    const prev = flags.get(name);
    if (spec.repeatable === true && typeof prev === 'string' && typeof value === 'string') value = `${prev},${value}`;
    flags.set(name, value);
  }
  return { flags, configFile, help, version };
}

const MAX_CONFIG_DEPTH = 32;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Refuses prototype-polluting keys and nesting deeper than any setting, naming the path. */
function checkConfigTree(file: string, value: unknown, path: string, depth: number): void {
  if (depth > MAX_CONFIG_DEPTH) throw configError(`config file ${file}: ${path || 'the document'} is nested more than ${MAX_CONFIG_DEPTH} levels deep; no setting is`);
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkConfigTree(file, v, `${path}[${i}]`, depth + 1));
    return;
  }
  for (const key of Object.keys(value)) {
    const at = path === '' ? key : `${path}.${key}`;
    if (FORBIDDEN_KEYS.has(key)) throw configError(`config file ${file}: key ${JSON.stringify(at)} is not allowed`);
    checkConfigTree(file, (value as Record<string, unknown>)[key], at, depth + 1);
  }
}

/** Parses the main config file: duplicate keys, prototype keys and absurd nesting are errors that say so. */
export function parseConfigText(file: string, text: string): unknown {
  let doc: unknown;
  try {
    doc = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text, { uniqueKeys: true });
  } catch (err) {
    const message = (err as Error).message;
    if (err instanceof RangeError || message.includes('Maximum call stack size exceeded')) {
      throw configError(`config file ${file} is nested too deeply to parse; no setting is more than ${MAX_CONFIG_DEPTH} levels deep`);
    }
    throw configError(`config file ${file} is not valid: ${message}`);
  }
  checkConfigTree(file, doc, '', 0);
  return doc;
}

let parsersAdded = false;

export interface LoadedConfig {
  get(key: string): SettingValue;
  /** Every setting, by dotted key. */
  readonly settings: FlatSettings;
  /** Keys given explicitly (flag, environment or config file), whatever their value. */
  readonly explicit: ReadonlySet<string>;
  readonly configFile: string | undefined;
  readonly help: boolean;
  readonly version: boolean;
}

export interface LoadOptions {
  /** Other flag names for some keys (virt-qemud's --timeout, as libvirt's daemons have). */
  aliases?: Readonly<Record<string, string>>;
  /** The environment variable naming the config file (default VIRT_EXPORTER_CONFIG); each program has its own, since the driver's auto-started virt-qemud inherits the exporter's environment. */
  configEnv?: string;
}

/** The settings of `areas`: defaults < config file < environment < flags; throws VIRT_ERR_CONFIG naming key, value and reason. */
export function loadSettings(argv: readonly string[], env: NodeJS.ProcessEnv, areas: readonly AnyArea[], opts: LoadOptions = {}): LoadedConfig {
  addFormats();
  if (!parsersAdded) {
    convict.addParser([
      { extension: ['yml', 'yaml'], parse: (text: string) => YAML.parse(text) as unknown },
      { extension: 'json', parse: (text: string) => JSON.parse(text) as unknown },
    ]);
    parsersAdded = true;
  }
  const schema = schemaOf(areas);
  const specs = new Map(settingsOf(schema));
  const args = parseArgs(argv, specs, opts.aliases);
  const configFile = args.configFile ?? (env[opts.configEnv ?? envName('config')] || undefined);
  let conf: convict.Config<Record<string, unknown>>;
  try {
    conf = convict<Record<string, unknown>>(schema, { env, args: [] });
  } catch (err) {
    throw configError(`invalid environment: ${(err as Error).message}`);
  }
  if (configFile !== undefined) {
    if (!/\.(ya?ml|json)$/i.test(configFile)) throw configError(`config file ${configFile}: must end in .yaml, .yml or .json`);
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw configError(`cannot read config file ${configFile}: ${(err as Error).message}`);
    }
    const doc = parseConfigText(configFile, text);
    try {
      conf.load(doc as Record<string, unknown>);
    } catch (err) {
      throw configError(`config file ${configFile} is not valid: ${(err as Error).message}`);
    }
  }
  for (const [key, value] of args.flags) {
    try {
      conf.set(key, value);
    } catch (err) {
      throw configError(`--${key}=${String(value)}: ${(err as Error).message}`);
    }
  }
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    const detail = (err as Error).message
      .replace(/configuration param '([^']+)' not declared in the schema/g, "unknown key '$1'")
      .split('\n')
      // convict appends ": value was V"; drop it where the reason already names the value.
      .map((line) => line.replace(/^(.*): value was (.*)$/, (all, head: string, value: string) => (head.includes(value) ? head : all)))
      .join('\n');
    throw configError(`invalid configuration${configFile === undefined ? '' : ` (file ${configFile})`}: ${detail}`);
  }
  const settings: Record<string, SettingValue> = {};
  for (const [key] of specs) settings[key] = conf.get(key) as SettingValue;
  // What convict's formats cannot say (a minimum, say) the areas' readers check, as drivers will.
  checkAreas(settings, areas);
  const explicit = new Set<string>(args.flags.keys());
  for (const [key, spec] of specs) if (env[spec.env ?? envName(key)] !== undefined) explicit.add(key);
  if (configFile !== undefined) for (const key of fileKeys(configFile)) explicit.add(key);
  return {
    get: (key) => {
      if (!(key in settings)) throw configError(`no setting named ${key}`);
      return settings[key] as SettingValue;
    },
    settings,
    explicit,
    configFile,
    help: args.help,
    version: args.version,
  };
}

/** Dotted keys of the leaves of a (valid, already loaded) config file. */
function fileKeys(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const doc = (/\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text)) as unknown;
  const out: string[] = [];
  const walk = (node: unknown, prefix: string): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      if (prefix !== '') out.push(prefix);
      return;
    }
    for (const [k, v] of Object.entries(node)) walk(v, prefix === '' ? k : `${prefix}.${k}`);
  };
  walk(doc, '');
  return out;
}

/** The --help text: every setting of `areas` with its flag, default and environment variable. */
export function settingsHelp(program: string, summary: string, areas: readonly AnyArea[], opts: LoadOptions = {}): string {
  const aliases = opts.aliases ?? {};
  const lines = [`usage: ${program} [flags]`, '', summary, '', 'Flags (each also settable as VIRT_EXPORTER_... or in --config FILE.yaml/.json):', ''];
  lines.push('  --config FILE', `      Configuration file (YAML or JSON); unknown keys are an error.  env: ${opts.configEnv ?? envName('config')}`, '');
  for (const [key, spec] of settingsOf(schemaOf(areas))) {
    if (spec.hidden === true) continue;
    const alias = Object.keys(aliases).find((a) => aliases[a] === key);
    const flag = (spec.format === Boolean ? `--[no-]${key}` : `--${key}=VALUE`) + (alias === undefined ? '' : ` (also --${alias})`);
    const def = spec.sensitive === true ? '(hidden)' : JSON.stringify(spec.default);
    lines.push(`  ${flag}`, `      ${spec.doc}`, `      default: ${def}  env: ${spec.env ?? envName(key)}`, '');
  }
  lines.push('  --help     Show this help.', '  --version  Print the version.');
  return lines.join('\n') + '\n';
}

/** The settings of one area, for a driver or server (e.g. 'xen' -> { 'xen.KEY': value }). */
export function settingsFor(settings: FlatSettings, ...areas: string[]): FlatSettings {
  const out: Record<string, SettingValue> = {};
  for (const [k, v] of Object.entries(settings)) if (areas.some((a) => k.startsWith(`${a}.`))) out[k] = v;
  return out;
}
