/**
 * keyrite AWS Lambda signer: a remote secp256k1 signer for wallet platforms, backed by
 * an AWS KMS key (ECC_SECG_P256K1 / SIGN_VERIFY). Node.js 20, ESM; the only runtime
 * dependency outside the package is @aws-sdk/client-kms, which the Lambda runtime
 * provides. The request contract and the signature checks are in ./signer-core.mjs,
 * shared with the Cloud Run template; the secp256k1 and Keccak arithmetic is
 * @noble/curves / @noble/hashes, shipped in the package as ./noble-curves.mjs.
 *
 * Contract
 *   Environment: KMS_KEY_ID (key id, ARN or alias), EXPECTED_ADDRESS, SIGNING_MODE
 *   (see signer-core.mjs).
 *   Request: POST (Function URL or API Gateway REST AWS_PROXY event, body possibly
 *   base64) with the JSON object of the contract.
 *   200: {signature: 0x r||s||v, r, s, recid, v, address}, low-s, v in {27, 28}.
 *   400/405: {error: "<what is wrong with the request>"}.
 *   500: {error: "internal error"}; the detail goes to console.error only.
 */
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import {
  RequestError,
  checkSignerAddress,
  createSigner,
  parseJsonBody,
  parseSignRequest,
  prepareKey,
  readSignerConfig,
} from './signer-core.mjs';

export { keccak256, parseDerSignature } from './signer-core.mjs';

const JSON_HEADERS = { 'content-type': 'application/json' };

/**
 * Builds a Lambda handler around a KMS client (anything with `send(command)`) and an
 * environment object; `handler` below is the one Lambda runs, with the real client and
 * process.env.
 */
export function createHandler({ kms, env }) {
  const signer = lazySigner(kms, env);
  return async function handle(event) {
    try {
      const request = parseRequest(event);
      checkSignerAddress(request, signer.config());
      return reply(200, await signer.sign(request.hash));
    } catch (err) {
      if (err instanceof RequestError) return reply(err.status, { error: err.message });
      console.error('keyrite signer: internal error:', err);
      return reply(500, { error: 'internal error' });
    }
  };
}

export const handler = createHandler({ kms: new KMSClient({}), env: process.env });

function reply(statusCode, body) {
  return { statusCode, headers: JSON_HEADERS, body: JSON.stringify(body) };
}

/** The signing request of a Function URL / HTTP API (v2) or REST API (v1) event. */
function parseRequest(event) {
  const method = event?.requestContext?.http?.method ?? event?.httpMethod;
  if (method !== 'POST') throw new RequestError(405, 'method not allowed: send a POST with a JSON body');
  const text = event.isBase64Encoded && typeof event.body === 'string' ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  return parseSignRequest(parseJsonBody(text));
}

function readConfig(env) {
  const keyId = (env.KMS_KEY_ID ?? '').trim();
  if (!keyId) throw new Error('KMS_KEY_ID is not set');
  return { keyId, ...readSignerConfig(env) };
}

/** The container's signer: AWS KMS `Sign` of the digest, with the key GetPublicKey resolved. */
function lazySigner(kms, env) {
  const signer = createSigner({
    readConfig: () => readConfig(env),
    loadKey: (config) => loadKey(kms, config),
    async kmsSign(key, digest) {
      const out = await kms.send(
        new SignCommand({ KeyId: key.keyId, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: 'ECDSA_SHA_256' }),
      );
      return Buffer.from(out.Signature ?? []);
    },
  });
  return {
    config: signer.config,
    async sign(hash) {
      const { der, ...answer } = await signer.sign(hash);
      return answer;
    },
  };
}

/** GetPublicKey, strict SPKI parse, address check, and the precomputed table of Q. */
async function loadKey(kms, config) {
  const out = await kms.send(new GetPublicKeyCommand({ KeyId: config.keyId }));
  if (out.KeySpec !== undefined && out.KeySpec !== 'ECC_SECG_P256K1') {
    throw new Error(`KMS key ${config.keyId} has KeySpec ${out.KeySpec}, not ECC_SECG_P256K1`);
  }
  const key = prepareKey(Buffer.from(out.PublicKey ?? []), config.address, `KMS key ${config.keyId}`);
  // Sign with the key GetPublicKey resolved, so a re-pointed alias cannot swap the key.
  return { keyId: out.KeyId ?? config.keyId, ...key };
}
