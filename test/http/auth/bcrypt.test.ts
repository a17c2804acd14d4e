import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BcryptVerifyCache, parseBcrypt, piWords, verifyBcrypt } from '../../../src/http/auth/bcrypt.ts';

// OpenWall crypt_blowfish wrapper.c test vectors (also in OpenBSD's regress suite).
const VECTORS: [string | Uint8Array, string][] = [
  ['U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'],
  ['U*U*', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK'],
  ['U*U*U', '$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a'],
  ['', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy'],
  ['0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored', '$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui'],
  [Uint8Array.of(0xa3), '$2y$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq'],
  [Uint8Array.of(0xa3), '$2b$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq'],
  [Uint8Array.of(0xff, 0xa3, 0x33, 0x34, 0xff, 0xff, 0xff, 0xa3, 0x33, 0x34, 0x35), '$2y$05$/OK.fbVrR/bpIqNJ5ianF.o./n25XVfn6oAPaUvHe.Csk4zRfsYPi'],
  [Uint8Array.of(0xff, 0xa3, 0x33, 0x34, 0x35), '$2y$05$/OK.fbVrR/bpIqNJ5ianF.nRht2l/HRhr6zmCp9vYUvvsqynflf9e'],
];

function htpasswd(user: string, password: string, cost: number): string {
  try {
    const out = execFileSync('htpasswd', ['-nbB', '-C', String(cost), user, password], { encoding: 'utf8' }).trim();
    return out.slice(out.indexOf(':') + 1);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('htpasswd is required (Debian package apache2-utils, listed in .ci/apt-packages.txt)');
    throw err;
  }
}

void describe('bcrypt', () => {
  void it('computes the Blowfish constants from pi (first P word, first and last S-box words)', () => {
    const w = piWords();
    assert.equal(w.length, 1042);
    assert.equal(w[0], 0x243f6a88);
    assert.equal(w[17], 0x8979fb1b);
    assert.equal(w[18], 0xd1310ba6);
    assert.equal(w[1041], 0x3ac372e6);
  });

  for (const [password, hash] of VECTORS) {
    void it(`verifies the OpenWall vector ${hash}`, () => {
      assert.equal(verifyBcrypt(password, hash), true);
      const wrong = typeof password === 'string' ? password + '!' : Uint8Array.of(...password, 0x21);
      // Past 72 bytes extra characters are ignored by design, so only check shorter ones.
      if (wrong.length <= 71) assert.equal(verifyBcrypt(wrong, hash), false);
    });
  }

  void it('agrees with htpasswd -B (apache2-utils) on fresh hashes, including UTF-8 passwords', () => {
    for (const [pw, cost] of [['s3cret', 4], ['pässwörd ✓', 5], ['a'.repeat(80), 4]] as const) {
      const hash = htpasswd('alice', pw, cost);
      assert.match(hash, /^\$2y\$0\d\$/);
      assert.equal(verifyBcrypt(pw, hash), true, `htpasswd hash ${hash} should verify`);
      assert.equal(verifyBcrypt('b' + pw.slice(1), hash), false);
      // bcrypt reads at most 72 bytes: a long password's tail does not count.
      if (Buffer.byteLength(pw) > 72) assert.equal(verifyBcrypt(pw.slice(0, 72) + 'zzz', hash), true);
    }
  });

  void it('refuses malformed hashes and costs out of range', () => {
    for (const bad of ['', 'plain', '$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', '$2a$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', '$2a$05$CCCC']) {
      assert.equal(parseBcrypt(bad), null, bad);
      assert.equal(verifyBcrypt('U*U', bad), false);
    }
  });

  void it('caches successful verifications only, keyed so a changed hash misses', () => {
    const cache = new BcryptVerifyCache();
    const [, hash] = VECTORS[0] as [string, string];
    assert.equal(cache.verify('u', 'wrong', hash), false);
    assert.equal(cache.size, 0);
    assert.equal(cache.verify('u', 'U*U', hash), true);
    assert.equal(cache.size, 1);
    assert.equal(cache.verify('u', 'U*U', hash), true);
    assert.equal(cache.size, 1);
    assert.equal(cache.verify('v', 'U*U', hash), true);
    assert.equal(cache.size, 2);
    assert.equal(cache.verify('u', 'U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK'), false);
  });
});
