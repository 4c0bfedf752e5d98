//! A corpus of malformed manifests under tests/invalid/, each with the messages it must
//! produce (`NAME.expected`, one per line, each a substring of some diagnostic). Parsing is
//! pure: none of these makes a network call. Huge inputs are generated here rather than
//! stored.

use std::path::Path;

use keyrite::manifest;

fn errors(path: &Path, text: &str) -> Vec<String> {
    match manifest::parse(path, text) {
        Ok(_) => panic!("{} parsed, but it is invalid", path.display()),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_malformed_manifest_fails_with_its_expected_messages_and_a_position() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        let got = errors(&path, &text);
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                got.iter().any(|e| e.contains(line)),
                "{}: no diagnostic contains {line:?}; got:\n{}",
                path.display(),
                got.join("\n")
            );
        }
        let prefix = format!("{}:", path.display());
        for e in &got {
            let pos: Vec<&str> = e
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{e} does not start with the file name"))
                .splitn(3, ':')
                .collect();
            assert!(pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(), "{e}: no line:column");
        }
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} cases");
}

#[test]
fn huge_inputs_are_refused_quickly() {
    // An alias bomb: 10 levels of 10× expansion would be 10^10 nodes.
    let mut bomb = String::from("version: 1\nresources: {}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb += &format!("x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n");
    }
    let start = std::time::Instant::now();
    let got = errors(Path::new("bomb.yaml"), &bomb);
    assert!(got.iter().any(|e| e.contains("expands to more than 100000 nodes")), "{got:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(2));

    // Many resources, each wrong: every one is reported, none is lost.
    let mut many = String::from("version: 1\nresources:\n");
    for i in 0..2000 {
        many += &format!("  k{i}:\n    type: aws_kms_key\n    deletion_window_days: 99\n");
    }
    assert_eq!(errors(Path::new("many.yaml"), &many).len(), 2000);

    let deep = format!("version: 1\nresources: {{}}\nx: {}{}\n", "{a: ".repeat(10_000), "}".repeat(10_000));
    assert!(errors(Path::new("deep.yaml"), &deep).iter().any(|e| e.contains("nesting deeper")));
}
