//! A full disk under `sdp local`: its data directory on a real, size-limited tmpfs, filled up
//! while clients post events. No event is answered 200 unless it is stored (503 with
//! `Retry-After` instead), and once space returns the platform carries on by itself: every event
//! answered 200, and every refused one sent again, is counted exactly once, and still after a
//! restart. (A failing sync is injected at the database adapter: `sdp_local::log`'s tests.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{agent, Local};

/// A tmpfs of `size` mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let path = std::env::temp_dir().join(format!("sdp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            mounted.status.success(),
            "this test needs a real small filesystem: mounting a tmpfs at {} failed (it needs root \
             or CAP_SYS_ADMIN, as CI has): {}",
            path.display(),
            String::from_utf8_lossy(&mounted.stderr)
        );
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Writes a file until the filesystem is full; its size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
    }
    let _ = file.sync_all();
    written
}

/// POSTs a bid; its status and `Retry-After` header.
fn post_bid(agent: &ureq::Agent, api: &str, tx: &str, campaign: i64) -> (u16, Option<String>) {
    let body = json!({"tx_id": tx, "app_uid": "u", "campaign_item_id": campaign,
                      "domain": "full-disk.example"})
    .to_string();
    match agent
        .post(format!("{api}/bid"))
        .header("content-type", "application/json")
        .send(&body)
    {
        Ok(response) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(err) => panic!("{tx}: {err}"),
    }
}

#[test]
fn a_full_disk_is_answered_503_and_once_space_returns_nothing_acknowledged_is_lost() {
    let disk = Tmpfs::mount("full-disk", "16m");
    let dir = disk.path.join("data");
    let local = Local::start(&dir);
    let (agent, api, campaign) = (agent(), local.api().to_owned(), 4_242);

    let mut acked: Vec<String> = Vec::new();
    for i in 0..100 {
        let tx = format!("before-{i}");
        assert_eq!(post_bid(&agent, &api, &tx, campaign).0, 200);
        acked.push(tx);
    }

    // The disk fills up; clients keep posting.
    let ballast = disk.path.join("ballast");
    let filled = fill(&ballast);
    let mut refused: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while refused.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "the disk is full ({filled} bytes of ballast), yet after {} events answered 200 none \
             was refused",
            acked.len()
        );
        let tx = format!("full-{i}");
        i += 1;
        match post_bid(&agent, &api, &tx, campaign) {
            (200, _) => acked.push(tx),
            (503, retry_after) => {
                assert!(retry_after.is_some(), "a 503 without Retry-After");
                refused.push(tx);
            }
            (status, _) => panic!("{tx}: status {status} on a full disk"),
        }
    }
    // Straight to stderr, past the test harness's capture: the counts belong in every run's log.
    let _ = writeln!(
        std::io::stderr(),
        "full disk: {} events answered 200 in all, {} refused with 503 while it was full",
        acked.len(),
        refused.len()
    );

    // Space returns: the refused events are sent again, as clients retry, and all are taken.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for tx in &refused {
        loop {
            match post_bid(&agent, &api, tx, campaign) {
                (200, _) => break,
                (503, _) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                (status, _) => panic!("{tx}: status {status} after space returned"),
            }
        }
    }

    // Every event is counted, once: those answered 200 while the disk filled included.
    let expected = (acked.len() + refused.len()) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while local.totals(campaign).0 != expected {
        let counted = local.totals(campaign).0;
        assert!(
            counted <= expected,
            "{counted} bids counted of {expected} sent"
        );
        assert!(
            Instant::now() < deadline,
            "the processor did not recover: {counted} of {expected} bids counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        local.stop().success(),
        "a clean stop after the disk was full"
    );
    let local = Local::start(&dir);
    assert_eq!(local.totals(campaign).0, expected, "and after a restart");
    assert!(local.stop().success());
}
