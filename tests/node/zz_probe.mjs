import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { eip191Digest, derSignature, functionUrlEvent, hex, makeKey, N } from './support/signer-fixtures.mjs';
import { createHandler } from '../../templates/aws-lambda-signer/index.mjs';
const key = makeKey();
const hashes = Array.from({ length: 512 }, () => randomBytes(32));
const kb = Buffer.from(key.d.toString(16).padStart(64, '0'), 'hex');
const sigs = new Map(hashes.map((h) => { const d = eip191Digest(h); const sg = secp256k1.Signature.fromBytes(secp256k1.sign(d, kb, { prehash: false })); return [d.toString('hex'), derSignature(sg.r, sg.s)]; }));
const kms = { async send(c) { if (c.constructor.name === 'GetPublicKeyCommand') return { KeyId: key.arn, PublicKey: new Uint8Array(key.spki) }; return { Signature: sigs.get(Buffer.from(c.input.Message).toString('hex')) }; } };
const handle = createHandler({ kms, env: { KMS_KEY_ID: 'a', EXPECTED_ADDRESS: key.address } });
const events = hashes.map((h) => functionUrlEvent({ userOpHash: hex(h) }));
for (let i = 0; i < 3000; i++) await handle(events[i % 512]);
const { PerformanceObserver } = await import('node:perf_hooks');
let gcs = 0, gcTime = 0; const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcs++; gcTime += e.duration; } }); obs.observe({ entryTypes: ['gc'] });
const samples = []; const m0 = process.memoryUsage().heapUsed;
for (let i = 0; i < 40000; i++) { const s = process.cpuUsage(); await handle(events[i % 512]); const u = process.cpuUsage(s); samples.push(u.user + u.system); }
await new Promise((r) => setTimeout(r, 100));
samples.sort((a, b) => a - b);
console.log('gcs', gcs, 'gc ms', gcTime.toFixed(1), 'p50', samples[20000]);
