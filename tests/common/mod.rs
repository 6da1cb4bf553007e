//! Helpers shared by the integration tests.
//!
//! A test that cannot run on this machine (missing tool, capability or kernel feature)
//! calls [`skip`] and returns: the reason is printed and appended to
//! `target/test-skips.log`, and `tests/run` reports it as skipped, not passed.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Record that the calling test is skipped, with the reason. The caller must `return`.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-skips.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

/// Path of the built `imafs` binary (cargo builds it for integration tests).
pub fn imafs_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imafs"))
}

/// Whether an external tool is on PATH.
pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether we run as uid 0.
pub fn is_root() -> bool {
    // SAFETY-free: read our own uid from /proc instead of calling libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether FUSE can be mounted here at all (/dev/fuse usable).
pub fn fuse_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}
