// One settings mechanism: an area's table gives the convict fragment and a
// typed, validated reader with the same defaults (src/config/settings.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/schema.ts';
import { AREAS, fullSchema } from '../../src/config/schema.ts';
import { settingsOf } from '../../src/config/spec.ts';
import { ADMIN } from '../../src/config/schema/admin.ts';
import { XEN } from '../../src/config/schema/xen.ts';
import { settingsArea } from '../../src/config/settings.ts';
import { QEMU } from '../../src/qemud-shared/settings.ts';
import { isVirtError } from '../../src/virt/errors.ts';

const config = (e: unknown): boolean => isVirtError(e, 'VIRT_ERR_CONFIG');

void describe('settings areas', () => {
  const T = settingsArea('t', {
    n: { doc: 'a number', default: 5, min: 1 },
    b: { doc: 'a flag', default: false },
    s: { doc: 'a string', default: 'x' },
    e: { doc: 'a choice', format: ['a', 'b'], default: 'a' },
    'sub.key': { doc: 'nested', default: '' },
  });

  void it('gives the convict fragment, nested by dots, with formats from the defaults', () => {
    assert.deepEqual(Object.keys(T.schema), ['t']);
    const leaves = settingsOf(T.schema);
    assert.deepEqual(leaves.map(([k, s]) => [k, s.format, s.default]), [
      ['t.n', 'nat', 5],
      ['t.b', Boolean, false],
      ['t.s', String, 'x'],
      ['t.e', ['a', 'b'], 'a'],
      ['t.sub.key', String, ''],
    ]);
  });

  void it('reads the default when a key is absent and coerces strings (environment, virt-qemud arguments)', () => {
    assert.deepEqual(T.read({}), { n: 5, b: false, s: 'x', e: 'a', 'sub.key': '' });
    assert.deepEqual(T.read({ 't.n': '7', 't.b': 'true', 't.e': 'b', 't.sub.key': 'y' }), { n: 7, b: true, s: 'x', e: 'b', 'sub.key': 'y' });
  });

  void it('refuses bad values with VIRT_ERR_CONFIG', () => {
    for (const bad of [{ 't.n': 'seven' }, { 't.n': 0 }, { 't.n': 1.5 }, { 't.b': 'yes' }, { 't.s': 3 }, { 't.e': 'c' }]) {
      assert.throws(() => T.read(bad), config, JSON.stringify(bad));
    }
  });

  void it('each area keeps its defaults in one place: the reader and the schema agree', () => {
    for (const area of AREAS) {
      const leaves = new Map(settingsOf(area.schema));
      const values = area.read({}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(values)) assert.deepEqual(leaves.get(area.area === '' ? k : `${area.area}.${k}`)?.default, v, `${area.area}.${k}`);
    }
    assert.equal(QEMU.get({}, 'shutdown-grace-seconds'), 30);
    assert.equal(ADMIN.get({}, 'max-body-bytes'), 65536);
    assert.equal(XEN.get({ 'xen.privileged': 'user' }, 'privileged'), 'user');
  });

  void it('every setting of the full schema belongs to exactly one area', () => {
    const fromAreas = AREAS.flatMap((a) => settingsOf(a.schema).map(([k]) => k));
    assert.deepEqual(fromAreas, settingsOf(fullSchema()).map(([k]) => k));
  });

  void it('the loader applies the readers\' checks at start-up (a deadline of 0 is refused before any driver opens)', () => {
    assert.throws(() => loadConfig(['--xen.timeout=0'], {}), config);
    assert.throws(() => loadConfig([], { VIRT_EXPORTER_XEN_RETRY_MS: '0' }), config);
    assert.equal(loadConfig(['--xen.timeout=10'], {}).get('xen.timeout'), 10);
  });
});
