//! How the overlay's requests reach the daemon (README "The overlay"): FUSE over io_uring by
//! default where the kernel offers it, `/dev/fuse` where it does not or with
//! `--no-io-uring`. Each path serves `imafs run` and measures its reads, and
//! `imafs/transport` names the one in use.
mod common;

use std::path::Path;
use std::process::Command;

/// `imafs run [extra] -- sh -c 'cat /probe; cat transport; grep probe list'` over a rootfs
/// with a busybox and a probe file: (transport, whether /probe was measured).
fn run_and_report(extra: &[&str], test: &str) -> Option<(String, bool)> {
    let dir = common::busybox_rootfs(test, &["sh", "cat"])?;
    let rootfs = dir.path();
    std::fs::write(rootfs.join("probe"), "transport probe\n").expect("probe");
    let policy_dir = tempfile::tempdir().expect("temp dir");
    let policy = policy_dir.path().join("policy");
    std::fs::write(&policy, "measure func=FILE_CHECK mask=MAY_READ\n").expect("policy");
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .args(extra)
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--policy")
        .arg(&policy)
        .args(["--", "/bin/sh", "-c"])
        .arg(
            "cat /probe >/dev/null; cat /sys/kernel/security/imafs/transport; \
             cat /sys/kernel/security/ima/ascii_runtime_measurements",
        )
        .current_dir(Path::new("/"))
        .output()
        .expect("imafs run");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let transport = stdout.lines().next().unwrap_or_default().to_owned();
    let measured = stdout
        .lines()
        .any(|l| l.starts_with("10 ") && l.ends_with(" /probe"));
    Some((transport, measured))
}

#[test]
fn the_default_is_io_uring_where_the_kernel_offers_it() {
    let test = "the_default_is_io_uring_where_the_kernel_offers_it";
    let _setting = common::uring_setting_lock();
    if !common::fuse_uring_enabled() {
        common::skip(
            test,
            "FUSE over io_uring unavailable (needs Linux 6.14+ and root to set fuse.enable_uring)",
        );
        return;
    }
    let Some((transport, measured)) = run_and_report(&[], test) else {
        return;
    };
    assert_eq!(transport, "io_uring");
    assert!(measured, "/probe was not measured over io_uring");
}

#[test]
fn no_io_uring_serves_through_dev_fuse() {
    let test = "no_io_uring_serves_through_dev_fuse";
    let Some((transport, measured)) = run_and_report(&["--no-io-uring"], test) else {
        return;
    };
    assert_eq!(transport, "/dev/fuse");
    assert!(measured, "/probe was not measured through /dev/fuse");
}

/// Restores `fuse.enable_uring` when the test ends, however it ends.
struct Restore(&'static str);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/module/fuse/parameters/enable_uring", self.0);
    }
}

#[test]
fn without_the_kernel_offer_requests_go_through_dev_fuse() {
    let test = "without_the_kernel_offer_requests_go_through_dev_fuse";
    let param = "/sys/module/fuse/parameters/enable_uring";
    let _setting = common::uring_setting_lock();
    let Ok(was) = std::fs::read_to_string(param) else {
        common::skip(test, "no fuse.enable_uring here (Linux before 6.14): /dev/fuse is the only path, tested everywhere else");
        return;
    };
    if std::fs::write(param, "0").is_err() {
        common::skip(test, "only root can turn fuse.enable_uring off");
        return;
    }
    let _restore = Restore(if was.trim() == "Y" { "1" } else { "0" });
    let Some((transport, measured)) = run_and_report(&[], test) else {
        return;
    };
    assert_eq!(transport, "/dev/fuse");
    assert!(measured, "/probe was not measured through /dev/fuse");
}
