/**
 * keyrite Cloud Run signer: the `signDigest` function, a remote secp256k1 signer for wallet
 * platforms backed by one pinned Cloud KMS key version (EC_SIGN_SECP256K1_SHA256). Node.js
 * 20, ESM, for Cloud Run functions (Functions Framework, entry point `signDigest`).
 * Credentials are the service's own (Application Default Credentials from the metadata
 * server); its service account needs roles/cloudkms.signerVerifier on the key and nothing
 * else. The request contract and the signature checks are in ./signer-core.mjs, shared
 * with the AWS Lambda template; the secp256k1 and Keccak arithmetic is @noble/curves /
 * @noble/hashes, shipped beside it as ./noble-curves.mjs (not an npm dependency).
 *
 * Contract
 *   Environment: KMS_KEY_VERSION (projects/…/cryptoKeyVersions/N: a pinned version, because
 *   a new version is a new address), EXPECTED_ADDRESS, SIGNING_MODE (see signer-core.mjs).
 *   Request: POST with the JSON object of the contract; 64 hex digits without 0x are
 *   accepted, as the Cloud KMS guide's callers send `digest`.
 *   200: {signature: 0x r||s||v, r, s, recid, v, address, derSignature: <hex of the DER
 *   signature Cloud KMS returned>}; low-s, v in {27, 28}.
 *   400/405: {error: "<what is wrong with the request>"}.
 *   500: {error: "internal error"}; the detail goes to console.error only.
 *
 * Integrity: every asymmetricSign carries the digest's CRC32C; the answer must confirm it
 * (verifiedDigestCrc32c), name the pinned version, and carry the signature's CRC32C, and
 * getPublicKey's PEM must match pemCrc32c. Any mismatch is an error, never a signature.
 *
 * KMS_API_ENDPOINT (http(s)://host:port) points the client at another Cloud KMS endpoint,
 * over REST; it exists for local testing against keyrite's stand-in and is unset on Cloud Run.
 */
import { KeyManagementServiceClient } from '@google-cloud/kms';
import crc32c from 'fast-crc32c';
import {
  RequestError,
  checkObject,
  checkSignerAddress,
  createSigner,
  parseJsonBody,
  parseSignRequest,
  pemToDer,
  prepareKey,
  readSignerConfig,
} from './signer-core.mjs';

const VERSION_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+\/cryptoKeyVersions\/[1-9][0-9]*$/;

/**
 * Builds the HTTP function around a Cloud KMS client (anything with the client's
 * `getPublicKey` and `asymmetricSign`) and an environment object; `signDigest` below is the
 * one Cloud Run runs, with the real client and process.env.
 */
export function createSignDigest({ kms, env }) {
  const signer = lazySigner(kms, env);
  return async function signDigest(req, res) {
    try {
      if (req.method !== 'POST') throw new RequestError(405, 'method not allowed: send a POST with a JSON body');
      const request = parseSignRequest(requestBody(req));
      checkSignerAddress(request, signer.config());
      res.status(200).json(await signer.sign(request.hash));
    } catch (err) {
      if (err instanceof RequestError) {
        res.status(err.status).json({ error: err.message });
        return;
      }
      console.error('keyrite signer: internal error:', err);
      res.status(500).json({ error: 'internal error' });
    }
  };
}

/** The real client, made on first use so that importing the module touches no network. */
let client;
const realKms = {
  getPublicKey: (request) => (client ??= new KeyManagementServiceClient(clientOptions(process.env))).getPublicKey(request),
  asymmetricSign: (request) => (client ??= new KeyManagementServiceClient(clientOptions(process.env))).asymmetricSign(request),
};

export const signDigest = createSignDigest({ kms: realKms, env: process.env });

/** The JSON object of a request: pre-parsed by the framework, or from the raw body. */
function requestBody(req) {
  if (req.body !== undefined && req.body !== null && typeof req.body === 'object' && !Buffer.isBuffer(req.body)) {
    return checkObject(req.body);
  }
  const raw = req.rawBody ?? req.body;
  return parseJsonBody(Buffer.isBuffer(raw) ? raw.toString('utf8') : raw);
}

/** Client options: Google's endpoint, or KMS_API_ENDPOINT over REST for local tests. */
export function clientOptions(env) {
  const endpoint = (env.KMS_API_ENDPOINT ?? '').trim();
  if (!endpoint) return {};
  const url = new URL(endpoint);
  const protocol = url.protocol.replace(':', '');
  return {
    apiEndpoint: url.hostname,
    port: Number(url.port || (protocol === 'http' ? 80 : 443)),
    protocol,
    fallback: true,
  };
}

function readConfig(env) {
  const version = (env.KMS_KEY_VERSION ?? '').trim();
  if (!VERSION_NAME.test(version)) {
    throw new Error(`KMS_KEY_VERSION must name one key version (projects/…/cryptoKeyVersions/N): "${version}"`);
  }
  return { version, ...readSignerConfig(env) };
}

/** The instance's signer: Cloud KMS `asymmetricSign` of the digest, every checksum checked. */
function lazySigner(kms, env) {
  const signer = createSigner({
    readConfig: () => readConfig(env),
    loadKey: (config) => loadKey(kms, config),
    async kmsSign(key, digest, { version }) {
      const [out] = await kms.asymmetricSign({
        name: version,
        digest: { sha256: digest },
        digestCrc32c: { value: crc32c.calculate(digest) },
      });
      if (!out.verifiedDigestCrc32c) throw new Error('Cloud KMS did not confirm the digest CRC32C; refusing the signature');
      if (out.name !== version) throw new Error(`Cloud KMS answered for ${out.name}, not ${version}`);
      const der = Buffer.from(out.signature ?? []);
      checkCrc(der, out.signatureCrc32c, 'signature');
      return der;
    },
  });
  return {
    config: signer.config,
    async sign(hash) {
      const { der, ...answer } = await signer.sign(hash);
      return { ...answer, derSignature: der.toString('hex') };
    },
  };
}

/** getPublicKey, PEM checksum, strict SPKI parse, address check, and the precomputed table of Q. */
async function loadKey(kms, config) {
  const [out] = await kms.getPublicKey({ name: config.version });
  const pem = out.pem ?? '';
  checkCrc(Buffer.from(pem, 'utf8'), out.pemCrc32c, 'public key PEM');
  if (out.name && out.name !== config.version) throw new Error(`Cloud KMS answered for ${out.name}, not ${config.version}`);
  return prepareKey(pemToDer(pem), config.address, `Cloud KMS key version ${config.version}`);
}

/** An Int64Value checksum ({value: number | string | Long}) against the bytes it covers. */
function checkCrc(bytes, given, what) {
  const value = given?.value;
  if (value === undefined || value === null) throw new Error(`Cloud KMS sent the ${what} without its CRC32C`);
  if (BigInt(value.toString()) !== BigInt(crc32c.calculate(bytes))) {
    throw new Error(`the ${what} failed its CRC32C check: corrupted in transit`);
  }
}
