#!/usr/bin/env node
// Writes templates/shared/noble-curves.mjs: the secp256k1 and keccak_256 of the pinned
// @noble/curves and @noble/hashes, bundled into one ES module that the signer templates
// ship (Lambda's Node.js runtime has the AWS SDK but not @noble, and `keyrite
// render-signer` writes a flat directory, so the library travels as one file beside
// signer-core.mjs).
//
// The bundle is a pure function of the package-lock.json pins: the npm packages that
// `npm ci` installed (and checked against the lockfile's sha512 integrity) and esbuild
// at its pinned version, which bundles deterministically. tests/node/vendor.test.mjs calls
// buildNobleBundle() and fails if the committed file differs by one byte, so the shipped
// library cannot be edited by hand. After an upgrade of the pins, run
//   node scripts/vendor-noble.mjs
// and commit the result.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = join(ROOT, 'templates/shared/noble-curves.mjs');
/** The packages bundled, each pinned exactly in package.json and package-lock.json. */
export const PACKAGES = ['@noble/curves', '@noble/hashes'];

const ENTRY = `export { secp256k1 } from '@noble/curves/secp256k1.js';
export { keccak_256 } from '@noble/hashes/sha3.js';
`;

/** {version, integrity} of a package as package-lock.json pins it. */
export function lockedPackage(name) {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const entry = lock.packages[`node_modules/${name}`];
  if (!entry) throw new Error(`${name} is not in package-lock.json`);
  return { version: entry.version, integrity: entry.integrity };
}

/** The version of a package that node_modules holds. */
export function installedVersion(name) {
  return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
}

function header(esbuildVersion) {
  const lines = [
    'GENERATED FILE: do not edit. scripts/vendor-noble.mjs writes it, and',
    'tests/node/vendor.test.mjs fails unless it is exactly what that script makes from:',
  ];
  for (const name of PACKAGES) {
    const { version, integrity } = lockedPackage(name);
    if (installedVersion(name) !== version) {
      throw new Error(`node_modules has ${name} ${installedVersion(name)}, package-lock.json pins ${version}: run npm ci`);
    }
    lines.push(`  ${name} ${version} (npm, ${integrity})`);
  }
  lines.push(
    `bundled by esbuild ${esbuildVersion}: the published code with unused exports left out,`,
    'modules in dependency order. It exports `secp256k1` (@noble/curves/secp256k1.js) and `keccak_256`',
    '(@noble/hashes/sha3.js) for templates/shared/signer-core.mjs.',
    '',
  );
  const licenses = new Map();
  for (const name of PACKAGES) {
    const text = readFileSync(join(ROOT, 'node_modules', name, 'LICENSE'), 'utf8').trim();
    licenses.set(text, [...(licenses.get(text) ?? []), name]);
  }
  for (const [text, names] of licenses) lines.push(`License of ${names.join(' and ')}:`, '', ...text.split('\n'), '');
  return `/*\n${lines.map((line) => ` * ${line}`.trimEnd()).join('\n')}\n */`;
}

/** The bundle's text, from node_modules, as the committed file must read. */
export async function buildNobleBundle() {
  const esbuild = await import('esbuild');
  const lockedEsbuild = lockedPackage('esbuild').version;
  if (esbuild.version !== lockedEsbuild) {
    throw new Error(`esbuild ${esbuild.version} is installed, package-lock.json pins ${lockedEsbuild}: run npm ci`);
  }
  const result = await esbuild.build({
    stdin: { contents: ENTRY, resolveDir: ROOT, sourcefile: 'noble-curves-entry.mjs', loader: 'js' },
    absWorkingDir: ROOT,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    treeShaking: true,
    minify: false,
    legalComments: 'none', // the header carries the licenses once
    charset: 'utf8',
    banner: { js: header(esbuild.version) },
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = await buildNobleBundle();
  writeFileSync(BUNDLE, text);
  console.log(`wrote ${BUNDLE} (${Buffer.byteLength(text)} bytes)`);
}
