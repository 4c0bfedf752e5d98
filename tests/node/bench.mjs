// Benchmark of the signer templates' per-request CPU (npm run bench:signer): the AWS Lambda
// handler and the Cloud Run signDigest function (which also computes and checks CRC32Cs).
//
// The handler runs in-process against a KMS stand-in that answers from precomputed DER
// signatures (half of them high-s), so KMS costs ~0 and what is measured is the
// handler's own work: event parsing, EIP-191 Keccak, DER parsing, low-s, verification
// and recovery id, response. Two ways of deriving the recovery id are measured
// alongside, for comparison only:
//   native: node:crypto (OpenSSL) ECDH computing u1*G, x(u2*Q) and x((u2+1)*Q), from
//           which R = u1*G + u2*Q is assembled (crypto.verify cannot check a raw-digest
//           signature: it always hashes);
//   naive:  pure BigInt, trial recovery of the public key for recid 0 then 1, with a
//           BigInt Keccak, until the address matches.
// Usage: node tests/node/bench.mjs [requests]   (default 5000; native and naive run fewer)
import assert from 'node:assert/strict';
import { createECDH, ECDH, randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { eip191Digest, derSignature, functionUrlEvent, hex, makeKey, N, toBigInt } from './support/signer-fixtures.mjs';

const REQUESTS = Number(process.argv[2] ?? 5000);
const DISTINCT = 512;

// ---------------------------------------------------------------- measurement

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function cpuMicros(since) {
  const { user, system } = process.cpuUsage(since);
  return user + system;
}

/** CPU cost (µs) of one process.cpuUsage() reading, which each percentile sample includes. */
function probeCost() {
  const start = process.cpuUsage();
  for (let i = 0; i < 10000; i++) cpuMicros(process.cpuUsage());
  return cpuMicros(start) / 10000;
}

/**
 * CPU time (user + system, µs) of `fn(i)` for i < count, after a warm-up: the mean from
 * one reading around the whole run, p50/p99 from a reading around each call.
 */
async function measure(name, count, fn) {
  for (let i = 0; i < Math.min(count, 2000); i++) await fn(i);
  const samples = [];
  for (let i = 0; i < count; i++) {
    const call = process.cpuUsage();
    await fn(i);
    samples.push(cpuMicros(call));
  }
  const start = process.cpuUsage();
  for (let i = 0; i < count; i++) await fn(i);
  const mean = cpuMicros(start) / count;
  samples.sort((a, b) => a - b);
  const row = { name, count, mean, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
  console.log(
    `${name.padEnd(46)} n=${String(count).padEnd(5)} mean ${mean.toFixed(1).padStart(7)} µs   p50 ${String(row.p50).padStart(5)} µs   p99 ${String(row.p99).padStart(5)} µs`,
  );
  return row;
}

// ---------------------------------------------------------------- fixtures

const key = makeKey();
const hashes = Array.from({ length: DISTINCT }, () => randomBytes(32));
const digests = hashes.map(eip191Digest);
const signatures = new Map(
  [...digests, ...hashes].map((digest) => {
    const sig = secp256k1.Signature.fromBytes(secp256k1.sign(digest, keyBytes(), { prehash: false }));
    const s = Math.random() < 0.5 ? N - sig.s : sig.s;
    return [digest.toString('hex'), derSignature(sig.r, s)];
  }),
);

function keyBytes() {
  return Buffer.from(key.d.toString(16).padStart(64, '0'), 'hex');
}

/** KMS stand-in answering Sign from the precomputed DER signatures. */
const fastKms = {
  async send(command) {
    if (command.constructor.name === 'GetPublicKeyCommand') {
      return { KeyId: key.arn, KeySpec: 'ECC_SECG_P256K1', PublicKey: new Uint8Array(key.spki) };
    }
    return { KeyId: key.arn, Signature: signatures.get(Buffer.from(command.input.Message).toString('hex')) };
  },
};

// ---------------------------------------------------------------- the template

const importStart = performance.now();
const { createHandler, keccak256, parseDerSignature } = await import('../../templates/aws-lambda-signer/index.mjs');
const importMs = performance.now() - importStart;

const handle = createHandler({ kms: fastKms, env: { KMS_KEY_ID: 'alias/bench', EXPECTED_ADDRESS: key.address } });
const handleDigest = createHandler({ kms: fastKms, env: { KMS_KEY_ID: 'alias/bench', EXPECTED_ADDRESS: key.address, SIGNING_MODE: 'digest' } });
const events = hashes.map((hash) => functionUrlEvent({ userOpHash: hex(hash), signerAddress: key.address }));
const coldStart = performance.now();
const first = await handle(events[0]);
const coldMs = performance.now() - coldStart;
assert.equal(first.statusCode, 200, first.body);
const recids = new Map(
  await Promise.all(events.map(async (event, i) => [digests[i].toString('hex'), JSON.parse((await handle(event)).body).recid])),
);

// The Cloud Run function against a Cloud KMS client stand-in answering from the same
// precomputed signatures, with the CRC32Cs the real service sends.
const crc32c = (await import('fast-crc32c')).default;
const { createSignDigest } = await import('../../templates/gcp-cloud-run-signer/index.mjs');
const VERSION = 'projects/bench/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1';
const pem = `-----BEGIN PUBLIC KEY-----\n${key.spki.toString('base64')}\n-----END PUBLIC KEY-----\n`;
const fastGcpKms = {
  async getPublicKey() {
    return [{ name: VERSION, pem, pemCrc32c: { value: String(crc32c.calculate(Buffer.from(pem))) } }];
  },
  async asymmetricSign(request) {
    const signature = signatures.get(Buffer.from(request.digest.sha256).toString('hex'));
    return [{ name: VERSION, signature, signatureCrc32c: { value: String(crc32c.calculate(signature)) }, verifiedDigestCrc32c: true }];
  },
};
const signDigest = createSignDigest({ kms: fastGcpKms, env: { KMS_KEY_VERSION: VERSION, EXPECTED_ADDRESS: key.address } });
/** An Express-like request and response, as the Functions Framework passes them. */
function cloudRunCall(hash) {
  const res = {
    statusCode: 0,
    status(code) {
      this.statusCode = code;
      return this;
    },
    json(body) {
      this.body = body;
    },
  };
  return signDigest({ method: 'POST', body: { userOpHash: hex(hash), signerAddress: key.address } }, res).then(() => {
    assert.equal(res.statusCode, 200, JSON.stringify(res.body));
  });
}
await cloudRunCall(hashes[0]);

// ---------------------------------------------------------------- BigInt helpers for the comparison variants

const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
function to32(value) {
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}

function modInverseSimple(a, m) {
  let [r0, r1, t0, t1] = [m, a % m, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, t0, t1] = [r1, r0 - q * r1, t1, t0 - q * t1];
  }
  return t0 < 0n ? t0 + m : t0;
}

function modPow(base, exponent, m) {
  let result = 1n;
  for (base %= m; exponent > 0n; exponent >>= 1n, base = (base * base) % m) if (exponent & 1n) result = (result * base) % m;
  return result;
}

const G = [0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n, 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n];

function jacobianDouble([X, Y, Z]) {
  if (Y === 0n) return [0n, 1n, 0n];
  const S = (4n * X * Y * Y) % P;
  const M = (3n * X * X) % P;
  const X3 = (M * M - 2n * S) % P;
  return [(X3 + P) % P, (((M * (S - X3) - 8n * Y ** 4n) % P) + P) % P, (2n * Y * Z) % P];
}

function jacobianAdd(p, q) {
  if (p[2] === 0n) return q;
  if (q[2] === 0n) return p;
  const [X1, Y1, Z1] = p;
  const [X2, Y2, Z2] = q;
  const U1 = (X1 * Z2 * Z2) % P, U2 = (X2 * Z1 * Z1) % P;
  const S1 = (Y1 * Z2 ** 3n) % P, S2 = (Y2 * Z1 ** 3n) % P;
  if (U1 === U2) return S1 === S2 ? jacobianDouble(p) : [0n, 1n, 0n];
  const H = (U2 - U1 + P) % P, R = (S2 - S1 + P) % P;
  const X3 = (((R * R - H ** 3n - 2n * U1 * H * H) % P) + P) % P;
  return [X3, (((R * (U1 * H * H - X3) - S1 * H ** 3n) % P) + P) % P, (H * Z1 * Z2) % P];
}

function multiply(k, [x, y]) {
  let result = [0n, 1n, 0n];
  let addend = [x, y, 1n];
  for (; k > 0n; k >>= 1n, addend = jacobianDouble(addend)) if (k & 1n) result = jacobianAdd(result, addend);
  return result;
}

function affine([X, Y, Z]) {
  const zi = modInverseSimple(Z, P);
  return [(X * zi * zi) % P, (Y * zi ** 3n) % P];
}

// ---------------------------------------------------------------- native variant

const publicPoint = key.spki.subarray(-65);
const ecdh = createECDH('secp256k1');

function decompress(x) {
  const point = ECDH.convertKey(Buffer.concat([Buffer.from([2]), to32(x)]), 'secp256k1', undefined, undefined, 'uncompressed');
  return toBigInt(point.subarray(33));
}

/** x(k * Q) by ECDH (the private-key setter also computes k * G, unavoidably). */
function xOfMultipleOfQ(k) {
  ecdh.setPrivateKey(to32(k));
  return toBigInt(ecdh.computeSecret(publicPoint));
}

/**
 * Verification and recovery id with node:crypto doing the scalar multiplications.
 * crypto.verify cannot be used: it always hashes its message (SHA-256 for EC keys),
 * and KMS signed a raw digest. So R = u1*G + u2*Q is assembled from ECDH: u1*G in
 * full (public key), B = u2*Q only as x (shared secret), its sign fixed by x((u2+1)*Q),
 * then one BigInt point addition (u1 != 0 and u2 != n - 1 assumed).
 */
function nativeRecid(digest, r, s) {
  const w = modInverseSimple(s, N);
  const u2 = (r * w) % N;
  ecdh.setPrivateKey(to32((toBigInt(digest) * w) % N));
  const A = ecdh.getPublicKey();
  const [xA, yA] = [toBigInt(A.subarray(1, 33)), toBigInt(A.subarray(33))];
  const xB = xOfMultipleOfQ(u2);
  const xNext = xOfMultipleOfQ(u2 + 1n);
  // B is (xB, yB) or (xB, -yB); B + Q has x = xNext. Inversion-free test of
  // x((xB, yB) + Q) = xNext: (yQ - yB)^2 = (xNext + xB + xQ)(xQ - xB)^2 (mod p)
  const [xQ, yQ] = [toBigInt(publicPoint.subarray(1, 33)), toBigInt(publicPoint.subarray(33))];
  let yB = decompress(xB);
  if (((yQ - yB) ** 2n - (xNext + xB + xQ) * (xQ - xB) ** 2n) % P !== 0n) yB = P - yB;
  const [xR, yR] = affine(jacobianAdd([xA, yA, 1n], [xB, yB, 1n]));
  if (xR !== r) throw new Error('bad signature');
  return Number(yR & 1n);
}

async function nativeRequest(i) {
  const digest = keccak256(Buffer.concat([Buffer.from('\x19Ethereum Signed Message:\n32', 'latin1'), hashes[i % DISTINCT]]));
  const { Signature } = await fastKms.send({ constructor: { name: 'SignCommand' }, input: { Message: digest } });
  let { r, s } = parseDerSignature(Buffer.from(Signature));
  if (s > N >> 1n) s = N - s;
  return nativeRecid(digest, r, s);
}

// ---------------------------------------------------------------- naive variant

const MASK64 = (1n << 64n) - 1n;
const KECCAK_RC = [
  0x1n, 0x8082n, 0x800000000000808an, 0x8000000080008000n, 0x808bn, 0x80000001n, 0x8000000080008081n,
  0x8000000000008009n, 0x8an, 0x88n, 0x80008009n, 0x8000000an, 0x8000808bn, 0x800000000000008bn,
  0x8000000000008089n, 0x8000000000008003n, 0x8000000000008002n, 0x8000000000000080n, 0x800an,
  0x800000008000000an, 0x8000000080008081n, 0x8000000000008080n, 0x80000001n, 0x8000000080008008n,
];
const KECCAK_ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];

function rotl64(x, n) {
  return n === 0 ? x : ((x << BigInt(n)) | (x >> BigInt(64 - n))) & MASK64;
}

/** Keccak-256 with BigInt lanes, the textbook way. */
function keccakBig(data) {
  const rate = 136;
  const padded = Buffer.alloc(Math.floor(data.length / rate + 1) * rate);
  data.copy(padded);
  padded[data.length] ^= 1;
  padded[padded.length - 1] ^= 0x80;
  const a = new Array(25).fill(0n);
  for (let block = 0; block < padded.length; block += rate) {
    for (let i = 0; i < rate / 8; i++) a[i] ^= padded.readBigUInt64LE(block + 8 * i);
    for (let round = 0; round < 24; round++) {
      const c = [0, 1, 2, 3, 4].map((x) => a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20]);
      for (let x = 0; x < 5; x++) {
        const dx = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
        for (let y = 0; y < 25; y += 5) a[x + y] ^= dx;
      }
      const b = new Array(25);
      for (let x = 0; x < 5; x++) for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(a[x + 5 * y], KECCAK_ROT[x + 5 * y]);
      for (let x = 0; x < 5; x++) for (let y = 0; y < 25; y += 5) a[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK64 & b[((x + 2) % 5) + y]);
      a[0] ^= KECCAK_RC[round];
    }
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) out.writeBigUInt64LE(a[i], 8 * i);
  return out;
}

/** Address of Q = r^-1 (s R - z G) for the R of x = r and y of the given parity. */
function naiveRecover(z, r, s, recid) {
  let y = modPow((r ** 3n + 7n) % P, (P + 1n) / 4n, P);
  if (Number(y & 1n) !== recid) y = P - y;
  const sR = multiply(s, [r, y]);
  const zG = multiply((N - (z % N)) % N, G);
  const [qx, qy] = affine(multiply(modInverseSimple(r, N), affine(jacobianAdd(sR, zG))));
  return `0x${keccakBig(Buffer.concat([to32(qx), to32(qy)])).toString('hex', 12)}`;
}

async function naiveRequest(i) {
  const digest = keccakBig(Buffer.concat([Buffer.from('\x19Ethereum Signed Message:\n32', 'latin1'), hashes[i % DISTINCT]]));
  const { Signature } = await fastKms.send({ constructor: { name: 'SignCommand' }, input: { Message: digest } });
  let { r, s } = parseDerSignature(Buffer.from(Signature));
  if (s > N >> 1n) s = N - s;
  const z = toBigInt(digest);
  for (const recid of [0, 1]) if (naiveRecover(z, r, s, recid) === key.address.toLowerCase()) return recid;
  throw new Error('no recovery id recovers the address');
}

// ---------------------------------------------------------------- run

for (let i = 0; i < 64; i++) {
  const expected = recids.get(digests[i].toString('hex'));
  assert.equal(await nativeRequest(i), expected, 'native recovery id disagrees');
  assert.equal(await naiveRequest(i), expected, 'naive recovery id disagrees');
}

console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}, ${REQUESTS} requests`);
console.log(`cold start: template import (builds the G table) ${importMs.toFixed(0)} ms; first request (GetPublicKey stand-in + Q table) ${coldMs.toFixed(0)} ms`);
console.log(`each percentile sample includes one process.cpuUsage() reading: ${probeCost().toFixed(1)} µs`);
const rows = [
  await measure('template handler, eip191 (Function URL event)', REQUESTS, (i) => handle(events[i % DISTINCT])),
  await measure('template handler, digest mode', REQUESTS, (i) => handleDigest(events[i % DISTINCT])),
  await measure('Cloud Run signDigest, eip191 (CRC32C checked)', REQUESTS, (i) => cloudRunCall(hashes[i % DISTINCT])),
  await measure('native: node:crypto ECDH verify + recid', Math.max(50, Math.round(REQUESTS / 5)), nativeRequest),
  await measure('naive: BigInt trial recovery + BigInt keccak', Math.max(20, Math.round(REQUESTS / 50)), naiveRequest),
];
console.log(`eip191 handler vs native: ${(rows[3].mean / rows[0].mean).toFixed(1)}x less CPU; vs naive: ${(rows[4].mean / rows[0].mean).toFixed(0)}x less CPU`);
