/**
 * Shared set-up of the security tests: a real virt-qemud (auto-started by the
 * qemu driver in a private runtime dir), real QEMU, and the admin endpoint on
 * a loopback port with one token per role. Every attack test asserts the
 * refusal code, the audit line and that nothing changed on disk.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Connection } from '../../src/virt/connection.ts';
import { call, startAdmin, tempDir, TOKENS, auditLines, type AdminFixture, type Reply } from '../http/admin/fixtures.ts';
import { requireBinaries, sandbox, type Sandbox } from '../qemud/helpers.ts';

export const D = '/api/v1/domains';
export type RoleName = keyof typeof TOKENS;

export interface SecurityHost {
  sb: Sandbox;
  rw: Connection;
  ro: Connection;
  admin: AdminFixture;
  /** virt-qemud's state dir (definitions, managed-save records, the MAC key). */
  stateDir: string;
  post(path: string, role: RoleName, body?: unknown): Promise<Reply>;
  del(path: string, role: RoleName): Promise<Reply>;
  get(path: string, role: RoleName): Promise<Reply>;
  /** The audit line of a reply's outcome, found by its request id. */
  auditOf(reply: Reply): Promise<Record<string, unknown>>;
  state(name: string): Promise<string>;
  daemonLog(): string;
  close(): Promise<void>;
}

/**
 * `uri` qemu:///system starts a system-mode virt-qemud (the defaults of
 * qemu:///system: QEMU user, image directory) with only its runtime and state
 * directories moved into the sandbox.
 */
export async function securityHost(settings: Record<string, string | number | boolean> = {}, uri: 'qemu:///session' | 'qemu:///system' = 'qemu:///session'): Promise<SecurityHost> {
  requireBinaries('qemu-system-x86_64', 'qemu-img');
  const sb = sandbox();
  const previous = process.env['VIRT_EXPORTER_RUNTIME_DIR'];
  process.env['VIRT_EXPORTER_RUNTIME_DIR'] = sb.base;
  const s = { 'qemu.shutdown-grace-seconds': 1, ...(uri === 'qemu:///system' ? { 'qemu.runtime-dir': sb.runtimeDir, 'qemu.state-dir': join(sb.runtimeDir, 'state') } : {}), ...settings };
  let rw: Connection | undefined;
  let ro: Connection | undefined;
  const t = await tempDir('virt-sec-');
  try {
    rw = await open(uri, { readOnly: false, settings: s });
    ro = await open(uri, { readOnly: true, settings: s });
    const admin = await startAdmin({ connection: rw, dir: t.dir });
    const url = admin.url;
    const rwc = rw;
    const roc = ro;
    return {
      sb,
      rw,
      ro,
      admin,
      stateDir: join(sb.runtimeDir, 'state'),
      post: (path, role, body) => call(url + path, { method: 'POST', token: TOKENS[role], ...(body === undefined ? {} : { body: JSON.stringify(body) }) }),
      del: (path, role) => call(url + path, { method: 'DELETE', token: TOKENS[role] }),
      get: (path, role) => call(url + path, { token: TOKENS[role] }),
      async auditOf(reply) {
        const id = reply.headers['x-request-id'];
        // The outcome line (a state-changing request also has an intent line before it).
        const line = (await auditLines(admin.auditFile)).find((l) => l.request_id === id && l.phase === 'done');
        if (line === undefined) throw new Error(`no audit line for request ${String(id)}`);
        return line;
      },
      state: async (name) => (await roc.domainInfo(name)).state,
      daemonLog: () => (existsSync(join(sb.runtimeDir, 'virt-qemud.log')) ? readFileSync(join(sb.runtimeDir, 'virt-qemud.log'), 'utf8') : ''),
      async close() {
        await admin.close();
        await rwc.close();
        await roc.close();
        await sb.cleanup();
        await t.cleanup();
        if (previous === undefined) delete process.env['VIRT_EXPORTER_RUNTIME_DIR'];
        else process.env['VIRT_EXPORTER_RUNTIME_DIR'] = previous;
      },
    };
  } catch (err) {
    await rw?.close();
    await ro?.close();
    await sb.cleanup();
    await t.cleanup();
    throw err;
  }
}

/** A tiny diskless domain: no OS, 64 MiB. */
export function tinyDomain(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, memoryMiB: 64, vcpus: 1, balloon: { enabled: false }, ...extra };
}

/** SHA-256 of every file under dir (names relative), to show nothing changed on disk. */
export function treeDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    if (!existsSync(d)) return;
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const r = rel === '' ? f : `${rel}/${f}`;
      const st = statSync(p, { throwIfNoEntry: false });
      if (st === undefined) continue;
      if (st.isDirectory()) walk(p, r);
      else if (st.isFile()) out[r] = createHash('sha256').update(readFileSync(p)).digest('hex');
      else out[r] = `(${st.mode.toString(8)})`;
    }
  };
  walk(dir, '');
  return out;
}

export function fileDigest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function problemCode(r: Reply): string | undefined {
  return (r.json as { code?: string } | undefined)?.code;
}
