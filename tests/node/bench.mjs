// Benchmark of the signer templates' per-request CPU (npm run bench:signer), side by side
// in one process so that a noisy machine weighs on every row alike:
//   template handler: the AWS Lambda handler as shipped, signing with @noble/curves
//     (templates/shared/noble-curves.mjs), and the Cloud Run signDigest function (which
//     also computes and checks CRC32Cs);
//   hand-written core: the same Lambda handler (templates/aws-lambda-signer/index.mjs,
//     loaded with its './signer-core.mjs' pointed elsewhere) on the hand-written field
//     arithmetic and Keccak the templates used before, kept NOT SHIPPED in
//     tests/node/support/handwritten-signer-core.mjs as this comparison's baseline;
//   seed guide's handler: the sample Lambda handler of the wallet platform's "Cloud KMS
//     signers" guide in ../shared/seeds (trial recovery in BigInt, BigInt Keccak), read
//     from the guide at run time and run unchanged but for its import specifier, with
//     KMSClient.prototype.send answering from the same stand-in (KEYRITE_SEEDS_DIR
//     overrides where the guides are; without them the row is skipped, and says so);
//   native: node:crypto (OpenSSL) ECDH computing u1*G, x(u2*Q) and x((u2+1)*Q), from
//     which R = u1*G + u2*Q is assembled (crypto.verify cannot check a raw-digest
//     signature: it always hashes), for reference.
//
// Every handler runs in-process against a KMS stand-in that answers from precomputed DER
// signatures (half of them high-s), so KMS costs ~0 and what is measured is the handler's
// own work: event parsing, EIP-191 Keccak, DER parsing, low-s, verification and recovery
// id, response. Before measuring, every variant must give the template's exact answer
// (signature bytes, or recovery id) on the same requests. The variants are measured in
// interleaved rounds (ROUNDS below), so a burst of load elsewhere hits them all.
// Usage: node tests/node/bench.mjs [requests]   (default 5000; native and the seed run fewer)
import assert from 'node:assert/strict';
import { createECDH, ECDH, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KMSClient } from '@aws-sdk/client-kms';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { eip191Digest, derSignature, functionUrlEvent, hex, makeKey, N, toBigInt } from './support/signer-fixtures.mjs';

const REQUESTS = Number(process.argv[2] ?? 5000);
const DISTINCT = 512;
const ROUNDS = 5;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

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
 * CPU time (user + system, µs) of each variant's `fn(i)`, `count` calls each, after a
 * warm-up; the variants take turns, ROUNDS times, each turn count / ROUNDS calls read one
 * by one (p50, p99) and as many again under one reading (the mean).
 */
async function compare(variants) {
  for (const v of variants) for (let i = 0; i < Math.min(v.count, 1000); i++) await v.fn(i);
  const stats = variants.map(() => ({ samples: [], cpu: 0, calls: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, v] of variants.entries()) {
      const chunk = Math.ceil(v.count / ROUNDS);
      const offset = round * chunk;
      for (let i = offset; i < offset + chunk; i++) {
        const call = process.cpuUsage();
        await v.fn(i);
        stats[k].samples.push(cpuMicros(call));
      }
      const start = process.cpuUsage();
      for (let i = offset; i < offset + chunk; i++) await v.fn(i);
      stats[k].cpu += cpuMicros(start);
      stats[k].calls += chunk;
    }
  }
  return variants.map((v, k) => {
    const samples = stats[k].samples.sort((a, b) => a - b);
    return { name: v.name, count: stats[k].calls, mean: stats[k].cpu / stats[k].calls, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
  });
}

function printRows(rows, base) {
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows) {
    const ratio = row === base ? 'the baseline of x' : `${(row.mean / base.mean).toFixed(2)}x`;
    console.log(
      `${row.name.padEnd(width)}  n=${String(row.count).padEnd(5)} mean ${row.mean.toFixed(1).padStart(7)} µs   p50 ${String(row.p50).padStart(5)} µs   p99 ${String(row.p99).padStart(5)} µs   ${ratio}`,
    );
  }
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

// ---------------------------------------------------------------- the hand-written core (baseline, not shipped)

/**
 * A module from `source` with some import specifiers replaced by absolute URLs, loaded from
 * a data: URL (which can import absolute URLs only, hence the replacements).
 */
async function importWith(source, specifiers) {
  let text = source;
  for (const [from, to] of Object.entries(specifiers)) {
    const quoted = new RegExp(`(['"])${from.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\1`, 'g');
    assert.ok(quoted.test(text), `no import of ${from} to replace`);
    text = text.replace(quoted, `'${to}'`);
  }
  return import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`);
}

const KMS_URL = import.meta.resolve('@aws-sdk/client-kms');
const baselineStart = performance.now();
const baseline = await importWith(readFileSync(join(ROOT, 'templates/aws-lambda-signer/index.mjs'), 'utf8'), {
  './signer-core.mjs': new URL('./support/handwritten-signer-core.mjs', import.meta.url).href,
  '@aws-sdk/client-kms': KMS_URL,
});
const baselineImportMs = performance.now() - baselineStart;
const handleBaseline = baseline.createHandler({ kms: fastKms, env: { KMS_KEY_ID: 'alias/bench', EXPECTED_ADDRESS: key.address } });
const handleBaselineDigest = baseline.createHandler({ kms: fastKms, env: { KMS_KEY_ID: 'alias/bench', EXPECTED_ADDRESS: key.address, SIGNING_MODE: 'digest' } });
const baselineColdStart = performance.now();
await handleBaseline(events[0]);
const baselineColdMs = performance.now() - baselineColdStart;

// ---------------------------------------------------------------- the seed guide's handler

/**
 * The seed guide's sample Lambda handler: the JavaScript block of ../shared/seeds that
 * exports `handler` and calls SignCommand, dedented; `null` (and why) if there is none.
 */
function findSeedHandler() {
  const dir = process.env.KEYRITE_SEEDS_DIR || join(ROOT, '../shared/seeds');
  let files;
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
  } catch {
    return { why: `no seed guides at ${dir}` };
  }
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const match of text.matchAll(/^([ \t]*)```javascript[^\n]*\n([\s\S]*?)\n[ \t]*```/gm)) {
      const indent = match[1];
      const code = match[2]
        .split('\n')
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()))
        .join('\n');
      if (/export const handler/.test(code) && /SignCommand/.test(code)) return { file, code };
    }
  }
  return { why: `no Lambda handler in the seed guides at ${dir}` };
}

const seed = findSeedHandler();
let handleSeed;
if (seed.code) {
  // Its module makes `new KMSClient({})` at load and calls kms.send(new SignCommand(...)):
  // the stand-in answers instead, for KMSClient instances only (the templates above were
  // given fastKms and never reach a KMSClient).
  KMSClient.prototype.send = fastKms.send;
  process.env.KMS_KEY_ID ??= 'alias/bench';
  handleSeed = (await importWith(seed.code, { '@aws-sdk/client-kms': KMS_URL })).handler;
}

// ---------------------------------------------------------------- run

// Every variant must answer exactly as the template does before it is timed.
for (let i = 0; i < 64; i++) {
  const expected = JSON.parse((await handle(events[i])).body);
  assert.deepEqual(JSON.parse((await handleBaseline(events[i])).body), expected, 'the hand-written core answers differently');
  assert.deepEqual(JSON.parse((await handleBaselineDigest(events[i])).body), JSON.parse((await handleDigest(events[i])).body));
  assert.equal(await nativeRequest(i), expected.recid, 'native recovery id disagrees');
  if (handleSeed) {
    const answer = await handleSeed(events[i]);
    assert.equal(answer.statusCode, 200, answer.body);
    assert.equal(JSON.parse(answer.body).signature, expected.signature, "the seed guide's handler signs differently");
  }
}

const started = new Date();
console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} x ${cpus()[0].model}, ${REQUESTS} requests, ${started.toISOString()}`);
console.log(`load average at the start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`cold start: template import (library's G table) ${importMs.toFixed(0)} ms; first request (GetPublicKey stand-in + Q table) ${coldMs.toFixed(0)} ms`);
console.log(`hand-written core cold start: import (comb table of G) ${baselineImportMs.toFixed(0)} ms; first request (+ comb table of Q) ${baselineColdMs.toFixed(0)} ms`);
console.log(handleSeed ? `seed guide's handler: ${seed.file}` : `seed guide's handler: skipped, ${seed.why}`);
console.log(`each percentile sample includes one process.cpuUsage() reading: ${probeCost().toFixed(1)} µs`);
const variants = [
  { name: 'template handler, eip191 (Function URL event)', count: REQUESTS, fn: (i) => handle(events[i % DISTINCT]) },
  { name: 'template handler, digest mode', count: REQUESTS, fn: (i) => handleDigest(events[i % DISTINCT]) },
  { name: 'Cloud Run signDigest, eip191 (CRC32C checked)', count: REQUESTS, fn: (i) => cloudRunCall(hashes[i % DISTINCT]) },
  { name: 'hand-written core (not shipped), eip191', count: REQUESTS, fn: (i) => handleBaseline(events[i % DISTINCT]) },
  { name: 'hand-written core (not shipped), digest mode', count: REQUESTS, fn: (i) => handleBaselineDigest(events[i % DISTINCT]) },
  { name: 'native: node:crypto ECDH verify + recid', count: Math.max(50, Math.round(REQUESTS / 5)), fn: nativeRequest },
];
if (handleSeed) {
  variants.push({ name: "seed guide's handler (BigInt trial recovery)", count: Math.max(25, Math.round(REQUESTS / 25)), fn: (i) => handleSeed(events[i % DISTINCT]) });
}
const rows = await compare(variants);
printRows(rows, rows[0]);
console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const [noble, , , handwritten] = rows;
const seedRow = rows.find((row) => row.name.startsWith('seed'));
console.log(
  `eip191, by mean CPU: @noble/curves ${(noble.mean / handwritten.mean).toFixed(2)}x the hand-written core` +
    (seedRow ? `; the seed guide's handler ${(seedRow.mean / noble.mean).toFixed(0)}x the template` : ''),
);
