// The libxl sub-driver's restore checks against a recording xl: which
// domain an xl save image is of (its header), refused before xl runs when it
// is not the domain the caller means, is not defined, or is running. The
// real xl save/restore round trip is in lab.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLibxlSubDriver, definitionToXl, parseXlSaveHeader, XlConfigStore } from '../../../src/drivers/xen/libxl-driver.ts';
import { Reconnecting } from '../../../src/drivers/xen/reconnecting.ts';
import type { XlResult, XlRunner } from '../../../src/drivers/xen/xl.ts';
import type { DomainState } from '../../../src/drivers/types.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';

const UUID = '5e1f0001-aaaa-4bbb-8ccc-000000000001';

/** An xl save image header as tools/xl writes it (little-endian host), then some "memory". */
function xlImage(config: unknown, opts: { magic?: string; json?: boolean; bigEndian?: boolean } = {}): Buffer {
  const json = Buffer.from(JSON.stringify(config) + '\0');
  const hdr = Buffer.alloc(48);
  Buffer.from(opts.magic ?? 'Xen saved domain, xl format\n \0 \r', 'latin1').copy(hdr, 0);
  const w = (v: number, off: number): number => (opts.bigEndian === true ? hdr.writeUInt32BE(v, off) : hdr.writeUInt32LE(v, off));
  w(0x01020304, 32);
  w((opts.json ?? true) ? 0x3 : 0x1, 36);
  w(0, 40);
  w(4 + json.length, 44);
  const len = Buffer.alloc(4);
  if (opts.bigEndian === true) len.writeUInt32BE(json.length, 0);
  else len.writeUInt32LE(json.length, 0);
  return Buffer.concat([hdr, len, json, Buffer.alloc(4096, 0xcc)]);
}

const cfg = (name: string, uuid: string): unknown => ({ c_info: { type: 'pv', name, uuid }, b_info: { max_memkb: 98304 } });

void describe('libxl definitions', () => {
  void it('xl configuration text comes as a string or as { xl: text }, and passes through with a uuid added', () => {
    const text = 'name = "web"\nmemory = 96\nvcpus = 2\n';
    const a = definitionToXl({ xl: text });
    assert.equal(a.name, 'web');
    assert.equal(a.memoryMiB, 96);
    assert.equal(a.vcpus, 2);
    assert.ok(a.config.startsWith(text.trim()), 'the text itself is kept');
    assert.match(a.config, /\nuuid = "[0-9a-f-]{36}"\n$/);
    assert.equal(definitionToXl(text).name, 'web');
  });
  for (const [what, def] of [
    ['an xl definition with other keys', { xl: 'name = "web"\n', memoryMiB: 64 }],
    ['an xl definition that is not text', { xl: 42 }],
    ['xl text without a name', { xl: 'memory = 96\n' }],
  ] as Array<[string, unknown]>) {
    void it(`refuses ${what} (VIRT_ERR_XML_ERROR, as every bad definition)`, () => {
      assert.throws(() => definitionToXl(def), (e: unknown) => isVirtError(e, 'VIRT_ERR_XML_ERROR'));
    });
  }
});

void describe('xl save image header', () => {
  void it('names the domain and UUID, in either byte order', () => {
    assert.deepEqual(parseXlSaveHeader(xlImage(cfg('web', UUID.toUpperCase())), 'f'), { name: 'web', uuid: UUID });
    assert.deepEqual(parseXlSaveHeader(xlImage(cfg('web', UUID), { bigEndian: true }), 'f'), { name: 'web', uuid: UUID });
  });
  for (const [what, buf] of [
    ['no magic', xlImage(cfg('web', UUID), { magic: 'LinuxGuestRecord' })],
    ['a configuration not in JSON', xlImage(cfg('web', UUID), { json: false })],
    ['a header cut short', xlImage(cfg('web', UUID)).subarray(0, 60)],
    ['no name', xlImage({ c_info: { uuid: UUID } })],
    ['no UUID', xlImage({ c_info: { name: 'web' } })],
    ['an empty file', Buffer.alloc(0)],
  ] as Array<[string, Buffer]>) {
    void it(`refuses ${what} (VIRT_ERR_SAVE_INVALID)`, () => {
      assert.throws(() => parseXlSaveHeader(buf, 'f'), (e: unknown) => isVirtError(e, 'VIRT_ERR_SAVE_INVALID'));
    });
  }
});

void describe('libxl restore', () => {
  let dir: string;
  let ran: string[][];
  let active: Map<string, { id: number; state: DomainState; uuid: string }>;
  let sub: ReturnType<typeof createLibxlSubDriver>;
  let store: XlConfigStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vx-libxl-'));
    store = new XlConfigStore(join(dir, 'store'));
    await store.put(definitionToXl(`name = "web"\nuuid = "${UUID}"\nmemory = 96\n`));
    await writeFile(join(dir, 'web.save'), xlImage(cfg('web', UUID)));
    await writeFile(join(dir, 'other-uuid.save'), xlImage(cfg('web', '5e1f0001-aaaa-4bbb-8ccc-00000000ffff')));
    await writeFile(join(dir, 'db.save'), xlImage(cfg('db', '5e1f0001-aaaa-4bbb-8ccc-0000000000db')));
    await writeFile(join(dir, 'garbage.save'), Buffer.from('not an image'));
    const runner: XlRunner = {
      closed: false,
      describe: 'fake xl',
      run: (args): Promise<XlResult> => {
        ran.push([...args]);
        if (args[0] === 'restore') {
          const name = args[1]?.includes('db') ? 'db' : 'web';
          active.set(name, { id: 7, state: 'running', uuid: name === 'web' ? UUID : '5e1f0001-aaaa-4bbb-8ccc-0000000000db' });
          return Promise.resolve({ code: 0, stdout: '', stderr: 'Parsing config from <saved>\n' });
        }
        if (args[0] === 'list') {
          const list = [...active].map(([name, a]) => ({ domid: a.id, config: { c_info: { name, uuid: a.uuid } } }));
          return Promise.resolve({ code: 0, stdout: JSON.stringify(list), stderr: '' });
        }
        return Promise.resolve({ code: 1, stdout: '', stderr: 'unexpected' });
      },
      close: () => Promise.resolve(),
    };
    sub = createLibxlSubDriver({
      conn: new Reconnecting<XlRunner>(runner, () => Promise.resolve(runner), silentLogger, 'fake xl'),
      store,
      writable: true,
      active: (key) => {
        for (const [name, a] of active) if (name === key || a.uuid === key) return Promise.resolve({ name, uuid: a.uuid, id: a.id, state: a.state });
        return Promise.resolve(undefined);
      },
      activeNames: () => Promise.resolve(new Set(active.keys())),
      graceMs: 100,
      opTimeoutMs: 1000,
    });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const restore = (file: string, opts?: { domain?: string; define?: boolean }): Promise<unknown> => {
    ran = [];
    active = new Map();
    return (sub.restore as NonNullable<typeof sub.restore>)(join(dir, file), opts);
  };

  void it('restores the defined domain its image is of, by name or UUID', async () => {
    assert.deepEqual(await restore('web.save', { domain: 'web' }), { name: 'web', uuid: UUID, id: 7 });
    assert.deepEqual(ran[0], ['restore', join(dir, 'web.save')]);
    assert.deepEqual(await restore('web.save', { domain: UUID }), { name: 'web', uuid: UUID, id: 7 });
  });

  const refusals: Array<[string, string, { domain?: string; define?: boolean }, VirtErrorCode]> = [
    ['an image of another domain', 'db.save', { domain: 'web' }, 'VIRT_ERR_SAVE_INVALID'],
    ['an image whose UUID differs from the definition', 'other-uuid.save', { domain: 'web' }, 'VIRT_ERR_SAVE_INVALID'],
    ['a file that is no xl image', 'garbage.save', { domain: 'web' }, 'VIRT_ERR_SAVE_INVALID'],
    ['a missing file', 'none.save', { domain: 'web' }, 'VIRT_ERR_SAVE_INVALID'],
    ['an image of a domain that is not defined, without define', 'db.save', { domain: 'db' }, 'VIRT_ERR_NO_DOMAIN'],
  ];
  for (const [what, file, opts, code] of refusals) {
    void it(`refuses ${what} (${code}) and runs no xl`, async () => {
      await assert.rejects(restore(file, opts), (e: unknown) => isVirtError(e, code));
      assert.deepEqual(ran, []);
    });
  }

  void it('refuses a domain that is running (OPERATION_INVALID) and runs no xl', async () => {
    ran = [];
    active = new Map([['web', { id: 3, state: 'running', uuid: UUID }]]);
    await assert.rejects((sub.restore as NonNullable<typeof sub.restore>)(join(dir, 'web.save'), { domain: 'web' }), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_INVALID'));
    assert.deepEqual(ran, []);
  });

  void it('re-creates an undefined domain with define; without a named domain it restores what the image holds', async () => {
    assert.deepEqual(await restore('db.save', { domain: 'db', define: true }), { name: 'db', uuid: '5e1f0001-aaaa-4bbb-8ccc-0000000000db', id: 7 });
    assert.equal(((await restore('db.save')) as { name: string }).name, 'db');
  });
});
