// The Cloud Run signDigest template in-process: the request contract as the Functions
// Framework hands it over (pre-parsed JSON or a raw body), the Cloud KMS integrity checks
// (every CRC32C, the echoed version name), the key check at cold start, and signatures
// checked by ethers (the template itself signs with @noble/curves). The template against the stand-in with the real
// @google-cloud/kms client is tested end to end in tests/gcp_lifecycle.rs.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { recoverAddress } from 'ethers';
import crc32c from 'fast-crc32c';
import { clientOptions, createSignDigest } from '../../templates/gcp-cloud-run-signer/index.mjs';
import { addressOfPoint, derSignature, derValues, eip191Digest, hex, makeKey, N, toBigInt } from './support/signer-fixtures.mjs';

const VERSION = 'projects/p-1/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3';
const crc = (bytes) => ({ value: String(crc32c.calculate(Buffer.from(bytes))) });

/** A Cloud KMS client stand-in signing with a real key; `faults` corrupts its answers. */
function fakeKms(key, faults = {}) {
  const pem = `-----BEGIN PUBLIC KEY-----\n${key.spki.toString('base64')}\n-----END PUBLIC KEY-----\n`;
  const calls = [];
  return {
    calls,
    async getPublicKey(request) {
      calls.push(['getPublicKey', request]);
      const pemCrc32c = faults.pemCrc ? { value: '1' } : crc(pem);
      return [{ name: request.name, pem, pemCrc32c }];
    },
    async asymmetricSign(request) {
      calls.push(['asymmetricSign', request]);
      const digest = Buffer.from(request.digest.sha256);
      const d = Buffer.from(key.d.toString(16).padStart(64, '0'), 'hex');
      const sig = secp256k1.Signature.fromBytes(secp256k1.sign(digest, d, { prehash: false }));
      const s = calls.length % 2 ? N - sig.s : sig.s; // high-s every other call, as an HSM does
      const signature = derSignature(sig.r, s);
      return [
        {
          name: faults.name ?? request.name,
          signature,
          signatureCrc32c: faults.signatureCrc ? { value: '7' } : crc(signature),
          verifiedDigestCrc32c: !faults.unverified && BigInt(request.digestCrc32c.value) === BigInt(crc32c.calculate(digest)),
        },
      ];
    },
  };
}

function setup({ mode, faults, address } = {}) {
  const key = makeKey();
  const kms = fakeKms(key, faults);
  const env = { KMS_KEY_VERSION: VERSION, EXPECTED_ADDRESS: address ?? key.address, ...(mode ? { SIGNING_MODE: mode } : {}) };
  const signDigest = createSignDigest({ kms, env });
  /** Calls the function the way the Functions Framework does; resolves to {status, body}. */
  const call = async (req) => {
    const res = {
      status(code) {
        this.code = code;
        return this;
      },
      json(body) {
        this.body = body;
      },
    };
    await signDigest({ method: 'POST', ...req }, res);
    return { status: res.code, body: res.body };
  };
  return { key, kms, call };
}

function assertSigned({ status, body }, digest, address) {
  assert.equal(status, 200, JSON.stringify(body));
  const sig = Buffer.from(body.signature.slice(2), 'hex');
  assert.equal(sig.length, 65);
  assert.ok(toBigInt(sig.subarray(32, 64)) <= N >> 1n, 'high s returned');
  assert.ok(body.v === 27 || body.v === 28);
  assert.equal(recoverAddress(hex(digest), body.signature), address);
  // derSignature is Cloud KMS's own DER, as the Cloud KMS guide's callers expect it: the
  // same (r, s), s possibly high.
  const der = derValues(Buffer.from(body.derSignature, 'hex'));
  assert.equal(hex(Buffer.from(der.r.toString(16).padStart(64, '0'), 'hex')), body.r);
  const lowS = der.s > N >> 1n ? N - der.s : der.s;
  assert.equal(`0x${lowS.toString(16).padStart(64, '0')}`, body.s);
  return body;
}

describe('Cloud Run signDigest', () => {
  test('signs the EIP-191 hash by default, sending the digest CRC32C', async () => {
    const { key, kms, call } = setup();
    const hash = randomBytes(32);
    assertSigned(await call({ body: { userOpHash: hex(hash), signerAddress: key.address } }), eip191Digest(hash), key.address);
    const [, request] = kms.calls.find(([op]) => op === 'asymmetricSign');
    assert.equal(request.name, VERSION);
    assert.equal(BigInt(request.digestCrc32c.value), BigInt(crc32c.calculate(eip191Digest(hash))));
  });

  test('digest mode, with the Cloud KMS guide request: {digest: <64 hex digits>}, raw body', async () => {
    const { key, call } = setup({ mode: 'digest' });
    const hash = randomBytes(32);
    const rawBody = Buffer.from(JSON.stringify({ digest: hash.toString('hex') }));
    assertSigned(await call({ rawBody, body: rawBody }), hash, key.address);
  });

  test('the public key is read once and checked against EXPECTED_ADDRESS', async () => {
    const { kms, call, key } = setup({ mode: 'digest' });
    for (let i = 0; i < 3; i++) assertSigned(await call({ body: { hash: hex(Buffer.alloc(32, i + 1)) } }), Buffer.alloc(32, i + 1), key.address);
    assert.equal(kms.calls.filter(([op]) => op === 'getPublicKey').length, 1);

    const other = makeKey();
    const wrong = setup({ address: other.address });
    const answer = await wrong.call({ body: { hash: hex(randomBytes(32)) } });
    assert.deepEqual(answer, { status: 500, body: { error: 'internal error' } });
    assert.equal(wrong.kms.calls.filter(([op]) => op === 'asymmetricSign').length, 0, 'signed with the wrong key');
  });

  const faults = [
    ['a wrong signature CRC32C', { signatureCrc: true }],
    ['an unconfirmed digest CRC32C', { unverified: true }],
    ['an answer for another version', { name: VERSION.replace(/3$/, '4') }],
    ['a wrong PEM CRC32C', { pemCrc: true }],
  ];
  for (const [name, fault] of faults) {
    test(`${name} is an error, never a signature`, async () => {
      const { call } = setup({ faults: fault });
      const answer = await call({ body: { hash: hex(randomBytes(32)) } });
      assert.deepEqual(answer, { status: 500, body: { error: 'internal error' } });
    });
  }

  test('bad requests get 4xx and reach no KMS', async () => {
    const { kms, call, key } = setup();
    assert.equal((await call({ method: 'GET' })).status, 405);
    assert.equal((await call({ body: [] })).status, 400);
    assert.equal((await call({ rawBody: Buffer.from('{"hash": '), body: Buffer.from('{"hash": ') })).status, 400);
    assert.equal((await call({ body: { hash: '0x1234' } })).status, 400);
    const other = await call({ body: { hash: hex(randomBytes(32)), signerAddress: makeKey().address } });
    assert.deepEqual(other, { status: 400, body: { error: 'signerAddress does not match the address of this signer' } });
    assert.equal(kms.calls.length, 0);
    assert.ok(key.address);
  });

  test('KMS_KEY_VERSION must name one version, never a key', async () => {
    const key = makeKey();
    const signDigest = createSignDigest({ kms: fakeKms(key), env: { KMS_KEY_VERSION: VERSION.replace(/\/cryptoKeyVersions\/3$/, ''), EXPECTED_ADDRESS: key.address } });
    const res = { status(c) { this.code = c; return this; }, json(b) { this.body = b; } };
    await signDigest({ method: 'POST', body: { hash: hex(randomBytes(32)) } }, res);
    assert.equal(res.code, 500);
  });

  test('KMS_API_ENDPOINT selects REST against a local endpoint; unset, Google defaults', () => {
    assert.deepEqual(clientOptions({}), {});
    assert.deepEqual(clientOptions({ KMS_API_ENDPOINT: 'http://127.0.0.1:8085' }), {
      apiEndpoint: '127.0.0.1',
      port: 8085,
      protocol: 'http',
      fallback: true,
    });
  });
});
