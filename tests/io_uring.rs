//! The measuring overlay over FUSE over io_uring (`imafs serve`'s default, Linux 6.14+ with
//! `fuse.enable_uring`): reads made on every CPU arrive in that CPU's ring queue and are
//! measured as through `/dev/fuse`, and the daemon stops cleanly.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn reads_on_every_cpu_are_measured_through_the_ring() {
    let test = "reads_on_every_cpu_are_measured_through_the_ring";
    if !common::is_root() || !common::fuse_available() || !common::have_tool("taskset") {
        common::skip(test, "needs root, /dev/fuse and taskset");
        return;
    }
    let _setting = common::uring_setting_lock();
    if !common::fuse_uring_enabled() {
        common::skip(test, "FUSE over io_uring unavailable (needs Linux 6.14+)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let cpus = std::thread::available_parallelism().expect("cpus").get();
    std::fs::create_dir_all(d.join("rootfs")).expect("mkdir");
    for cpu in 0..cpus {
        std::fs::write(
            d.join(format!("rootfs/f{cpu}")),
            format!("read on cpu {cpu}\n"),
        )
        .expect("write");
    }
    for sub in ["mnt", "sfs"] {
        std::fs::create_dir(d.join(sub)).expect("mkdir");
    }
    std::fs::write(d.join("policy"), "measure func=FILE_CHECK mask=MAY_READ\n").expect("policy");
    let mut daemon = Command::new(common::imafs_bin())
        .args(["serve", "--rootfs"])
        .arg(d.join("rootfs"))
        .arg("--mount")
        .arg(d.join("mnt"))
        .arg("--securityfs")
        .arg(d.join("sfs"))
        .arg("--policy")
        .arg(d.join("policy"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.join("stderr")).expect("stderr"))
        .spawn()
        .expect("spawn imafs serve");
    let mut ready = String::new();
    BufReader::new(daemon.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    assert_eq!(ready, "ready\n");

    for cpu in 0..cpus {
        let out = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "sha256sum"])
            .arg(d.join(format!("mnt/f{cpu}")))
            .output()
            .expect("sha256sum");
        assert!(out.status.success(), "{out:?}");
        let digest = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("digest")
            .to_owned();
        let list = std::fs::read_to_string(d.join("sfs/integrity/ima/ascii_runtime_measurements"))
            .expect("list");
        let entry = format!("ima-ng sha256:{digest} /f{cpu}");
        assert!(
            list.lines().any(|l| l.ends_with(&entry)),
            "no `{entry}` in\n{list}"
        );
    }
    let stderr = std::fs::read_to_string(d.join("stderr")).expect("stderr");
    for cpu in 0..cpus {
        assert!(
            stderr.contains(&format!("uring queue {cpu}: serving requests")),
            "queue {cpu} served nothing:\n{stderr}"
        );
    }
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    let status = daemon.wait().expect("wait");
    assert!(
        status.success(),
        "daemon exit {status:?}:\n{}",
        std::fs::read_to_string(d.join("stderr")).unwrap_or_default()
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.contains(&*d.join("mnt").to_string_lossy()),
        "still mounted"
    );
}
