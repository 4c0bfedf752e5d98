/**
 * Runs the Cloud Run signer template locally the way Cloud Run would: the Functions
 * Framework serves `signDigest`, and, in front of it, what Cloud Run's IAM check does for a
 * service that requires authentication: no bearer ID token → 401; a token for another
 * audience, expired, or not from accounts.google.com → 403. (Signatures of Google ID tokens
 * cannot be checked here: only Google can mint them. The stand-in's metadata server mints
 * tokens with the right claims and a random signature.)
 *
 * Usage: node cloud-run-local.mjs <template-dir> <port> <audience|-> ; prints "listening" when ready.
 * With "-" as the audience the service is public (allUsers invoker), as for --allow-unauthenticated.
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import * as functions from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';

const [dir, port, audience] = process.argv.slice(2);
const GCLOUD_CLIENT_ID = '32555940559.apps.googleusercontent.com';
const { signDigest } = await import(pathToFileURL(path.resolve(dir, 'index.mjs')).href);
functions.http('signDigest', signDigest);
const app = getTestServer('signDigest');

function denied(req) {
  if (audience === '-') return null;
  const auth = req.headers.authorization ?? '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  if (!token) return [401, 'Your client does not have permission: no ID token'];
  let claims;
  try {
    claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    return [401, 'malformed ID token'];
  }
  // Cloud Run takes tokens for its URL, and users' own ID tokens (gcloud's OAuth client as
  // audience), as from `gcloud auth print-identity-token`.
  if (claims.aud !== audience && claims.aud !== GCLOUD_CLIENT_ID) return [403, `ID token audience ${claims.aud} is not ${audience}`];
  if (claims.iss !== 'https://accounts.google.com') return [403, 'ID token not issued by Google'];
  if (!(claims.exp * 1000 > Date.now())) return [403, 'ID token expired'];
  return null;
}

createServer((req, res) => {
  const refusal = denied(req);
  if (refusal) {
    res.writeHead(refusal[0], { 'content-type': 'text/plain' });
    res.end(refusal[1]);
    return;
  }
  app.emit('request', req, res);
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
