// A signer Lambda as a person following the public AWS KMS guide writes it in the console
// editor: KMS_KEY_ID from the environment, EIP-191 over the 32-byte hash, DER → r‖s‖v with
// low-s and v found by recovery. The adoption tests deploy it by hand (boto3) as code keyrite
// has no source of; it is not keyrite's template and shares no code with it.
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

const kms = new KMSClient({});
const KEY_ID = process.env.KMS_KEY_ID;
const N = secp256k1.Point.Fn.ORDER;
let publicKey;

const reply = (statusCode, body) => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

function hashBytes(value) {
  if (typeof value !== 'string') return null;
  let bytes;
  if (value.startsWith('0x')) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(value)) return null;
    bytes = Buffer.from(value.slice(2), 'hex');
  } else {
    bytes = Buffer.from(value, 'base64');
  }
  return bytes.length === 32 ? bytes : null;
}

export const handler = async (event) => {
  let body;
  try {
    const text = event.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64').toString() : event.body;
    body = typeof text === 'string' ? JSON.parse(text) : event;
  } catch {
    return reply(400, { error: 'the body is not JSON' });
  }
  const hash = hashBytes(body.userOpHash ?? body.useropHash ?? body.hash ?? body.digest);
  if (!hash) return reply(400, { error: 'a 32-byte hash is required' });
  if (!publicKey) {
    const out = await kms.send(new GetPublicKeyCommand({ KeyId: KEY_ID }));
    publicKey = Buffer.from(out.PublicKey).subarray(-65);
  }
  const address = '0x' + Buffer.from(keccak_256(publicKey.subarray(1))).subarray(-20).toString('hex');
  if (body.signerAddress && String(body.signerAddress).toLowerCase() !== address) {
    return reply(400, { error: 'signerAddress is not this signer' });
  }
  const digest = keccak_256(Buffer.concat([Buffer.from('\x19Ethereum Signed Message:\n32'), hash]));
  const out = await kms.send(
    new SignCommand({ KeyId: KEY_ID, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: 'ECDSA_SHA_256' }),
  );
  let sig = secp256k1.Signature.fromBytes(out.Signature, 'der');
  if (sig.hasHighS()) sig = new secp256k1.Signature(sig.r, N - sig.s);
  for (const bit of [0, 1]) {
    const point = sig.addRecoveryBit(bit).recoverPublicKey(digest);
    if (Buffer.from(point.toBytes(false)).equals(publicKey)) {
      const rs = Buffer.from(sig.toBytes('compact')).toString('hex');
      return reply(200, { signature: '0x' + rs + (27 + bit).toString(16) });
    }
  }
  return reply(500, { error: 'no recovery id gives the key' });
};
