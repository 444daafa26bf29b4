//! Configuration fixtures in the style of blackbox_exporter: every
//! `tests/fixtures/config/good/*.toml` validates, every `bad/*.toml` fails with the
//! exact message in its sibling `.err` (file:line:column: key: what is wrong).
//!
//! `validate-config` exits 1 on a bad file and prints the message on stderr;
//! `serve --config.file=BAD` exits 2 (usage and configuration errors, SPEC §2) with
//! the same message. The binary runs from the fixture directory with a relative
//! path, so the message does not depend on where the repository is.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::BIN;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config").join(kind)
}

fn tomls(kind: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir(kind))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    v.sort();
    v
}

fn run_in(kind: &str, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir(kind)).args(args).output().expect("run the binary")
}

#[test]
fn good_configs_validate() {
    let files = tomls("good");
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let out = run_in("good", &["validate-config", &f]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{f}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with(&format!("{f}: valid (")), "{f}: {stdout}");
        assert!(out.stderr.is_empty(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn bad_configs_fail_with_the_exact_message() {
    let files = tomls("bad");
    assert!(files.len() >= 15, "{files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let err_file = dir("bad").join(f.replace(".toml", ".err"));
        let want = std::fs::read_to_string(&err_file)
            .unwrap_or_else(|e| panic!("{}: {e} (every bad file needs its .err)", err_file.display()));
        let want = want.trim_end_matches('\n');
        assert!(want.starts_with(&format!("{f}:")), "{}: the message names the file first", err_file.display());

        let out = run_in("bad", &["validate-config", f]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || stderr.trim_end_matches('\n') != want {
            failures.push(format!(
                "validate-config {f}: exit {:?}\n  got:  {}\n  want: {want}",
                out.status.code(),
                stderr.trim_end()
            ));
        }
        assert!(out.stdout.is_empty(), "validate-config {f} printed on stdout");

        let out = run_in("bad", &["serve", &format!("--config.file={f}"), "--web.listen-address=127.0.0.1:0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.lines().any(|l| l == want) {
            failures.push(format!(
                "serve --config.file={f}: exit {:?}\n  stderr: {}\n  want line: {want}",
                out.status.code(),
                stderr.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every message names a position, and every message but the TOML syntax error
/// names the key.
#[test]
fn messages_name_key_and_position() {
    for f in tomls("bad") {
        let want = std::fs::read_to_string(dir("bad").join(f.replace(".toml", ".err"))).unwrap();
        let rest = want.strip_prefix(&format!("{f}:")).unwrap();
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("{f}: no line in {want}"));
        let column: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("{f}: no column in {want}"));
        assert!(line >= 1 && column >= 1, "{f}: {want}");
        let text = parts.next().unwrap().trim_start();
        if f != "toml_syntax_error.toml" {
            let key = text.split(": ").next().unwrap();
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || "._[]".contains(c)) && !key.is_empty(),
                "{f}: no dotted key first in {want:?}"
            );
        }
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = Command::new(BIN).args(["validate-config", "/nonexistent/mailroute.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/mailroute.toml: cannot read"));
}
