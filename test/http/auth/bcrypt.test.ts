import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BcryptVerifier, BcryptVerifyCache, parseBcrypt, verifyBcrypt } from '../../../src/http/auth/bcrypt.ts';

// OpenWall crypt_blowfish wrapper.c test vectors (also in OpenBSD's regress suite).
// bcrypt now comes from bcryptjs (issue 12, finding 9), which takes passwords as
// strings (UTF-8), as basic auth delivers them; the byte-string vectors of the
// former hand-written implementation (0xa3, 0xff ...) cannot be passed to it.
const VECTORS: [string, string][] = [
  ['U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'],
  ['U*U*', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK'],
  ['U*U*U', '$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a'],
  ['', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy'],
  ['0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored', '$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui'],
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
  for (const [password, hash] of VECTORS) {
    void it(`verifies the OpenWall vector ${hash}`, () => {
      assert.equal(verifyBcrypt(password, hash), true);
      const wrong = password + '!';
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

  void it('verifies off the event loop in a worker, caches successes, and answers busy beyond its bound', async () => {
    const v = new BcryptVerifier({ workers: 1, maxInFlight: 2 });
    try {
      const [, hash] = VECTORS[0] as [string, string];
      assert.equal(await v.verify('u', 'wrong', hash), 'denied');
      assert.equal(v.size, 0);
      assert.equal(v.cached('u', 'U*U', hash), false);
      assert.equal(await v.verify('u', 'U*U', hash), 'ok');
      assert.equal(v.cached('u', 'U*U', hash), true);
      const many = await Promise.all([1, 2, 3, 4].map((i) => v.verify('u', `wrong-${i}`, hash)));
      assert.deepEqual(many.slice().sort(), ['busy', 'busy', 'denied', 'denied']);
      assert.equal(await v.verify('u', 'U*U', '$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'), 'denied');
    } finally {
      await v.close();
    }
  });
});
