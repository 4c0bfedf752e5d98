//! The command line, declared with clap's derive API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::lint::Level;
use crate::manifest::SigningMode;
use crate::render::{Format, ReportFormat};

/// Declarative key ceremonies for cloud-KMS secp256k1 signers: plan, apply and drift-check
/// keys, policies and signer endpoints from one YAML manifest.
#[derive(Debug, Parser)]
#[command(name = "keyrite", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Show cloud errors with the SDK's full context
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The manifest to read.
#[derive(Debug, Args, Clone)]
pub struct ManifestArg {
    /// Manifest file
    #[arg(short = 'f', long = "file", env = "KEYRITE_MANIFEST", default_value = "keyrite.yaml", value_name = "FILE")]
    pub file: PathBuf,
}

/// A cloud account `lint --live --account` can scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Account {
    #[cfg(feature = "aws")]
    Aws,
    #[cfg(feature = "gcp")]
    Gcp,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a manifest without calling any cloud API
    Validate {
        #[command(flatten)]
        manifest: ManifestArg,
    },
    /// Check a manifest, or what is deployed, against keyrite's security rules (docs/lint.md)
    ///
    /// Without --live, the manifest (no cloud call). With --live, what the manifest's state
    /// records, as the cloud holds it now. With --live --account aws (or gcp), every secp256k1
    /// key of the account and region (or project and location) and the signer stack around it,
    /// whoever made them (read-only).
    ///
    /// Exit status: 0 when no finding is at or above --fail-on, 2 when one is, 1 on error.
    Lint {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Lint what is deployed instead of what is declared
        #[arg(long)]
        live: bool,
        /// With --live: scan this cloud account instead of the manifest's state
        #[arg(long, value_enum, requires = "live", value_name = "CLOUD")]
        account: Option<Account>,
        /// With --account aws: the region (else AWS_REGION)
        #[arg(long, requires = "account")]
        region: Option<String>,
        /// With --account gcp: the project
        #[arg(long, requires = "account")]
        project: Option<String>,
        /// With --account gcp: the location (us-east1, global, …)
        #[arg(long, requires = "account")]
        location: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
        /// The lowest level that makes the exit status 2
        #[arg(long, value_parser = level(), default_value = "warning", value_name = "LEVEL")]
        fail_on: Level,
    },
    /// Show what apply would change, attribute by attribute
    ///
    /// Exit status with --detailed-exitcode: 0 no changes, 2 changes, 1 error.
    Plan {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Save the plan to this file, for `keyrite apply PLANFILE`
        #[arg(long, value_name = "PLANFILE")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit 2 when there are changes (0 when none, 1 on error)
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the cloud match the manifest (or a saved plan)
    Apply {
        #[command(flatten)]
        manifest: ManifestArg,
        /// A plan saved with `keyrite plan --out`; refused if the state changed since
        #[arg(value_name = "PLANFILE")]
        plan: Option<PathBuf>,
        /// Apply without asking (required when not on a terminal and no PLANFILE is given)
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        run: RunArgs,
        /// Allow replacing a key: a NEW KEY with a NEW ADDRESS
        #[arg(long)]
        allow_key_replacement: bool,
        /// Apply a saved plan as another principal than the one it was made (and approved) as
        #[arg(long)]
        allow_identity_change: bool,
        /// Your Ed25519 OpenSSH key: signs the ceremony record (manifests with `ceremony:`)
        #[arg(long, env = "KEYRITE_OPERATOR_KEY", value_name = "KEY")]
        operator_key: Option<PathBuf>,
    },
    /// Approve a saved plan for a ceremony: an OpenSSH signature over its exact bytes
    ///
    /// Shows the plan, its SHA-256 and the SHA-256 as words to compare out of band, asks on a
    /// terminal, then writes PLANFILE.<principal>.sig. `ssh-keygen -Y sign -n keyrite-plan@v1 -f
    /// KEY PLANFILE` makes an equivalent approval.
    Approve {
        /// The plan saved with `keyrite plan --out`
        #[arg(value_name = "PLANFILE")]
        plan: PathBuf,
        /// Your OpenSSH private key (ed25519, ecdsa-p256, or a FIDO sk-ssh-ed25519 key file)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The principal to approve as, when the key is listed under several
        #[arg(long)]
        principal: Option<String>,
        /// Approve without asking (after reading the plan and its SHA-256)
        #[arg(long)]
        yes: bool,
    },
    /// Check, show and countersign ceremony records
    Ceremony {
        #[command(subcommand)]
        command: CeremonyCommand,
    },
    /// Enrol a new operational signer with the recovery key, through its quorum gate
    ///
    /// `prepare` writes the EIP-712 enrolment and its digest for the approvers' `ssh-keygen -Y
    /// sign -n keyrite-enrolment@v1`; `submit` sends it with their approvals to the gate,
    /// which signs only with a quorum, and checks the signature.
    #[cfg(feature = "aws")]
    Enrol {
        #[command(subcommand)]
        command: EnrolCommand,
    },
    /// Rotate a signer's key: a new key (a new address), enrolled by the recovery key's quorum
    ///
    /// Three steps, each recorded in the ceremony chain: `--out FILE` plans the new key (apply
    /// the approved plan with `keyrite apply FILE`, which writes the enrolment for the gate's
    /// approvers); `--enrol FILE.enrolment.json` has the recovery key sign it through its
    /// quorum gate; `--finish`, after the grace period, disables the old key (never deletes it).
    /// With none of them, it shows where the signer's rotations are and what comes next.
    #[cfg(feature = "aws")]
    Rotate {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The signer whose key is rotated
        signer: String,
        /// Plan the rotation and save the plan here, for approval
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Have the recovery key sign this enrolment (approvals beside it) through its gate
        #[arg(long, value_name = "FILE")]
        enrol: Option<PathBuf>,
        /// Disable the old key, once the grace period is over
        #[arg(long)]
        finish: bool,
        /// The enrolment's nonce (default: the enrolments recorded so far for the wallet)
        #[arg(long)]
        nonce: Option<u64>,
        /// How long the enrolment stays valid once written (at most 30d)
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        valid_for: String,
        /// Your Ed25519 OpenSSH key: signs the step's ceremony record
        #[arg(long, env = "KEYRITE_OPERATOR_KEY", value_name = "KEY")]
        operator_key: Option<PathBuf>,
    },
    /// Compare the cloud with what was last applied, and with the manifest
    ///
    /// Exit status: 0 in sync, 2 drift or pending changes, 1 error.
    Drift {
        #[command(flatten)]
        manifest: ManifestArg,
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Print the state: identifiers, ARNs and public keys of every resource
    Show {
        #[command(flatten)]
        manifest: ManifestArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Derive addresses from the keys' public keys (EVM, Hedera, keystore URI)
    Addresses {
        #[command(flatten)]
        manifest: ManifestArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Remove everything in the state; keys are only scheduled for deletion
    Destroy {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Destroy without asking (required when not on a terminal)
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Sign a 32-byte hash through KMS and print the 65-byte r‖s‖v signature
    Sign {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The signer (from the manifest's `signers:`); optional when there is only one
        #[arg(long)]
        signer: Option<String>,
        /// The 32-byte hash, 0x-hex or base64
        #[arg(long)]
        hash: String,
        /// eip191 signs the personal-message hash of the 32 bytes; digest signs them as given
        #[arg(long, value_parser = signing_mode())]
        mode: Option<SigningMode>,
    },
    /// Write the Cloud Run signer for a Cloud KMS signer, and print its deploy command
    ///
    /// Renders templates/gcp-cloud-run-signer (the `signDigest` function) into DIR, configured
    /// for the signer's pinned key version and address. Deploying is left to `gcloud`.
    #[cfg(feature = "gcp")]
    RenderSigner {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The signer (from the manifest's `signers:`); optional when there is only one
        #[arg(long)]
        signer: Option<String>,
        /// Directory to write the function's source to (created; existing files are replaced)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write a container that runs `keyrite serve` instead of the Node.js function: this
        /// binary, the manifest, its state and a Dockerfile, for `gcloud run deploy --source`
        #[arg(long)]
        serve: bool,
    },
    /// Live sign-and-recover self-test of a signer's key and endpoints
    ///
    /// Exit status: 0 when every check passes, 1 otherwise. Each failure names its cause.
    Selftest {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Test only this signer (default: all)
        #[arg(long)]
        signer: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Seconds to wait for each answer
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Reach Function URLs and API stages through a local emulator at this base URL
        /// (their public hostnames do not resolve locally)
        #[arg(long, env = "KEYRITE_VIA_EMULATOR", value_name = "URL")]
        via_emulator: Option<String>,
    },
    /// Read an account's hand-made signer stacks and write a manifest that imports them
    ///
    /// Follows the stack around each secp256k1 key (aliases, signing roles and their inline
    /// policies, functions that name the key, their URLs and APIs; on Cloud KMS the ring and
    /// the key's IAM policy), with read calls only. Every resource carries `import:`, and a
    /// plan of the manifest shows no change but keyrite's ownership marks.
    Discover {
        #[command(subcommand)]
        cloud: DiscoverCloud,
    },
    /// Serve the signer contract over HTTP, backed by KMS
    ///
    /// POST /sign/<signer> (or POST / with one signer), GET /upcheck, GET /healthcheck.
    /// SIGTERM or Ctrl-C stops accepting, lets requests in flight finish (up to
    /// --drain-seconds) and exits 0.
    Serve {
        #[command(flatten)]
        manifest: ManifestArg,
        #[command(flatten)]
        options: Box<ServeArgs>,
    },
    /// Signature tools that work offline
    Sig {
        #[command(subcommand)]
        command: SigCommand,
    },
    /// IAM policy tools
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Clear the state lock left by a keyrite process that no longer runs
    ForceUnlock {
        /// The lock id printed in the "state is locked" error
        id: String,
        #[command(flatten)]
        manifest: ManifestArg,
    },
}

#[cfg(feature = "aws")]
#[derive(Debug, Subcommand)]
pub enum EnrolCommand {
    /// Write the enrolment (FILE) and its digest (FILE.digest) for the approvers; no cloud call
    Prepare {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The recovery signer (from the manifest's `signers:`) whose gate authorizes it
        #[arg(long, default_value = "recovery")]
        signer: String,
        /// The new operational signer's address
        #[arg(long, value_name = "ADDRESS")]
        new_signer: String,
        /// The address of the signer it replaces
        #[arg(long, value_name = "ADDRESS")]
        replaces: String,
        /// The wallet's enrolment nonce
        #[arg(long)]
        nonce: u64,
        /// How long the enrolment stays valid (30m, 24h, 7d; at most the gate's 30 days)
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        valid_for: String,
        /// Where to write the enrolment
        #[arg(long, value_name = "FILE", default_value = "enrolment.json")]
        out: PathBuf,
    },
    /// Send the enrolment and the approvals beside it to the gate; write FILE.signature.json
    Submit {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The recovery signer whose gate signs
        #[arg(long, default_value = "recovery")]
        signer: String,
        /// The enrolment `enrol prepare` wrote
        #[arg(value_name = "FILE", default_value = "enrolment.json")]
        enrolment: PathBuf,
        /// The gate's URL, for a gate on Cloud Run (`keyrite serve`); an AWS gate is invoked
        #[arg(long)]
        url: Option<String>,
        /// Send a Google ID token for the URL's origin, as Cloud Run requires
        #[arg(long)]
        google_id_token: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// Verify a ceremony record offline: signatures, approvals, proofs of possession, chain
    ///
    /// Exit status: 0 when everything holds, 1 naming the first thing that does not.
    Verify {
        /// The record (a DSSE envelope) written by the ceremony apply
        record: PathBuf,
        /// The records directory: check the chain of the record's lineage back to its first
        #[arg(long, value_name = "DIR")]
        chain: Option<PathBuf>,
        /// The manifest file, checked against the record's subject
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// The plan file, checked against the record's subject
        #[arg(long, value_name = "PLANFILE")]
        plan: Option<PathBuf>,
        /// An allowed_signers file of further keys (witnesses) whose envelope signatures count
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        /// Fail unless a witness countersignature verifies with a key in --trusted-keys
        /// (without it, a witness signature by a key not trusted is reported, not checked)
        #[arg(long)]
        require_witness: bool,
        /// Also check with the cloud (read-only) that each key exists, is enabled and has the
        /// recorded public key
        #[arg(long)]
        live: bool,
        /// `json`: the checks, `"trusted"` (whether --trusted-keys pinned the operator's key),
        /// the warnings, the witness signatures not checked, and the failure if any
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print a readable summary of a ceremony record
    Show {
        record: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Add your signature to a ceremony record's envelope (witnesses, approvers)
    Sign {
        record: PathBuf,
        /// Your Ed25519 OpenSSH private key
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
}

/// Options shared by apply and destroy.
#[derive(Debug, Args, Clone, Copy)]
pub struct RunArgs {
    /// How many independent resources to change at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Allow scheduling KMS keys for deletion (with their deletion window)
    #[arg(long)]
    pub allow_key_deletion: bool,
}

#[derive(Debug, Subcommand)]
pub enum SigCommand {
    /// Turn a KMS DER signature into a normalised 0x r‖s‖v (low-s, v ∈ {27, 28})
    FromDer {
        /// The DER signature, hex
        #[arg(long)]
        der: String,
        /// The 32 bytes that were signed, hex
        #[arg(long)]
        digest: String,
        /// The signer's address, to pick v
        #[arg(long, required_unless_present = "pubkey", conflicts_with = "pubkey")]
        address: Option<String>,
        /// The signer's public key: SEC1 (33 or 65 bytes) or SPKI DER, hex
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Print the EIP-55 address that signed a digest
    Recover {
        /// The 32 bytes that were signed, hex
        #[arg(long)]
        digest: String,
        /// The 65-byte r‖s‖v signature, hex
        #[arg(long)]
        signature: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compare two IAM policy documents by meaning
    ///
    /// Exit status: 0 equivalent, 2 different, 1 error. Statement order, a string versus a
    /// one-element list, formatting and URL-encoding do not count as differences.
    Diff {
        /// The expected policy (JSON, URL-encoded JSON or escaped JSON)
        a: PathBuf,
        /// The policy to compare with it
        b: PathBuf,
    },
}

/// Where `keyrite discover` looks.
#[derive(Debug, Subcommand)]
pub enum DiscoverCloud {
    /// An AWS account and region
    #[cfg(feature = "aws")]
    Aws {
        /// The region (else AWS_REGION)
        #[arg(long)]
        region: Option<String>,
        /// One key: its id, ARN or alias (alias/…)
        #[arg(long, conflicts_with_all = ["tag", "all"], required_unless_present_any = ["tag", "all"])]
        key: Option<String>,
        /// Keys carrying this tag (KEY=VALUE)
        #[arg(long, value_name = "KEY=VALUE", conflicts_with = "all")]
        tag: Option<String>,
        /// Every secp256k1 key of the account and region
        #[arg(long)]
        all: bool,
        /// Write the manifest here instead of to standard output (an existing file is kept)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A Google Cloud project and location
    #[cfg(feature = "gcp")]
    Gcp {
        #[arg(long)]
        project: String,
        /// us-east1, global, …
        #[arg(long)]
        location: String,
        /// Only this key ring
        #[arg(long, value_name = "RING")]
        key_ring: Option<String>,
        /// Write the manifest here instead of to standard output (an existing file is kept)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// How `keyrite serve` runs: what it serves, where, who may call and how often.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Serve only these signers (repeatable); default: every operational signer
    #[arg(long = "signer", value_name = "NAME")]
    pub signers: Vec<String>,
    /// Address to listen on (default 127.0.0.1:8080, or 0.0.0.0:$PORT when PORT is set, as
    /// on Cloud Run)
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Threads that handle requests. One runs on a current-thread runtime and spends no CPU
    /// on waking other threads; it answered 4,340-4,375 signatures a second over mTLS on a
    /// 2-core VM on 2026-12-07 (`scripts/bench-serve.sh 5000 5`, BENCHMARKS.md), over four
    /// times AWS KMS's default ECC quota
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Seconds between background health checks of each signer's key
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_interval: u64,
    /// Seconds that requests in flight may take to finish after SIGTERM
    #[arg(long, default_value_t = 10)]
    pub drain_seconds: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (keep it on loopback or a private
    /// network; off unless given)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Peers that may read the metrics: an address or a network (10.0.0.0/8), repeatable;
    /// default: loopback only
    #[arg(long, value_name = "NETWORK", requires = "metrics_listen")]
    pub metrics_allow: Vec<String>,
    /// Append the audit log (a JSON line per signing request) to FILE instead of stderr
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>` for every signer, the token read from this file
    #[arg(long, value_name = "FILE", conflicts_with = "token_env")]
    pub token_file: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>` for every signer, the token read from this
    /// environment variable
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); reloaded on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert; reloaded on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates that chain to these PEM CA certificates (mTLS)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// The access list: which client certificates and bearer tokens may use which signers
    /// (YAML; see `keyrite serve` in README)
    #[arg(long, value_name = "FILE")]
    pub access: Option<PathBuf>,
    /// Signing requests per second per signer (a token bucket; 0 turns it off). The default
    /// keeps ten signers inside AWS KMS's shared ECC quota of 1,000 per second
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    pub rate: f64,
    /// Requests a signer's bucket holds (default: twice --rate, at least 1)
    #[arg(long, value_name = "N")]
    pub burst: Option<f64>,
    /// Signing requests per second per client (default: --rate and --burst; 0 turns it off)
    #[arg(long, value_name = "N")]
    pub client_rate: Option<f64>,
    /// Requests a client's bucket holds (default: twice --client-rate, at least 1)
    #[arg(long, value_name = "N")]
    pub client_burst: Option<f64>,
}

/// `--mode`: the signing modes by name, listed in `--help`.
fn level() -> impl clap::builder::TypedValueParser<Value = Level> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["note", "warning", "error"]).try_map(|s| s.parse::<Level>())
}

fn signing_mode() -> impl clap::builder::TypedValueParser<Value = SigningMode> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["eip191", "digest"]).try_map(|s| s.parse::<SigningMode>())
}
