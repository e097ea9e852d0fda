//! The deterministic Lambda zips of a real release bootstrap, read back by an independent reader
//! (Python's zipfile): one entry `bootstrap`, executable, at the zip epoch, bytes intact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::process::Command;

use sdp::package::package;
use sdp_scenarios::{repo_root, venv_tool};

#[test]
fn a_real_bootstrap_zips_identically_twice_and_python_reads_it_back_intact() {
    let path = repo_root().join("target/lambda/ingest/bootstrap");
    let bootstrap = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-lambdas (scripts/test does)",
            path.display()
        )
    });
    let first = package("ingest", bootstrap.clone()).zip().unwrap();
    assert_eq!(first, package("ingest", bootstrap).zip().unwrap());

    let zip = std::env::temp_dir().join(format!("sdp-package-{}.zip", std::process::id()));
    std::fs::write(&zip, &first).unwrap();
    let check = r#"
import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "corrupt entry"
[info] = z.infolist()
assert info.filename == "bootstrap", info.filename
assert (info.external_attr >> 16) & 0o777 == 0o755, oct(info.external_attr >> 16)
assert info.date_time == (1980, 1, 1, 0, 0, 0), info.date_time
print(hashlib.sha256(z.read("bootstrap")).hexdigest())
"#;
    let output = Command::new(venv_tool("python").unwrap())
        .args(["-c", check])
        .arg(&zip)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&zip);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = Command::new("sha256sum").arg(&path).output().unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), expected);
}
