/** Hostile input at the exporter's own boundaries: URIs, config files, host files, admin paths and bodies. */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative, isAbsolute } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import YAML from 'yaml';
import { loadConfig } from '../../../src/config/schema.ts';
import { resetTestHosts, testHostFor } from '../../../src/drivers/test/driver.ts';
import { matchRoute } from '../../../src/http/admin/api.ts';
import { Problem } from '../../../src/http/admin/problem.ts';
import { actionBody, confinedFile, domainKey, jsonObject } from '../../../src/http/admin/validate.ts';
import { DOMAIN_ACTIONS } from '../../../src/http/admin/roles.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { parseUri } from '../../../src/virt/uri.ts';
import { holds, holdsAsync, parsesOrTyped } from './check.ts';

/** Admin refusals are Problems: a 4xx with a stable code, never a 500 or a raw throw. */
function problemOr<R>(fn: () => R): R | Problem {
  try {
    return fn();
  } catch (err) {
    assert.ok(err instanceof Problem, `expected a Problem, got ${String(err)}`);
    assert.ok(err.status >= 400 && err.status < 500, `status ${err.status}`);
    assert.equal(err.code, 'VIRT_ERR_INVALID_ARG');
    return err;
  }
}

const uriText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.tuple(fc.constantFrom('test', 'qemu', 'xen', 'libvirt+qemu', 'QEMU', 'x'), fc.constantFrom('', 'h', 'localhost'), fc.string({ maxLength: 30 }), fc.constantFrom('', '?socket=/x', '#f', '%', '%E0%A4%A', '%2e%2e/')).map(([s, h, p, q]) => `${s}://${h}/${p}${q}`),
);

void describe('hostile input: connection URIs', () => {
  void it('parse or give VIRT_ERR_INVALID_URI, for any text', () => {
    holds(uriText, (text) => {
      parsesOrTyped(() => parseUri(text), ['VIRT_ERR_INVALID_URI']);
    }, 5000);
  });
});

void describe('hostile input: files the exporter reads', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'virt-hostile-files-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    resetTestHosts();
  });

  const settingKey = fc.constantFrom('connect', 'web', 'collect', 'log', 'qemu', 'xen', 'admin', 'telemetry', '__proto__', 'constructor', 'x');
  const configValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), fc.dictionary(fc.oneof(settingKey, fc.string({ maxLength: 10 })), tie('v'), { maxKeys: 4 })),
  })).v;

  void it('a config file of any content loads or gives VIRT_ERR_CONFIG', () => {
    let n = 0;
    holds(fc.tuple(fc.oneof(configValue.map((v) => YAML.stringify(v)), configValue.map((v) => JSON.stringify(v) ?? ''), fc.string({ unit: 'binary', maxLength: 200 }), fc.integer({ min: 1, max: 5000 }).map((d) => 'a: '.repeat(1) + '['.repeat(d))), fc.constantFrom('yaml', 'json')), ([text, ext]) => {
      const file = join(dir, `c${n++}.${ext}`);
      writeFileSync(file, text);
      parsesOrTyped(() => loadConfig(['--config', file], {}), ['VIRT_ERR_CONFIG']);
    }, 1000);
  });

  void it('a test host file of any content loads or gives VIRT_ERR_XML_ERROR', async () => {
    const domain = fc.record({ name: fc.oneof(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue()), uuid: fc.oneof(fc.uuid(), fc.jsonValue()), state: fc.oneof(fc.constantFrom('running', 'paused', 'shutoff'), fc.jsonValue()), vcpus: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.jsonValue()), memoryMiB: fc.oneof(fc.integer(), fc.double(), fc.jsonValue()), disks: fc.jsonValue(), nics: fc.jsonValue() }, { requiredKeys: [] });
    const hostFile = fc.record({ host: fc.oneof(fc.jsonValue(), fc.record({ cpus: fc.jsonValue(), hostname: fc.jsonValue() }, { requiredKeys: [] })), domains: fc.oneof(fc.array(domain, { maxLength: 4 }), fc.jsonValue()) }, { requiredKeys: [] });
    let n = 0;
    await holdsAsync(fc.oneof(hostFile.map((v) => JSON.stringify(v)), fc.string({ unit: 'binary', maxLength: 100 })), async (text) => {
      const file = join(dir, `h${n++}.json`);
      writeFileSync(file, text);
      try {
        await testHostFor(parseUri(`test://${file}`));
      } catch (err) {
        assert.ok(isVirtError(err, 'VIRT_ERR_XML_ERROR'), `expected VIRT_ERR_XML_ERROR, got ${String(err)}`);
      }
    }, 1500);
  });
});

void describe('hostile input: admin request paths and bodies', () => {
  void it('any method and URL maps to a route or a 4xx problem, never a throw', () => {
    const url = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.tuple(fc.constantFrom('/api/v1/domains', '/api/v1/domains/', '/api/v1/domainsx', '/'), fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('..', '%2e%2e', 'start', 'save', '', 'x?y')), { maxLength: 4 })).map(([p, parts]) => [p, ...parts].join('/')));
    holds(fc.tuple(fc.oneof(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'), fc.string({ maxLength: 10 })), url), ([method, u]) => {
      const r = matchRoute(method, u);
      assert.equal(typeof r.route, 'string');
      if (r.problem !== undefined) assert.ok(r.problem.status >= 400 && r.problem.status < 500);
      if (r.segment !== undefined) problemOr(() => domainKey(r.segment as string));
    }, 5000);
  });

  void it('any body with any content type is an object, an action body, or a 4xx problem', () => {
    const ctype = fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', ''), fc.string({ maxLength: 30 }));
    const body = fc.oneof(fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')), fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)), fc.record({ force: fc.jsonValue(), file: fc.jsonValue(), x: fc.jsonValue() }, { requiredKeys: [] }).map((o) => Buffer.from(JSON.stringify(o))));
    holds(fc.tuple(ctype, body, fc.boolean(), fc.constantFrom(...DOMAIN_ACTIONS)), ([type, b, allowEmpty, action]) => {
      const req = { headers: { 'content-type': type } } as unknown as IncomingMessage;
      const obj = problemOr(() => jsonObject(req, b, allowEmpty));
      if (!(obj instanceof Problem)) problemOr(() => actionBody(action, obj));
    }, 5000);
  });

  void describe('save file names', () => {
    let root: string;
    let saves: string;
    before(() => {
      root = mkdtempSync(join(tmpdir(), 'virt-hostile-save-'));
      saves = join(root, 'saves');
      mkdirSync(join(saves, 'sub'), { recursive: true });
      symlinkSync('/etc', join(saves, 'link'));
      symlinkSync(root, join(saves, 'sub', 'up'));
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    void it('resolve inside the save directory or are refused, whatever the name', async () => {
      const segment = fc.oneof(fc.constantFrom('..', '.', '', 'link', 'sub', 'up', 'a.img', '.hidden', 'a\0b', '%2e%2e', '/etc/passwd'), fc.string({ maxLength: 12 }));
      const name = fc.oneof(fc.array(segment, { minLength: 1, maxLength: 6 }).map((p) => p.join('/')), fc.string({ unit: 'binary', maxLength: 40 }));
      await holdsAsync(fc.tuple(name, fc.constantFrom<'create' | 'existing'>('create', 'existing')), async ([n, mode]) => {
        let path: string;
        try {
          path = await confinedFile(saves, n, mode);
        } catch (err) {
          assert.ok(err instanceof Problem && err.status >= 400 && err.status < 500, `expected a 4xx Problem, got ${String(err)}`);
          return;
        }
        const rel = relative(saves, path);
        assert.ok(rel !== '' && !rel.startsWith('..') && !isAbsolute(rel), `${JSON.stringify(n)} resolved outside: ${path}`);
        const parts = rel.split('/');
        for (let i = 1; i <= parts.length; i++) {
          const prefix = join(saves, ...parts.slice(0, i));
          let link = false;
          try {
            link = lstatSync(prefix).isSymbolicLink();
          } catch {
            // not there yet (a file to create): nothing to follow
          }
          assert.ok(!link, `${JSON.stringify(n)} goes through the symlink ${prefix}`);
        }
      }, 2000);
    });
  });
});
