//! The Cloud KMS stand-in, judged by Google's own client library: `google-cloud-kms` over
//! REST creates a ring and a key, reads the public key, signs and verifies, pages lists,
//! edits labels and version states, and reads and writes IAM policies with etags. If that
//! client cannot talk to the stand-in, the stand-in is wrong, and so would be every GCP test
//! that runs against it.

use crate::common;

use common::gcp_kms::GcpKms;
use common::repo_root;

#[test]
fn google_client_library_agrees_with_the_stand_in() {
    let python = repo_root().join(".venv/gcp/bin/python");
    assert!(
        python.exists(),
        "Google's Cloud KMS client is not installed at {}: run scripts/install-emulator.sh (scripts/test.sh does this)",
        python.display()
    );
    let kms = GcpKms::start();
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/gcp_standin/google_client_check.py"))
        .arg(&kms.endpoint)
        .output()
        .expect("run the Google client check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Google's client disagrees with the stand-in:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("google-cloud-kms (REST) agrees with the stand-in"), "{stdout}");
    assert!(kms.signs() >= 33, "the client's signatures were made by the stand-in ({} signs)", kms.signs());
}
