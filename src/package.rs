//! Deterministic function packages.
//!
//! Lambda reports a function's `CodeSha256`: base64 of the SHA-256 of the deployment zip.
//! keyrite records it and treats any other value as "signer code replaced out of band". For
//! that to be meaningful, the same template must always produce the same bytes: entries are
//! sorted by path, stored uncompressed, stamped 1980-01-01 00:00 with mode 0644, and carry no
//! extra fields. The zip itself is written by the `zip` crate.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Templates compiled into keyrite, so that a template name pins exact bytes to the keyrite
/// version that deploys them.
const BUILTIN: &[(&str, &[(&str, &str)])] = &[
    (
        "aws-lambda-signer",
        &[("index.mjs", include_str!("../templates/aws-lambda-signer/index.mjs")), ("signer-core.mjs", SIGNER_CORE)],
    ),
    (
        "gcp-cloud-run-signer",
        &[
            ("index.mjs", include_str!("../templates/gcp-cloud-run-signer/index.mjs")),
            ("package.json", include_str!("../templates/gcp-cloud-run-signer/package.json")),
            ("signer-core.mjs", SIGNER_CORE),
        ],
    ),
];

/// The request contract and secp256k1 code every signer template shares.
const SIGNER_CORE: &str = include_str!("../templates/shared/signer-core.mjs");

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "unknown template {0:?}: built-in templates are {1}; a custom template is a directory path (containing '/')"
    )]
    UnknownTemplate(String, String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0} holds no files")]
    Empty(PathBuf),
    #[error("cannot write zip: {0}")]
    Zip(String),
}

/// A built package and its Lambda-style digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub bytes: Vec<u8>,
    /// base64(SHA-256(bytes)), as Lambda reports `CodeSha256`.
    pub sha256: String,
}

/// Names of the built-in templates.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// The files of a template: a built-in name, or a directory (relative to `base`).
pub fn template_files(template: &str, base: &Path) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    if !template.contains('/') {
        let (_, files) = BUILTIN
            .iter()
            .find(|(n, _)| *n == template)
            .ok_or_else(|| PackageError::UnknownTemplate(template.to_owned(), builtin_names().join(", ")))?;
        return Ok(files.iter().map(|(p, text)| ((*p).to_owned(), text.as_bytes().to_vec())).collect());
    }
    dir_files(&base.join(template), "")
}

/// Every regular file under `dir`, as (`prefix` + relative path, contents).
pub fn dir_files(dir: &Path, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    // Fuzzed manifests name arbitrary paths (`/`, `/proc`); the fuzzer must not walk them.
    if cfg!(fuzzing) {
        return Err(PackageError::Empty(dir.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| PackageError::Read { path: d.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| PackageError::Read { path: d.clone(), source })?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|source| PackageError::Read { path: path.clone(), source })?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                let bytes = std::fs::read(&path).map_err(|source| PackageError::Read { path: path.clone(), source })?;
                out.push((format!("{prefix}{rel}"), bytes));
            }
        }
    }
    if out.is_empty() {
        return Err(PackageError::Empty(dir.to_path_buf()));
    }
    Ok(out)
}

/// Zips files deterministically.
pub fn zip(mut files: Vec<(String, Vec<u8>)>) -> Result<Package, PackageError> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in &files {
        writer.start_file(name.as_str(), options).map_err(|e| PackageError::Zip(e.to_string()))?;
        writer.write_all(bytes).map_err(|e| PackageError::Zip(e.to_string()))?;
    }
    let bytes = writer.finish().map_err(|e| PackageError::Zip(e.to_string()))?.into_inner();
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    Ok(Package { bytes, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_files_always_give_the_same_bytes_whatever_their_order() {
        let a = zip(vec![("b.txt".into(), b"2".to_vec()), ("a.mjs".into(), b"1".to_vec())]).unwrap();
        let b = zip(vec![("a.mjs".into(), b"1".to_vec()), ("b.txt".into(), b"2".to_vec())]).unwrap();
        assert_eq!(a, b);
        let c = zip(vec![("a.mjs".into(), b"1!".to_vec()), ("b.txt".into(), b"2".to_vec())]).unwrap();
        assert_ne!(a.sha256, c.sha256);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&a.sha256).unwrap().len(), 32);
    }

    #[test]
    fn the_builtin_signer_template_packages_and_directories_are_read_recursively() {
        let files = template_files("aws-lambda-signer", Path::new(".")).unwrap();
        assert_eq!(files[0].0, "index.mjs");
        assert!(String::from_utf8_lossy(&files[0].1).contains("export"));
        assert!(matches!(template_files("nope", Path::new(".")), Err(PackageError::UnknownTemplate(..))));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
        std::fs::write(dir.path().join("x/y/z.js"), "z").unwrap();
        std::fs::write(dir.path().join("top.js"), "t").unwrap();
        let mut files = dir_files(dir.path(), "nodejs/").unwrap();
        files.sort();
        assert_eq!(files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), vec!["nodejs/top.js", "nodejs/x/y/z.js"]);
        // Read twice from disk, zipped twice: identical.
        assert_eq!(zip(dir_files(dir.path(), "").unwrap()).unwrap(), zip(dir_files(dir.path(), "").unwrap()).unwrap());
    }
}
