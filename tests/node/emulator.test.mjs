// The AWS Lambda signer template against real KMS semantics: the local AWS emulator
// (ministack, installed by scripts/install-emulator.sh) behind the real
// @aws-sdk/client-kms. The emulator is required: if it cannot be installed or started
// these tests fail; they never skip.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { CreateKeyCommand, GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { createHandler } from '../../templates/aws-lambda-signer/index.mjs';
import { addressOfPoint, assertRecovers, eip191Digest, functionUrlEvent, hex } from './support/signer-fixtures.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STARTUP_TIMEOUT_MS = 60_000;

async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Starts ministack on a free loopback port and resolves once its health check answers. */
async function startEmulator() {
  execFileSync('bash', [`${ROOT}scripts/install-emulator.sh`], { stdio: ['ignore', 'inherit', 'inherit'] });
  const port = await freePort();
  const child = spawn(`${ROOT}.venv/ministack/bin/ministack`, [], {
    cwd: ROOT,
    env: {
      ...process.env,
      BIND_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      SERVICES: 'kms,iam,sts,lambda',
      IOT_MTLS_ENABLED: '0',
      SFTP_ENABLED: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`ministack exited (${code ?? signal}) before it was ready:\n${output}`);
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  const healthy = (async () => {
    for (;;) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/_ministack/health`);
        const health = await response.json();
        if (response.ok && health.services?.kms === 'available') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`ministack did not become healthy in ${STARTUP_TIMEOUT_MS} ms:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    await Promise.race([healthy, exited]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  exited.catch(() => {}); // from here on an exit is expected (after())
  return { child, endpoint: `http://127.0.0.1:${port}` };
}

async function stopEmulator(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exit;
  clearTimeout(timer);
}

describe('against the local AWS emulator (ministack)', { timeout: 300_000 }, () => {
  let emulator;
  let kms;
  let key;

  before(async () => {
    emulator = await startEmulator();
    kms = new KMSClient({
      endpoint: emulator.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const created = await kms.send(new CreateKeyCommand({ KeySpec: 'ECC_SECG_P256K1', KeyUsage: 'SIGN_VERIFY' }));
    const { PublicKey } = await kms.send(new GetPublicKeyCommand({ KeyId: created.KeyMetadata.KeyId }));
    // the expected address comes from the SPKI by ethers' reading, not the template's
    key = { id: created.KeyMetadata.KeyId, address: addressOfPoint(Buffer.from(PublicKey).subarray(-65)) };
  });

  after(async () => {
    kms?.destroy();
    if (emulator) await stopEmulator(emulator.child);
  });

  for (const mode of ['eip191', 'digest']) {
    test(`50 KMS signatures recover to the key's address, ${mode} mode`, async () => {
      const handle = createHandler({ kms, env: { KMS_KEY_ID: key.id, EXPECTED_ADDRESS: key.address, SIGNING_MODE: mode } });
      for (let i = 0; i < 50; i++) {
        const hash = randomBytes(32);
        const response = await handle(functionUrlEvent({ userOpHash: hex(hash), signerAddress: key.address }));
        assertRecovers(response, mode === 'eip191' ? eip191Digest(hash) : hash, key.address);
      }
    });
  }

  test('an EXPECTED_ADDRESS that is not the key\'s is refused without signing', async (t) => {
    const errors = t.mock.method(console, 'error', () => {});
    const wrong = `0x${'11'.repeat(20)}`;
    const handle = createHandler({ kms, env: { KMS_KEY_ID: key.id, EXPECTED_ADDRESS: wrong } });
    const response = await handle(functionUrlEvent({ hash: hex(randomBytes(32)) }));
    assert.equal(response.statusCode, 500);
    assert.deepEqual(JSON.parse(response.body), { error: 'internal error' });
    assert.match(String(errors.mock.calls[0].arguments.find((x) => x instanceof Error)), /refusing to sign/);
  });

  test('a key id the emulator does not know: 500, logged', async (t) => {
    const errors = t.mock.method(console, 'error', () => {});
    const handle = createHandler({ kms, env: { KMS_KEY_ID: 'alias/keyrite-missing', EXPECTED_ADDRESS: key.address } });
    const response = await handle(functionUrlEvent({ hash: hex(randomBytes(32)) }));
    assert.equal(response.statusCode, 500);
    assert.deepEqual(JSON.parse(response.body), { error: 'internal error' });
    assert.equal(errors.mock.calls.length, 1);
  });
});
