//! The passthrough overlay, mounted for real: results equal native ones, real programs work,
//! nothing escapes the lower directory, descriptors stay bounded, hooks see the right flags.

mod common;

use common::{can_mount_as_root as can_mount, have_tool, imafs_bin, skip};
use imafs::engine::Errno;
use imafs::fs::overlay::{
    OpenEvent, Overlay, OverlayHooks, OverlayOptions, ReleaseEvent, FMODE_EXEC,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|s| {
            s.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `imafs overlay-mount` running in a child process; SIGTERM and a clean unmount on drop.
struct Mounted {
    child: Child,
    mnt: PathBuf,
}

#[derive(Default, Clone)]
struct MountOpts {
    no_passthrough: bool,
    io_uring: bool,
    fd_cache: Option<usize>,
    nofile: Option<u64>,
    cache_timeout: Option<&'static str>,
}

impl Mounted {
    fn new(lower: &Path, mnt: &Path, o: &MountOpts) -> Mounted {
        fs::create_dir_all(mnt).unwrap();
        let mut cmd = match o.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(imafs_bin());
                c
            }
            None => Command::new(imafs_bin()),
        };
        cmd.arg("overlay-mount")
            .arg("--lower")
            .arg(lower)
            .arg("--mount")
            .arg(mnt);
        if o.no_passthrough {
            cmd.arg("--no-passthrough");
        }
        // io_uring is the default where the kernel offers it; the other tests of this file
        // cover `/dev/fuse`.
        if !o.io_uring {
            cmd.arg("--no-io-uring");
        }
        if let Some(n) = o.fd_cache {
            cmd.arg("--fd-cache").arg(n.to_string());
        }
        if let Some(t) = o.cache_timeout {
            cmd.arg("--cache-timeout").arg(t);
        }
        let child = cmd.stdin(Stdio::null()).spawn().expect("spawn imafs");
        wait_until("the overlay mount", || is_mounted(mnt));
        Mounted {
            child,
            mnt: mnt.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait();
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            if !std::thread::panicking() {
                panic!("SIGTERM left {} mounted", self.mnt.display());
            }
        }
        if !std::thread::panicking() {
            assert!(
                status.map(|s| s.success()).unwrap_or(false),
                "daemon exit status"
            );
        }
    }
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn sh_ok(dir: &Path, script: &str) -> String {
    let out = sh(dir, script);
    assert!(
        out.status.success(),
        "`{script}` in {} failed: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const OPS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/overlay_ops.py");

fn ops_report(dir: &Path) -> String {
    sh_ok(dir, &format!("/usr/bin/python3 {OPS_SCRIPT}"))
}

fn ops_match_native(test: &str, o: MountOpts) {
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let native = t.path().join("native");
    let lower = t.path().join("lower");
    fs::create_dir_all(&native).unwrap();
    fs::create_dir_all(lower.join("work")).unwrap();
    let expected = ops_report(&native);
    let m = Mounted::new(&lower, &t.path().join("mnt"), &o);
    let got = ops_report(&m.mnt.join("work"));
    assert_eq!(got, expected);
    // Sanity: the report covers what it should.
    assert!(expected.contains("exchange ok Y X"), "{expected}");
    assert!(expected.contains("mmap-shared b'hello'"), "{expected}");
    // The data landed in the lower directory too.
    assert_eq!(fs::read(lower.join("work/cfg")).unwrap(), b"new");
}

#[test]
fn file_operations_match_native_with_passthrough() {
    ops_match_native(
        "file_operations_match_native_with_passthrough",
        MountOpts::default(),
    );
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    ticks as f64 / per_second
}

/// Idle workers poll for requests during a burst (default window) and stop when requests
/// stop: a quiet daemon uses no CPU. A poller that never gave up would burn a whole CPU.
#[test]
fn a_quiet_daemon_does_not_poll() {
    if !can_mount("a_quiet_daemon_does_not_poll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    for i in 0..500 {
        fs::write(lower.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    let m = Mounted::new(&lower, &dir.path().join("mnt"), &MountOpts::default());
    // A burst: the windows grow (every file read back whole, in order).
    for _ in 0..3 {
        let out = sh_ok(dir.path(), "for f in $(seq 0 499); do cat mnt/f$f; done");
        assert_eq!(out.lines().count(), 500);
        assert_eq!(out.lines().last(), Some("file 499"));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_seconds(m.pid());
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_seconds(m.pid()) - before;
    assert!(idle < 0.2, "the idle daemon used {idle:.2} s of CPU in 1 s");
}

/// The same operations over FUSE over io_uring: requests arrive in per-CPU ring queues,
/// answered by one worker per CPU (`fuser-uring-N` threads), with passthrough.
#[test]
fn file_operations_match_native_over_io_uring() {
    let test = "file_operations_match_native_over_io_uring";
    if !can_mount(test) {
        return;
    }
    let _setting = common::uring_setting_lock();
    if !common::fuse_uring_enabled() {
        skip(
            test,
            "FUSE over io_uring unavailable (needs Linux 6.14+ and root to set fuse.enable_uring)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    fs::write(lower.join("probe"), b"probe\n").unwrap();
    let o = MountOpts {
        io_uring: true,
        ..Default::default()
    };
    {
        let m = Mounted::new(&lower, &dir.path().join("mnt"), &o);
        assert_eq!(fs::read(dir.path().join("mnt/probe")).unwrap(), b"probe\n");
        let threads = common::thread_names(m.pid());
        let cpus = std::thread::available_parallelism().unwrap().get();
        let queues = threads
            .iter()
            .filter(|t| t.starts_with("fuser-uring-"))
            .count();
        assert!(
            queues >= cpus,
            "{queues} ring workers for {cpus} CPUs: {threads:?}"
        );
    }
    ops_match_native(test, o);
}

#[test]
fn file_operations_match_native_without_passthrough() {
    ops_match_native(
        "file_operations_match_native_without_passthrough",
        MountOpts {
            no_passthrough: true,
            ..Default::default()
        },
    );
}

#[test]
fn files_created_by_a_user_belong_to_that_user() {
    let test = "files_created_by_a_user_belong_to_that_user";
    if !can_mount(test) {
        return;
    }
    if !have_tool("setpriv") {
        return skip(test, "setpriv not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("pub")).unwrap();
    fs::create_dir_all(lower.join("priv")).unwrap();
    sh_ok(&lower, "chmod 1777 pub && chmod 700 priv");
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    let as_user = "setpriv --reuid=4321 --regid=4321 --clear-groups";
    sh_ok(
        &m.mnt,
        &format!("{as_user} sh -c 'umask 022; echo x > pub/f; mkdir pub/d; ln -s f pub/l'"),
    );
    let stat = sh_ok(
        &lower,
        "stat -c '%n %u %g %a' pub/f pub/d && stat -c '%n %u' -L pub/l",
    );
    assert_eq!(
        stat,
        "pub/f 4321 4321 644\npub/d 4321 4321 755\npub/l 4321\n"
    );
    // default_permissions: the kernel refuses what the mode bits refuse.
    let denied = sh(&m.mnt, &format!("{as_user} ls priv"));
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Permission denied"));
    let sticky = sh(
        &m.mnt,
        &format!("{as_user} sh -c 'touch pub/mine; rm pub/mine'"),
    );
    assert!(sticky.status.success());
    fs::write(lower.join("pub/roots"), b"r").unwrap();
    let sticky = sh(&m.mnt, &format!("{as_user} rm -f pub/roots"));
    assert!(
        !sticky.status.success(),
        "sticky directory let another user delete"
    );
}

#[test]
fn tar_extracts_identically() {
    let test = "tar_extracts_identically";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tarball = t.path().join("t.tar");
    // A tree with hard links, symlinks, modes and many small files.
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    sh_ok(
        &src,
        "cp -a /usr/include/linux . && ln linux/types.h hard && ln -s linux/types.h soft && \
         chmod 4755 hard && mkdir -p deep/a/b/c && echo x > deep/a/b/c/f",
    );
    sh_ok(t.path(), &format!("tar cf {} -C src .", tarball.display()));
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("x")).unwrap();
    let native = t.path().join("native");
    fs::create_dir_all(&native).unwrap();
    sh_ok(&native, &format!("tar xpf {}", tarball.display()));
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    sh_ok(&m.mnt.join("x"), &format!("tar xpf {}", tarball.display()));
    sh_ok(
        t.path(),
        &format!(
            "diff -r --no-dereference native {}",
            m.mnt.join("x").display()
        ),
    );
    let listing = |d: &Path| {
        sh_ok(
            d,
            "find . -printf '%p %M %n %s %U %G %l %T@\\n' | LC_ALL=C sort",
        )
    };
    assert_eq!(listing(&m.mnt.join("x")), listing(&native));
    // Hard links share an inode number through the mount as on the lower side.
    let inos = sh_ok(&m.mnt.join("x"), "stat -c %i hard linux/types.h");
    let mut it = inos.lines();
    assert_eq!(it.next(), it.next());
}

#[test]
fn gcc_compiles_and_runs_inside_the_mount() {
    let test = "gcc_compiles_and_runs_inside_the_mount";
    if !can_mount(test) {
        return;
    }
    if !have_tool("gcc") {
        return skip(test, "gcc not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    fs::write(
        m.mnt.join("hello.c"),
        "#include <stdio.h>\n#include \"sum.h\"\nint main(void){printf(\"sum=%d\\n\", sum(40, 2));return 0;}\n",
    )
    .unwrap();
    fs::write(
        m.mnt.join("sum.h"),
        "static int sum(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    sh_ok(&m.mnt, "gcc -O1 -Wall -o hello hello.c");
    assert_eq!(sh_ok(&m.mnt, "./hello"), "sum=42\n");
    // The binary written through the mount is the one on the lower side.
    assert_eq!(sh_ok(&lower, "./hello"), "sum=42\n");
}

#[test]
fn git_init_add_commit() {
    let test = "git_init_add_commit";
    if !can_mount(test) {
        return;
    }
    if !have_tool("git") {
        return skip(test, "git not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    let git = "git -c user.email=t@example.org -c user.name=t -c init.defaultBranch=main";
    let out = sh_ok(
        &m.mnt,
        &format!(
            "{git} init -q repo && cd repo && seq 1 1000 > a && mkdir d && echo b > d/b && \
             {git} add -A && {git} commit -qm first && echo c >> a && {git} commit -qam second && \
             {git} gc -q && {git} fsck --strict && {git} log --format=%s && {git} status --porcelain"
        ),
    );
    assert_eq!(out, "second\nfirst\n");
    // The repository is valid on the lower side too.
    let log = sh_ok(&lower.join("repo"), &format!("{git} log --format=%s"));
    assert_eq!(log, "second\nfirst\n");
}

#[test]
fn python_stdlib_runs_from_the_mount() {
    let test = "python_stdlib_runs_from_the_mount";
    if !can_mount(test) {
        return;
    }
    let stdlib = Path::new("/usr/lib/python3.11");
    if !stdlib.join("os.py").exists() || !Path::new("/usr/bin/python3.11").exists() {
        return skip(test, "system python3.11 not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("usr/lib")).unwrap();
    sh_ok(
        t.path(),
        &format!(
            "cp -a {} lower/usr/lib/ && rm -rf lower/usr/lib/python3.11/test",
            stdlib.display()
        ),
    );
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    let script = "import json, hashlib, email.parser, http.client, sqlite3, decimal, zlib; \
                  print(json.__file__); print(hashlib.sha256(b'abc').hexdigest()); \
                  print(zlib.__name__, decimal.Decimal('1.1') * 3, sqlite3.__file__)";
    let out = Command::new("/usr/bin/python3.11")
        .args(["-s", "-S", "-B", "-c", script])
        .env("PYTHONHOME", m.mnt.join("usr"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        m.mnt
            .join("usr/lib/python3.11/json/__init__.py")
            .to_str()
            .unwrap()
    );
    assert_eq!(
        lines.next().unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(lines.next().unwrap().starts_with("zlib 3.3 "));
}

#[test]
fn symlinks_and_dot_dot_cannot_escape_the_lower_directory() {
    let test = "symlinks_and_dot_dot_cannot_escape_the_lower_directory";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("shadow"), b"OUTSIDE SECRET\n").unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::create_dir_all(lower.join("bin")).unwrap();
    fs::write(lower.join("etc/shadow"), b"inside\n").unwrap();
    fs::copy("/usr/bin/busybox", lower.join("bin/busybox")).unwrap();
    let abs_outside = outside.join("shadow");
    std::os::unix::fs::symlink(&abs_outside, lower.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc/shadow", lower.join("rel")).unwrap();
    std::os::unix::fs::symlink(&outside, lower.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", lower.join("etcshadow")).unwrap();
    let m = Mounted::new(&lower, &t.path().join("mnt"), &MountOpts::default());
    // Inside the container's root, absolute and relative links resolve within the overlay.
    let chroot = |cmd: &str| {
        Command::new("chroot")
            .arg(&m.mnt)
            .args(["/bin/busybox", "sh", "-c", cmd])
            .output()
            .unwrap()
    };
    let out = chroot(
        "busybox cat /rel; busybox cat /etcshadow; busybox cat /abs; busybox ls /dirlink/; \
         busybox cat /../../etc/shadow",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "inside\ninside\ninside\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("OUTSIDE"));
    // The daemon reports links as links (never following them itself).
    assert_eq!(fs::read_link(m.mnt.join("abs")).unwrap(), abs_outside);
    // Operations on the link node (lgetxattr, lsetxattr, lchown, utimensat NOFOLLOW) act on
    // the link, never on the outside file it names.
    sh_ok(
        t.path(),
        "setfattr -n user.secret -v leaked outside/shadow && chown 0:0 outside/shadow",
    );
    let got = sh_ok(&m.mnt, "getfattr -h -d -m - abs");
    assert!(!got.contains("leaked"), "{got}");
    sh_ok(&m.mnt, "setfattr -h -n trusted.pwn -v 1 abs && chown -h 4321:4321 abs && touch -h -d 2001-01-01 abs");
    let outside_attrs = sh_ok(
        t.path(),
        "getfattr -d -m - outside/shadow; stat -c '%u %Y' outside/shadow",
    );
    assert!(!outside_attrs.contains("pwn"), "{outside_attrs}");
    let last = outside_attrs.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("0 ") && !last.ends_with(" 978307200"),
        "{outside_attrs}"
    );
    let link = sh_ok(&lower, "getfattr -h -d -m - abs; stat -c '%u %Y' abs");
    assert!(link.contains("trusted.pwn"), "{link}");
    assert!(link.ends_with("4321 978307200\n"), "{link}");
}

#[test]
fn swapping_a_directory_for_a_symlink_does_not_escape() {
    let test = "swapping_a_directory_for_a_symlink_does_not_escape";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"OUTSIDE").unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("d")).unwrap();
    fs::create_dir_all(lower.join("many")).unwrap();
    fs::write(lower.join("d/secret"), b"inside").unwrap();
    for i in 0..200 {
        fs::write(lower.join(format!("many/{i}")), b"").unwrap();
    }
    // A tiny descriptor cache forces the daemon to re-resolve `d` by name after the swap.
    let m = Mounted::new(
        &lower,
        &t.path().join("mnt"),
        &MountOpts {
            fd_cache: Some(8),
            ..Default::default()
        },
    );
    // A process keeps the directory open (the kernel keeps the node), then the lower
    // directory is replaced by a symlink to the outside, and the process opens a name in it.
    let script = format!(
        r#"
import os, sys
d = os.open("{mnt}/d", os.O_RDONLY | os.O_DIRECTORY)
print(os.read(os.open("secret", os.O_RDONLY, dir_fd=d), 100).decode())
os.rename("{lower}/d", "{lower}/d.moved")
os.symlink("{outside}", "{lower}/d")
for i in range(200):
    os.stat("{mnt}/many/%d" % i)
for name in ["secret", "secret"]:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=d)
        print(os.read(fd, 100).decode())
    except OSError as e:
        print("error", e.errno)
try:
    print(sorted(os.listdir(d)))
except OSError as e:
    print("error", e.errno)
"#,
        mnt = m.mnt.display(),
        lower = lower.display(),
        outside = outside.display()
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("inside\n"), "{text}");
    assert!(!text.contains("OUTSIDE"), "escaped: {text}");
    // Every later access either still reaches the moved directory or fails as stale.
    for line in text.lines().skip(1) {
        assert!(
            line == "inside" || line == format!("error {}", libc::ESTALE) || line == "['secret']",
            "unexpected: {line}"
        );
    }
}

#[test]
fn walking_100000_files_fits_a_20000_descriptor_limit() {
    let test = "walking_100000_files_fits_a_20000_descriptor_limit";
    if !can_mount(test) {
        return;
    }
    if !have_tool("prlimit") {
        return skip(test, "prlimit not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    for d in 0..100 {
        let dir = lower.join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("f{f:04}")), d.to_string()).unwrap();
        }
    }
    let m = Mounted::new(
        &lower,
        &t.path().join("mnt"),
        &MountOpts {
            nofile: Some(20000),
            ..Default::default()
        },
    );
    let limits = fs::read_to_string(format!("/proc/{}/limits", m.pid())).unwrap();
    // prlimit execs the daemon: same pid.
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains("20000")),
        "{limits}"
    );
    // Keep the kernel from dropping nodes: every file stays looked up while we walk.
    let out = sh_ok(&m.mnt, "find . -type f -printf '%s\\n' | wc -l");
    assert_eq!(out.trim(), "100000");
    let contents = sh_ok(&m.mnt, "cat d00?/f000? d099/* | wc -c");
    assert_eq!(contents.trim(), (100 + 1000 * 2).to_string());
    let fds = fs::read_dir(format!("/proc/{}/fd", m.pid()))
        .unwrap()
        .count();
    assert!(fds < 20000, "daemon holds {fds} descriptors");
    assert!(fds < 5000, "descriptor cache not bounded: {fds}");
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn passthrough_on_and_off_give_identical_data() {
    let test = "passthrough_on_and_off_give_identical_data";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    sh_ok(
        &lower,
        "head -c 24000000 /dev/urandom > big && printf 'odd' > small && : > empty",
    );
    let expected: Vec<String> = ["big", "small", "empty"]
        .iter()
        .map(|f| sha256_of(&lower.join(f)))
        .collect();
    for (i, no_passthrough) in [false, true].into_iter().enumerate() {
        let m = Mounted::new(
            &lower,
            &t.path().join(format!("mnt{i}")),
            &MountOpts {
                no_passthrough,
                ..Default::default()
            },
        );
        for (f, want) in ["big", "small", "empty"].iter().zip(&expected) {
            assert_eq!(
                &sha256_of(&m.mnt.join(f)),
                want,
                "{f} passthrough={}",
                !no_passthrough
            );
        }
        // Writes through the mount (dd with odd block sizes, then a copy) land intact.
        let name = format!("copy{i}");
        sh_ok(
            &m.mnt,
            &format!("dd if=big of={name} bs=7777 status=none && cat small >> {name}"),
        );
        let direct = sh_ok(&lower, "cat big small | sha256sum | cut -d' ' -f1");
        assert_eq!(sha256_of(&lower.join(&name)), direct.trim());
        assert_eq!(sha256_of(&m.mnt.join(&name)), direct.trim());
    }
}

/// (path, flags, exec, created) of one open.
type OpenRecord = (Vec<u8>, i32, bool, bool);

/// Records every open and release the overlay reports.
#[derive(Default)]
struct Recorder {
    opens: parking_lot::Mutex<Vec<OpenRecord>>,
    releases: parking_lot::Mutex<Vec<(Vec<u8>, bool, u64)>>,
}

impl OverlayHooks for Recorder {
    fn on_open(&self, ev: &OpenEvent<'_>, file: &std::fs::File) -> Result<(), Errno> {
        use std::os::unix::fs::FileExt;
        // The descriptor handed over is readable even for write-only opens.
        let mut b = [0u8; 1];
        file.read_at(&mut b, 0).map_err(|_| Errno::EIO)?;
        self.opens
            .lock()
            .push((ev.path.to_vec(), ev.flags, ev.exec, ev.created));
        if ev.path == b"/denied" {
            return Err(Errno::EPERM);
        }
        Ok(())
    }
    fn on_release(&self, ev: &ReleaseEvent<'_>) {
        self.releases.lock().push((
            ev.path.to_vec(),
            ev.opened_for_write,
            ev.stat.st_size as u64,
        ));
    }
}

#[test]
fn hooks_see_exec_read_write_and_create_opens() {
    let test = "hooks_see_exec_read_write_and_create_opens";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("bin")).unwrap();
    fs::copy("/usr/bin/busybox", lower.join("bin/busybox")).unwrap();
    fs::write(lower.join("data"), b"abc").unwrap();
    fs::write(lower.join("denied"), b"no").unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let rec = Arc::new(Recorder::default());
    let overlay = Overlay::new(
        &lower,
        OverlayOptions {
            hooks: rec.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let mounted = overlay.mount(&mnt).unwrap();
    let status = mounted.status().clone();

    let run = |args: &[&str]| {
        let out = Command::new(mnt.join("bin/busybox"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(
        run(&["cat", mnt.join("data").to_str().unwrap()]),
        (true, "abc".into())
    );
    assert!(run(&["sh", "-c", &format!("echo more >> {}/data", mnt.display())]).0);
    assert!(run(&["sh", "-c", &format!("echo new > {}/created", mnt.display())]).0);
    let denied = run(&["cat", mnt.join("denied").to_str().unwrap()]);
    assert!(!denied.0, "hook denial ignored");
    let err = fs::read(mnt.join("denied")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));

    drop(mounted.unmount());
    let opens = rec.opens.lock().clone();
    let find = |path: &[u8]| -> Vec<(i32, bool, bool)> {
        opens
            .iter()
            .filter(|o| o.0 == path)
            .map(|o| (o.1, o.2, o.3))
            .collect()
    };
    // Every exec of busybox reached the daemon with the kernel's __FMODE_EXEC bit.
    let bin = find(b"/bin/busybox");
    assert!(bin.len() >= 4, "{opens:?}");
    assert!(
        bin.iter()
            .all(|(flags, exec, _)| *exec && flags & FMODE_EXEC != 0),
        "{bin:?}"
    );
    assert!(bin
        .iter()
        .all(|(flags, _, _)| flags & libc::O_ACCMODE == libc::O_RDONLY));
    let data = find(b"/data");
    assert!(
        data.iter()
            .any(|(f, exec, _)| !exec && f & libc::O_ACCMODE == libc::O_RDONLY),
        "{data:?}"
    );
    assert!(
        data.iter()
            .any(|(f, _, _)| f & libc::O_ACCMODE == libc::O_WRONLY && f & libc::O_APPEND != 0),
        "{data:?}"
    );
    let created = find(b"/created");
    assert!(
        created
            .iter()
            .any(|(f, _, c)| *c && f & libc::O_ACCMODE == libc::O_WRONLY),
        "{created:?}"
    );
    assert!(find(b"/denied").len() >= 2);
    let releases = rec.releases.lock().clone();
    assert!(
        releases.contains(&(b"/data".to_vec(), true, 8)),
        "{releases:?}"
    );
    assert!(
        releases.contains(&(b"/data".to_vec(), false, 3)),
        "{releases:?}"
    );
    assert!(
        releases.contains(&(b"/created".to_vec(), true, 4)),
        "{releases:?}"
    );
    // A root daemon on a recent kernel serves data through kernel passthrough.
    assert!(status.passthrough_opens() > 0, "no passthrough opens");
}

#[test]
fn user_namespace_daemon_falls_back_from_passthrough() {
    let test = "user_namespace_daemon_falls_back_from_passthrough";
    if !can_mount(test) {
        return;
    }
    if !have_tool("unshare") {
        return skip(test, "unshare not installed");
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    let mnt = t.path().join("mnt");
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    sh_ok(&lower, "head -c 3000000 /dev/urandom > f");
    let want = sha256_of(&lower.join("f"));
    let log = t.path().join("daemon.log");
    // Root of a new user namespace may mount FUSE but may not register backing files.
    let script = format!(
        r#"RUST_LOG=imafs=info {bin} overlay-mount --lower {lower} --mount {mnt} 2>{log} &
pid=$!
i=0; until grep -q " {mnt} " /proc/self/mountinfo; do i=$((i+1)); [ $i -gt 1500 ] && exit 9; sleep 0.02; done
sha256sum {mnt}/f | cut -d' ' -f1
echo written > {mnt}/g && cat {mnt}/g
kill -TERM $pid; wait $pid"#,
        bin = imafs_bin().display(),
        lower = lower.display(),
        mnt = mnt.display(),
        log = log.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .unwrap();
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unshare failed") {
        return skip(test, "user namespaces not available");
    }
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{want}\nwritten\n")
    );
    assert_eq!(fs::read(lower.join("g")).unwrap(), b"written\n");
    let log = fs::read_to_string(&log).unwrap();
    assert!(log.contains("passthrough unavailable"), "{log}");
}

#[test]
fn changes_made_on_the_lower_side_become_visible() {
    let test = "changes_made_on_the_lower_side_become_visible";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("dir")).unwrap();
    fs::write(lower.join("dir/a"), b"1").unwrap();
    // Names and attributes are cached for --cache-timeout (default 60 s); contents are
    // current at every open whatever it is (tests/page_cache.rs).
    let m = Mounted::new(
        &lower,
        &t.path().join("mnt"),
        &MountOpts {
            cache_timeout: Some("1"),
            ..Default::default()
        },
    );
    let list = || {
        let mut names: Vec<String> = fs::read_dir(m.mnt.join("dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(list(), ["a"]);
    assert_eq!(list(), ["a"]); // served from the kernel's directory cache
                               // Changed behind the overlay's back: visible once the kernel revalidates (attribute TTL).
    fs::write(lower.join("dir/b"), b"2").unwrap();
    wait_until("the new lower file in the listing", || list() == ["a", "b"]);
    fs::remove_file(lower.join("dir/a")).unwrap();
    wait_until("the removed lower file to leave the listing", || {
        list() == ["b"]
    });
    fs::write(lower.join("dir/b"), b"changed").unwrap();
    wait_until("the new content", || {
        fs::read(m.mnt.join("dir/b")).unwrap() == b"changed"
    });
}
