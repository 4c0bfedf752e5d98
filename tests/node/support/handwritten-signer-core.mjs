// NOT SHIPPED. Benchmark baseline only: the hand-written signer core that the templates used
// until they signed with @noble/curves (git: templates/shared/signer-core.mjs before branch
// node-noble), kept byte-for-byte below this comment so that `npm run bench:signer` can
// measure the template's handler with it and with the library side by side. keyrite never
// packages this file (crates/keyrite-aws/src/package.rs includes templates/ only) and no template imports it.

/**
 * keyrite signer core: what every keyrite signer template shares, whatever cloud holds the
 * key. The request contract wallet platforms document, the signer's configuration, and the
 * secp256k1 work that turns a KMS's DER signature into Ethereum's r||s||v. No dependencies;
 * Node.js 20, ESM. The templates (aws-lambda-signer, gcp-cloud-run-signer) import it as
 * ./signer-core.mjs and add only their platform's request shape and KMS call.
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
 * Why the work below
 *   KMS returns a DER (r, s) and no recovery id, and a wallet platform needs r||s||v.
 *   We also refuse to return anything that does not recover to EXPECTED_ADDRESS. Both
 *   come from one computation: with w = s^-1, u1 = z*w and u2 = r*w (mod n),
 *   R = u1*G + u2*Q is the signer's nonce point; x(R) == r proves the signature valid
 *   for our key Q (ECDSA verification), and the parity of y(R) is the recovery id.
 *   At cold start the template fetches Q; its SPKI is parsed strictly (id-ecPublicKey,
 *   secp256k1), its address derived and compared with EXPECTED_ADDRESS; on mismatch
 *   nothing is ever signed.
 *
 * How it is made fast (figures: BENCHMARKS.md, `npm run bench:signer`)
 *   G and Q are both fixed for the life of the container, so each gets a signed-digit
 *   comb table (32 windows of 8 bits x 128 affine multiples, ~0.7 MB; G's is built at
 *   module load, Q's at cold start). A request then costs at most 64 mixed additions
 *   in XYZZ coordinates (8M + 2S each), no doublings, and two modular inversions
 *   (s^-1 mod n, 1/ZZZ mod p) by Lehmer's extended Euclid. Field elements are 11 signed
 *   24-bit limbs in float64s: every product and column sum stays below 2^53, so the
 *   arithmetic is exact, allocation-free and ~3x faster than BigInt multiply-and-mod.
 *   Keccak-256 runs on 32-bit lane halves. Measured side by side: 0.11-0.18 ms of CPU
 *   per request, against 2.5-3.3 ms when node:crypto does the scalar multiplications
 *   (three ECDH operations; OpenSSL's generic secp256k1 code is slow, and crypto.verify
 *   is no option: it always hashes its input, while KMS signs a raw digest) and
 *   5.6-8.9 ms for trial recovery in BigInt.
 */

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
 * and its comb table built once, then per request: prehash, the KMS call, and the answer.
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
 * Checks a KMS public key (SPKI DER) against the expected address and builds its comb
 * table. `what` names the key in errors.
 */
export function prepareKey(spki, expectedAddress, what) {
  const { x, y, xy } = parseSecp256k1Spki(spki);
  const address = toChecksumAddress(keccak256(xy).toString('hex', 12));
  if (address !== expectedAddress) {
    throw new Error(`${what} signs for ${address}, not EXPECTED_ADDRESS ${expectedAddress}; refusing to sign`);
  }
  return { address, table: buildCombTable(x, y) };
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
  const recid = recoveryId(bytesToBigInt(digest), r, s, key.table);
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
 * need recovery id 2 or 3, which v = 27/28 cannot express).
 */
function recoveryId(z, r, s, qTable) {
  const w = modInverse(s, N);
  const R = doubleBaseMultiply((z * w) % N, G_TABLE, (r * w) % N, qTable);
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
  const xy = der.subarray(bits.start + 2, bits.end);
  const x = bytesToBigInt(xy.subarray(0, 32));
  const y = bytesToBigInt(xy.subarray(32));
  if (x >= P || y >= P || (y * y - x * x * x - 7n) % P !== 0n) throw new Error('SPKI: point is not on secp256k1');
  return { x, y, xy };
}

// ---------------------------------------------------------------- addresses

export function toChecksumAddress(lowerHex) {
  const hash = keccak256(Buffer.from(lowerHex, 'latin1')).toString('hex');
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lowerHex[i].toUpperCase() : lowerHex[i];
  return out;
}

// ---------------------------------------------------------------- Keccak-256

// 64-bit lanes as (lo, hi) 32-bit halves: state[2i] = lo, state[2i + 1] = hi of lane i.
const KECCAK_RATE = 136;
const { RC_LO, RC_HI, RHO, PI } = keccakConstants();
const keccakState = new Uint32Array(50);
const keccakColumns = new Uint32Array(10);

/** Round constants (the spec's LFSR) and the rho offsets / pi lane order of its walk. */
function keccakConstants() {
  const RC_LO = new Uint32Array(24);
  const RC_HI = new Uint32Array(24);
  const RHO = new Uint8Array(24);
  const PI = new Uint8Array(24);
  let lfsr = 1;
  for (let round = 0, x = 1, y = 0; round < 24; round++) {
    [x, y] = [y, (2 * x + 3 * y) % 5];
    PI[round] = 2 * (x + 5 * y);
    RHO[round] = (((round + 1) * (round + 2)) / 2) % 64;
    for (let j = 0; j < 7; j++) {
      lfsr = ((lfsr << 1) ^ ((lfsr >> 7) * 0x71)) & 0xff;
      const bit = (1 << j) - 1;
      if (lfsr & 2) {
        if (bit < 32) RC_LO[round] ^= 1 << bit;
        else RC_HI[round] ^= 1 << (bit - 32);
      }
    }
  }
  return { RC_LO, RC_HI, RHO, PI };
}

/** Keccak-256 (the Ethereum hash, not SHA3-256) of a Buffer. */
export function keccak256(data) {
  const state = keccakState;
  state.fill(0);
  let offset = 0;
  for (; offset + KECCAK_RATE <= data.length; offset += KECCAK_RATE) {
    absorb(state, data, offset, KECCAK_RATE);
    keccakF(state);
  }
  const last = Buffer.alloc(KECCAK_RATE);
  data.copy(last, 0, offset);
  last[data.length - offset] ^= 0x01;
  last[KECCAK_RATE - 1] ^= 0x80;
  absorb(state, last, 0, KECCAK_RATE);
  keccakF(state);
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeUInt32LE(state[i], 4 * i);
  return out;
}

function absorb(state, bytes, offset, length) {
  for (let i = 0; i < length; i += 4) state[i >> 2] ^= bytes.readUInt32LE(offset + i);
}

function keccakF(s) {
  const C = keccakColumns;
  for (let round = 0; round < 24; round++) {
    // theta
    for (let i = 0; i < 10; i++) C[i] = s[i] ^ s[i + 10] ^ s[i + 20] ^ s[i + 30] ^ s[i + 40];
    for (let x = 0; x < 10; x += 2) {
      const prev = x === 0 ? 8 : x - 2;
      const next = x === 8 ? 0 : x + 2;
      const lo = C[prev] ^ ((C[next] << 1) | (C[next + 1] >>> 31));
      const hi = C[prev + 1] ^ ((C[next + 1] << 1) | (C[next] >>> 31));
      for (let y = x; y < 50; y += 10) {
        s[y] ^= lo;
        s[y + 1] ^= hi;
      }
    }
    // rho and pi: walk the 24 lanes of the pi cycle, rotating each into its new place
    let lo = s[2];
    let hi = s[3];
    for (let t = 0; t < 24; t++) {
      const to = PI[t];
      const nextLo = s[to];
      const nextHi = s[to + 1];
      const n = RHO[t]; // never 0 or 32, so both shifts below are in 1..31
      if (n < 32) {
        s[to] = (lo << n) | (hi >>> (32 - n));
        s[to + 1] = (hi << n) | (lo >>> (32 - n));
      } else {
        s[to] = (hi << (n - 32)) | (lo >>> (64 - n));
        s[to + 1] = (lo << (n - 32)) | (hi >>> (64 - n));
      }
      lo = nextLo;
      hi = nextHi;
    }
    // chi, one row of five lanes (ten halves) at a time
    for (let y = 0; y < 50; y += 10) {
      const a0 = s[y], a1 = s[y + 1], a2 = s[y + 2], a3 = s[y + 3], a4 = s[y + 4];
      const a5 = s[y + 5], a6 = s[y + 6], a7 = s[y + 7], a8 = s[y + 8], a9 = s[y + 9];
      s[y] = a0 ^ (~a2 & a4);
      s[y + 1] = a1 ^ (~a3 & a5);
      s[y + 2] = a2 ^ (~a4 & a6);
      s[y + 3] = a3 ^ (~a5 & a7);
      s[y + 4] = a4 ^ (~a6 & a8);
      s[y + 5] = a5 ^ (~a7 & a9);
      s[y + 6] = a6 ^ (~a8 & a0);
      s[y + 7] = a7 ^ (~a9 & a1);
      s[y + 8] = a8 ^ (~a0 & a2);
      s[y + 9] = a9 ^ (~a1 & a3);
    }
    // iota
    s[0] ^= RC_LO[round];
    s[1] ^= RC_HI[round];
  }
}

// ---------------------------------------------------------------- scalars (BigInt)

const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N >> 1n;
const GX = 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n;
const GY = 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n;

function bytesToBigInt(bytes) {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex') || '0'}`);
}

function bigIntToHex32(value) {
  return value.toString(16).padStart(64, '0');
}

/**
 * a^-1 mod m (a, m coprime) by Lehmer's extended Euclid (Knuth 4.5.2, Algorithm L):
 * the quotient sequence is run on the leading 48 bits of u and v in float64 (exact:
 * every intermediate stays below 2^53), and only the resulting 2x2 cofactor matrix is
 * applied to the BigInts, so a 256-bit inverse takes ~11 BigInt rounds instead of
 * ~150 BigInt divisions (about 2.5x faster). Invariant: u = t0 * a, v = t1 * a (mod m).
 */
function modInverse(a, m) {
  let u = m;
  let v = a % m;
  let t0 = 0n;
  let t1 = 1n;
  while (v !== 0n) {
    const shift = BigInt(Math.max(0, Math.floor(Math.log2(Number(u))) + 1 - LEHMER_BITS));
    const [A, B, C, D] = lehmerCofactors(Number(u >> shift), Number(v >> shift));
    if (B === 0) {
      // the leading bits decide nothing: one full-precision Euclid step
      const q = u / v;
      [u, v] = [v, u - q * v];
      [t0, t1] = [t1, t0 - q * t1];
    } else {
      const [a0, b0, c0, d0] = [BigInt(A), BigInt(B), BigInt(C), BigInt(D)];
      [u, v] = [a0 * u + b0 * v, c0 * u + d0 * v];
      [t0, t1] = [a0 * t0 + b0 * t1, c0 * t0 + d0 * t1];
    }
  }
  if (u !== 1n) throw new Error('modular inverse of a non-invertible value');
  t0 %= m;
  return t0 < 0n ? t0 + m : t0;
}

const LEHMER_BITS = 48;

/** Cofactors [A, B, C, D] of the Euclid steps that the leading digits uh, vh determine. */
function lehmerCofactors(uh, vh) {
  let A = 1, B = 0, C = 0, D = 1;
  while (vh + C !== 0 && vh + D !== 0) {
    const q = Math.floor((uh + A) / (vh + C));
    if (q !== Math.floor((uh + B) / (vh + D))) break;
    [A, C] = [C, A - q * C];
    [B, D] = [D, B - q * D];
    [uh, vh] = [vh, uh - q * vh];
  }
  return [A, B, C, D];
}

// ---------------------------------------------------------------- field arithmetic mod p

// An element is a Float64Array of 11 signed limbs, value = sum(limb[i] * 2^(24 i)) mod p.
// feMul and feNormalize leave every |limb| <= 2^23 + 2^18 ("normalized"). Limbs of sums
// grow; feMul needs (growth of a) * (growth of b) <= 8, which keeps each of its 11-term
// column sums below 2^53 (11 * 8 * (2^23 + 2^18)^2 < 2^52.5), so float64 arithmetic is
// exact. The curve formulas below use growth products of at most 4.
const LIMBS = 11;
const RADIX = 2 ** 24;
const INV_RADIX = 2 ** -24;
const ROUND = 1.5 * 2 ** 52; // (x + ROUND) - ROUND rounds x to the nearest integer
// 2^264 = 2^8 * 2^256 = 2^8 * (2^32 + 977) (mod p) = FOLD_HI * 2^24 + FOLD_LO
const FOLD_LO = 977 * 256;
const FOLD_HI = 2 ** 16;

/** round(x / 2^24): the carry out of a limb, leaving x - carry * 2^24 in [-2^23, 2^23]. */
function carryOf(x) {
  return x * INV_RADIX + ROUND - ROUND;
}

function fe() {
  return new Float64Array(LIMBS);
}

function feFromBigInt(out, value) {
  for (let i = 0; i < LIMBS; i++) {
    out[i] = Number(value & 0xffffffn);
    value >>= 24n;
  }
  return feNormalize(out);
}

function feToBigInt(a) {
  let value = 0n;
  for (let i = LIMBS - 1; i >= 0; i--) value = (value << 24n) + BigInt(a[i]);
  return ((value % P) + P) % P;
}

function feAdd(out, a, b) {
  for (let i = 0; i < LIMBS; i++) out[i] = a[i] + b[i];
  return out;
}

function feSub(out, a, b) {
  for (let i = 0; i < LIMBS; i++) out[i] = a[i] - b[i];
  return out;
}

function feNeg(out, a) {
  for (let i = 0; i < LIMBS; i++) out[i] = -a[i];
  return out;
}

/** Carries a sum of a few normalized elements back to normalized limbs. */
function feNormalize(a) {
  let carry = 0;
  for (let i = 0; i < LIMBS; i++) {
    const x = a[i] + carry;
    carry = carryOf(x);
    a[i] = x - carry * RADIX;
  }
  a[0] += carry * FOLD_LO; // carry is the multiple of 2^264
  a[1] += carry * FOLD_HI;
  carry = carryOf(a[0]);
  a[0] -= carry * RADIX;
  a[1] += carry;
  return a;
}

/** out = a * b mod p, schoolbook product then folding 2^264 down; out may alias a or b. */
function feMul(out, a, b) {
  const a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
  const a6 = a[6], a7 = a[7], a8 = a[8], a9 = a[9], a10 = a[10];
  const b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3], b4 = b[4], b5 = b[5];
  const b6 = b[6], b7 = b[7], b8 = b[8], b9 = b[9], b10 = b[10];
  let c0 = a0 * b0;
  let c1 = a0 * b1 + a1 * b0;
  let c2 = a0 * b2 + a1 * b1 + a2 * b0;
  let c3 = a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0;
  let c4 = a0 * b4 + a1 * b3 + a2 * b2 + a3 * b1 + a4 * b0;
  let c5 = a0 * b5 + a1 * b4 + a2 * b3 + a3 * b2 + a4 * b1 + a5 * b0;
  let c6 = a0 * b6 + a1 * b5 + a2 * b4 + a3 * b3 + a4 * b2 + a5 * b1 + a6 * b0;
  let c7 = a0 * b7 + a1 * b6 + a2 * b5 + a3 * b4 + a4 * b3 + a5 * b2 + a6 * b1 + a7 * b0;
  let c8 = a0 * b8 + a1 * b7 + a2 * b6 + a3 * b5 + a4 * b4 + a5 * b3 + a6 * b2 + a7 * b1 + a8 * b0;
  let c9 = a0 * b9 + a1 * b8 + a2 * b7 + a3 * b6 + a4 * b5 + a5 * b4 + a6 * b3 + a7 * b2 + a8 * b1 + a9 * b0;
  let c10 = a0 * b10 + a1 * b9 + a2 * b8 + a3 * b7 + a4 * b6 + a5 * b5 + a6 * b4 + a7 * b3 + a8 * b2 + a9 * b1 + a10 * b0;
  let c11 = a1 * b10 + a2 * b9 + a3 * b8 + a4 * b7 + a5 * b6 + a6 * b5 + a7 * b4 + a8 * b3 + a9 * b2 + a10 * b1;
  let c12 = a2 * b10 + a3 * b9 + a4 * b8 + a5 * b7 + a6 * b6 + a7 * b5 + a8 * b4 + a9 * b3 + a10 * b2;
  let c13 = a3 * b10 + a4 * b9 + a5 * b8 + a6 * b7 + a7 * b6 + a8 * b5 + a9 * b4 + a10 * b3;
  let c14 = a4 * b10 + a5 * b9 + a6 * b8 + a7 * b7 + a8 * b6 + a9 * b5 + a10 * b4;
  let c15 = a5 * b10 + a6 * b9 + a7 * b8 + a8 * b7 + a9 * b6 + a10 * b5;
  let c16 = a6 * b10 + a7 * b9 + a8 * b8 + a9 * b7 + a10 * b6;
  let c17 = a7 * b10 + a8 * b9 + a9 * b8 + a10 * b7;
  let c18 = a8 * b10 + a9 * b9 + a10 * b8;
  let c19 = a9 * b10 + a10 * b9;
  let c20 = a10 * b10;
  // 1. carry the high columns (weights 2^264 .. 2^504) down to 24-bit limbs
  let q;
  q = carryOf(c11); c11 -= q * RADIX; c12 += q;
  q = carryOf(c12); c12 -= q * RADIX; c13 += q;
  q = carryOf(c13); c13 -= q * RADIX; c14 += q;
  q = carryOf(c14); c14 -= q * RADIX; c15 += q;
  q = carryOf(c15); c15 -= q * RADIX; c16 += q;
  q = carryOf(c16); c16 -= q * RADIX; c17 += q;
  q = carryOf(c17); c17 -= q * RADIX; c18 += q;
  q = carryOf(c18); c18 -= q * RADIX; c19 += q;
  q = carryOf(c19); c19 -= q * RADIX; c20 += q;
  const c21 = carryOf(c20); c20 -= c21 * RADIX;
  // 2. fold: limb c(11 + j) * 2^264 becomes FOLD_LO at column j and FOLD_HI at column j + 1
  c0 += c11 * FOLD_LO;
  c1 += c12 * FOLD_LO + c11 * FOLD_HI;
  c2 += c13 * FOLD_LO + c12 * FOLD_HI;
  c3 += c14 * FOLD_LO + c13 * FOLD_HI;
  c4 += c15 * FOLD_LO + c14 * FOLD_HI;
  c5 += c16 * FOLD_LO + c15 * FOLD_HI;
  c6 += c17 * FOLD_LO + c16 * FOLD_HI;
  c7 += c18 * FOLD_LO + c17 * FOLD_HI;
  c8 += c19 * FOLD_LO + c18 * FOLD_HI;
  c9 += c20 * FOLD_LO + c19 * FOLD_HI;
  c10 += c21 * FOLD_LO + c20 * FOLD_HI;
  let top = c21 * FOLD_HI; // weight 2^264
  // 3. carry the low columns; what passes column 10 joins top
  q = carryOf(c0); c0 -= q * RADIX; c1 += q;
  q = carryOf(c1); c1 -= q * RADIX; c2 += q;
  q = carryOf(c2); c2 -= q * RADIX; c3 += q;
  q = carryOf(c3); c3 -= q * RADIX; c4 += q;
  q = carryOf(c4); c4 -= q * RADIX; c5 += q;
  q = carryOf(c5); c5 -= q * RADIX; c6 += q;
  q = carryOf(c6); c6 -= q * RADIX; c7 += q;
  q = carryOf(c7); c7 -= q * RADIX; c8 += q;
  q = carryOf(c8); c8 -= q * RADIX; c9 += q;
  q = carryOf(c9); c9 -= q * RADIX; c10 += q;
  q = carryOf(c10); c10 -= q * RADIX; top += q;
  // 4. fold top (< 2^43) as two limbs, then carry the three columns it touched
  const topHi = carryOf(top);
  const topLo = top - topHi * RADIX;
  c0 += topLo * FOLD_LO;
  c1 += topLo * FOLD_HI + topHi * FOLD_LO;
  c2 += topHi * FOLD_HI;
  q = carryOf(c0); c0 -= q * RADIX; c1 += q;
  q = carryOf(c1); c1 -= q * RADIX; c2 += q;
  q = carryOf(c2); c2 -= q * RADIX; c3 += q;
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3; out[4] = c4; out[5] = c5;
  out[6] = c6; out[7] = c7; out[8] = c8; out[9] = c9; out[10] = c10;
  return out;
}

function feSqr(out, a) {
  return feMul(out, a, a);
}

/** a^-1 mod p: canonical BigInt, extended Euclid, back to limbs. */
function feInvert(out, a) {
  return feFromBigInt(out, modInverse(feToBigInt(a), P));
}

// ---------------------------------------------------------------- curve y^2 = x^3 + 7

// Points in XYZZ coordinates (X, Y, ZZ, ZZZ) stand for (X / ZZ, Y / ZZZ), ZZ^3 = ZZZ^2:
// a mixed addition costs 8M + 2S against 7M + 4S in Jacobian coordinates. The formulas
// (EFD madd-2008-s, dbl-2008-s-1) assume distinct operands; a degenerate addition
// (equal or opposite points) makes ZZ and ZZZ zero for good, which toAffine reports, so
// it can only fail a request, never mis-sign one.

function xyzzPoint() {
  return { X: fe(), Y: fe(), ZZ: fe(), ZZZ: fe() };
}

const T1 = fe(), T2 = fe(), T3 = fe(), T4 = fe(), T5 = fe(), T6 = fe();

/** p += (x2, +-y2), affine (madd-2008-s). */
function addAffine(p, x2, y2, negate) {
  const u2 = feMul(T1, x2, p.ZZ);
  const s2 = feMul(T2, y2, p.ZZZ);
  if (negate) feNeg(s2, s2);
  const h = feSub(T3, u2, p.X); // growth 2
  const r = feSub(T4, s2, p.Y); // growth 2
  const hh = feSqr(T1, h);
  const hhh = feMul(T2, h, hh);
  const q = feMul(T5, p.X, hh);
  const x3 = feSqr(T6, r);
  feNormalize(feSub(x3, feSub(x3, feSub(x3, x3, hhh), q), q)); // r^2 - hhh - 2q
  feMul(p.ZZ, p.ZZ, hh);
  feMul(p.ZZZ, p.ZZZ, hhh);
  feMul(T3, p.Y, hhh);
  feMul(p.Y, r, feSub(T5, q, x3));
  feNormalize(feSub(p.Y, p.Y, T3)); // r (q - x3) - y1 hhh
  p.X.set(x3);
}

/** p = 2p (dbl-2008-s-1, a = 0); used only to build tables. */
function double(p) {
  const u = feNormalize(feAdd(T1, p.Y, p.Y));
  const v = feSqr(T2, u);
  const w = feMul(T3, u, v);
  const s = feMul(T4, p.X, v);
  const x2 = feSqr(T5, p.X);
  const m = feNormalize(feAdd(T5, feAdd(T6, x2, x2), x2)); // 3 x^2
  feNormalize(feSub(p.X, feSub(p.X, feSqr(T6, m), s), s)); // m^2 - 2s
  feMul(p.ZZ, p.ZZ, v);
  feMul(p.ZZZ, p.ZZZ, w);
  feMul(T6, w, p.Y);
  feMul(p.Y, m, feSub(T4, s, p.X));
  feNormalize(feSub(p.Y, p.Y, T6)); // m (s - x3) - w y
}

function setAffine(p, x, y) {
  p.X.set(x);
  p.Y.set(y);
  p.ZZ.fill(0);
  p.ZZ[0] = 1;
  p.ZZZ.set(p.ZZ);
}

function copyPoint(to, from) {
  to.X.set(from.X);
  to.Y.set(from.Y);
  to.ZZ.set(from.ZZ);
  to.ZZZ.set(from.ZZZ);
}

/** Affine coordinates as canonical BigInts: with t = 1/ZZZ, 1/ZZ = (ZZ t)^2. */
function toAffine(p) {
  const zzz = feToBigInt(p.ZZZ);
  if (zzz === 0n) throw new Error('degenerate point addition');
  const t = modInverse(zzz, P);
  const zzInv = (feToBigInt(p.ZZ) * t) % P;
  return { x: (((feToBigInt(p.X) * zzInv) % P) * zzInv) % P, y: (feToBigInt(p.Y) * t) % P };
}

// ---------------------------------------------------------------- fixed-base combs

// A scalar k < n/2 (k > n/2 is handled as -(n - k)) is written in base 256 with signed
// digits d_i in [-127, 128]; then k*B = sum_i d_i * (256^i B), read from a table of
// |d| * 256^i * B for i < 32 and 1 <= |d| <= 128, in affine coordinates.
const WINDOWS = 32;
const ENTRIES = 128;

/** The comb table of the affine point (x, y): entry i*ENTRIES + |d| - 1. */
function buildCombTable(x, y) {
  const storage = new Float64Array(WINDOWS * ENTRIES * 2 * LIMBS);
  const table = { x: [], y: [] };
  for (let i = 0; i < WINDOWS * ENTRIES; i++) {
    table.x.push(storage.subarray(2 * i * LIMBS, (2 * i + 1) * LIMBS));
    table.y.push(storage.subarray((2 * i + 1) * LIMBS, (2 * i + 2) * LIMBS));
  }
  const multiples = Array.from({ length: ENTRIES + 1 }, xyzzPoint);
  const base = { x: feFromBigInt(fe(), x), y: feFromBigInt(fe(), y) };
  for (let window = 0; window < WINDOWS; window++) {
    // multiples[j - 1] = j * base for j = 1..128, and multiples[128] = 256 * base
    setAffine(multiples[0], base.x, base.y);
    setAffine(multiples[1], base.x, base.y);
    double(multiples[1]);
    for (let j = 2; j < ENTRIES; j++) {
      copyPoint(multiples[j], multiples[j - 1]);
      addAffine(multiples[j], base.x, base.y, false);
    }
    copyPoint(multiples[ENTRIES], multiples[ENTRIES - 1]);
    double(multiples[ENTRIES]);
    const entries = table.x.slice(window * ENTRIES, (window + 1) * ENTRIES);
    const ys = table.y.slice(window * ENTRIES, (window + 1) * ENTRIES);
    batchToAffine(multiples, [...entries, base.x], [...ys, base.y]); // the last is the next base
  }
  return table;
}

/** Writes points[i] in affine form to xs[i], ys[i] with one inversion (Montgomery's trick). */
function batchToAffine(points, xs, ys) {
  const prefix = points.map(() => fe());
  prefix[0].set(points[0].ZZZ);
  for (let i = 1; i < points.length; i++) feMul(prefix[i], prefix[i - 1], points[i].ZZZ);
  const inv = feInvert(fe(), prefix[points.length - 1]); // 1 / (ZZZ_0 ... ZZZ_last)
  const t = fe();
  const zzInv = fe();
  for (let i = points.length - 1; i >= 0; i--) {
    if (i > 0) {
      feMul(t, inv, prefix[i - 1]); // 1 / ZZZ_i
      feMul(inv, inv, points[i].ZZZ);
    } else {
      t.set(inv);
    }
    feSqr(zzInv, feMul(zzInv, points[i].ZZ, t));
    feMul(xs[i], points[i].X, zzInv);
    feMul(ys[i], points[i].Y, t);
  }
}

const accumulator = { ...xyzzPoint(), empty: true };

/** u1*G + u2*Q from the comb tables of G and Q, in affine coordinates. */
function doubleBaseMultiply(u1, gTable, u2, qTable) {
  accumulator.empty = true;
  addScalarMultiple(accumulator, gTable, u1);
  addScalarMultiple(accumulator, qTable, u2);
  if (accumulator.empty) throw new Error('point at infinity');
  return toAffine(accumulator);
}

function addScalarMultiple(acc, table, k) {
  const negate = k > HALF_N;
  const digits = Buffer.from(bigIntToHex32(negate ? N - k : k), 'hex'); // big-endian base-256
  let carry = 0;
  for (let i = 0; i < WINDOWS; i++) {
    let d = digits[WINDOWS - 1 - i] + carry;
    carry = d > ENTRIES ? 1 : 0;
    d -= carry * 256;
    if (d === 0) continue;
    const entry = i * ENTRIES + Math.abs(d) - 1;
    const negative = d < 0 !== negate;
    if (acc.empty) {
      setAffine(acc, table.x[entry], table.y[entry]);
      if (negative) feNeg(acc.Y, acc.Y);
      acc.empty = false;
    } else {
      addAffine(acc, table.x[entry], table.y[entry], negative);
    }
  }
}

const G_TABLE = buildCombTable(GX, GY);
