//! The Cloud Run signer: the Node.js function `keyrite render-signer` writes for a Cloud KMS
//! key (entry point `signDigest`), compiled into keyrite so that a keyrite version pins its
//! exact bytes. It shares the request contract and the signature checks of
//! `templates/shared/` with the AWS Lambda template.

const FILES: &[(&str, &str)] = &[
    ("index.mjs", include_str!("../../../templates/gcp-cloud-run-signer/index.mjs")),
    ("package.json", include_str!("../../../templates/gcp-cloud-run-signer/package.json")),
    ("signer-core.mjs", include_str!("../../../templates/shared/signer-core.mjs")),
    // @noble/curves and @noble/hashes, bundled from the pinned npm packages
    // (scripts/vendor-noble.mjs; tests/node/vendor.test.mjs checks it).
    ("noble-curves.mjs", include_str!("../../../templates/shared/noble-curves.mjs")),
];

/// The function's files, as (path, contents).
pub fn files() -> Vec<(String, Vec<u8>)> {
    FILES.iter().map(|(path, text)| ((*path).to_owned(), text.as_bytes().to_vec())).collect()
}
