//! Faults (issue 9): the daemon killed under load, a descriptor limit, a full disk under
//! the journal, a reader that stops mid-list. Each case checks that clients get errors
//! rather than hangs, that nothing already visible is lost, and that the daemon survives
//! what it can survive.
mod common;

use common::daemon::{serve, Daemon};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A rootfs with `n` small files `f0..` and a policy that measures every read.
fn rootfs(dir: &Path, n: usize) {
    let r = dir.join("rootfs");
    std::fs::create_dir_all(&r).expect("mkdir");
    for i in 0..n {
        std::fs::write(r.join(format!("f{i}")), format!("file {i}\n")).expect("write");
    }
    std::fs::write(
        dir.join("policy"),
        // As tcb does, the IMA files themselves (which the tests read) are left out.
        "dont_measure fsmagic=0x73636673\nmeasure func=FILE_CHECK mask=MAY_READ\n",
    )
    .expect("write");
}

fn ascii(d: &Daemon) -> Vec<u8> {
    d.read("ascii_runtime_measurements_sha256")
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&p))
}

#[test]
fn kill_9_under_load_then_restart_keeps_every_visible_record() {
    let test = "kill_9_under_load_then_restart_keeps_every_visible_record";
    if !common::can_mount_as_root(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    rootfs(d, 20);
    let state = d.join("state");
    let policy = d.join("policy");
    let args = [
        "--state",
        state.to_str().expect("utf-8"),
        "--policy",
        policy.to_str().expect("utf-8"),
    ];
    let daemon = serve(d, &args, true).expect("serve");
    let mnt = daemon.mnt.clone().expect("overlay");
    // Load: rewrite and reread files through the mount until an access fails.
    let loader = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while :; do i=$((i+1)); echo $i > {m}/f$((i % 20)) && cat {m}/f* > /dev/null \
             || exit 0; done",
            m = mnt.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("loader");
    std::thread::sleep(Duration::from_millis(700));
    let visible = ascii(&daemon);
    assert!(visible.len() > 1000, "the load produced records");
    daemon.kill9();
    // The loader sees errors and stops by itself: no process hangs on a dead mount.
    let mut loader = loader;
    let deadline = Instant::now() + Duration::from_secs(20);
    while loader.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "a client hangs after the daemon died"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!mounted(&mnt), "dead overlay mount left behind");
    let again = serve(d, &args, true).expect("restart");
    let after = ascii(&again);
    assert!(
        after.len() >= visible.len() && after[..visible.len()] == visible[..],
        "records visible before the kill changed or vanished"
    );
    again.stop();
}

#[test]
fn descriptor_exhaustion_fails_opens_not_the_daemon() {
    let test = "descriptor_exhaustion_fails_opens_not_the_daemon";
    if !common::can_mount_as_root(test) {
        return;
    }
    if !common::have_tool("prlimit") {
        common::skip(test, "needs prlimit (util-linux)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    rootfs(d, 300);
    let policy = d.join("policy");
    let daemon = serve(d, &["--policy", policy.to_str().expect("utf-8")], true).expect("serve");
    let pid = daemon.child.as_ref().expect("child").id().to_string();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=64:64"])
        .status()
        .expect("prlimit");
    assert!(limited.success());
    let mnt = daemon.mnt.clone().expect("overlay");
    // Hold 300 files open at once: the daemon runs out of descriptors.
    let script = format!(
        "import errno, os\n\
         fds, errs = [], set()\n\
         for i in range(300):\n\
         \x20   try: fds.append(os.open('{m}/f%d' % i, os.O_RDONLY))\n\
         \x20   except OSError as e: errs.add(errno.errorcode[e.errno])\n\
         print(len(fds), ','.join(sorted(errs)))\n\
         for fd in fds: os.close(fd)\n",
        m = mnt.display()
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (opened, errs) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let opened: usize = opened.parse().unwrap_or_else(|_| panic!("{text:?}"));
    assert!(opened < 300, "the limit was not reached: {text}");
    assert!(errs.contains("EMFILE") || errs.contains("ENFILE"), "{text}");
    // Once descriptors are free again, the daemon serves as before.
    std::thread::sleep(Duration::from_millis(300));
    let cat = Command::new("cat")
        .arg(mnt.join("f299"))
        .output()
        .expect("cat");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "file 299\n");
    eprintln!("FAULT descriptor limit 64: {opened} of 300 opens succeeded, others {errs}");
    daemon.stop();
}

#[test]
fn full_disk_under_the_journal_drops_records_not_accesses() {
    let test = "full_disk_under_the_journal_drops_records_not_accesses";
    if !common::can_mount_as_root(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    rootfs(d, 400);
    let state = d.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    let size = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24k", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount");
    if !size.success() {
        common::skip(test, "cannot mount a tmpfs");
        return;
    }
    let policy = d.join("policy");
    let args = [
        "--state",
        state.to_str().expect("utf-8"),
        "--policy",
        policy.to_str().expect("utf-8"),
    ];
    let daemon = serve(d, &args, true).expect("serve");
    let mnt = daemon.mnt.clone().expect("overlay");
    let mut failed_reads = 0;
    for i in 0..400 {
        match std::fs::read_to_string(mnt.join(format!("f{i}"))) {
            Ok(s) => assert_eq!(s, format!("file {i}\n")),
            Err(_) => failed_reads += 1,
        }
    }
    assert_eq!(failed_reads, 0, "a full journal must not refuse access");
    let count: usize = String::from_utf8_lossy(&daemon.read("runtime_measurements_count"))
        .trim()
        .parse()
        .expect("count");
    assert!(
        count < 401,
        "the 24 KiB journal cannot hold 400 records: {count}"
    );
    assert!(daemon.stderr().contains("journal"), "{}", daemon.stderr());
    // Room again: the next opens are measured (the dropped files too, when reopened).
    let grown = Command::new("mount")
        .args(["-o", "remount,size=1m"])
        .arg(&state)
        .status()
        .expect("remount");
    assert!(grown.success());
    for i in 0..400 {
        let _ = std::fs::read(mnt.join(format!("f{i}")));
    }
    let after: usize = String::from_utf8_lossy(&daemon.read("runtime_measurements_count"))
        .trim()
        .parse()
        .expect("count");
    eprintln!("FAULT journal on a 24 KiB tmpfs: {count} records fit; after growing it: {after}");
    assert_eq!(
        after, 401,
        "every file measured once, plus the boot aggregate"
    );
    daemon.stop();
    let _ = rustix::mount::unmount(&state, rustix::mount::UnmountFlags::DETACH);
}

#[test]
fn a_reader_that_stops_mid_list_blocks_nobody() {
    let test = "a_reader_that_stops_mid_list_blocks_nobody";
    if !common::can_mount_as_root(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    rootfs(d, 50);
    let policy = d.join("policy");
    let daemon = serve(d, &["--policy", policy.to_str().expect("utf-8")], true).expect("serve");
    let mnt = daemon.mnt.clone().expect("overlay");
    for i in 0..50 {
        std::fs::read(mnt.join(format!("f{i}"))).expect("read");
    }
    let mut stalled = std::fs::File::open(daemon.ima("ascii_runtime_measurements")).expect("open");
    let mut head = [0u8; 10];
    std::io::Read::read_exact(&mut stalled, &mut head).expect("read");
    // Others read the whole list, open files, and the stalled reader resumes correctly.
    let whole = ascii(&daemon);
    assert!(whole.len() > 50 * 80);
    std::fs::read(mnt.join("f0")).expect("read");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stalled, &mut rest).expect("read rest");
    let mut both = head.to_vec();
    both.extend_from_slice(&rest);
    assert_eq!(both, daemon.read("ascii_runtime_measurements"));
    drop(stalled);
    daemon.stop();
}
