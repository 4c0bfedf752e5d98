/**
 * keyrite signer core: what every keyrite signer template shares, whatever cloud holds the
 * key. The request contract wallet platforms document, the signer's configuration, and the
 * checks that turn a KMS's DER signature into Ethereum's r||s||v. Node.js 20, ESM. The
 * templates (aws-lambda-signer, gcp-cloud-run-signer) import it as ./signer-core.mjs and
 * add only their platform's request shape and KMS call.
 *
 * Contract
 *   Request: a JSON object holding the 32-byte hash in the first present of
 *   userOpHash | useropHash | hash | digest (0x-hex or base64) and, optionally,
 *   signerAddress, which must equal EXPECTED_ADDRESS (case-insensitive).
 *   Environment: EXPECTED_ADDRESS (the EIP-55 address the key must sign for),
 *   SIGNING_MODE = "eip191" (default) | "digest". eip191 signs
 *   keccak256("\x19Ethereum Signed Message:\n32" || hash); digest signs the 32 bytes as given.
 *   Answer: {signature: 0x r||s||v, r, s, recid, v, address}, low-s, v in {27, 28}.
 *
 * Cryptography: an audited library, not our own
 *   Every field, curve and hash operation is @noble/curves / @noble/hashes (audited, pinned
 *   in package-lock.json), shipped beside this file as ./noble-curves.mjs: a bundle that
 *   scripts/vendor-noble.mjs generates from the pinned npm packages, and that
 *   tests/node/vendor.test.mjs proves byte-identical to what they hold. This file only
 *   parses (strict DER and SPKI, with the error messages the contract names), chooses
 *   which library calls to make, and compares.
 *
 * What it checks, and why
 *   KMS returns a DER (r, s) and no recovery id, and a wallet platform needs r||s||v. We
 *   also refuse to return anything that does not recover to EXPECTED_ADDRESS. Both come
 *   from one computation, ECDSA verification (SEC 1, 4.1.4, as noble's own `verify`
 *   does it): with w = s^-1, u1 = z*w and u2 = r*w (mod n), R = u1*G + u2*Q is the
 *   signer's nonce point; x(R) == r proves the signature valid for our key Q, and the
 *   parity of y(R) is the recovery id (x(R) = r + n would need recovery id 2 or 3, which
 *   v = 27/28 cannot say, so it is refused). At cold start the template fetches Q; its
 *   SPKI is parsed strictly (id-ecPublicKey, secp256k1), the point checked by the
 *   library, its address derived and compared with EXPECTED_ADDRESS; on mismatch nothing
 *   is ever signed.
 *
 * Cost (figures: BENCHMARKS.md, `npm run bench:signer`)
 *   G and Q are fixed for the life of the container, so each gets the library's wNAF
 *   table (precompute, window 8: G's at module load, Q's at cold start) and a request
 *   costs two table-driven multiplyUnsafe calls, one addition and one inversion. noble's
 *   own verify or recoverPublicKey, which multiply without tables (and would need trying
 *   both recovery ids), cost three to six times as much.
 */

import { keccak_256, secp256k1 } from './noble-curves.mjs';

const { Point } = secp256k1;
const { Fn } = Point;
const N = Fn.ORDER;
const HALF_N = N >> 1n;
/** wNAF window of the G and Q tables: 2^7 points per window, 33 windows (~4,200 points each). */
const TABLE_WINDOW = 8;
Point.BASE.precompute(TABLE_WINDOW, false);

// ---------------------------------------------------------------- request contract

export const HASH_FIELDS = ['userOpHash', 'useropHash', 'hash', 'digest'];

/** A problem with the request: answered with its status and message. */
export class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The request body as a JSON object. */
export function parseJsonBody(text) {
  if (typeof text !== 'string' || text.length === 0) {
    throw new RequestError(400, 'missing request body: send a JSON object');
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestError(400, 'request body is not valid JSON');
  }
  return checkObject(body);
}

/** Refuses anything but a JSON object (frameworks that pre-parse JSON hand over values). */
export function checkObject(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) {
    throw new RequestError(400, 'request body must be a JSON object');
  }
  return body;
}

/** The hash to sign and the optional signerAddress of a request body. */
export function parseSignRequest(body) {
  const field = HASH_FIELDS.find((name) => body[name] !== undefined && body[name] !== null);
  if (field === undefined) throw new RequestError(400, `missing hash: send one of ${HASH_FIELDS.join(', ')}`);
  const hash = decodeHash(body[field], field);
  const { signerAddress } = body;
  if (signerAddress !== undefined && signerAddress !== null && typeof signerAddress !== 'string') {
    throw new RequestError(400, 'signerAddress must be a string');
  }
  return { hash, signerAddress: signerAddress ?? undefined };
}

/** Refuses a request naming another signer. */
export function checkSignerAddress(request, config) {
  if (request.signerAddress !== undefined && request.signerAddress.toLowerCase() !== config.address.toLowerCase()) {
    throw new RequestError(400, 'signerAddress does not match the address of this signer');
  }
}

const HEX_32 = /^0[xX][0-9a-fA-F]{64}$/;
const BARE_HEX_32 = /^[0-9a-fA-F]{64}$/;
const BASE64_32 = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * 32 bytes from 0x-hex or base64 (standard or URL-safe, padding optional). 64 hex digits
 * without 0x are hex too, as the Cloud KMS guide's callers send them: base64 of 32 bytes
 * is 43 or 44 characters, so the two never collide.
 */
function decodeHash(value, field) {
  const expected = `${field} must be 32 bytes as 0x-prefixed hex or base64`;
  if (typeof value !== 'string') throw new RequestError(400, expected);
  if (BARE_HEX_32.test(value)) return Buffer.from(value, 'hex');
  if (value.startsWith('0x') || value.startsWith('0X')) {
    if (!HEX_32.test(value)) throw new RequestError(400, `${expected}; got ${describeHex(value)}`);
    return Buffer.from(value.slice(2), 'hex');
  }
  if (!BASE64_32.test(value)) throw new RequestError(400, expected);
  return Buffer.from(value, 'base64');
}

function describeHex(value) {
  const digits = value.slice(2);
  if (!/^[0-9a-fA-F]*$/.test(digits)) return 'non-hex characters';
  return digits.length % 2 === 0 ? `${digits.length / 2} bytes` : `an odd number of hex digits (${digits.length})`;
}

// ---------------------------------------------------------------- configuration

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const SIGNING_MODES = ['eip191', 'digest'];

/** EXPECTED_ADDRESS (EIP-55 checked when mixed-case) and SIGNING_MODE. */
export function readSignerConfig(env) {
  const address = (env.EXPECTED_ADDRESS ?? '').trim();
  if (!ADDRESS.test(address)) throw new Error(`EXPECTED_ADDRESS is not a 0x-prefixed 20-byte hex address: "${address}"`);
  const hex = address.slice(2);
  const mixedCase = hex !== hex.toLowerCase() && hex !== hex.toUpperCase();
  if (mixedCase && toChecksumAddress(hex.toLowerCase()) !== address) {
    throw new Error(`EXPECTED_ADDRESS fails its EIP-55 checksum: ${address}`);
  }
  const mode = (env.SIGNING_MODE ?? '').trim().toLowerCase() || 'eip191';
  if (!SIGNING_MODES.includes(mode)) throw new Error(`SIGNING_MODE must be one of ${SIGNING_MODES.join(', ')}: "${mode}"`);
  return { address: toChecksumAddress(hex.toLowerCase()), mode };
}

/**
 * The signer of one container: configuration read on first use, the key fetched, checked
 * and its table built once, then per request: prehash, the KMS call, and the answer.
 * `readConfig()` returns at least {address, mode}; `loadKey(config)` returns prepareKey's
 * result plus what `kmsSign(key, digest, config)` needs to return the DER signature.
 */
export function createSigner({ readConfig, loadKey, kmsSign }) {
  let config;
  const getConfig = () => (config ??= readConfig());
  const keyReady = once(() => loadKey(getConfig()));
  return {
    config: getConfig,
    /** {signature, r, s, recid, v, address} and the KMS's own `der`. */
    async sign(hash) {
      const key = await keyReady();
      const digest = prehash(getConfig().mode, hash);
      const der = await kmsSign(key, digest, getConfig());
      return { ...toSignature(der, digest, key), der };
    },
  };
}

/**
 * A cached async initialiser: run once, shared by concurrent callers, dropped on failure
 * so that a later request retries.
 */
function once(init) {
  let ready;
  return () => {
    ready ??= init().catch((err) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };
}

// ---------------------------------------------------------------- signing

/**
 * Checks a KMS public key (SPKI DER) against the expected address and builds its table.
 * `what` names the key in errors.
 */
export function prepareKey(spki, expectedAddress, what) {
  const { point, xy } = parseSecp256k1Spki(spki);
  const address = toChecksumAddress(keccak256(xy).toString('hex', 12));
  if (address !== expectedAddress) {
    throw new Error(`${what} signs for ${address}, not EXPECTED_ADDRESS ${expectedAddress}; refusing to sign`);
  }
  return { address, point: point.precompute(TABLE_WINDOW, false) };
}

/** The SPKI DER inside a PEM "PUBLIC KEY" block. */
export function pemToDer(pem) {
  const match = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/.exec(pem.trim() + '\n');
  if (!match) throw new Error('public key is not a PEM "PUBLIC KEY" block');
  return Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
}

const EIP191_PREFIX = Buffer.from('\x19Ethereum Signed Message:\n32', 'latin1');

/** The 32 bytes KMS signs for a request hash. */
export function prehash(mode, hash) {
  return mode === 'eip191' ? keccak256(Buffer.concat([EIP191_PREFIX, hash])) : hash;
}

/** A KMS DER signature over `digest` as the contract's answer: low-s r||s||v, verified. */
export function toSignature(der, digest, key) {
  let { r, s } = parseDerSignature(der);
  if (s > HALF_N) s = N - s; // EIP-2 low-s: (r, n - s) is the same signature with R negated
  const recid = recoveryId(bytesToBigInt(digest), r, s, key.point);
  const rHex = bigIntToHex32(r);
  const sHex = bigIntToHex32(s);
  const v = 27 + recid;
  return {
    signature: `0x${rHex}${sHex}${v.toString(16)}`,
    r: `0x${rHex}`,
    s: `0x${sHex}`,
    recid,
    v,
    address: key.address,
  };
}

/**
 * Verifies (r, s) on digest z against Q and returns the recovery id: the parity of
 * y(R) for R = (z/s)*G + (r/s)*Q. Throws unless x(R) == r exactly (x(R) = r + n would
 * need recovery id 2 or 3, which v = 27/28 cannot express). R is the identity only when
 * the signature is not valid; its affine form is then (0, 0), and 0 is never a valid r.
 */
function recoveryId(z, r, s, Q) {
  const w = Fn.inv(s);
  const R = Point.BASE.multiplyUnsafe(Fn.create(z * w)).add(Q.multiplyUnsafe(Fn.mul(r, w))).toAffine();
  if (R.x !== r) throw new Error('KMS returned a signature that does not verify against the configured key');
  return Number(R.y & 1n);
}

// ---------------------------------------------------------------- DER

const OID_EC_PUBLIC_KEY = '2a8648ce3d0201'; // 1.2.840.10045.2.1
const OID_SECP256K1 = '2b8104000a'; // 1.3.132.0.10

/**
 * One DER TLV with the expected tag at `pos`. Every structure here is shorter than 128
 * bytes, and DER then requires the one-byte length form, so any other is an error.
 */
function readTlv(der, pos, tag, what) {
  if (pos + 2 > der.length || der[pos] !== tag) throw new Error(`DER: expected ${what}`);
  const length = der[pos + 1];
  if (length >= 0x80) throw new Error(`DER: ${what} has a length form not valid here`);
  const start = pos + 2;
  const end = start + length;
  if (end > der.length) throw new Error(`DER: ${what} runs past the end`);
  return { start, end };
}

/** SEQUENCE { INTEGER r, INTEGER s }, exact lengths, minimal encodings, 1 <= r, s < n. */
export function parseDerSignature(der) {
  const seq = readTlv(der, 0, 0x30, 'signature SEQUENCE');
  if (seq.end !== der.length) throw new Error('DER: trailing bytes after the signature');
  const rTlv = readTlv(der, seq.start, 0x02, 'INTEGER r');
  const sTlv = readTlv(der, rTlv.end, 0x02, 'INTEGER s');
  if (sTlv.end !== seq.end) throw new Error('DER: extra bytes inside the signature SEQUENCE');
  return { r: derScalar(der, rTlv, 'r'), s: derScalar(der, sTlv, 's') };
}

function derScalar(der, { start, end }, name) {
  const length = end - start;
  if (length < 1 || length > 33) throw new Error(`DER: INTEGER ${name} has ${length} bytes`);
  if (der[start] & 0x80) throw new Error(`DER: INTEGER ${name} is negative`);
  if (length > 1 && der[start] === 0 && !(der[start + 1] & 0x80)) {
    throw new Error(`DER: INTEGER ${name} is not minimally encoded`);
  }
  const value = bytesToBigInt(der.subarray(start, end));
  if (value === 0n || value >= N) throw new Error(`DER: ${name} is out of range`);
  return value;
}

/** SubjectPublicKeyInfo of an uncompressed secp256k1 point, checked to be on the curve. */
function parseSecp256k1Spki(der) {
  const spki = readTlv(der, 0, 0x30, 'SubjectPublicKeyInfo');
  if (spki.end !== der.length) throw new Error('SPKI: trailing bytes');
  const algorithm = readTlv(der, spki.start, 0x30, 'AlgorithmIdentifier');
  const keyType = readTlv(der, algorithm.start, 0x06, 'algorithm OID');
  const curve = readTlv(der, keyType.end, 0x06, 'curve OID');
  if (der.toString('hex', keyType.start, keyType.end) !== OID_EC_PUBLIC_KEY) throw new Error('SPKI: not an EC key');
  if (der.toString('hex', curve.start, curve.end) !== OID_SECP256K1) throw new Error('SPKI: EC key is not secp256k1');
  if (curve.end !== algorithm.end) throw new Error('SPKI: extra AlgorithmIdentifier parameters');
  const bits = readTlv(der, algorithm.end, 0x03, 'subjectPublicKey BIT STRING');
  if (bits.end !== spki.end) throw new Error('SPKI: extra bytes after the key');
  if (bits.end - bits.start !== 66 || der[bits.start] !== 0 || der[bits.start + 1] !== 0x04) {
    throw new Error('SPKI: key is not an uncompressed point');
  }
  const xy = der.subarray(bits.start + 1, bits.end);
  let point;
  try {
    point = Point.fromBytes(xy); // 0x04 || x || y; checks x, y < p and y^2 = x^3 + 7
  } catch {
    throw new Error('SPKI: point is not on secp256k1');
  }
  return { point, xy: xy.subarray(1) };
}

// ---------------------------------------------------------------- addresses

export function toChecksumAddress(lowerHex) {
  const hash = keccak256(Buffer.from(lowerHex, 'latin1')).toString('hex');
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lowerHex[i].toUpperCase() : lowerHex[i];
  return out;
}

// ---------------------------------------------------------------- Keccak-256 and scalars

/** Keccak-256 (Ethereum's, not SHA3-256) of bytes, as a Buffer. */
export function keccak256(data) {
  const out = keccak_256(data);
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

function bytesToBigInt(bytes) {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex') || '0'}`);
}

function bigIntToHex32(value) {
  return value.toString(16).padStart(64, '0');
}
