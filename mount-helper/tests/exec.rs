//! `mount-helper exec` end to end: real namespaces, mounts, pivot_root and a busybox shell.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOBODY: &str = "65534";

/// Record a skipped test where the workspace's `tests/run` counts it.
fn skip(test: &str, reason: &str) {
    use std::io::Write;
    eprintln!("SKIPPED {test}: {reason}");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-skips.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

fn busybox() -> Option<PathBuf> {
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A root tree with a static busybox, the mount points and a marker file, readable by all.
fn make_root(test: &str) -> Option<tempfile::TempDir> {
    let Some(busybox) = busybox() else {
        skip(
            test,
            "busybox not installed (apt-get install busybox-static)",
        );
        return None;
    };
    let dir = tempfile::Builder::new().prefix("mh-test").tempdir().ok()?;
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).ok()?;
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir(root.join(d)).ok()?;
    }
    std::fs::copy(busybox, root.join("bin/busybox")).ok()?;
    for applet in ["sh", "cat", "ls", "id", "touch", "readlink", "grep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).ok()?;
    }
    std::fs::write(root.join("etc/marker"), "inside the new root\n").ok()?;
    std::fs::create_dir_all(root.join("sec/integrity/ima")).ok()?;
    std::fs::write(root.join("sec/integrity/ima/violations"), "0\n").ok()?;
    Some(dir)
}

fn run(prefix: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(
        prefix
            .first()
            .copied()
            .unwrap_or(env!("CARGO_BIN_EXE_mount-helper")),
    );
    if !prefix.is_empty() {
        cmd.args(&prefix[1..])
            .arg(env!("CARGO_BIN_EXE_mount-helper"));
    }
    cmd.args(args)
        .env("PATH", "/bin")
        .output()
        .expect("run mount-helper")
}

const SCRIPT: &str = "cat /etc/marker; id -u; echo pid=$$; \
    cat /proc/self/status | grep -c '^Pid:'; \
    cat /sys/kernel/security/integrity/ima/violations; \
    touch /sys/x 2>/dev/null && echo sys-writable || echo sys-read-only; \
    echo to-null > /dev/null && echo dev-ok; \
    exit 42";

fn check_container(test: &str, prefix: &[&str]) {
    let Some(dir) = make_root(test) else { return };
    let root = dir.path().to_str().expect("utf-8 temp path");
    let sec = format!("{root}/sec");
    let out = run(
        prefix,
        &[
            "exec",
            "--root",
            root,
            "--securityfs",
            &sec,
            "--",
            "sh",
            "-c",
            SCRIPT,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(42),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(
        stdout, "inside the new root\n0\npid=2\n1\n0\nsys-read-only\ndev-ok\n",
        "stderr: {stderr}"
    );
}

#[test]
fn exec_as_root() {
    if !is_root() {
        skip("exec_as_root", "needs root");
        return;
    }
    check_container("exec_as_root", &[]);
}

#[test]
fn exec_as_unprivileged_user_in_user_namespace() {
    let test = "exec_as_unprivileged_user_in_user_namespace";
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        skip(test, "needs root and setpriv to become uid 65534");
        return;
    }
    check_container(
        test,
        &[
            "setpriv",
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ],
    );
}

#[test]
fn exit_status_of_a_signal_is_128_plus_n() {
    let Some(dir) = make_root("exit_status_of_a_signal_is_128_plus_n") else {
        return;
    };
    let root = dir.path().to_str().expect("utf-8 temp path");
    // With a pid namespace CMD is not its pid 1 (which ignores signals it has no handler
    // for), so it can be killed; without one it is killed directly.
    for pid_ns in [&[][..], &["--no-pid-ns"][..]] {
        let mut args = vec!["exec", "--root", root];
        args.extend_from_slice(pid_ns);
        args.extend_from_slice(&["--", "sh", "-c", "kill -9 $$"]);
        let out = run(&[], &args);
        assert_eq!(out.status.code(), Some(128 + 9), "{pid_ns:?}: {out:?}");
    }
}

#[test]
fn missing_command_exits_127_with_message() {
    let Some(dir) = make_root("missing_command_exits_127_with_message") else {
        return;
    };
    let root = dir.path().to_str().expect("utf-8 temp path");
    let out = run(&[], &["exec", "--root", root, "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exec no-such-command"), "{stderr}");
}

#[test]
fn scratch_directory_is_removed() {
    let Some(dir) = make_root("scratch_directory_is_removed") else {
        return;
    };
    let root = dir.path().to_str().expect("utf-8 temp path");
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mount-helper"))
        .args(["exec", "--root", root, "--", "ls", "/etc"])
        .env("PATH", "/bin")
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run mount-helper");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "marker\n");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read temp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
