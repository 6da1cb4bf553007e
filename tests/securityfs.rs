//! The securityfs view mounted for real by `imafs serve`, read and written with real tools
//! (busybox cat, coreutils cat, dd, evmctl) and plain syscalls.

mod common;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Served {
    dir: tempfile::TempDir,
    child: Option<Child>,
    _stdout: Option<ChildStdout>,
}

impl Served {
    /// `imafs serve --securityfs <tmp>/sfs` with `args`, after the daemon said `ready`.
    fn start(args: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        Served::start_in(dir, args)
    }

    fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Served {
        let mnt = dir.path().join("sfs");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut child = Command::new(common::imafs_bin())
            .arg("serve")
            .arg("--securityfs")
            .arg(&mnt)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "daemon did not come up");
        Served {
            dir,
            child: Some(child),
            _stdout: Some(stdout.into_inner()),
        }
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("sfs")
    }

    fn ima(&self, name: &str) -> PathBuf {
        self.mnt().join("integrity/ima").join(name)
    }

    fn tmp(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Wait for the daemon to exit; its exit status. A daemon still running after 60 s is
    /// killed (a hang fails the test instead of blocking the suite).
    fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().unwrap();
                assert!(std::thread::panicking(), "daemon hung, killed: {status:?}");
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(rustix::process::Signal::TERM);
            let _ = self.wait();
        }
        let _ = rustix::mount::unmount(self.mnt(), rustix::mount::UnmountFlags::DETACH);
    }
}

fn events_file(dir: &Path) -> PathBuf {
    let path = dir.join("events");
    std::fs::write(
        &path,
        "# fixture\nread /etc/passwd\nread /etc/hostname\n\nexec /bin/sh\n",
    )
    .unwrap();
    path
}

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn serve_with_events(test: &str) -> Option<Served> {
    if !common::can_mount_as_root(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = events_file(dir.path());
    Some(Served::start_in(
        dir,
        &["--events", events.to_str().unwrap()],
    ))
}

const LIST_FILES: [&str; 4] = [
    "ascii_runtime_measurements_sha1",
    "ascii_runtime_measurements_sha256",
    "binary_runtime_measurements_sha1",
    "binary_runtime_measurements_sha256",
];

#[test]
fn tree_names_modes_owners_and_links() {
    let Some(s) = serve_with_events("tree_names_modes_owners_and_links") else {
        return;
    };
    let root = std::fs::symlink_metadata(s.mnt()).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.mode() & 0o7777, 0o755);
    let link = std::fs::symlink_metadata(s.mnt().join("ima")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(link.mode() & 0o7777, 0o444);
    assert_eq!(
        std::fs::read_link(s.mnt().join("ima")).unwrap(),
        Path::new("integrity/ima")
    );
    let names: BTreeSet<String> = std::fs::read_dir(s.mnt().join("integrity/ima"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = [
        "ascii_runtime_measurements",
        "ascii_runtime_measurements_sha1",
        "ascii_runtime_measurements_sha256",
        "binary_runtime_measurements",
        "binary_runtime_measurements_sha1",
        "binary_runtime_measurements_sha256",
        "runtime_measurements_count",
        "violations",
        "policy",
        "pcrs",
        "keys",
        "active",
        "policy_for_children",
        "x509_for_children",
        "kcmd_for_children",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, expected);
    let mtime = root.mtime();
    for name in &names {
        let m = std::fs::symlink_metadata(s.ima(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "{name}");
        assert_eq!(m.mtime(), mtime, "{name}: timestamps are the mount time");
        let mode = m.mode() & 0o7777;
        let want = match name.as_str() {
            "ascii_runtime_measurements" | "binary_runtime_measurements" => {
                assert!(m.file_type().is_symlink());
                let target = std::fs::read_link(s.ima(name)).unwrap();
                assert_eq!(target, PathBuf::from(format!("{name}_sha1")));
                0o444
            }
            "policy" | "keys" => 0o600,
            "active" => 0o640,
            n if n.ends_with("_for_children") => 0o200,
            _ => 0o440,
        };
        assert_eq!(mode, want, "{name}: {mode:o}");
        assert_eq!(m.nlink(), 1, "{name}");
    }
    // Inode numbers are stable.
    let a = std::fs::metadata(s.ima("violations")).unwrap().ino();
    let b = std::fs::metadata(s.ima("violations")).unwrap().ino();
    assert_eq!(a, b);
    // `stat` as a tool shows the same modes.
    let out = run(
        "stat",
        &["-c", "%A %U %G", s.mnt().join("ima").to_str().unwrap()],
    );
    assert_eq!(String::from_utf8_lossy(&out), "lr--r--r-- root root\n");
}

#[test]
fn directory_order_is_newest_first_as_dcache_readdir() {
    let Some(s) = serve_with_events("directory_order_is_newest_first_as_dcache_readdir") else {
        return;
    };
    let unsorted = |dir: &Path| -> Vec<String> {
        String::from_utf8(run("ls", &["-U", dir.to_str().unwrap()]))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // `integrity/` exists before ima_fs_init makes the `ima` link.
    assert_eq!(unsorted(&s.mnt()), ["ima", "integrity"]);
    // ima_fs_init creates count, then violations, then policy.
    let names = unsorted(&s.mnt().join("integrity/ima"));
    let at = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(at("policy") < at("violations"), "{names:?}");
    assert!(
        at("violations") < at("runtime_measurements_count"),
        "{names:?}"
    );
    assert!(
        at("runtime_measurements_count") < at("ascii_runtime_measurements_sha1"),
        "{names:?}"
    );
}

#[test]
fn proc_mounts_shows_securityfs_source_and_options() {
    let Some(s) = serve_with_events("proc_mounts_shows_securityfs_source_and_options") else {
        return;
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let mnt = s.mnt().to_string_lossy().into_owned();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mnt.as_str()))
        .unwrap_or_else(|| panic!("{mnt} not in /proc/mounts:\n{mounts}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], "securityfs", "{line}");
    assert_eq!(fields[2], "fuse.imafs-securityfs", "{line}");
    for opt in [
        "default_permissions",
        "allow_other",
        "nosuid",
        "nodev",
        "noexec",
    ] {
        assert!(
            fields[3].split(',').any(|o| o == opt),
            "{opt} missing: {line}"
        );
    }
}

#[test]
fn every_reader_gets_every_whole_file() {
    let Some(s) = serve_with_events("every_reader_gets_every_whole_file") else {
        return;
    };
    let mut files: Vec<&str> = LIST_FILES.to_vec();
    files.extend([
        "ascii_runtime_measurements",
        "binary_runtime_measurements",
        "runtime_measurements_count",
        "violations",
        "policy",
        "pcrs",
        "keys",
        "active",
    ]);
    for name in files {
        let path = s.ima(name);
        let p = path.to_str().unwrap();
        let plain = std::fs::read(&path).unwrap();
        if name != "keys" {
            assert!(!plain.is_empty(), "{name} is empty");
        }
        assert_eq!(run("busybox", &["cat", p]), plain, "busybox cat {name}");
        assert_eq!(run("cat", &[p]), plain, "cat {name}");
        let dd = run("dd", &[&format!("if={p}"), "bs=7", "status=none"]);
        assert_eq!(dd, plain, "dd {name}");
        for skip in [1usize, 5, 100] {
            let dd = run(
                "dd",
                &[
                    &format!("if={p}"),
                    "bs=1",
                    &format!("skip={skip}"),
                    "status=none",
                ],
            );
            assert_eq!(dd, plain[skip.min(plain.len())..], "dd skip={skip} {name}");
        }
        // read(2) in small pieces, then pread at every record-unaligned offset.
        let mut f = File::open(&path).unwrap();
        let mut pieces = Vec::new();
        let mut buf = [0u8; 13];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, plain, "read(2) {name}");
        for off in (0..plain.len()).step_by(37) {
            let mut b = vec![0u8; 64];
            let n = f.read_at(&mut b, off as u64).unwrap();
            let end = (off + 64).min(plain.len());
            assert_eq!(&b[..n], &plain[off..end], "pread {name} @{off}");
        }
    }
}

#[test]
fn list_content_matches_counters() {
    let Some(s) = serve_with_events("list_content_matches_counters") else {
        return;
    };
    let ascii = std::fs::read_to_string(s.ima("ascii_runtime_measurements")).unwrap();
    let count: usize = std::fs::read_to_string(s.ima("runtime_measurements_count"))
        .unwrap()
        .trim_end()
        .parse()
        .unwrap();
    assert_eq!(ascii.lines().count(), count);
    // boot_aggregate + the three fixture events.
    assert_eq!(count, 4, "{ascii}");
    let names: Vec<&str> = ascii
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["boot_aggregate", "/etc/passwd", "/etc/hostname", "/bin/sh"]
    );
    for line in ascii.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0], "10");
        assert_eq!(f[1].len(), 40, "sha1 template digest: {line}");
        assert_eq!(f[2], "ima-ng");
    }
    let sha256 = std::fs::read_to_string(s.ima("ascii_runtime_measurements_sha256")).unwrap();
    assert!(sha256
        .lines()
        .all(|l| l.split(' ').nth(1).unwrap().len() == 64));
    assert_eq!(std::fs::read_to_string(s.ima("violations")).unwrap(), "0\n");
    // Root may open the lists for write (DAC), but they have no write method: EINVAL.
    let mut w = OpenOptions::new()
        .write(true)
        .open(s.ima("runtime_measurements_count"))
        .unwrap();
    assert_eq!(
        w.write(b"7\n").unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
    // No ioctls (securityfs has no ->unlocked_ioctl): isatty() sees ENOTTY.
    assert!(!std::io::IsTerminal::is_terminal(&w));
    // The sha256 file digest of /etc/passwd as sha256sum computes it.
    let sum = String::from_utf8(run("sha256sum", &["/etc/passwd"])).unwrap();
    let hex = sum.split(' ').next().unwrap();
    assert!(
        ascii.contains(&format!("sha256:{hex} /etc/passwd\n")),
        "{ascii}"
    );
}

/// Read `f` from its current position to EOF.
fn read_rest(f: &mut File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn open_reader_sees_appended_records_and_lseek_works() {
    if !common::can_mount_as_root("open_reader_sees_appended_records_and_lseek_works") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let s = Served::start_in(dir, &["--events", fifo.to_str().unwrap()]);
    let mut feed = OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut list = File::open(s.ima("ascii_runtime_measurements_sha256")).unwrap();
    let first = read_rest(&mut list);
    assert_eq!(first.lines().count(), 1, "only boot_aggregate yet: {first}");
    // A busybox reader that opened before the append keeps its snapshot semantics; a
    // read(2) reader on the same fd sees the new records after its old EOF.
    let target = s.tmp("appended");
    std::fs::write(&target, b"appended content\n").unwrap();
    writeln!(feed, "read {}", target.display()).unwrap();
    feed.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let more = loop {
        let more = read_rest(&mut list);
        if !more.is_empty() {
            break more;
        }
        assert!(Instant::now() < deadline, "appended record never appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        more.ends_with(&format!(" {}\n", target.display())),
        "{more}"
    );
    assert_eq!(more.lines().count(), 1, "whole records only: {more}");
    list.seek(SeekFrom::Start(0)).unwrap();
    let all = read_rest(&mut list);
    assert_eq!(all, format!("{first}{more}"));
    // Resume at a remembered offset (keylime): only the new record.
    list.seek(SeekFrom::Start(first.len() as u64)).unwrap();
    assert_eq!(read_rest(&mut list), more);
    let cat = run(
        "busybox",
        &[
            "cat",
            s.ima("ascii_runtime_measurements_sha256").to_str().unwrap(),
        ],
    );
    assert_eq!(String::from_utf8(cat).unwrap(), all);
}

fn policy_check_output(text: &str, dir: &Path) -> String {
    let f = dir.join("policy-to-check");
    std::fs::write(&f, text).unwrap();
    let out = run(
        common::imafs_bin().to_str().unwrap(),
        &["policy", "check", f.to_str().unwrap()],
    );
    String::from_utf8(out).unwrap()
}

fn write_policy_fd(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// As with the kernel, whose session ends within close(2): a write open right after the
/// previous writer closed is not EBUSY (FUSE sends that close's RELEASE after it returns).
#[test]
fn policy_can_be_opened_for_write_right_after_a_close() {
    let Some(s) = serve_with_events("policy_can_be_opened_for_write_right_after_a_close") else {
        return;
    };
    let policy = s.ima("policy");
    let builtin = std::fs::read_to_string(&policy).unwrap();
    for i in 0..500 {
        let f = write_policy_fd(&policy).unwrap_or_else(|e| panic!("open {i}: {e}"));
        drop(f);
    }
    // Still single-writer: a second open while the first is open stays EBUSY.
    let first = write_policy_fd(&policy).unwrap();
    let started = std::time::Instant::now();
    let second = write_policy_fd(&policy).unwrap_err();
    assert_eq!(second.raw_os_error(), Some(libc::EBUSY));
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    drop(first);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), builtin);
}

#[test]
fn policy_single_writer_invalid_lines_and_read_back() {
    let Some(s) = serve_with_events("policy_single_writer_invalid_lines_and_read_back") else {
        return;
    };
    let policy = s.ima("policy");
    let builtin = std::fs::read_to_string(&policy).unwrap();
    assert!(
        builtin.contains("measure func=BPRM_CHECK mask=MAY_EXEC \n"),
        "{builtin}"
    );

    // Single writer: a second write open is EBUSY while the first is open.
    let first = write_policy_fd(&policy).unwrap();
    let second = write_policy_fd(&policy).unwrap_err();
    assert_eq!(second.raw_os_error(), Some(libc::EBUSY));
    drop(first); // nothing written: the session fails, the policy stays.
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), builtin);

    // An invalid line is EINVAL and the whole session is discarded.
    let mut f = write_policy_fd(&policy).unwrap();
    f.write_all(b"measure func=FILE_CHECK\n").unwrap();
    let e = f.write_all(b"measure func=NO_SUCH_HOOK\n").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    drop(f);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), builtin);
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!("echo 'bogus rule' > {}", policy.display()))
        .status()
        .unwrap();
    assert!(!sh.success());
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), builtin);

    // pwrite at a non-zero offset as the first write: no partial writes.
    let f = write_policy_fd(&policy).unwrap();
    let e = f.write_at(b"measure func=FILE_CHECK\n", 5).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    drop(f);

    // A program writing rule by rule on one fd, then `cat file > policy` appending.
    let rules = "dont_measure fsmagic=0x9fa0\nmeasure func=BPRM_CHECK mask=MAY_EXEC\n";
    let mut f = write_policy_fd(&policy).unwrap();
    for line in rules.lines() {
        let n = f.write(format!("{line}\n").as_bytes()).unwrap();
        assert_eq!(n, line.len() + 1);
    }
    drop(f);
    let more = "# comment\n\nmeasure func=FILE_CHECK mask=^MAY_READ uid=0\n";
    let more_file = s.tmp("more.policy");
    std::fs::write(&more_file, more).unwrap();
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} > {}",
            more_file.display(),
            policy.display()
        ))
        .status()
        .unwrap();
    assert!(sh.success());
    let loaded = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        loaded,
        policy_check_output(&format!("{rules}{more}"), s.dir.path())
    );
    // busybox reads the policy back the same way.
    assert_eq!(
        String::from_utf8(run("busybox", &["cat", policy.to_str().unwrap()])).unwrap(),
        loaded
    );

    // Loading by absolute path (as the writer sees it).
    let by_path = s.tmp("by-path.policy");
    std::fs::write(&by_path, "measure func=MODULE_CHECK\n").unwrap();
    let mut f = write_policy_fd(&policy).unwrap();
    let path_line = format!("{}\n", by_path.display());
    assert_eq!(f.write(path_line.as_bytes()).unwrap(), path_line.len());
    drop(f);
    let after = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(after, format!("{loaded}measure func=MODULE_CHECK \n"));
    // A missing file is ENOENT, nothing changes.
    let mut f = write_policy_fd(&policy).unwrap();
    let e = f.write(b"/no/such/policy\n").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    drop(f);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), after);
    // O_RDWR is EACCES.
    let e = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&policy)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
}

#[test]
fn policy_single_load_makes_file_read_only() {
    if !common::can_mount_as_root("policy_single_load_makes_file_read_only") {
        return;
    }
    let s = Served::start(&["--single-policy-write"]);
    let policy = s.ima("policy");
    std::fs::write(&policy, "measure func=BPRM_CHECK\n").unwrap();
    let m = std::fs::metadata(&policy).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o400);
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        "measure func=BPRM_CHECK \n"
    );
}

#[test]
fn policy_without_read_policy_is_write_only_and_goes_away() {
    if !common::can_mount_as_root("policy_without_read_policy_is_write_only_and_goes_away") {
        return;
    }
    let s = Served::start(&["--no-read-policy", "--single-policy-write"]);
    let policy = s.ima("policy");
    let m = std::fs::metadata(&policy).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o200);
    let e = File::open(&policy).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    std::fs::write(&policy, "measure func=BPRM_CHECK\n").unwrap();
    assert_eq!(
        std::fs::symlink_metadata(&policy)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
}

#[test]
fn evmctl_replays_served_list_against_pcrs_file() {
    if !common::have_tool("evmctl") {
        common::skip(
            "evmctl_replays_served_list_against_pcrs_file",
            "evmctl not installed",
        );
        return;
    }
    let Some(s) = serve_with_events("evmctl_replays_served_list_against_pcrs_file") else {
        return;
    };
    let pcrs = std::fs::read_to_string(s.ima("pcrs")).unwrap();
    assert_eq!(pcrs.lines().count(), 2, "{pcrs}");
    let sha1 = common::evmctl_pcr_file(&pcrs, "sha1", &s.tmp("pcr-sha1"));
    let sha256 = common::evmctl_pcr_file(&pcrs, "sha256", &s.tmp("pcr-sha256"));
    let list = s.ima("binary_runtime_measurements");
    common::assert_evmctl_replays(&list, &[sha1.clone(), sha256.clone()]);
    // A tampered PCR value is detected.
    let bad = s.tmp("pcr-bad");
    let tampered = pcrs.replacen(&pcrs[14..20], "ffffff", 1);
    let bad_arg = common::evmctl_pcr_file(&tampered, "sha1", &bad);
    let out = Command::new("evmctl")
        .args(["ima_measurement", "--ignore-violations", "--pcrs", &bad_arg])
        .arg(&list)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn non_root_cannot_read_the_lists() {
    if !common::have_tool("setpriv") {
        common::skip("non_root_cannot_read_the_lists", "setpriv not installed");
        return;
    }
    let Some(s) = serve_with_events("non_root_cannot_read_the_lists") else {
        return;
    };
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "cat",
        ])
        .arg(s.ima("ascii_runtime_measurements_sha1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mounted(mnt: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let m = mnt.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&m))
}

/// Wait (bounded) for `mnt` to leave /proc/mounts.
fn wait_unmounted(mnt: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !mounted(mnt) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn sigterm_unmounts_cleanly() {
    let Some(mut s) = serve_with_events("sigterm_unmounts_cleanly") else {
        return;
    };
    assert!(mounted(&s.mnt()));
    s.signal(rustix::process::Signal::TERM);
    let status = s.wait();
    assert!(status.success(), "{status:?}");
    assert!(!mounted(&s.mnt()));
    let st = std::fs::metadata(s.mnt()).unwrap();
    assert!(st.is_dir());
}

#[test]
fn sigterm_while_a_reader_holds_a_file_detaches_then_exits() {
    let Some(mut s) = serve_with_events("sigterm_while_a_reader_holds_a_file_detaches_then_exits")
    else {
        return;
    };
    // A busy mount makes umount(2) EBUSY; the daemon must not hang serving forever.
    let mut held = File::open(s.ima("ascii_runtime_measurements")).unwrap();
    s.signal(rustix::process::Signal::TERM);
    assert!(wait_unmounted(&s.mnt()), "busy mount not detached");
    // The reader keeps a working file until it closes it.
    let mut text = String::new();
    held.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("10 "), "{text}");
    drop(held);
    let status = s.wait();
    assert!(status.success(), "{status:?}");
    assert!(std::fs::metadata(s.mnt()).unwrap().is_dir());
}

#[test]
fn kill_9_leaves_no_dead_mount() {
    let Some(mut s) = serve_with_events("kill_9_leaves_no_dead_mount") else {
        return;
    };
    assert!(mounted(&s.mnt()));
    s.signal(rustix::process::Signal::KILL);
    let _ = s.wait();
    assert!(wait_unmounted(&s.mnt()), "mount left behind");
    // No ENOTCONN: the mount point is a plain directory again.
    let st = std::fs::metadata(s.mnt()).unwrap();
    assert!(st.is_dir());
    assert!(std::fs::read_dir(s.mnt()).unwrap().next().is_none());
}

#[test]
fn keys_file_lists_and_loads_certificates() {
    if !common::have_tool("openssl") {
        common::skip(
            "keys_file_lists_and_loads_certificates",
            "openssl not installed",
        );
        return;
    }
    if !common::can_mount_as_root("keys_file_lists_and_loads_certificates") {
        return;
    }
    // KEY_CHECK measured once a custom policy is active.
    let s = Served::start(&[]);
    std::fs::write(
        s.ima("policy"),
        "measure func=KEY_CHECK keyrings=_ima template=ima-buf\n",
    )
    .unwrap();
    let cert = s.tmp("k.crt");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=imafs test key",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(s.tmp("k.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(std::fs::read_to_string(s.ima("keys")).unwrap(), "");
    // `cat cert > keys`: the PEM arrives in pieces; it is loaded at close.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} > {}",
            cert.display(),
            s.ima("keys").display()
        ))
        .status()
        .unwrap();
    assert!(sh.success());
    let keys = std::fs::read_to_string(s.ima("keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(keys.contains("imafs test key"), "{keys}");
    // The key was measured (ima-buf entry named after the keyring).
    let ascii = std::fs::read_to_string(s.ima("ascii_runtime_measurements")).unwrap();
    assert!(
        ascii
            .lines()
            .any(|l| l.contains(" ima-buf ") && l.contains(" _ima ")),
        "{ascii}"
    );
    // Garbage is refused at close, and nothing is added.
    // (dd reports a failing close of its output.)
    let dd = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'not a certificate' | dd of={} status=none",
            s.ima("keys").display()
        ))
        .output()
        .unwrap();
    assert!(!dd.status.success());
    assert!(
        String::from_utf8_lossy(&dd.stderr).contains("Bad message"),
        "{}",
        String::from_utf8_lossy(&dd.stderr)
    );
    assert_eq!(std::fs::read_to_string(s.ima("keys")).unwrap(), keys);
}

#[test]
fn restarted_daemon_continues_a_saved_list() {
    let Some(s) = serve_with_events("restarted_daemon_continues_a_saved_list") else {
        return;
    };
    let saved = s.tmp("saved.bin");
    std::fs::copy(s.ima("binary_runtime_measurements"), &saved).unwrap();
    let ascii = std::fs::read(s.ima("ascii_runtime_measurements_sha256")).unwrap();
    let pcrs = std::fs::read(s.ima("pcrs")).unwrap();
    let again = Served::start(&["--restore-list", saved.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(again.ima("ascii_runtime_measurements_sha256")).unwrap(),
        ascii
    );
    assert_eq!(std::fs::read(again.ima("pcrs")).unwrap(), pcrs);
}

#[test]
fn policy_read_needs_cap_sys_admin() {
    if !common::have_tool("setpriv") {
        common::skip("policy_read_needs_cap_sys_admin", "setpriv not installed");
        return;
    }
    let Some(s) = serve_with_events("policy_read_needs_cap_sys_admin") else {
        return;
    };
    // Root (owner, so DAC passes) without CAP_SYS_ADMIN: EPERM from ima_open_policy.
    let out = Command::new("setpriv")
        .args(["--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "cat"])
        .arg(s.ima("policy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Writing needs no capability beyond DAC.
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-sys_admin",
            "--bounding-set=-sys_admin",
            "sh",
            "-c",
        ])
        .arg(format!(
            "echo 'measure func=BPRM_CHECK' > {}",
            s.ima("policy").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(s.ima("policy")).unwrap(),
        "measure func=BPRM_CHECK \n"
    );
}

#[test]
fn serve_with_overlay_measures_container_paths() {
    if !common::can_mount_as_root("serve_with_overlay_measures_container_paths") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::write(lower.join("etc/app.conf"), b"setting=1\n").unwrap();
    let s = Served::start_in(
        dir,
        &[
            "--mount",
            mount.to_str().unwrap(),
            "--rootfs",
            lower.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(mount.join("etc/app.conf")).unwrap(),
        b"setting=1\n"
    );
    let ascii = std::fs::read_to_string(s.ima("ascii_runtime_measurements_sha256")).unwrap();
    let sum = String::from_utf8(run(
        "sha256sum",
        &[lower.join("etc/app.conf").to_str().unwrap()],
    ))
    .unwrap();
    let hex = sum.split(' ').next().unwrap();
    assert!(
        ascii.contains(&format!("sha256:{hex} /etc/app.conf\n")),
        "{ascii}"
    );
    drop(s);
    assert!(!mounted(&mount), "overlay left mounted after SIGTERM");
}

/// `cmd` run as uid/gid 65534 with no supplementary groups.
fn as_nobody(cmd: &str) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["sh", "-c", cmd])
        .output()
        .unwrap()
}

#[test]
fn unprivileged_serve_owns_its_view_and_leaves_no_dead_mount() {
    let test = "unprivileged_serve_owns_its_view_and_leaves_no_dead_mount";
    if !common::can_mount_as_root(test) {
        return;
    }
    if !common::have_tool("fusermount3") {
        common::skip(test, "fusermount3 not installed");
        return;
    }
    if !common::can_run_as_nobody(test) {
        return;
    }
    // A directory the unprivileged daemon can reach, with its own copy of the binary
    // (the build tree may not be reachable by uid 65534).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = dir.path().join("nobody");
    let mnt = work.join("sfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let bin = work.join("imafs");
    std::fs::copy(common::imafs_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&work)
        .status()
        .unwrap();
    assert!(chown.success());
    let ima = mnt.join("integrity/ima");
    let start = format!(
        "{} serve --securityfs {} > {}/out 2> {}/err & echo $!",
        bin.display(),
        mnt.display(),
        work.display(),
        work.display()
    );
    for (round, sig) in [
        ("SIGTERM", rustix::process::Signal::TERM),
        ("SIGKILL", rustix::process::Signal::KILL),
    ] {
        let out = as_nobody(&start);
        let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(work.join("out")).unwrap_or_default() != "ready\n" {
            assert!(Instant::now() < deadline, "{round}: daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The daemon's user owns the nodes, with the kernel's modes, and reads the view.
        let ls = as_nobody(&format!("stat -c '%u:%g %a %n' {}/*", ima.display()));
        let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
        assert!(
            ls.contains(&format!(
                "65534:65534 440 {}/runtime_measurements_count",
                ima.display()
            )),
            "{ls}"
        );
        assert!(ls.lines().all(|l| l.starts_with("65534:65534 ")), "{ls}");
        let count = as_nobody(&format!(
            "busybox cat {}/runtime_measurements_count",
            ima.display()
        ));
        assert_eq!(String::from_utf8_lossy(&count.stdout), "1\n", "{round}");
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        assert!(wait_unmounted(&mnt), "{round}: mount left behind");
        // No ENOTCONN for the user either: a plain empty directory again.
        let st = as_nobody(&format!(
            "stat -c %F {}; ls -A {}",
            mnt.display(),
            mnt.display()
        ));
        assert_eq!(
            String::from_utf8_lossy(&st.stdout),
            "directory\n",
            "{round}"
        );
        std::fs::remove_file(work.join("out")).unwrap();
    }
}

#[test]
fn policy_append_redirection_loads_rules() {
    let Some(s) = serve_with_events("policy_append_redirection_loads_rules") else {
        return;
    };
    let policy = s.ima("policy");
    let before = std::fs::read_to_string(&policy).unwrap();
    // `>>` opens with O_APPEND: FUSE then writes at i_size (the read-back length), the
    // kernel's ima_write_policy still at position 0.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 'measure func=MODULE_CHECK' >> '{p}' && \
             printf 'measure func=KEXEC_CMDLINE\\n# c\\nmeasure func=FIRMWARE_CHECK\\n' >> '{p}'",
            p = policy.display()
        ))
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    // The first load replaces the built-in rules; the second session appends.
    let after = std::fs::read_to_string(&policy).unwrap();
    assert!(before.contains("dont_measure"), "{before}");
    assert_eq!(
        after,
        "measure func=MODULE_CHECK \nmeasure func=KEXEC_CMDLINE \nmeasure func=FIRMWARE_CHECK \n"
    );
    // pwrite at a non-zero offset without O_APPEND stays EINVAL.
    let f = write_policy_fd(&policy).unwrap();
    let e = f.write_at(b"measure func=FILE_CHECK\n", 3).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}
