//! Deterministic function packages.
//!
//! Lambda reports a function's `CodeSha256`: base64 of the SHA-256 of the deployment zip.
//! keyrite records it and treats any other value as "signer code replaced out of band". For
//! that to be meaningful, the same template must always produce the same bytes: entries are
//! sorted by path, stamped 1980-01-01 00:00 with mode 0644 (0755 for a root `bootstrap`, the
//! entry point of Lambda's `provided.*` runtimes), and carry no extra fields. The zip itself
//! is written by the `zip` crate.
//!
//! The Node templates are compiled into keyrite and stored uncompressed. The Rust signer
//! (template [`RUST_SIGNER`]) is the `keyrite-lambda-signer` executable that keyrite's build
//! produces beside `keyrite`, zipped as `bootstrap` and deflated (a debug build would not fit
//! Lambda's 50 MB upload otherwise). Its bytes are those of the build: the same build always
//! gives the same CodeSha256, and a keyrite built again gives the same one only when its
//! build is reproducible (same toolchain and target, paths remapped); README's "Packaging"
//! says how.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Templates compiled into keyrite, so that a template name pins exact bytes to the keyrite
/// version that deploys them.
const BUILTIN: &[(&str, &[(&str, &str)])] = &[(
    "aws-lambda-signer",
    &[
        ("index.mjs", include_str!("../../../templates/aws-lambda-signer/index.mjs")),
        ("signer-core.mjs", SIGNER_CORE),
        ("noble-curves.mjs", NOBLE_CURVES),
    ],
)];

/// The template of the Rust Lambda signer: the `bootstrap` of a `provided.al2023` function.
pub const RUST_SIGNER: &str = "rust-signer";

/// The executable [`RUST_SIGNER`] packages: in a cargo target directory, the build of
/// [`RUST_SIGNER_PROFILE`]; beside the running `keyrite` otherwise.
pub const RUST_SIGNER_BIN: &str = "keyrite-lambda-signer";

/// The cargo profile of the one build keyrite deploys (`target/signer/`).
pub const RUST_SIGNER_PROFILE: &str = "signer";

/// That build's command.
pub const RUST_SIGNER_BUILD: &str = "cargo build --locked --profile signer -p keyrite-lambda-signer";

/// An explicit path to the executable instead (a build for another architecture, say).
pub const RUST_SIGNER_ENV: &str = "KEYRITE_RUST_SIGNER";

/// The request contract and secp256k1 code every signer template shares.
const SIGNER_CORE: &str = include_str!("../../../templates/shared/signer-core.mjs");

/// @noble/curves and @noble/hashes, which the signer core computes with, bundled from the
/// pinned npm packages (scripts/vendor-noble.mjs; tests/node/vendor.test.mjs checks it).
const NOBLE_CURVES: &str = include_str!("../../../templates/shared/noble-curves.mjs");

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
    #[error(
        "the Rust signer's executable {0} is missing: build it with `{RUST_SIGNER_BUILD}` (a keyrite run from \
         a cargo target directory takes target/{RUST_SIGNER_PROFILE}/{RUST_SIGNER_BIN}), install it beside keyrite, \
         or name it in {RUST_SIGNER_ENV}"
    )]
    NoRustSigner(PathBuf),
    #[error(
        "{path} is not a Linux executable for x86_64 or arm64 ({what}): Lambda runs a Linux ELF bootstrap; build \
         it with `cargo build --release --bin {RUST_SIGNER_BIN} --target x86_64-unknown-linux-gnu` (or \
         aarch64-unknown-linux-gnu) and set {RUST_SIGNER_ENV} to it"
    )]
    NotLinux { path: PathBuf, what: String },
    #[error(
        "{path} needs glibc {}.{}, but provided.al2023 has {}.{}: it would not start on Lambda; build it on a \
         system with glibc 2.34 or older (Amazon Linux 2023, Debian 11), or for a musl target",
        needed.0, needed.1, AL2023_GLIBC.0, AL2023_GLIBC.1
    )]
    GlibcTooNew { path: PathBuf, needed: (u32, u32) },
}

/// A built package and its Lambda-style digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub bytes: Vec<u8>,
    /// base64(SHA-256(bytes)), as Lambda reports `CodeSha256`.
    pub sha256: String,
    /// The Lambda architecture (`x86_64`, `arm64`) of a native bootstrap; `None` for code a
    /// runtime interprets.
    pub architecture: Option<&'static str>,
}

/// Names of the built-in templates.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).chain([RUST_SIGNER]).collect()
}

/// The deployment package of a function template: a built-in name (the Rust signer
/// included) or a directory relative to `base`.
pub fn function_package(template: &str, base: &Path) -> Result<Package, PackageError> {
    if template == RUST_SIGNER {
        rust_signer_package(&rust_signer_path())
    } else {
        template_files(template, base).and_then(zip)
    }
}

/// Where the Rust signer's executable is: [`RUST_SIGNER_ENV`]; for a keyrite run from a
/// cargo target directory, that directory's [`RUST_SIGNER_PROFILE`] build and no other (so
/// that a `cargo build` or `cargo bench` of anything else, which may write another
/// `keyrite-lambda-signer` beside keyrite, never changes what is deployed); else beside this
/// executable (an installed keyrite).
pub fn rust_signer_path() -> PathBuf {
    if let Some(path) = std::env::var_os(RUST_SIGNER_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    signer_beside(&std::env::current_exe().unwrap_or_default())
}

/// [`rust_signer_path`] for a keyrite at `exe`, without the environment.
fn signer_beside(exe: &Path) -> PathBuf {
    let name = format!("{RUST_SIGNER_BIN}{}", std::env::consts::EXE_SUFFIX);
    // Cargo marks the root of every target directory with CACHEDIR.TAG; its executables are
    // in `<target>/<profile>/`.
    match exe.parent().and_then(Path::parent) {
        Some(target) if target.join("CACHEDIR.TAG").is_file() => target.join(RUST_SIGNER_PROFILE).join(name),
        _ => exe.with_file_name(name),
    }
}

/// The Rust signer's package of the executable at `path`: `bootstrap`, deflated, once its
/// architecture and glibc needs check out. Built once per path and process (a plan and its
/// apply read and deflate it once).
pub fn rust_signer_package(path: &Path) -> Result<Package, PackageError> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, Package>>> = OnceLock::new();
    let path = path.to_path_buf();
    // Fuzzed manifests name the template too; the fuzzer must not read and deflate binaries.
    if cfg!(fuzzing) {
        return Err(PackageError::NoRustSigner(path));
    }
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(&path) {
        return Ok(p.clone());
    }
    let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => PackageError::NoRustSigner(path.clone()),
        _ => PackageError::Read { path: path.clone(), source },
    })?;
    let bootstrap = inspect_bootstrap(&bytes).map_err(|what| PackageError::NotLinux { path: path.clone(), what })?;
    if let Some(needed) = bootstrap.glibc.filter(|v| *v > AL2023_GLIBC) {
        return Err(PackageError::GlibcTooNew { path, needed });
    }
    let mut package = write_zip(vec![("bootstrap".to_owned(), bytes)], zip::CompressionMethod::Deflated)?;
    package.architecture = Some(bootstrap.architecture);
    built.insert(path, package.clone());
    Ok(package)
}

/// The newest glibc Amazon Linux 2023 (`provided.al2023`) has.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

/// What a bootstrap executable is, from its ELF headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// The Lambda architecture: `x86_64` or `arm64`.
    pub architecture: &'static str,
    /// The newest `GLIBC_x.y` symbol version it needs; `None` for a static executable.
    pub glibc: Option<(u32, u32)>,
}

/// Reads a Linux executable's architecture and the glibc versions it needs (its
/// `SHT_GNU_VERNEED` entries for libc), with the `object` crate.
pub fn inspect_bootstrap(bytes: &[u8]) -> Result<Bootstrap, String> {
    use object::elf::{EM_AARCH64, EM_X86_64, FileHeader64};
    use object::read::elf::FileHeader;
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(match bytes.get(..4) {
            Some([0xcf, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe]) => "a macOS Mach-O file",
            Some([b'M', b'Z', ..]) => "a Windows PE file",
            _ => "not an ELF file",
        }
        .to_owned());
    }
    let bad = |e: object::Error| format!("an unreadable ELF file: {e}");
    let header = FileHeader64::<object::Endianness>::parse(bytes).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let architecture = match header.e_machine(endian) {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "arm64",
        other => return Err(format!("an ELF file for machine {other:#x}")),
    };
    let sections = header.sections(endian, bytes).map_err(bad)?;
    let mut glibc = None;
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, bytes).map_err(bad)? {
        let strings = sections.strings(endian, bytes, link).map_err(bad)?;
        while let Some((_, mut aux)) = needs.next().map_err(bad)? {
            while let Some(version) = aux.next().map_err(bad)? {
                let name = version.name(endian, strings).map_err(bad)?;
                if let Some(v) = std::str::from_utf8(name).ok().and_then(glibc_version) {
                    glibc = glibc.max(Some(v));
                }
            }
        }
    }
    Ok(Bootstrap { architecture, glibc })
}

/// `GLIBC_2.34` → (2, 34); `GLIBC_2.2.5` → (2, 2); anything else (`GLIBC_PRIVATE`) → `None`.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
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

/// Zips files deterministically, stored.
pub fn zip(files: Vec<(String, Vec<u8>)>) -> Result<Package, PackageError> {
    write_zip(files, zip::CompressionMethod::Stored)
}

fn write_zip(mut files: Vec<(String, Vec<u8>)>, method: zip::CompressionMethod) -> Result<Package, PackageError> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(zip::DateTime::default())
        // Fixed here, whatever zip's default becomes. Level 1: every command that reads the
        // manifest packages the bootstrap, and level 6 takes three times as long (0.86 s
        // against 0.30 s for a 22 MB release build) for a zip 10% smaller (7.2 MB, 7.9 MB).
        .compression_level((method == zip::CompressionMethod::Deflated).then_some(1));
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in &files {
        let mode = if name == "bootstrap" { 0o755 } else { 0o644 };
        writer
            .start_file(name.as_str(), options.unix_permissions(mode))
            .map_err(|e| PackageError::Zip(e.to_string()))?;
        writer.write_all(bytes).map_err(|e| PackageError::Zip(e.to_string()))?;
    }
    let bytes = writer.finish().map_err(|e| PackageError::Zip(e.to_string()))?.into_inner();
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    Ok(Package { bytes, sha256, architecture: None })
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

    #[test]
    fn a_keyrite_in_a_cargo_target_dir_takes_the_signer_profiles_build_and_an_installed_one_its_neighbour() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55").unwrap();
        let bin = format!("{RUST_SIGNER_BIN}{}", std::env::consts::EXE_SUFFIX);
        // A release build of the signer beside keyrite is not the deployed build.
        assert_eq!(signer_beside(&target.join("release/keyrite")), target.join("signer").join(&bin));
        assert_eq!(signer_beside(&target.join("debug/keyrite")), target.join("signer").join(&bin));
        let installed = dir.path().join("bin/keyrite");
        assert_eq!(signer_beside(&installed), dir.path().join("bin").join(&bin));
    }
}
