//! `sdp render` as users run it: the binary, its streams and its exit codes (CONTRACT.md §1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::process::{Command, Output};

fn sdp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(args)
        .env_remove("AWS_REGION")
        .output()
        .expect("sdp runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn render_prints_the_template_to_stdout_and_nothing_to_stderr() {
    let out = sdp(&["render", "--region", "us-west-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("AWSTemplateFormatVersion: \"2010-09-09\""));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn an_unsupported_region_exits_2_and_names_the_five_supported_regions() {
    let out = sdp(&["render", "--region", "ap-south-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unsupported region `ap-south-1`"),
        "{stderr}"
    );
    for region in [
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
    ] {
        assert!(stderr.contains(region), "{stderr}");
    }
}

#[test]
fn the_region_may_come_from_aws_region() {
    let out = Command::new(env!("CARGO_BIN_EXE_sdp"))
        .arg("render")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .expect("sdp runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Rendered for eu-west-1"));
}

#[test]
fn render_out_writes_the_same_template_to_a_file_named_for_the_region() {
    let dir = std::env::temp_dir().join(format!("sdp-render-out-{}", std::process::id()));
    let out = sdp(&[
        "render",
        "--region",
        "eu-central-1",
        "--out",
        &dir.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "results go to the file, not stdout");
    let written = std::fs::read_to_string(dir.join("sdp-eu-central-1.yaml")).unwrap_or_default();
    assert_eq!(
        written,
        text(&sdp(&["render", "--region", "eu-central-1"]).stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_region_or_an_unknown_command_exits_2() {
    assert_eq!(sdp(&["render"]).status.code(), Some(2));
    assert_eq!(sdp(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(sdp(&[]).status.code(), Some(2));
}

#[test]
fn help_exits_0_on_stdout() {
    let out = sdp(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("render"));
}
