// Test support for the AWS Lambda signer template: keys, an in-process KMS stand-in that
// signs like KMS does (DER, high or low s, any nonce), Lambda events, and an independent
// checker. The templates sign with @noble/curves 2 (templates/shared/noble-curves.mjs),
// so the judge of their answers is ethers (its own secp256k1 and Keccak code, from
// another noble release), never the library under test; the stand-in's signing may use
// @noble/curves, since ethers checks whatever it produces.
import assert from 'node:assert/strict';
import { GetPublicKeyCommand, SignCommand } from '@aws-sdk/client-kms';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { computeAddress, hashMessage, recoverAddress } from 'ethers';

const { Point } = secp256k1;
export const N = Point.Fn.ORDER;
const SPKI_PREFIX = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex');

/** A nonce whose R has 2^232 <= x < 2^239: its r is a 30-byte DER INTEGER (found by search). */
export const NONCE_WITH_30_BYTE_R = 0x5eed0000000000000000000000000000000000000000000000000000000416een;

export function toBigInt(bytes) {
  return BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
}

/** The EIP-55 address of an uncompressed public key, by ethers. */
export function addressOfPoint(uncompressed65) {
  return computeAddress(hex(uncompressed65));
}

/** A secp256k1 key as KMS would describe it. */
export function makeKey() {
  const secret = secp256k1.utils.randomSecretKey();
  const publicKey = secp256k1.getPublicKey(secret, false);
  return {
    d: toBigInt(secret),
    publicKey,
    spki: Buffer.concat([SPKI_PREFIX, publicKey]),
    address: addressOfPoint(publicKey),
    arn: `arn:aws:kms:us-east-1:111122223333:key/${crypto.randomUUID()}`,
  };
}

/** The EIP-191 personal-message hash of 32 bytes, by ethers. */
export function eip191Digest(hash) {
  return Buffer.from(hashMessage(hash).slice(2), 'hex');
}

function derInteger(value) {
  let bytes = Buffer.from(value.toString(16).padStart(2 * Math.ceil(value.toString(16).length / 2), '0'), 'hex');
  if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}

/** Byte lengths of the r and s INTEGERs of a (well-formed) DER signature. */
export function derIntegerLengths(der) {
  return [der[3], der[5 + der[3]]];
}

export function derSignature(r, s) {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** s of an ECDSA signature of digest z by key d with nonce k (r given). */
export function ecdsaS(z, r, d, k) {
  const { Fn } = Point;
  return Fn.mul(Fn.inv(k), Fn.add(Fn.create(z), Fn.mul(r, d)));
}

export function nonceR(k) {
  return Point.Fn.create(Point.BASE.multiply(k).toAffine().x);
}

/**
 * Stands in for a KMSClient: answers GetPublicKey with `key` and Sign with a DER ECDSA
 * signature by `signingKey` (default `key`), half the time with the high s (n - s) as
 * KMS may. Options override the nonce, the DER bytes or the GetPublicKey answer, or
 * make a call throw.
 */
export class KmsStandIn {
  constructor(key, options = {}) {
    this.key = key;
    this.signingKey = options.signingKey ?? key;
    this.nonce = options.nonce ?? (() => toBigInt(secp256k1.utils.randomSecretKey()));
    this.transformDer = options.transformDer ?? ((der) => der);
    this.publicKeyResponse = options.publicKeyResponse ?? {};
    this.failWith = options.failWith ?? {};
    this.calls = [];
    this.highSCount = 0;
  }

  async send(command) {
    this.calls.push(command);
    if (command instanceof GetPublicKeyCommand) {
      if (this.failWith.getPublicKey) throw this.failWith.getPublicKey;
      return {
        KeyId: this.key.arn,
        KeySpec: 'ECC_SECG_P256K1',
        KeyUsage: 'SIGN_VERIFY',
        PublicKey: new Uint8Array(this.key.spki),
        ...this.publicKeyResponse,
      };
    }
    if (command instanceof SignCommand) {
      if (this.failWith.sign) throw this.failWith.sign;
      const { r, s } = this.sign(toBigInt(command.input.Message));
      return { KeyId: this.key.arn, SigningAlgorithm: 'ECDSA_SHA_256', Signature: new Uint8Array(this.transformDer(derSignature(r, s))) };
    }
    throw new Error(`KMS stand-in: unexpected command ${command.constructor.name}`);
  }

  sign(z) {
    for (;;) {
      const k = this.nonce();
      const r = nonceR(k);
      let s = ecdsaS(z, r, this.signingKey.d, k);
      if (r === 0n || s === 0n) continue;
      if (Math.random() < 0.5) s = N - s;
      if (s > N >> 1n) this.highSCount++;
      return { r, s };
    }
  }

  commands(type) {
    return this.calls.filter((command) => command instanceof type);
  }
}

export function functionUrlEvent(body, { method = 'POST', base64 = false } = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {
    version: '2.0',
    rawPath: '/',
    requestContext: { http: { method, path: '/' } },
    headers: { 'content-type': 'application/json' },
    body: base64 ? Buffer.from(text).toString('base64') : text,
    isBase64Encoded: base64,
  };
}

export function restApiEvent(body, { method = 'POST', base64 = false } = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {
    resource: '/sign',
    path: '/sign',
    httpMethod: method,
    requestContext: { httpMethod: method, stage: 'prod' },
    headers: { 'Content-Type': 'application/json' },
    body: base64 ? Buffer.from(text).toString('base64') : text,
    isBase64Encoded: base64,
  };
}

export function hex(bytes) {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}

/**
 * Asserts a 200 response carries a low-s signature of `digest` whose v recovers, by
 * ethers, to `address`; returns the parsed body.
 */
export function assertRecovers(response, digest, address) {
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['content-type'], 'application/json');
  const body = JSON.parse(response.body);
  assert.match(body.signature, /^0x[0-9a-f]{130}$/);
  const sig = Buffer.from(body.signature.slice(2), 'hex');
  assert.equal(body.r, hex(sig.subarray(0, 32)));
  assert.equal(body.s, hex(sig.subarray(32, 64)));
  assert.ok(body.v === 27 || body.v === 28, `v = ${body.v}`);
  assert.equal(sig[64], body.v);
  assert.equal(body.recid, body.v - 27);
  assert.ok(toBigInt(sig.subarray(32, 64)) <= N >> 1n, 'high s returned');
  assert.equal(recoverAddress(hex(digest), body.signature), address);
  assert.equal(body.address, address);
  return body;
}

/** (r, s) of a well-formed DER ECDSA signature, read without the template's parser. */
export function derValues(der) {
  const rLength = der[3];
  const r = toBigInt(der.subarray(4, 4 + rLength));
  return { r, s: toBigInt(der.subarray(6 + rLength, 6 + rLength + der[5 + rLength])) };
}
