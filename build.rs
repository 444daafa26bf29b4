//! Embeds the git revision in `mailroute_build_info{revision}`.
//!
//! `MAILROUTE_REVISION` set in the build environment wins (the Dockerfile passes its
//! `REVISION` argument, since the image build has no `.git`); otherwise
//! `git rev-parse HEAD` in the source tree. Without either, nothing is set and the
//! binary says `unknown`: a build never fails for want of git.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MAILROUTE_REVISION");
    if std::env::var_os("MAILROUTE_REVISION").is_some() {
        return;
    }
    // rebuild when HEAD moves: a commit changes the index and the branch's ref
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut watched = vec!["HEAD".to_string(), "index".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")) {
        watched.push(r);
    }
    for w in &watched {
        if let Some(p) = git(&["rev-parse", "--git-path", w]).filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"])
        && !rev.is_empty()
        && rev.bytes().all(|b| b.is_ascii_hexdigit())
    {
        println!("cargo:rustc-env=MAILROUTE_REVISION={rev}");
    }
}
