// The signer templates' cryptography is @noble/curves / @noble/hashes, shipped inside each
// package as templates/shared/noble-curves.mjs. These tests prove that file is exactly what
// scripts/vendor-noble.mjs makes from the pinned npm packages in node_modules (which `npm
// ci` checked against package-lock.json's sha512 integrity), so the "audited library" can
// be neither hand-edited nor silently upgraded; and that every template is self-contained:
// each file it imports is in the template's directory and in the package keyrite builds
// (crates/keyrite-aws/src/package.rs for Lambda, crates/keyrite-gcp/src/cloud_run.rs for
// Cloud Run), and nothing is imported from @noble by name.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BUNDLE, PACKAGES, ROOT, buildNobleBundle, installedVersion, lockedPackage } from '../../scripts/vendor-noble.mjs';

const TEMPLATES = ['aws-lambda-signer', 'gcp-cloud-run-signer'];
const SHARED = ['signer-core.mjs', 'noble-curves.mjs'];
/** What a template may import by name: Node's built-ins and its platform's SDK. */
const PLATFORM = {
  'aws-lambda-signer': ['@aws-sdk/client-kms'], // in Lambda's nodejs runtimes
  'gcp-cloud-run-signer': ['@google-cloud/kms', 'fast-crc32c'], // its package.json dependencies
};

const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

describe('the vendored noble bundle', () => {
  for (const name of [...PACKAGES, 'esbuild']) {
    test(`${name} is pinned exactly, and node_modules holds that version`, () => {
      const pinned = packageJson.devDependencies[name];
      assert.match(pinned, /^\d+\.\d+\.\d+$/, `package.json must pin ${name} exactly, not ${pinned}`);
      const locked = lockedPackage(name);
      assert.equal(locked.version, pinned, 'package-lock.json and package.json disagree');
      assert.match(locked.integrity, /^sha512-/);
      assert.equal(installedVersion(name), pinned, 'node_modules is not what package-lock.json pins: run npm ci');
    });
  }

  test('templates/shared/noble-curves.mjs is byte-for-byte what scripts/vendor-noble.mjs builds from node_modules', async () => {
    const committed = readFileSync(BUNDLE);
    const built = Buffer.from(await buildNobleBundle());
    assert.ok(
      committed.equals(built),
      'templates/shared/noble-curves.mjs differs from the bundle of the pinned packages: never edit it; after changing the pins run `node scripts/vendor-noble.mjs`',
    );
  });

  test('its header names the pinned versions and integrity, and carries their license', () => {
    const text = readFileSync(BUNDLE, 'utf8');
    for (const name of PACKAGES) {
      const { version, integrity } = lockedPackage(name);
      assert.ok(text.includes(`${name} ${version} (npm, ${integrity})`), `${name} provenance missing`);
    }
    assert.ok(text.includes('Copyright (c) 2022 Paul Miller'));
    assert.ok(text.includes('The MIT License'));
  });

  test('it exports the library objects themselves, working', async () => {
    const { keccak_256, secp256k1 } = await import('../../templates/shared/noble-curves.mjs');
    assert.equal(Buffer.from(keccak_256(new Uint8Array())).toString('hex'), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
    const generator = secp256k1.Point.BASE.toAffine();
    assert.equal(generator.x, 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n);
  });
});

/** Where keyrite compiles in each template's files, and the table that lists them there. */
const PACKAGED_IN = {
  'aws-lambda-signer': ['crates/keyrite-aws/src/package.rs', 'const BUILTIN'],
  'gcp-cloud-run-signer': ['crates/keyrite-gcp/src/cloud_run.rs', 'const FILES'],
};

/** The file names keyrite packages for each built-in template, read from its Rust source. */
function packagedFiles() {
  const out = {};
  for (const name of TEMPLATES) {
    const [file, table] = PACKAGED_IN[name];
    const source = readFileSync(join(ROOT, file), 'utf8');
    const start = source.indexOf(table);
    assert.ok(start >= 0, `${table} is not in ${file}`);
    let block = source.slice(start, source.indexOf('];', start));
    if (table === 'const BUILTIN') {
      const at = block.indexOf(`"${name}"`);
      assert.ok(at >= 0, `${name} is not in ${file} ${table}`);
      block = block.slice(at + name.length + 2);
    }
    out[name] = [...block.matchAll(/\("([^"]+)",/g)].map((m) => m[1]).sort();
  }
  return out;
}

/** Every module specifier of `import ... from '...'` / `export ... from '...'` / import('...'). */
function importsOf(text) {
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|import\('([^']+)'\)/g)].map((m) => m[1] ?? m[2]);
}

describe('the templates are self-contained', () => {
  const packaged = packagedFiles();
  for (const template of TEMPLATES) {
    const dir = join(ROOT, 'templates', template);

    test(`${template}: its directory is exactly what keyrite packages`, () => {
      assert.deepEqual(readdirSync(dir).sort(), packaged[template]);
    });

    for (const file of SHARED) {
      test(`${template}/${file} is templates/shared/${file}`, () => {
        assert.ok(readFileSync(join(dir, file)).equals(readFileSync(join(ROOT, 'templates/shared', file))));
      });
    }

    test(`${template}: relative imports resolve inside the package, named ones are the platform's`, () => {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.mjs'))) {
        for (const specifier of importsOf(readFileSync(join(dir, file), 'utf8'))) {
          if (specifier.startsWith('./')) {
            assert.ok(packaged[template].includes(specifier.slice(2)), `${file} imports ${specifier}, which the package lacks`);
          } else {
            assert.ok(
              specifier.startsWith('node:') || PLATFORM[template].includes(specifier),
              `${template}/${file} imports ${specifier}: the deployed package would not have it`,
            );
          }
        }
      }
    });
  }

  test('the Cloud Run package.json does not pull @noble from npm at deploy time', () => {
    const { dependencies } = JSON.parse(readFileSync(join(ROOT, 'templates/gcp-cloud-run-signer/package.json'), 'utf8'));
    assert.deepEqual(Object.keys(dependencies).filter((name) => name.startsWith('@noble/')), []);
  });
});
