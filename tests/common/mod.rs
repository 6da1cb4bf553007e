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
        // One write(2) per line (O_APPEND): tests run in parallel, and a line written in
        // pieces would interleave with another test's and miscount the skips.
        let line = format!("{test}: {reason}\n");
        let _ = f.write_all(line.as_bytes());
    }
}

/// Path of the built `imafs` binary (cargo builds it for integration tests), executable by
/// every user: tests run it as uid 65534 too, which cannot reach a build tree under a 0700
/// directory (root's home, `mktemp -d`). There it is a copy, with its sibling `mount-helper`,
/// in a world-reachable directory of its own.
pub fn imafs_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| reachable_copy(Path::new(env!("CARGO_BIN_EXE_imafs"))))
        .clone()
}

/// Whether every directory above `path` can be searched by other users.
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `bin` itself when others can reach it, else a copy of it and of its siblings that the
/// tests run (`mount-helper`) in `$TMPDIR/imafs-test-bin-<tag>`, where the tag names this
/// build of it (path, size, mtime). Copies are renamed into place, so test binaries running
/// at once share one; copies of other builds older than two hours are removed.
fn reachable_copy(bin: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::PermissionsExt;
    if reachable_by_others(bin) {
        return bin.to_path_buf();
    }
    let meta = std::fs::metadata(bin).expect("built imafs binary");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (bin, meta.len(), meta.modified().ok()).hash(&mut h);
    let prefix = "imafs-test-bin-";
    let name = format!("{prefix}{:016x}", h.finish());
    let tmp = std::env::temp_dir();
    let dir = tmp.join(&name);
    let _ = std::fs::create_dir(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for file in ["imafs", "mount-helper"] {
        let src = bin.with_file_name(file);
        let dest = dir.join(file);
        if dest.exists() || !src.exists() {
            continue;
        }
        let part = dir.join(format!(".{file}.{}", std::process::id()));
        std::fs::copy(&src, &part).expect("copy the built binary");
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&part, &dest).expect("rename");
    }
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for old in entries.flatten() {
            let n = old.file_name();
            let n = n.to_string_lossy();
            let stale = old
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 2 * 3600));
            if n.starts_with(prefix) && n != name && stale {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
    }
    dir.join(bin.file_name().expect("binary name"))
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

/// `setpriv` and its arguments: run a command as uid/gid 65534 with no supplementary groups.
pub const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// Whether the test can run programs as uid 65534 that mount FUSE themselves: root (to become
/// that user), `setpriv`, and `/dev/fuse` usable by other users (mode 0666, as Debian's udev
/// rule sets it; a fresh VM without udev or a CI container leaves it 0600). Records the skip,
/// with the reason, otherwise.
pub fn can_run_as_nobody(test: &str) -> bool {
    if !is_root() || !have_tool("setpriv") {
        skip(test, "needs root and setpriv to become uid 65534");
        return false;
    }
    let opens_fuse = Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .args(["sh", "-c", "exec 3<>/dev/fuse"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !opens_fuse {
        skip(
            test,
            "uid 65534 cannot open /dev/fuse (it is 0600 here; Debian's udev rule makes it 0666)",
        );
        return false;
    }
    true
}

/// Make the kernel offer FUSE over io_uring (`fuse.enable_uring`, Linux 6.14+), which
/// imafs then uses by default: the other tests run over it too, and pass over either
/// transport. False when this machine cannot (not root, no such parameter). A test that
/// depends on the setting holds [`uring_setting_lock`] while it runs.
pub fn fuse_uring_enabled() -> bool {
    let param = Path::new("/sys/module/fuse/parameters/enable_uring");
    let on = || std::fs::read_to_string(param).is_ok_and(|v| v.trim() == "Y");
    on() || (std::fs::write(param, "1").is_ok() && on())
}

/// The kernel's `fuse.enable_uring` setting is the host's: tests that depend on it, or
/// turn it off for a while, take this lock (a `flock` shared by every test process) for as
/// long as they run.
pub fn uring_setting_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("imafs-tests-enable-uring.lock");
    // Read-only when it exists: another user's run may have made it.
    let f = std::fs::File::open(&path)
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .expect("lock file");
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    f
}

/// Names of the threads of process `pid`.
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

/// The static busybox of the host (`busybox-static`), if installed.
pub fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .filter(|p| {
            Command::new("ldd")
                .arg(p)
                .output()
                .map(|o| {
                    !o.status.success()
                        || String::from_utf8_lossy(&o.stdout).contains("not a dynamic")
                })
                .unwrap_or(true)
        })
}

/// A minimal container rootfs: static busybox with `applets` linked in /bin, empty /etc,
/// /proc, /dev, /sys, and world-writable /tmp and /out (where container scripts leave
/// results). `None` (after [`skip`]) when FUSE or a static busybox is missing.
pub fn busybox_rootfs(test: &str, applets: &[&str]) -> Option<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    if !fuse_available() {
        skip(test, "/dev/fuse cannot be opened");
        return None;
    }
    let Some(busybox) = static_busybox() else {
        skip(test, "no static busybox (apt-get install busybox-static)");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("imafs-test")
        .tempdir()
        .expect("temp dir");
    let root = dir.path();
    for d in ["bin", "etc", "tmp", "out", "proc", "dev", "sys"] {
        std::fs::create_dir(root.join(d)).expect("mkdir");
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    for (path, mode) in [("", 0o755), ("tmp", 0o1777), ("out", 0o1777)] {
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    Some(dir)
}
pub mod daemon;

/// Run `cmd`, which must succeed; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An `openssl req -x509` key pair for `evmctl ima_sign`: `pem` holds the private key followed by the certificate (evmctl then takes the
/// key id from the certificate's SKI); the DER certificate is written to `certs`.
pub fn signing_key(dir: &Path, certs: Option<&Path>, name: &str, newkey: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let priv_pem = dir.join(format!("{name}.priv.pem"));
    let cert = dir.join(format!("{name}.crt"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN=imafs {name} test")])
            .args(newkey)
            .arg("-keyout")
            .arg(&priv_pem)
            .arg("-out")
            .arg(&cert),
    );
    let pem = dir.join(format!("{name}.pem"));
    let mut both = std::fs::read(&priv_pem).expect("key");
    both.extend(std::fs::read(&cert).expect("cert"));
    std::fs::write(&pem, both).expect("write");
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    if let Some(certs) = certs {
        run_ok(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&cert)
                .arg("-out")
                .arg(certs.join(format!("{name}.der"))),
        );
    }
    pem
}

/// Whether the test can mount FUSE file systems with `allow_other` (root, `/dev/fuse`);
/// records the skip otherwise.
pub fn can_mount_as_root(test: &str) -> bool {
    if !is_root() {
        skip(test, "needs root to mount FUSE with allow_other");
        return false;
    }
    if !fuse_available() {
        skip(test, "/dev/fuse not available");
        return false;
    }
    true
}

/// `imafs run --rootfs ROOTFS ARGS -- sh -c SCRIPT` as the test's user, with `PATH=/bin`
/// (the busybox rootfs of [`busybox_rootfs`]).
pub fn run_sh_in(rootfs: &Path, args: &[&str], script: &str) -> std::process::Output {
    Command::new(imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(args)
        .args(["--", "sh", "-c", script])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run")
}

/// `podman [--hooks-dir DIR] run --rm` as Podman runs on this host: with runc and cgroupfs
/// (crun refuses its cgroups) and the CI container's ulimits. Add the run's options, the
/// image and the command.
pub fn podman_run(hooks_dir: Option<&Path>) -> Command {
    let mut cmd = Command::new("podman");
    if let Some(dir) = hooks_dir {
        cmd.arg("--hooks-dir").arg(dir);
    }
    cmd.args([
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
        "run",
        "--rm",
    ])
    .args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
    ]);
    cmd
}

/// Whether the test can run `imafs run` over the host's own root with its Python (root, to
/// see the host's files as they are, `/dev/fuse` and `/usr/bin/python3`); records the skip
/// otherwise.
pub fn can_run_python_over_host_root(test: &str) -> bool {
    if !is_root() || !fuse_available() {
        skip(
            test,
            "needs root and /dev/fuse (the rootfs is the host's /)",
        );
        return false;
    }
    if !Path::new("/usr/bin/python3").exists() {
        skip(test, "needs /usr/bin/python3");
        return false;
    }
    true
}

/// An evmctl `--pcrs` file (`PCR-NN HEX` for PCRs 0-23) of `bank` from imafs's `pcrs` text;
/// returns the `bank,path` argument.
pub fn evmctl_pcr_file(pcrs: &str, bank: &str, path: &Path) -> String {
    let size = if bank == "sha1" { 20 } else { 32 };
    let mut values = vec!["00".repeat(size); 24];
    for line in pcrs.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[1] == bank {
            let n: usize = f[0].trim_start_matches("PCR-").parse().unwrap();
            values[n] = f[2].to_string();
        }
    }
    let text: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("PCR-{i:02} {v}\n"))
        .collect();
    std::fs::write(path, text).unwrap();
    format!("{bank},{}", path.display())
}

/// `evmctl ima_measurement --ignore-violations` on the binary list `list` against the PCR
/// files `pcr_files` (`bank,path` each): assert that it matched.
pub fn assert_evmctl_replays(list: &Path, pcr_files: &[String]) {
    let mut cmd = Command::new("evmctl");
    cmd.args(["ima_measurement", "--ignore-violations"]);
    for f in pcr_files {
        cmd.args(["--pcrs", f]);
    }
    let out = cmd.arg(list).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Matched per TPM bank calculated digest(s)."),
        "{text}"
    );
}
