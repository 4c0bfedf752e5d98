//! Shared harness for integration tests: a real local AWS emulator (ministack) on a free
//! loopback port, the real `keyrite` binary, and real SDK clients for out-of-band edits.
//!
//! The emulator is installed by `scripts/install-emulator.sh` (which `scripts/test.sh` runs).
//! If it is missing the test fails with that instruction: it never skips.

#![allow(dead_code)]

pub mod fault_proxy;
#[path = "../gcp_standin/mod.rs"]
pub mod gcp_kms;
pub mod kms_standin;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Rust Lambda signer's `bootstrap` as keyrite deploys it: the `signer` profile's build
/// (`cargo build --locked --profile signer -p keyrite-lambda-signer`, run here once per test
/// process, a no-op when it is up to date), in this test's target directory, where the
/// `keyrite` under test looks for it.
pub fn signer_bootstrap() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--locked", "--profile", "signer", "-p", "keyrite-lambda-signer"])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "building the signer failed:\n{}", String::from_utf8_lossy(&out.stderr));
        // This test's executable is <target>/<profile>/deps/<name>.
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).expect("a test executable in a cargo target directory");
        let path = target.join("signer/keyrite-lambda-signer");
        assert!(path.is_file(), "{} is not there after its build", path.display());
        path
    })
}

/// A running emulator; stopped when dropped.
pub struct Emulator {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> Emulator {
        let bin = std::env::var_os("KEYRITE_MINISTACK")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/ministack/bin/ministack"));
        assert!(
            bin.exists(),
            "the local AWS emulator is not installed at {}: run scripts/install-emulator.sh (scripts/test.sh does this)",
            bin.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("keyrite-ministack-{port}.log"));
        let child = Command::new(&bin)
            .env("BIND_HOST", "127.0.0.1")
            .env("GATEWAY_PORT", port.to_string())
            // Where the functions it runs call AWS: its Node.js workers default to itself, but a
            // provided.* bootstrap (the Rust signer) gets only the emulator's own setting.
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("SERVICES", "kms,iam,sts,lambda,apigateway,s3,logs")
            // Keep its optional extra listeners (which bind 0.0.0.0) off.
            .env("IOT_MTLS_ENABLED", "0")
            .env("SFTP_ENABLED", "0")
            .stdout(Stdio::from(std::fs::File::create(&log).expect("emulator log")))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let emulator = Emulator { child, port, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "emulator did not open port {port} within 30 s (log: {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        emulator
    }

    /// Environment for processes that should talk to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    pub async fn sdk_config(&self) -> aws_types::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    pub async fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config().await)
    }

    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config().await)
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = self.sdk_config().await;
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
    }

    pub async fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk_config().await)
    }

    pub async fn apigateway(&self) -> aws_sdk_apigateway::Client {
        aws_sdk_apigateway::Client::new(&self.sdk_config().await)
    }
}

/// moto, a second AWS emulator whose KMS DIGEST signing is known to be wrong: it signs
/// SHA-256(digest) instead of the digest.
pub struct Moto(Emulator);

impl Moto {
    pub fn start() -> Moto {
        let bin = repo_root().join(".venv/moto/bin/moto_server");
        assert!(
            bin.exists(),
            "moto is not installed at {}: run scripts/install-emulator.sh (scripts/test.sh does this)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let emulator = Emulator { child, port, endpoint: format!("http://127.0.0.1:{port}") };
        wait_for_port(port, "moto");
        Moto(emulator)
    }
}

impl std::ops::Deref for Moto {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.0
    }
}

/// Waits until something accepts connections on the loopback port.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A scratch directory holding a manifest, where keyrite runs: `<tmp>/work/keyrite.yaml`,
/// with `<tmp>/node_modules` linked to the repository's, so that examples' `../node_modules`
/// resolves as it does in `manifests/`.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub manifest: PathBuf,
}

impl Workdir {
    /// Copies `manifests/<name>` into a fresh directory, with the allowed_signers files the
    /// examples name beside them.
    pub fn with_example(name: &str) -> Workdir {
        let text = std::fs::read_to_string(repo_root().join("manifests").join(name)).expect("example manifest");
        let w = Workdir::with_text(&text);
        for entry in std::fs::read_dir(repo_root().join("manifests")).expect("manifests/") {
            let path = entry.expect("manifests/ entry").path();
            if path.extension().is_some_and(|e| e == "allowed_signers") {
                std::fs::copy(&path, w.work.join(path.file_name().unwrap())).expect("copy allowed_signers");
            }
        }
        w
    }

    pub fn with_text(text: &str) -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("work dir");
        let modules = repo_root().join("node_modules");
        if modules.exists() {
            std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).expect("link node_modules");
        }
        let manifest = work.join("keyrite.yaml");
        std::fs::write(&manifest, text).expect("write manifest");
        Workdir { dir, work, manifest }
    }

    pub fn path(&self) -> &Path {
        &self.work
    }

    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.work.join("keyrite.state.json")).expect("state file");
        serde_json::from_str(&text).expect("state json")
    }

    /// The cloud id of a resource in state.
    pub fn id(&self, address: &str) -> String {
        self.state()["resources"][address]["id"].as_str().unwrap_or_else(|| panic!("{address} not in state")).to_owned()
    }

    /// Runs keyrite against an arbitrary AWS endpoint (a fault proxy, say).
    pub fn keyrite_via(&self, endpoint: &str, args: &[&str]) -> Run {
        let output = self.command(endpoint, args).stdin(Stdio::null()).output().expect("run keyrite");
        Run::from(output)
    }

    /// A keyrite command for this directory, talking to `endpoint`.
    pub fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_keyrite")), endpoint, args)
    }

    /// [`Workdir::command`] with the keyrite executable at `program` (a copy elsewhere).
    pub fn command_of(&self, program: &Path, endpoint: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&self.work)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
        cmd
    }

    /// Runs keyrite against the Cloud KMS stand-in, with Application Default Credentials from
    /// its metadata server and no AWS settings at all.
    pub fn keyrite_gcp(&self, kms: &gcp_kms::GcpKms, args: &[&str]) -> Run {
        let output = self.gcp_command(kms, args).stdin(Stdio::null()).output().expect("run keyrite");
        Run::from(output)
    }

    /// A keyrite command for this directory, talking to the Cloud KMS stand-in.
    pub fn gcp_command(&self, kms: &gcp_kms::GcpKms, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyrite"));
        cmd.args(args)
            .current_dir(&self.work)
            .env("KEYRITE_GCP_KMS_ENDPOINT", &kms.endpoint)
            .env("GCE_METADATA_HOST", format!("127.0.0.1:{}", kms.port))
            // No gcloud ADC file and no key file: ADC falls through to the metadata server.
            .env("HOME", self.dir.path())
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("CLOUDSDK_CONFIG");
        for var in ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    /// Runs keyrite with these arguments against the emulator.
    pub fn keyrite(&self, emulator: &Emulator, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_keyrite"))
            .args(args)
            .current_dir(&self.work)
            .envs(emulator.env())
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .output()
            .expect("run keyrite");
        Run::from(output)
    }
}

/// A finished keyrite run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing the output when it is wrong.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

pub const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub fn a_zip() -> Vec<u8> {
    keyrite::package::zip(vec![("index.mjs".into(), b"export const handler = async () => ({});".to_vec())])
        .unwrap()
        .bytes
}

/// The signer stack of the public guides, made by hand under the names
/// `manifests/treasury-signer.yaml` declares.
pub async fn hand_made_stack(emu: &Emulator) -> String {
    let kms = emu.kms().await;
    let key =
        kms.create_key().key_spec(KeySpec::EccSecgP256K1).key_usage(KeyUsageType::SignVerify).send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    kms.create_alias().alias_name("alias/treasury-lambda").target_key_id(&key_id).send().await.unwrap();
    let iam = emu.iam().await;
    let role =
        iam.create_role().role_name("keyrite-treasury-lambda").assume_role_policy_document(TRUST).send().await.unwrap();
    let sign = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Sign","kms:GetPublicKey"],"Resource":"*"}]}"#;
    iam.put_role_policy()
        .role_name("keyrite-treasury-lambda")
        .policy_name("sign")
        .policy_document(sign)
        .send()
        .await
        .unwrap();
    let lambda = emu.lambda().await;
    let blob = aws_sdk_lambda::primitives::Blob::new(a_zip());
    lambda
        .publish_layer_version()
        .layer_name("keyrite-aws-sdk-kms")
        .content(aws_sdk_lambda::types::LayerVersionContentInput::builder().zip_file(blob.clone()).build())
        .send()
        .await
        .unwrap();
    lambda
        .create_function()
        .function_name("keyrite-treasury-signer")
        .runtime(aws_sdk_lambda::types::Runtime::Nodejs20x)
        .handler("index.handler")
        .role(role.role().unwrap().arn())
        .environment(aws_sdk_lambda::types::Environment::builder().variables("KMS_KEY_ID", &key_id).build())
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(blob).build())
        .send()
        .await
        .unwrap();
    lambda
        .create_function_url_config()
        .function_name("keyrite-treasury-signer")
        .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    // What the console adds for a URL with auth NONE: anyone may invoke it.
    for (sid, action) in [
        ("FunctionURLAllowPublicAccess", "lambda:InvokeFunctionUrl"),
        ("FunctionURLAllowInvokeAction", "lambda:InvokeFunction"),
    ] {
        let mut permission = lambda
            .add_permission()
            .function_name("keyrite-treasury-signer")
            .statement_id(sid)
            .action(action)
            .principal("*");
        if action == "lambda:InvokeFunctionUrl" {
            permission = permission.function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None);
        }
        permission.send().await.unwrap();
    }
    // A REST API with IAM auth and an account-scoped resource policy, POST /sign → the function.
    let function_arn = "arn:aws:lambda:us-east-1:000000000000:function:keyrite-treasury-signer".to_owned();
    let gw = emu.apigateway().await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"execute-api:Invoke","Resource":"execute-api:/*"}]}"#;
    let api = gw.create_rest_api().name("treasury-signer-api").policy(policy).send().await.unwrap();
    let api_id = api.id().unwrap().to_owned();
    let resources = gw.get_resources().rest_api_id(&api_id).send().await.unwrap();
    let root = resources.items().iter().find(|r| r.path() == Some("/")).unwrap().id().unwrap().to_owned();
    let sign = gw.create_resource().rest_api_id(&api_id).parent_id(root).path_part("sign").send().await.unwrap();
    let sign = sign.id().unwrap().to_owned();
    gw.put_method()
        .rest_api_id(&api_id)
        .resource_id(&sign)
        .http_method("POST")
        .authorization_type("AWS_IAM")
        .send()
        .await
        .unwrap();
    gw.put_integration()
        .rest_api_id(&api_id)
        .resource_id(&sign)
        .http_method("POST")
        .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"))
        .send()
        .await
        .unwrap();
    gw.create_deployment().rest_api_id(&api_id).stage_name("prod").send().await.unwrap();
    key_id
}

/// True for an operation that only reads, as the fault proxy logs it.
pub fn read_only(op: &str) -> bool {
    ["Get", "List", "Describe", "Simulate", "GET "].iter().any(|p| op.starts_with(p))
}

/// A NIST P-256 signing key, made through the KMS API: not a key an EVM signer can use.
pub async fn p256_key(emu: &Emulator) -> String {
    let key =
        emu.kms().await.create_key().key_spec(KeySpec::EccNistP256).key_usage(KeyUsageType::SignVerify).send().await;
    key.unwrap().key_metadata().unwrap().key_id().to_owned()
}
