// Unit tests of the AWS Lambda signer template against an in-process KMS stand-in;
// every signature it returns is checked independently by ethers.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { GetPublicKeyCommand, SignCommand } from '@aws-sdk/client-kms';
import { createHandler, parseDerSignature } from '../../templates/aws-lambda-signer/index.mjs';
import {
  KmsStandIn,
  N,
  NONCE_WITH_30_BYTE_R,
  assertRecovers,
  derIntegerLengths,
  derSignature,
  ecdsaS,
  eip191Digest,
  functionUrlEvent,
  hex,
  makeKey,
  nonceR,
  restApiEvent,
  toBigInt,
} from './support/signer-fixtures.mjs';

const KEY = makeKey();
const OTHER_KEY = makeKey();
const MODES = ['eip191', 'digest'];

function envFor(key, mode = 'eip191', extra = {}) {
  return { KMS_KEY_ID: 'alias/keyrite-test', EXPECTED_ADDRESS: key.address, SIGNING_MODE: mode, ...extra };
}

function setup({ key = KEY, mode = 'eip191', env = envFor(key, mode), ...options } = {}) {
  const kms = new KmsStandIn(key, options);
  return { kms, handle: createHandler({ kms, env }) };
}

function digestFor(mode, hash) {
  return mode === 'eip191' ? eip191Digest(hash) : hash;
}

/** Runs `fn` with console.error captured; returns the captured calls. */
async function capturingErrors(t, fn) {
  const mock = t.mock.method(console, 'error', () => {});
  await fn();
  return mock.mock.calls.map((call) => call.arguments);
}

async function assertInternalError(t, handle, event = functionUrlEvent({ hash: hex(randomBytes(32)) })) {
  let response;
  const logged = await capturingErrors(t, async () => {
    response = await handle(event);
  });
  assert.equal(response.statusCode, 500);
  assert.equal(response.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(response.body), { error: 'internal error' });
  assert.ok(logged.length > 0, 'internal errors are logged');
  return logged;
}

function assertRequestError(response, status, pattern) {
  assert.equal(response.statusCode, status, response.body);
  assert.equal(response.headers['content-type'], 'application/json');
  const body = JSON.parse(response.body);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.match(body.error, pattern);
}

describe('signatures recover to the configured address', () => {
  for (const mode of MODES) {
    test(`500 random hashes, ${mode} mode, KMS returning high and low s`, async () => {
      const { kms, handle } = setup({ mode });
      const seen = { v: new Set() };
      for (let i = 0; i < 500; i++) {
        const hash = randomBytes(32);
        const body = assertRecovers(await handle(functionUrlEvent({ hash: hex(hash), signerAddress: KEY.address })), digestFor(mode, hash), KEY.address);
        seen.v.add(body.v);
      }
      assert.deepEqual([...seen.v].sort(), [27, 28]);
      assert.ok(kms.highSCount > 100 && kms.highSCount < 400, `KMS returned ${kms.highSCount} high-s signatures`);
      assert.equal(kms.commands(GetPublicKeyCommand).length, 1, 'the key is loaded once per container');
      assert.equal(kms.commands(SignCommand).length, 500);
    });
  }

  test('the Sign call asks KMS for ECDSA_SHA_256 over the digest, with the resolved key', async () => {
    for (const mode of MODES) {
      const { kms, handle } = setup({ mode });
      const hash = randomBytes(32);
      assertRecovers(await handle(functionUrlEvent({ userOpHash: hex(hash) })), digestFor(mode, hash), KEY.address);
      const [sign] = kms.commands(SignCommand);
      assert.equal(sign.input.KeyId, KEY.arn);
      assert.equal(sign.input.MessageType, 'DIGEST');
      assert.equal(sign.input.SigningAlgorithm, 'ECDSA_SHA_256');
      assert.equal(hex(sign.input.Message), hex(digestFor(mode, hash)));
    }
  });

  test('SIGNING_MODE defaults to eip191', async () => {
    const env = envFor(KEY);
    delete env.SIGNING_MODE;
    const { handle } = setup({ env });
    const hash = randomBytes(32);
    assertRecovers(await handle(functionUrlEvent({ hash: hex(hash) })), eip191Digest(hash), KEY.address);
  });

  // KMS emits 30- to 33-byte INTEGERs; values in [2^(8b - 8), 2^(8b - 1)) encode in b bytes.
  for (const [bytes, nonce] of [
    [30, () => NONCE_WITH_30_BYTE_R],
    [31, () => {
      let k;
      do k = toBigInt(randomBytes(32)) % N;
      while (k === 0n || nonceR(k) >= 1n << 247n || nonceR(k) < 1n << 240n);
      return k;
    }],
  ]) {
    test(`r as a ${bytes}-byte DER INTEGER`, async () => {
      const k = nonce();
      for (const mode of MODES) {
        const { kms, handle } = setup({ mode, nonce: () => k });
        const ders = [];
        kms.transformDer = (der) => (ders.push(der), der);
        for (let i = 0; i < 10; i++) {
          const hash = randomBytes(32);
          assertRecovers(await handle(functionUrlEvent({ hash: hex(hash) })), digestFor(mode, hash), KEY.address);
        }
        assert.deepEqual(new Set(ders.map((der) => derIntegerLengths(der)[0])), new Set([bytes]));
      }
    });
  }

  // With a fixed nonce, s depends only on the digest, so searching hashes is cheap. A
  // short s is always low; KMS may return it as is or as its high twin n - s.
  for (const [bytes, low, high] of [
    [30, 1n << 232n, 1n << 239n],
    [31, 1n << 240n, 1n << 247n],
  ]) {
    for (const mode of MODES) {
      test(`s as a ${bytes}-byte INTEGER, returned low and high, ${mode} mode`, async () => {
        const k = NONCE_WITH_30_BYTE_R + 1n;
        const r = nonceR(k);
        let hash;
        let lowS;
        do {
          hash = randomBytes(32);
          const s = ecdsaS(toBigInt(digestFor(mode, hash)), r, KEY.d, k);
          lowS = s < N - s ? s : N - s;
        } while (lowS < low || lowS >= high);
        for (const s of [lowS, N - lowS]) {
          const der = derSignature(r, s);
          assert.equal(derIntegerLengths(der)[1], s === lowS ? bytes : 33);
          const { handle } = setup({ mode, transformDer: () => der });
          const body = assertRecovers(await handle(functionUrlEvent({ hash: hex(hash) })), digestFor(mode, hash), KEY.address);
          assert.equal(toBigInt(Buffer.from(body.s.slice(2), 'hex')), lowS);
        }
      });
    }
  }
});

describe('request shapes', () => {
  const hash = randomBytes(32);

  for (const field of ['userOpHash', 'useropHash', 'hash', 'digest']) {
    test(`hash in ${field}`, async () => {
      const { handle } = setup();
      assertRecovers(await handle(functionUrlEvent({ [field]: hex(hash), signerAddress: KEY.address })), eip191Digest(hash), KEY.address);
    });
  }

  test('the first present field wins, in the order userOpHash, useropHash, hash, digest', async () => {
    const { handle } = setup({ mode: 'digest' });
    const [a, b, c, d] = [0, 1, 2, 3].map(() => randomBytes(32));
    const cases = [
      [{ digest: hex(d), hash: hex(c), useropHash: hex(b), userOpHash: hex(a) }, a],
      [{ digest: hex(d), hash: hex(c), useropHash: hex(b) }, b],
      [{ digest: hex(d), hash: hex(c), userOpHash: null }, c],
      [{ digest: hex(d) }, d],
    ];
    for (const [body, expected] of cases) assertRecovers(await handle(functionUrlEvent(body)), expected, KEY.address);
  });

  test('base64 hash (standard and URL-safe, padded or not)', async () => {
    const { handle } = setup({ mode: 'digest' });
    let urlSafe;
    do urlSafe = randomBytes(32);
    while (!/[+/]/.test(urlSafe.toString('base64')));
    for (const encoded of [hash.toString('base64'), urlSafe.toString('base64url'), urlSafe.toString('base64url') + '=']) {
      const expected = Buffer.from(encoded, 'base64');
      assertRecovers(await handle(functionUrlEvent({ hash: encoded })), expected, KEY.address);
    }
  });

  test('64 hex digits without 0x, as the Cloud KMS guide sends them (never valid base64 of 32 bytes)', async () => {
    const { handle } = setup({ mode: 'digest' });
    assertRecovers(await handle(functionUrlEvent({ digest: hash.toString('hex') })), hash, KEY.address);
  });

  test('upper-case hex and 0X prefix', async () => {
    const { handle } = setup({ mode: 'digest' });
    assertRecovers(await handle(functionUrlEvent({ hash: `0X${hash.toString('hex').toUpperCase()}` })), hash, KEY.address);
  });

  test('base64-encoded event body (isBase64Encoded)', async () => {
    const { handle } = setup();
    assertRecovers(await handle(functionUrlEvent({ hash: hex(hash) }, { base64: true })), eip191Digest(hash), KEY.address);
  });

  test('API Gateway REST (AWS_PROXY) events, plain and base64', async () => {
    const { handle } = setup();
    for (const base64 of [false, true]) {
      assertRecovers(await handle(restApiEvent({ userOpHash: hex(hash), signerAddress: KEY.address }, { base64 })), eip191Digest(hash), KEY.address);
    }
  });

  test('signerAddress matches case-insensitively; EXPECTED_ADDRESS may be all lower-case', async () => {
    const { handle } = setup({ env: envFor(KEY, 'eip191', { EXPECTED_ADDRESS: KEY.address.toLowerCase() }) });
    for (const signerAddress of [KEY.address, KEY.address.toLowerCase(), `0x${KEY.address.slice(2).toUpperCase()}`]) {
      const body = assertRecovers(await handle(functionUrlEvent({ hash: hex(hash), signerAddress })), eip191Digest(hash), KEY.address);
      assert.equal(body.address, KEY.address, 'the response carries the EIP-55 form');
    }
  });
});

describe('bad requests', () => {
  const good = hex(randomBytes(32));

  test('a different signerAddress is refused with 400 and nothing is signed', async () => {
    const { kms, handle } = setup();
    assertRequestError(await handle(functionUrlEvent({ hash: good, signerAddress: OTHER_KEY.address })), 400, /signerAddress/);
    assertRequestError(await handle(functionUrlEvent({ hash: good, signerAddress: 42 })), 400, /signerAddress/);
    assert.equal(kms.commands(SignCommand).length, 0);
  });

  const cases = [
    ['bad hex', { hash: `0x${'zz'.repeat(32)}` }, /hash must be 32 bytes.*non-hex/],
    ['31-byte hex', { hash: hex(randomBytes(31)) }, /hash must be 32 bytes.*31 bytes/],
    ['33-byte hex', { digest: hex(randomBytes(33)) }, /digest must be 32 bytes.*33 bytes/],
    ['odd hex digits', { hash: `${good}0` }, /odd number of hex digits/],
    ['bare 0x', { hash: '0x' }, /hash must be 32 bytes.*0 bytes/],
    ['31-byte base64', { hash: randomBytes(31).toString('base64') }, /hash must be 32 bytes/],
    ['62 hex digits without 0x', { hash: good.slice(4) }, /hash must be 32 bytes/],
    ['a number', { useropHash: 12345 }, /useropHash must be 32 bytes/],
    ['no hash field', { signerAddress: KEY.address }, /missing hash.*userOpHash, useropHash, hash, digest/],
    ['only null hash fields', { hash: null, digest: null }, /missing hash/],
  ];
  for (const [name, body, pattern] of cases) {
    test(name, async () => {
      const { kms, handle } = setup();
      assertRequestError(await handle(functionUrlEvent(body)), 400, pattern);
      assert.equal(kms.calls.length, 0);
    });
  }

  test('invalid JSON, non-object JSON, missing body', async () => {
    const { kms, handle } = setup();
    assertRequestError(await handle(functionUrlEvent('{"hash": ')), 400, /not valid JSON/);
    assertRequestError(await handle(functionUrlEvent('not json', { base64: true })), 400, /not valid JSON/);
    for (const text of ['[]', '"0x00"', 'null', '7']) {
      assertRequestError(await handle(functionUrlEvent(text)), 400, /must be a JSON object/);
    }
    assertRequestError(await handle({ ...functionUrlEvent(''), body: undefined }), 400, /missing request body/);
    assertRequestError(await handle(functionUrlEvent('')), 400, /missing request body/);
    assert.equal(kms.calls.length, 0);
  });

  test('methods other than POST get 405', async () => {
    const { kms, handle } = setup();
    assertRequestError(await handle(functionUrlEvent({ hash: good }, { method: 'GET' })), 405, /POST/);
    assertRequestError(await handle(restApiEvent({ hash: good }, { method: 'PUT' })), 405, /POST/);
    assertRequestError(await handle({ body: JSON.stringify({ hash: good }) }), 405, /POST/);
    assert.equal(kms.calls.length, 0);
  });
});

describe('internal faults answer 500 without internals', () => {
  test('KMS Sign throws', async (t) => {
    const secret = new Error('AccessDeniedException: User arn:aws:sts::111122223333:assumed-role/x is not authorized');
    const { handle } = setup({ failWith: { sign: secret } });
    const logged = await assertInternalError(t, handle);
    assert.ok(logged.flat().includes(secret), 'the KMS error is logged');
  });

  test('KMS GetPublicKey throws, and a later request retries the cold start', async (t) => {
    const { kms, handle } = setup({ failWith: { getPublicKey: new Error('ThrottlingException: slow down') } });
    await assertInternalError(t, handle);
    kms.failWith = {};
    const hash = randomBytes(32);
    assertRecovers(await handle(functionUrlEvent({ hash: hex(hash) })), eip191Digest(hash), KEY.address);
    assert.equal(kms.commands(GetPublicKeyCommand).length, 2);
  });

  test('concurrent cold-start requests share one GetPublicKey', async () => {
    const { kms, handle } = setup();
    const hashes = Array.from({ length: 8 }, () => randomBytes(32));
    const responses = await Promise.all(hashes.map((hash) => handle(functionUrlEvent({ hash: hex(hash) }))));
    responses.forEach((response, i) => assertRecovers(response, eip191Digest(hashes[i]), KEY.address));
    assert.equal(kms.commands(GetPublicKeyCommand).length, 1);
  });

  test('a signature by a different key is never returned', async (t) => {
    const { handle } = setup({ signingKey: OTHER_KEY });
    const logged = await assertInternalError(t, handle);
    assert.match(String(logged.flat().find((x) => x instanceof Error)), /does not verify/);
  });

  test('a KMS key that is not the EXPECTED_ADDRESS key: no Sign call at all', async (t) => {
    const { kms, handle } = setup({ env: envFor(OTHER_KEY) });
    const logged = await assertInternalError(t, handle);
    assert.match(String(logged.flat().find((x) => x instanceof Error)), /refusing to sign/);
    assert.equal(kms.commands(SignCommand).length, 0);
  });

  test('a public key that is not secp256k1 (P-256 SPKI, or a KeySpec saying so)', async (t) => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const wrongCurve = setup({ publicKeyResponse: { PublicKey: new Uint8Array(p256), KeySpec: undefined } });
    assert.match(String((await assertInternalError(t, wrongCurve.handle)).flat().find((x) => x instanceof Error)), /not secp256k1/);
    const wrongSpec = setup({ publicKeyResponse: { KeySpec: 'ECC_NIST_P256' } });
    assert.match(String((await assertInternalError(t, wrongSpec.handle)).flat().find((x) => x instanceof Error)), /ECC_NIST_P256/);
    assert.equal(wrongCurve.kms.commands(SignCommand).length + wrongSpec.kms.commands(SignCommand).length, 0);
  });

  test('a public key not on the curve, or with trailing bytes', async (t) => {
    const offCurve = Buffer.from(KEY.spki);
    offCurve[offCurve.length - 1] ^= 1;
    const trailing = Buffer.concat([KEY.spki, Buffer.from([0])]);
    for (const spki of [offCurve, trailing]) {
      const { handle } = setup({ publicKeyResponse: { PublicKey: new Uint8Array(spki) } });
      await assertInternalError(t, handle);
    }
  });

  test('misconfiguration', async (t) => {
    const mixed = KEY.address.slice(2);
    const badChecksum = `0x${[...mixed].map((c) => (/[a-f]/.test(c) ? c.toUpperCase() : /[A-F]/.test(c) ? c.toLowerCase() : c)).join('')}`;
    const envs = [
      { EXPECTED_ADDRESS: KEY.address },
      { KMS_KEY_ID: 'k' },
      { KMS_KEY_ID: 'k', EXPECTED_ADDRESS: '0x1234' },
      { KMS_KEY_ID: 'k', EXPECTED_ADDRESS: KEY.address, SIGNING_MODE: 'personal_sign' },
    ];
    if (/[a-f]/.test(badChecksum) && /[A-F]/.test(badChecksum)) envs.push({ KMS_KEY_ID: 'k', EXPECTED_ADDRESS: badChecksum });
    for (const env of envs) {
      const { kms, handle } = setup({ env });
      await assertInternalError(t, handle);
      assert.equal(kms.calls.length, 0);
    }
  });
});

describe('strict DER', () => {
  const r = toBigInt(randomBytes(32)) % N || 1n;
  const s = toBigInt(randomBytes(32)) % N || 1n;
  const good = derSignature(r, s);
  const int = (bytes) => Buffer.concat([Buffer.from([0x02, bytes.length]), Buffer.from(bytes)]);
  const seq = (...parts) => {
    const body = Buffer.concat(parts);
    return Buffer.concat([Buffer.from([0x30, body.length]), body]);
  };
  const sInt = derSignature(1n, s).subarray(5);

  test('accepts 1- to 33-byte minimal INTEGERs, including the 30/31-byte ones KMS emits', () => {
    for (const value of [1n, 0x7fn, 0x80n, (1n << 232n) + 5n, (1n << 240n) + 7n, (1n << 248n) - 1n, 1n << 255n, N - 1n]) {
      assert.deepEqual(parseDerSignature(derSignature(value, s)), { r: value, s });
      assert.deepEqual(parseDerSignature(derSignature(r, value)), { r, s: value });
    }
  });

  const malformed = [
    ['empty', Buffer.alloc(0), /expected signature SEQUENCE/],
    ['SET instead of SEQUENCE', Buffer.concat([Buffer.from([0x31]), good.subarray(1)]), /expected signature SEQUENCE/],
    ['trailing byte', Buffer.concat([good, Buffer.from([0])]), /trailing bytes/],
    ['long-form length', Buffer.concat([Buffer.from([0x30, 0x81, good.length - 2]), good.subarray(2)]), /length form/],
    ['SEQUENCE length too long', Buffer.concat([Buffer.from([0x30, good.length - 1]), good.subarray(2)]), /runs past the end/],
    ['SEQUENCE length too short', Buffer.concat([Buffer.from([0x30, good.length - 3]), good.subarray(2)]), /trailing bytes/],
    ['truncated', good.subarray(0, good.length - 1), /runs past the end/],
    ['BIT STRING instead of INTEGER', seq(Buffer.from([0x03, 1, 1]), sInt), /expected INTEGER r/],
    ['a third INTEGER', seq(int([1]), sInt, int([1])), /extra bytes inside/],
    ['only one INTEGER', seq(int([1])), /expected INTEGER s/],
    ['empty INTEGER', seq(int([]), sInt), /INTEGER r has 0 bytes/],
    ['negative INTEGER', seq(int([0x80, 1]), sInt), /INTEGER r is negative/],
    ['non-minimal INTEGER', seq(int([0, 0x7f]), sInt), /not minimally encoded/],
    ['non-minimal zero', seq(int([0, 0]), sInt), /not minimally encoded/],
    ['34-byte INTEGER', seq(int([0, ...Buffer.alloc(33, 0xff)]), sInt), /has 34 bytes/],
    ['33-byte INTEGER >= 2^256', seq(int([1, ...Buffer.alloc(32)]), sInt), /r is out of range/],
    ['r = 0', seq(int([0]), sInt), /r is out of range/],
    ['s = n', derSignature(r, N), /s is out of range/],
  ];
  for (const [name, der, pattern] of malformed) {
    test(`rejects ${name}`, async (t) => {
      assert.throws(() => parseDerSignature(der), pattern);
      const { handle } = setup({ transformDer: () => der });
      const logged = await assertInternalError(t, handle);
      assert.match(String(logged.flat().find((x) => x instanceof Error)), pattern);
    });
  }
});
