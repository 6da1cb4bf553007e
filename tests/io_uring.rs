//! The measuring overlay over FUSE over io_uring (`imafs serve --io-uring`, Linux 6.14+ with
//! `fuse.enable_uring`): reads made on every CPU arrive in that CPU's ring queue and are
//! measured as through `/dev/fuse`, a long hash does not hold up the other requests of its
//! CPU, and the daemon stops cleanly.
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
        .args(["serve", "--io-uring", "--rootfs"])
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

/// A request whose handler takes long (the first open of a 2 GiB file, hashed for about a
/// second and a half here) leaves the other requests made on its CPU served: its queue has
/// a second worker.
#[test]
fn a_long_hash_does_not_hold_up_other_opens_on_its_cpu() {
    let test = "a_long_hash_does_not_hold_up_other_opens_on_its_cpu";
    if !common::can_mount_as_root(test) || !common::have_tool("taskset") {
        common::skip(test, "needs root, /dev/fuse and taskset");
        return;
    }
    if !common::fuse_uring_enabled() {
        common::skip(test, "FUSE over io_uring unavailable (needs Linux 6.14+)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("rootfs")).expect("mkdir");
    std::fs::File::create(d.join("rootfs/big"))
        .and_then(|f| f.set_len(2 << 30))
        .expect("sparse file");
    std::fs::write(d.join("rootfs/small"), "small\n").expect("write");
    let policy = d.join("policy");
    std::fs::write(&policy, "measure func=FILE_CHECK mask=MAY_READ\n").expect("policy");
    let daemon = common::daemon::serve(
        d,
        &["--io-uring", "--policy", policy.to_str().expect("utf-8")],
        true,
    )
    .expect("serve");
    let mnt = daemon.mnt.clone().expect("mount");
    // Opens the big file (returning once it is measured), then exits.
    let mut big = Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "exec 3< \"$1\"", "sh"])
        .arg(mnt.join("big"))
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let small = Command::new("taskset")
        .args(["-c", "0", "cat"])
        .arg(mnt.join("small"))
        .output()
        .expect("cat");
    let big_done = big.try_wait().expect("try_wait");
    assert_eq!(String::from_utf8_lossy(&small.stdout), "small\n");
    assert!(
        big_done.is_none(),
        "the small file's open waited for the big file's hash"
    );
    assert!(big.wait().expect("wait").success());
    let list = String::from_utf8_lossy(&daemon.read("ascii_runtime_measurements")).into_owned();
    assert!(
        list.contains(" /big\n") && list.contains(" /small\n"),
        "{list}"
    );
}
