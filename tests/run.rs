//! `imafs run` end to end: a busybox rootfs under the measuring overlay, a script that reads,
//! writes and executes files, and checks of the list it reads from inside the container
//! against `sha256sum` run there, against the kernel's rules for duplicates, changes and
//! violations, and against `evmctl ima_measurement` replaying the binary list.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const POLICY: &str = "dont_measure fsmagic=0x73636673\n\
    measure func=BPRM_CHECK mask=MAY_EXEC\n\
    measure func=FILE_CHECK mask=^MAY_READ euid=0\n";

/// The container's work. Outputs go to /out (a directory of the rootfs) for the test to read.
const SCRIPT: &str = r#"set -e
ima=/sys/kernel/security/ima
cat /etc/data.txt > /dev/null
cat /etc/data.txt > /dev/null
echo one > /tmp/f
cat /tmp/f > /dev/null
echo two > /tmp/f
cat /tmp/f > /dev/null
exec 3< /tmp/f
echo three > /tmp/f
exec 3<&-
exec 4> /tmp/g
cat /tmp/g > /dev/null
exec 4>&-
printf '#!/bin/sh\nexit 0\n' > /tmp/s.sh
chmod 755 /tmp/s.sh
/tmp/s.sh
sha256sum /etc/data.txt /bin/busybox > /out/sums
cat $ima/ascii_runtime_measurements_sha256 > /out/list
cat $ima/binary_runtime_measurements > /out/binary_list
cat $ima/runtime_measurements_count > /out/count
cat $ima/violations > /out/violations
dd if=$ima/ascii_runtime_measurements_sha256 bs=7 2>/dev/null > /out/list_by_7
if [ -e $ima/pcrs ]; then cat $ima/pcrs > /out/pcrs; fi
exit 3
"#;

struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn out(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join("out").join(name))
            .unwrap_or_else(|e| panic!("/out/{name} not written: {e}"))
    }
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A busybox rootfs readable by everyone, with /tmp and /out writable by everyone (the
/// non-root run's container root is the host's uid 65534).
fn make_rootfs(test: &str, owner: Option<u32>) -> Option<Rootfs> {
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse cannot be opened");
        return None;
    }
    let Some(busybox) = busybox() else {
        common::skip(
            test,
            "busybox not installed (apt-get install busybox-static)",
        );
        return None;
    };
    if !is_static(&busybox) {
        common::skip(test, "busybox is not statically linked (busybox-static)");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-run")
        .tempdir()
        .expect("temp dir");
    let root = dir.path();
    for d in ["bin", "etc", "tmp", "out", "proc", "dev", "sys"] {
        std::fs::create_dir(root.join(d)).expect("mkdir");
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh",
        "cat",
        "echo",
        "sha256sum",
        "dd",
        "true",
        "chmod",
        "printf",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("etc/data.txt"), "configuration data\n").expect("write");
    std::fs::write(root.join("etc/policy"), POLICY).expect("write");
    for (path, mode) in [("", 0o755), ("tmp", 0o1777), ("out", 0o1777)] {
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    if let Some(id) = owner {
        chown_tree(root, id);
    }
    Some(Rootfs { dir })
}

/// A rootless container's rootfs belongs to its user: the kernel refuses writes to inodes
/// whose owner is not mapped in the user namespace, whatever their mode.
fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("entry").path(), id);
        }
    }
}

fn is_static(program: &Path) -> bool {
    Command::new("ldd")
        .arg(program)
        .output()
        .map(|o| {
            !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic")
        })
        .unwrap_or(true)
}

fn imafs_run(prefix: &[&str], rootfs: &Path, args: &[&str]) -> Output {
    let bin = common::imafs_bin();
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(args)
        .env("PATH", "/bin")
        .output()
        .expect("run imafs")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// An ascii list line: PCR, template digest, template name, file digest, path.
fn fields(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// Whether the container sees the securityfs view (the test reads the list from inside).
fn has_securityfs_view(prefix: &[&str], rootfs: &Path) -> bool {
    imafs_run(
        prefix,
        rootfs,
        &[
            "--",
            "sh",
            "-c",
            "test -e /sys/kernel/security/ima/ascii_runtime_measurements",
        ],
    )
    .status
    .success()
}

fn check_measurements(test: &str, prefix: &[&str], owner: Option<u32>) {
    let Some(rootfs) = make_rootfs(test, owner) else {
        return;
    };
    if !has_securityfs_view(prefix, rootfs.path()) {
        common::skip(test, "imafs run serves no securityfs view in this build");
        return;
    }
    let policy = rootfs.path().join("etc/policy");
    let out = imafs_run(
        prefix,
        rootfs.path(),
        &[
            "--policy",
            policy.to_str().expect("utf-8"),
            "--",
            "sh",
            "-c",
            SCRIPT,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "CMD's status must propagate; stderr: {stderr}"
    );

    let list = rootfs.out("list");
    let lines: Vec<&str> = list.lines().collect();
    let sums: Vec<(String, String)> = rootfs
        .out("sums")
        .lines()
        .map(|l| {
            let (digest, path) = l.split_once("  ").expect("sha256sum line");
            (path.to_owned(), digest.to_owned())
        })
        .collect();
    let sum_of = |path: &str| -> String {
        sums.iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no sha256sum of {path}"))
    };
    let entry = |path: &str, digest: &str| format!("ima-ng sha256:{digest} {path}");
    let zero = "0".repeat(64);
    let expected = [
        format!("ima-ng sha256:{zero} boot_aggregate"),
        entry("/bin/busybox", &sum_of("/bin/busybox")),
        entry("/etc/data.txt", &sum_of("/etc/data.txt")),
        entry("/tmp/f", &sha256_hex(b"one\n")),
        entry("/tmp/f", &sha256_hex(b"two\n")),
        // ToMToU: /tmp/f opened for writing while a measured reader has it open.
        format!("ima-ng sha256:{zero} /tmp/f"),
        // open_writers: /tmp/g read (measured) while open for writing; the read is then
        // measured as usual (the empty file).
        format!("ima-ng sha256:{zero} /tmp/g"),
        entry("/tmp/g", &sha256_hex(b"")),
        // A script written in the container, then executed (BPRM_CHECK); sh's read of it
        // as the interpreter adds nothing (same file, same PCR).
        entry("/tmp/s.sh", &sha256_hex(b"#!/bin/sh\nexit 0\n")),
    ];
    let got: Vec<String> = lines.iter().map(|l| fields(l)[2..].join(" ")).collect();
    assert_eq!(got, expected, "list:\n{list}\nstderr: {stderr}");
    for line in &lines {
        assert_eq!(fields(line)[0], "10", "{line}");
    }
    // Violations show an all-zero template digest.
    for line in &lines[5..7] {
        assert_eq!(fields(line)[1], zero, "{line}");
    }
    assert_eq!(rootfs.out("count"), format!("{}\n", lines.len()));
    assert_eq!(rootfs.out("violations"), "2\n");
    // Reads of any size see the same bytes (busybox cat and dd with 7-byte blocks).
    assert_eq!(rootfs.out("list_by_7"), list);
    check_replay(&rootfs, lines.len());
}

/// `evmctl ima_measurement` replays the binary list against the PCRs imafs reports.
fn check_replay(rootfs: &Rootfs, entries: usize) {
    let binary = rootfs.path().join("out/binary_list");
    assert!(std::fs::metadata(&binary).expect("binary list").len() > 0);
    if !common::have_tool("evmctl") {
        common::skip(
            "run_replay_with_evmctl",
            "evmctl not installed (ima-evm-utils)",
        );
        return;
    }
    let pcrs_path = rootfs.path().join("out/pcrs");
    let Ok(pcrs) = std::fs::read_to_string(&pcrs_path) else {
        common::skip(
            "run_replay_with_evmctl",
            "the securityfs view has no integrity/ima/pcrs file to compare with",
        );
        return;
    };
    let pcr10 = pcrs
        .lines()
        .find_map(|l| l.strip_prefix("PCR-10 sha256 "))
        .unwrap_or_else(|| panic!("no sha256 PCR 10 in pcrs:\n{pcrs}"));
    // evmctl's --pcrs file: PCR-00 .. PCR-10 in order, one bank.
    let mut file = String::new();
    for i in 0..10 {
        file.push_str(&format!("PCR-{i:02} {}\n", "0".repeat(64)));
    }
    file.push_str(&format!("PCR-10 {pcr10}\n"));
    let pcr_file = rootfs.path().join("out/pcrs-for-evmctl");
    std::fs::write(&pcr_file, file).expect("write pcr file");
    let out = Command::new("evmctl")
        .arg("ima_measurement")
        // evmctl 1.4: extend violations with 0xff as the kernel does.
        .arg("--ignore-violations")
        .arg("--pcrs")
        .arg(format!("sha256,{}", pcr_file.display()))
        .arg(&binary)
        .arg("-v")
        .output()
        .expect("run evmctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "evmctl failed ({entries} entries):\n{text}"
    );
    assert!(text.contains("sha256: PCRAgg"), "{text}");
}

#[test]
fn run_measures_reads_writes_and_execs_as_root() {
    let test = "run_measures_reads_writes_and_execs_as_root";
    if !common::is_root() {
        common::skip(test, "needs root");
        return;
    }
    check_measurements(test, &[], None);
}

#[test]
fn run_measures_as_unprivileged_user() {
    let test = "run_measures_as_unprivileged_user";
    if !common::can_run_as_nobody(test) {
        return;
    }
    check_measurements(test, &common::NOBODY, Some(65534));
}

#[test]
fn run_propagates_exit_status() {
    let test = "run_propagates_exit_status";
    let Some(rootfs) = make_rootfs(test, None) else {
        return;
    };
    for (script, code) in [("exit 7", 7), ("true", 0), ("kill -9 $$", 137)] {
        for pid_ns in [&[][..], &["--no-pid-ns"][..]] {
            let mut args = pid_ns.to_vec();
            args.extend_from_slice(&["--", "sh", "-c", script]);
            let out = imafs_run(&[], rootfs.path(), &args);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{script} {pid_ns:?}: {out:?}"
            );
        }
    }
    let out = imafs_run(&[], rootfs.path(), &["--", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-program"));
}

#[test]
fn run_default_policy_is_tcb() {
    let test = "run_default_policy_is_tcb";
    if !common::is_root() {
        common::skip(test, "needs root");
        return;
    }
    let Some(rootfs) = make_rootfs(test, None) else {
        return;
    };
    if !has_securityfs_view(&[], rootfs.path()) {
        common::skip(test, "imafs run serves no securityfs view in this build");
        return;
    }
    // tcb measures root's exec of sh (busybox) and its read of /etc/data.txt.
    let out = imafs_run(
        &[],
        rootfs.path(),
        &[
            "--",
            "sh",
            "-c",
            "cat /etc/data.txt >/dev/null; \
             cat /sys/kernel/security/integrity/ima/ascii_runtime_measurements > /out/list",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let list = rootfs.out("list");
    assert!(list.contains(" /bin/busybox\n"), "{list}");
    assert!(
        list.contains(&format!(
            "sha256:{} /etc/data.txt\n",
            sha256_hex(b"configuration data\n")
        )),
        "{list}"
    );
    // The legacy file shows SHA-1 template digests.
    let first = list.lines().next().expect("boot_aggregate");
    assert_eq!(fields(first)[1].len(), 40, "{first}");
}

/// `imafs demo` as root and as uid 65534: the bundled policy measures the script's execs and
/// root's reads, the change of /tmp/note.txt and the ToMToU violation, and both runs end with
/// the same PCR values (same files, same order).
#[test]
fn demo_measures_the_same_as_root_and_unprivileged() {
    let test = "demo_measures_the_same_as_root_and_unprivileged";
    if !common::is_root() || !common::have_tool("setpriv") {
        common::skip(test, "needs root and setpriv");
        return;
    }
    if busybox().is_none() {
        common::skip(
            test,
            "busybox not installed (apt-get install busybox-static)",
        );
        return;
    }
    let demo = |prefix: &[&str]| -> String {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(common::imafs_bin());
                c
            }
            None => Command::new(common::imafs_bin()),
        };
        let out = cmd
            .arg("demo")
            .env_remove("XDG_CACHE_HOME")
            .output()
            .expect("imafs demo");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let conf = include_bytes!("../fixtures/demo/demo.conf");
    let as_root = demo(&[]);
    assert!(
        as_root.contains(&format!(
            "ima-sig sha256:{} /etc/demo.conf",
            sha256_hex(conf)
        )),
        "{as_root}"
    );
    assert!(
        as_root.contains(&format!(
            "ima-sig sha256:{} /tmp/note.txt",
            sha256_hex(b"first version\n")
        )),
        "{as_root}"
    );
    assert!(
        as_root.contains(&format!(
            "ima-sig sha256:{} /tmp/note.txt",
            sha256_hex(b"first version\nsecond version\n")
        )),
        "{as_root}"
    );
    assert!(as_root.contains(", violations 1\n"), "{as_root}");
    // The daemon's banks, and the same lines printed inside from integrity/ima/pcrs.
    let pcrs = |text: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("PCR-10 "))
            .map(|l| l.trim().to_owned())
            .collect();
        assert_eq!(lines.len(), 4, "{text}");
        lines.sort();
        lines.dedup();
        lines
    };
    assert_eq!(pcrs(&as_root).len(), 2, "{as_root}");
    if common::have_tool("evmctl") {
        assert!(
            as_root.contains("Matched per TPM bank calculated digest(s). (exit 0)"),
            "{as_root}"
        );
    }
    if !common::can_run_as_nobody(test) {
        return;
    }
    let unprivileged = demo(&common::NOBODY);
    assert!(unprivileged.contains("user namespace"), "{unprivileged}");
    assert_eq!(pcrs(&unprivileged), pcrs(&as_root), "{unprivileged}");
}

/// Appraisal through the overlay: with `--appraise enforce`, a root read of a file without a
/// good `security.ima` is refused with EACCES inside the container, one whose digest matches
/// is allowed, and a file changed after hashing is refused.
#[test]
fn run_appraise_enforce_refuses_files_without_a_good_hash() {
    let test = "run_appraise_enforce_refuses_files_without_a_good_hash";
    if !common::is_root() || !common::have_tool("evmctl") {
        common::skip(
            test,
            "needs root (security.* xattrs) and evmctl (ima-evm-utils)",
        );
        return;
    }
    let Some(rootfs) = make_rootfs(test, None) else {
        return;
    };
    let etc = rootfs.path().join("etc");
    for (name, text) in [
        ("good", "good\n"),
        ("bad", "bad\n"),
        ("changed", "before\n"),
    ] {
        std::fs::write(etc.join(name), text).expect("write");
    }
    for name in ["good", "changed"] {
        let status = Command::new("evmctl")
            .args(["ima_hash", "-a", "sha256"])
            .arg(etc.join(name))
            .output()
            .expect("evmctl ima_hash");
        assert!(status.status.success(), "{status:?}");
    }
    // Appending keeps the xattr, which no longer matches.
    std::fs::OpenOptions::new()
        .append(true)
        .open(etc.join("changed"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"after\n"))
        .expect("append");
    std::fs::write(
        rootfs.path().join("etc/appraise"),
        "appraise func=FILE_CHECK mask=^MAY_READ fowner=0\n",
    )
    .expect("write policy");
    let policy = rootfs.path().join("etc/appraise");
    let script = "for f in good bad changed; do \
                  if cat /etc/$f > /dev/null 2>/out/err-$f; then echo $f ok; else echo $f refused; fi; \
                  done > /out/verdicts";
    let out = imafs_run(
        &[],
        rootfs.path(),
        &[
            "--appraise",
            "enforce",
            "--policy",
            policy.to_str().expect("utf-8"),
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        rootfs.out("verdicts"),
        "good ok\nbad refused\nchanged refused\n"
    );
    assert!(
        rootfs.out("err-bad").contains("Permission denied"),
        "{}",
        rootfs.out("err-bad")
    );
}

/// `fsuuid=` rules match files by the UUID of the lower file system they live on: a file of
/// an ext4 image made with a known UUID (loop-mounted inside the rootfs) is measured, a file
/// of the rootfs's own file system is not.
#[test]
fn run_fsuuid_rule_matches_the_lower_file_system() {
    let test = "run_fsuuid_rule_matches_the_lower_file_system";
    if !common::is_root() || !common::have_tool("mkfs.ext4") {
        common::skip(test, "needs root and mkfs.ext4 to loop-mount an ext4 image");
        return;
    }
    let Some(rootfs) = make_rootfs(test, None) else {
        return;
    };
    let uuid = "2b3c4d5e-0f1a-4b2c-8d3e-4f5a6b7c8d9e";
    let image = rootfs.path().join("out/ext4.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(8 << 20))
        .expect("image file");
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid])
        .arg(&image)
        .output()
        .expect("mkfs.ext4");
    assert!(mkfs.status.success(), "{mkfs:?}");
    let mnt = rootfs.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mount = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .output()
        .expect("mount");
    if !mount.status.success() {
        common::skip(test, &format!("cannot loop-mount: {mount:?}"));
        return;
    }
    let result = std::panic::catch_unwind(|| {
        std::fs::write(mnt.join("on-image"), "on the image\n").expect("write");
        let policy = rootfs.path().join("etc/fsuuid-policy");
        std::fs::write(
            &policy,
            format!("measure func=FILE_CHECK mask=^MAY_READ fsuuid={uuid}\n"),
        )
        .expect("policy");
        let out = imafs_run(
            &[],
            rootfs.path(),
            &[
                "--policy",
                policy.to_str().expect("utf-8"),
                "--",
                "sh",
                "-c",
                "cat /mnt/on-image /etc/data.txt > /dev/null; \
                 cat /sys/kernel/security/ima/ascii_runtime_measurements_sha256 > /out/list",
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let list = rootfs.out("list");
        let names: Vec<&str> = list.lines().map(|l| fields(l)[4]).collect();
        assert_eq!(names, ["boot_aggregate", "/mnt/on-image"], "{list}");
        assert!(list.contains(&sha256_hex(b"on the image\n")), "{list}");
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The emulated PCRs appear where tools look for a TPM's (`/sys/class/tpm/tpm0`), so an
/// unmodified `evmctl ima_measurement` inside the container (the host's rootfs) replays the
/// container's list against them; the host's other classes stay visible.
#[test]
fn run_evmctl_inside_replays_against_the_tpm_view() {
    let test = "run_evmctl_inside_replays_against_the_tpm_view";
    if !common::have_tool("evmctl") || !common::fuse_available() {
        common::skip(test, "needs evmctl (ima-evm-utils) and /dev/fuse");
        return;
    }
    let script = "cat /etc/hostname > /dev/null 2>&1; ls /sys/class | grep -c . ; \
                  cat /sys/class/tpm/tpm0/pcr-sha256/10; \
                  evmctl ima_measurement --ignore-violations \
                  /sys/kernel/security/ima/binary_runtime_measurements 2>&1 | tail -1";
    let host_classes = std::fs::read_dir("/sys/class")
        .map(|d| d.count())
        .unwrap_or(0);
    let out = Command::new(common::imafs_bin())
        .args(["run", "--", "sh", "-c", script])
        .output()
        .expect("imafs run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // The host's classes plus tpm (when the host has none).
    let classes: usize = lines[0].parse().expect("count");
    assert!(
        classes == host_classes || classes == host_classes + 1,
        "{text}"
    );
    assert_eq!(lines[1].len(), 64, "{text}");
    assert!(lines[1]
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(
        lines[2], "Matched per TPM bank calculated digest(s).",
        "{text}"
    );
}

/// `imafs run` as a user from a directory that user cannot enter (a checkout under a 0700
/// home): the command starts in the nearest directory above it that it can enter, with one
/// warning line, instead of aborting.
#[test]
fn run_as_a_user_from_a_directory_it_cannot_enter() {
    let test = "run_as_a_user_from_a_directory_it_cannot_enter";
    if !common::can_run_as_nobody(test) {
        return;
    }
    let Some(rootfs) = make_rootfs(test, Some(65534)) else {
        return;
    };
    std::os::unix::fs::symlink("busybox", rootfs.path().join("bin/pwd")).expect("symlink");
    // /home is open to all; /home/private is root's and 0700, as a home directory is.
    let clone = rootfs.path().join("home/private/clone");
    std::fs::create_dir_all(&clone).expect("mkdir");
    for (dir, mode) in [("home", 0o755), ("home/private", 0o700)] {
        let path = rootfs.path().join(dir);
        std::os::unix::fs::lchown(&path, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let out = Command::new(common::NOBODY[0])
        .args(&common::NOBODY[1..])
        .arg(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "pwd"])
        .current_dir(&clone)
        .env("PATH", "/bin")
        .output()
        .expect("run imafs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/home\n", "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot enter /home/private/clone"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("starting in /home"), "{stderr}");
}
