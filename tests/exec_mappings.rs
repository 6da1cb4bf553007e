//! What FUSE never sees, measured through the container's seccomp listener as a kernel
//! measures it (security/integrity/ima/ima_main.c: `ima_file_mmap`, `ima_file_mprotect`,
//! `ima_bprm_check`), with real programs: a user's `ls` mapping its libraries, programs run
//! from a container's own `/dev/shm` and from a memfd, the ELF interpreter (FILE_CHECK and
//! MMAP_CHECK, never BPRM_CHECK), an unsigned library under `appraise func=MMAP_CHECK`,
//! `mprotect` to PROT_EXEC, a task killed while its call waits, nested containers, and what
//! a root container may not do any more (Podman's default capabilities, a private `/dev`).
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const LIST: &str = "/sys/kernel/security/integrity/ima/ascii_runtime_measurements_sha256";

/// `imafs run ARGS -- sh -c SCRIPT` over the host's root.
fn run_host(args: &[&str], script: &str) -> Output {
    Command::new(common::imafs_bin())
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("imafs run")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The paths of a list's records.
fn paths(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

/// A policy file in `dir`, the securityfs view left out as the kernel's own policies do.
fn policy(dir: &Path, rules: &str) -> PathBuf {
    let p = dir.join("policy");
    std::fs::write(&p, format!("dont_measure fsmagic=0x73636673\n{rules}")).expect("policy");
    p
}

fn host_root(test: &str) -> bool {
    if !common::is_root() || !common::fuse_available() {
        common::skip(
            test,
            "needs root and /dev/fuse (the rootfs is the host's /)",
        );
        return false;
    }
    true
}

/// [`host_root`], and the host's Python to run in the container.
fn host_python(test: &str) -> bool {
    if !host_root(test) {
        return false;
    }
    if !Path::new("/usr/bin/python3").exists() {
        common::skip(test, "needs /usr/bin/python3");
        return false;
    }
    true
}

/// A directory for a test's files, on the build tree's file system (not a tmpfs, which the
/// policies used here may treat apart).
fn work_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("imafs-test")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp")
}

/// The canonical path of the libselinux `ls` maps (a skip when there is none).
fn libselinux(test: &str) -> Option<PathBuf> {
    let found = [
        "/usr/lib/x86_64-linux-gnu/libselinux.so.1",
        "/lib/x86_64-linux-gnu/libselinux.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        common::skip(test, "no libselinux.so.1 (ls is not linked with it here)");
    }
    found.and_then(|p| std::fs::canonicalize(p).ok())
}

/// The kernel's `tcb` policy measures a library a non-root program maps executable (its
/// `measure func=MMAP_CHECK mask=MAY_EXEC` rule): `ls` run as uid 1000 maps libselinux,
/// which no root process of the container reads. Without the listener it is missing.
#[test]
fn a_user_s_libraries_are_measured_when_mapped() {
    let test = "a_user_s_libraries_are_measured_when_mapped";
    if !host_root(test) || !common::have_tool("setpriv") {
        return;
    }
    let Some(lib) = [
        "/usr/lib/x86_64-linux-gnu/libselinux.so.1",
        "/lib/x86_64-linux-gnu/libselinux.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists()) else {
        common::skip(test, "no libselinux.so.1 (ls is not linked with it here)");
        return;
    };
    let lib = std::fs::canonicalize(lib).expect("canonical");
    let script = format!(
        "setpriv --reuid 1000 --regid 1000 --clear-groups /usr/bin/ls / > /dev/null && cat {LIST}"
    );
    let list = ok(&run_host(&[], &script));
    let record = format!("sha256:{} {}", sha256_hex(&lib), lib.display());
    assert!(
        list.lines().filter(|l| l.ends_with(&record)).count() == 1,
        "{record} missing or repeated:\n{list}"
    );
    let unwatched = ok(&run_host(&["--no-exec-watch"], &script));
    assert!(
        !unwatched.contains(&record),
        "without the listener the mapping is invisible (the control): {unwatched}"
    );
}

/// A program copied to the container's own `/dev/shm` (a tmpfs the overlay never sees) and
/// one run from a memfd are recorded under `measure func=BPRM_CHECK`; under an appraise rule
/// for tmpfs the unsigned copy is refused (EACCES), while the overlay's programs run.
#[test]
fn programs_outside_the_overlay_are_measured_and_appraised() {
    let test = "programs_outside_the_overlay_are_measured_and_appraised";
    if !host_python(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp");
    let measure = policy(dir.path(), "measure func=BPRM_CHECK\n");
    let memfd = "import os\n\
        fd = os.memfd_create('from-memory')\n\
        os.write(fd, open('/usr/bin/true', 'rb').read())\n\
        pid = os.fork()\n\
        if pid == 0:\n    os.execve(fd, ['true'], {})\n\
        print('memfd', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n";
    let script = format!(
        "cp /usr/bin/true /dev/shm/t && /dev/shm/t && echo shm ok && \
         /usr/bin/python3 -c \"{memfd}\" && cat {LIST}"
    );
    let out = ok(&run_host(
        &["--policy", measure.to_str().expect("utf-8")],
        &script,
    ));
    let digest = sha256_hex(Path::new("/usr/bin/true"));
    assert!(out.contains("shm ok") && out.contains("memfd 0"), "{out}");
    for name in ["/dev/shm/t", "memfd:from-memory"] {
        let record = format!("sha256:{digest} {name}");
        assert!(
            out.lines().any(|l| l.ends_with(&record)),
            "{record}:\n{out}"
        );
    }

    let appraise = policy(
        dir.path(),
        "measure func=BPRM_CHECK\nappraise func=BPRM_CHECK fsmagic=0x01021994 appraise_type=imasig\n",
    );
    let script = format!(
        "cp /usr/bin/true /dev/shm/t; /dev/shm/t 2> /dev/null; echo rc=$?; /usr/bin/true && \
         echo overlay ok; cat {LIST}"
    );
    let out = ok(&run_host(
        &[
            "--appraise",
            "enforce",
            "--policy",
            appraise.to_str().expect("utf-8"),
        ],
        &script,
    ));
    assert!(
        out.contains("rc=126"),
        "the unsigned copy must be refused: {out}"
    );
    assert!(out.contains("overlay ok"), "{out}");
    // Measured before appraisal refused it, as process_measurement does.
    assert!(
        out.lines()
            .any(|l| l.ends_with(&format!("sha256:{digest} /dev/shm/t"))),
        "{out}"
    );
}

/// A `#!` script's interpreter is a bprm file (BPRM_CHECK); the ELF interpreter is not:
/// under `measure func=BPRM_CHECK` the list holds the script and dash, not ld-linux.
#[test]
fn a_script_interpreter_is_bprm_check_and_ld_linux_is_not() {
    let test = "a_script_interpreter_is_bprm_check_and_ld_linux_is_not";
    if !host_root(test) || !Path::new("/usr/bin/dash").exists() {
        return;
    }
    let dir = work_dir();
    let script_file = dir.path().join("hello.sh");
    std::fs::write(&script_file, "#!/usr/bin/dash\nexit 0\n").expect("write");
    std::fs::set_permissions(&script_file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let measure = policy(dir.path(), "measure func=BPRM_CHECK\n");
    let out = ok(&run_host(
        &["--policy", measure.to_str().expect("utf-8")],
        &format!("{} && cat {LIST}", script_file.display()),
    ));
    let recorded = paths(&out);
    assert!(
        recorded.contains(&script_file.display().to_string()),
        "{out}"
    );
    assert!(recorded.iter().any(|p| p == "/usr/bin/dash"), "{out}");
    assert!(
        !recorded.iter().any(|p| p.contains("ld-linux")),
        "the ELF interpreter is not BPRM_CHECK: {out}"
    );
}

/// A rootfs of static busybox plus `/usr/bin/true` with its loader and libc (copies).
fn dynamic_rootfs(test: &str) -> Option<tempfile::TempDir> {
    let root = common::busybox_rootfs(test, &["sh", "echo", "cat"])?;
    let files = [
        ("/usr/bin/true", "usr/bin/true"),
        ("/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu/libc.so.6",
        ),
    ];
    for (host, inside) in files {
        if !Path::new(host).exists() {
            common::skip(test, &format!("{host} missing (not x86-64 Debian)"));
            return None;
        }
        let to = root.path().join(inside);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(host, &to).expect("copy");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    Some(root)
}

/// An unprivileged `imafs run` (uid 65534, a user namespace) installs the filter too (it
/// holds CAP_SYS_ADMIN in its user namespace until the command's exec) and serves it: the
/// loader's mapping of libc is recorded under `measure func=MMAP_CHECK`.
#[test]
fn an_unprivileged_run_measures_exec_mappings() {
    let test = "an_unprivileged_run_measures_exec_mappings";
    if !common::can_run_as_nobody(test) {
        return;
    }
    let Some(root) = dynamic_rootfs(test) else {
        return;
    };
    let policy = policy(root.path(), "measure func=MMAP_CHECK mask=MAY_EXEC\n");
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(common::NOBODY[0])
        .args(&common::NOBODY[1..])
        .arg(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(root.path())
        .arg("--policy")
        .arg(&policy)
        .args(["--", "sh", "-c"])
        .arg(format!(
            "/usr/bin/true && cat /sys/kernel/security/imafs/exec_watch {LIST}"
        ))
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    let text = ok(&out);
    assert!(text.starts_with("measured\n"), "{text}");
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    let record = format!(
        "sha256:{} /lib/x86_64-linux-gnu/libc.so.6",
        sha256_hex(libc)
    );
    assert!(
        text.lines().any(|l| l.ends_with(&record)),
        "{record}: {text}"
    );
}

/// A signing key whose certificate the daemon is given, over [`dynamic_rootfs`].
struct SignedTree {
    root: tempfile::TempDir,
    keys: tempfile::TempDir,
    signer: Signer,
}

/// A P-256 key made by `openssl` in `DIR/certs`, whose certificate the daemon is given
/// (`--keys`), signing files with `evmctl ima_sign`.
struct Signer {
    pem: PathBuf,
    cert: PathBuf,
}

impl Signer {
    /// `None` (after a skip) without evmctl and openssl.
    fn new(test: &str, dir: &Path) -> Option<Signer> {
        if let Some(tool) = ["evmctl", "openssl"]
            .into_iter()
            .find(|t| !common::have_tool(t))
        {
            common::skip(test, &format!("{tool} not installed"));
            return None;
        }
        let certs = dir.join("certs");
        std::fs::create_dir(&certs).expect("mkdir");
        let pem = common::signing_key(
            dir,
            Some(&certs),
            "exec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        Some(Signer {
            pem,
            cert: certs.join("exec.der"),
        })
    }

    fn sign(&self, file: &Path) {
        common::run_ok(
            Command::new("evmctl")
                .args(["ima_sign", "-a", "sha256", "--key"])
                .arg(&self.pem)
                .arg(file),
        );
    }
}

impl SignedTree {
    fn new(test: &str) -> Option<SignedTree> {
        if !common::is_root() {
            common::skip(test, "needs root to write security.ima on the rootfs");
            return None;
        }
        let keys = tempfile::tempdir().expect("temp");
        let signer = Signer::new(test, keys.path())?;
        let root = dynamic_rootfs(test)?;
        Some(SignedTree { root, keys, signer })
    }

    fn sign(&self, inside: &str) {
        self.signer.sign(&self.root.path().join(inside));
    }

    fn run(&self, rules: &str, script: &str) -> Output {
        let policy = policy(
            self.keys.path(),
            &format!("dont_appraise fsmagic=0x73636673\n{rules}"),
        );
        common::run_sh_in(
            self.root.path(),
            &[
                "--appraise",
                "enforce",
                "--keys",
                self.signer.cert.to_str().expect("utf-8"),
                "--policy",
                policy.to_str().expect("utf-8"),
            ],
            script,
        )
    }
}

/// Under `appraise func=MMAP_CHECK appraise_type=imasig` a library without a signature fails
/// to load (the loader's mmap gets EACCES), and loads once signed. The program and its
/// loader are mapped by the kernel at exec (MMAP_CHECK too), so they are signed first.
#[test]
fn an_unsigned_library_fails_to_map_and_a_signed_one_loads() {
    let test = "an_unsigned_library_fails_to_map_and_a_signed_one_loads";
    let Some(t) = SignedTree::new(test) else {
        return;
    };
    for file in ["bin/busybox", "usr/bin/true", "lib64/ld-linux-x86-64.so.2"] {
        t.sign(file);
    }
    let rules = "appraise func=MMAP_CHECK appraise_type=imasig\n";
    let out = t.run(rules, "/usr/bin/true; echo rc=$?");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("rc=127"), "{stdout}{stderr}");
    assert!(
        stderr.contains("error while loading shared libraries: libc.so.6")
            && stderr.contains("failed to map segment from shared object"),
        "{stderr}"
    );
    t.sign("lib/x86_64-linux-gnu/libc.so.6");
    let out = t.run(rules, "/usr/bin/true; echo rc=$?");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "{out:?}"
    );
}

/// `appraise func=BPRM_CHECK appraise_type=imasig` requires the program's signature, not its
/// loader's: a signed program with an unsigned `ld-linux` runs, as on a kernel; unsigned,
/// it is refused.
#[test]
fn a_signed_program_runs_with_an_unsigned_loader() {
    let test = "a_signed_program_runs_with_an_unsigned_loader";
    let Some(t) = SignedTree::new(test) else {
        return;
    };
    t.sign("bin/busybox");
    let rules = "appraise func=BPRM_CHECK appraise_type=imasig\n";
    let out = t.run(rules, "/usr/bin/true 2> /dev/null; echo rc=$?");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=126"),
        "{out:?}"
    );
    t.sign("usr/bin/true");
    let out = t.run(rules, "/usr/bin/true; echo rc=$?");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "{out:?}"
    );
}

/// `ima_file_mprotect`: making a file mapping executable is refused (EPERM) when an appraise
/// rule covers the file for MMAP_CHECK, with a `failed-mprotect` audit record, and measures
/// nothing; a file no rule covers is made executable. A direct PROT_EXEC mapping of the
/// unsigned file fails with EACCES.
#[test]
fn mprotect_to_exec_follows_ima_file_mprotect() {
    let test = "mprotect_to_exec_follows_ima_file_mprotect";
    if !host_python(test) {
        return;
    }
    let dir = work_dir();
    for (name, owner) in [("covered", 4242), ("other", 4243)] {
        let p = dir.path().join(name);
        std::fs::write(&p, vec![0xc3u8; 8192]).expect("write");
        std::os::unix::fs::chown(&p, Some(owner), Some(owner)).expect("chown");
    }
    let audit = dir.path().join("audit");
    let rules = policy(
        dir.path(),
        "appraise func=MMAP_CHECK fowner=4242 appraise_type=imasig\n\
         measure func=MMAP_CHECK fowner=4243\n",
    );
    let probe = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]\n\
         for name in ['covered', 'other']:\n\
         \x20   fd = os.open('{d}/' + name, os.O_RDONLY)\n\
         \x20   addr = libc.mmap(None, 4096, 1, 2, fd, 0)\n\
         \x20   rc = libc.mprotect(addr, 4096, 5)\n\
         \x20   print(name, 'mprotect', rc, ctypes.get_errno() if rc else 0)\n\
         \x20   ctypes.set_errno(0)\n\
         \x20   exe = libc.mmap(None, 4096, 5, 2, fd, 0)\n\
         \x20   print(name, 'mmap', 'failed' if exe in (None, 2**64 - 1) else 'ok', ctypes.get_errno())\n",
        d = dir.path().display()
    );
    let out = ok(&run_host(
        &[
            "--appraise",
            "enforce",
            "--policy",
            rules.to_str().expect("utf-8"),
            "--audit",
            audit.to_str().expect("utf-8"),
        ],
        &format!("/usr/bin/python3 -c \"{probe}\" && cat {LIST}"),
    ));
    assert!(
        out.contains(&format!("covered mprotect -1 {}", libc::EPERM)),
        "{out}"
    );
    assert!(out.contains("other mprotect 0 0"), "{out}");
    assert!(
        out.contains(&format!("covered mmap failed {}", libc::EACCES)),
        "{out}"
    );
    assert!(out.contains("other mmap ok"), "{out}");
    let recorded = paths(&out);
    let other = dir.path().join("other").display().to_string();
    assert_eq!(
        recorded.iter().filter(|p| **p == other).count(),
        1,
        "the PROT_EXEC mmap measures, the mprotect did not: {out}"
    );
    let audit = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        audit.contains("cause=\"failed-mprotect\"") || audit.contains("cause=failed-mprotect"),
        "{audit}"
    );
}

/// A task killed while its mapping waits for the daemon (a large file being hashed) leaves
/// the daemon serving: later execs and mappings are answered and recorded.
#[test]
fn a_task_killed_while_its_call_waits_leaves_the_daemon_serving() {
    let test = "a_task_killed_while_its_call_waits_leaves_the_daemon_serving";
    if !host_python(test) {
        return;
    }
    let dir = work_dir();
    let big = dir.path().join("big");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(512 << 20).expect("size");
    drop(f);
    let rules = policy(
        dir.path(),
        "measure func=MMAP_CHECK\nmeasure func=BPRM_CHECK\n",
    );
    let probe = format!(
        "import mmap, os, signal, subprocess, time\n\
         for _ in range(3):\n\
         \x20   pid = os.fork()\n\
         \x20   if pid == 0:\n\
         \x20       fd = os.open('{big}', os.O_RDONLY)\n\
         \x20       mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n\
         \x20       os._exit(0)\n\
         \x20   time.sleep(0.05)\n\
         \x20   os.kill(pid, signal.SIGKILL)\n\
         \x20   os.waitpid(pid, 0)\n\
         print('after', subprocess.run(['/usr/bin/true']).returncode)\n",
        big = big.display()
    );
    let out = ok(&run_host(
        &["--policy", rules.to_str().expect("utf-8")],
        &format!("/usr/bin/python3 -c \"{probe}\" && /usr/bin/echo still && cat {LIST}"),
    ));
    assert!(out.contains("after 0") && out.contains("still"), "{out}");
    assert!(paths(&out).iter().any(|p| p == "/usr/bin/echo"), "{out}");
}

/// Nested, three levels: the innermost container runs under the outermost listener (a task
/// has one), which records its mappings and passes them down, so each namespace's list has
/// libselinux, which only the innermost `ls` maps, once, under its own name for the file
/// (every level shows the host's `/`). Only mappings are measured here: the opens that
/// reach every ancestor anyway would hide a missing record.
#[test]
fn every_namespace_records_a_nested_container_s_mappings() {
    let test = "every_namespace_records_a_nested_container_s_mappings";
    if !host_root(test) {
        return;
    }
    let Some(lib) = libselinux(test) else {
        return;
    };
    let dir = work_dir();
    let rules = policy(dir.path(), "measure func=MMAP_CHECK mask=MAY_EXEC\n");
    let run = format!(
        "{} run --policy {}",
        common::imafs_bin().display(),
        rules.display()
    );
    // A namespace's record of a nested mapping comes after the call was answered: wait
    // for it (at most 10 s) before showing the list. One script per level.
    let script = |name: &str, first: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nset -e\n{first}\n\
                 for i in $(seq 200); do grep -q libselinux {LIST} && break; sleep 0.05; done\n\
                 echo == {name}\ncat /sys/kernel/security/imafs/exec_watch {LIST}\n"
            ),
        )
        .expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    };
    let grandchild = script("grandchild", "/usr/bin/ls / > /dev/null");
    let child = script("child", &format!("{run} -- {grandchild}"));
    let top = script("top", &format!("{run} -- {child}"));
    let out = ok(&run_host(
        &["--policy", rules.to_str().expect("utf-8")],
        &top,
    ));
    let record = format!("sha256:{} {}", sha256_hex(&lib), lib.display());
    for level in ["grandchild", "child", "top"] {
        let list = out
            .split(&format!("== {level}\n"))
            .nth(1)
            .and_then(|rest| rest.split("== ").next())
            .unwrap_or_else(|| panic!("no {level} list: {out}"));
        assert!(list.starts_with("measured\n"), "{level}: {out}");
        let n = list.lines().filter(|l| l.ends_with(&record)).count();
        assert_eq!(n, 1, "{level}: {record} recorded {n} times:\n{out}");
    }
}

/// `imafs run` as root gives the container what Podman gives by default: its capability set,
/// a private `/dev` (no disks, its own `/dev/shm`), no mounting; `--privileged` keeps the
/// host's `/dev` and every capability.
#[test]
fn a_root_container_gets_a_container_s_privileges() {
    let test = "a_root_container_gets_a_container_s_privileges";
    if !host_root(test) {
        return;
    }
    let marker = format!("/dev/shm/imafs-test-{}", std::process::id());
    std::fs::write(&marker, "host\n").expect("marker");
    let script = format!(
        "grep CapEff /proc/self/status; ls /dev | tr '\\n' ' '; echo; \
         test -e {marker} && echo host-shm; mount -t tmpfs none /mnt 2> /dev/null && echo mounted; \
         true"
    );
    let out = ok(&run_host(&[], &script));
    let privileged = ok(&run_host(&["--privileged"], &script));
    let _ = std::fs::remove_file(&marker);
    assert!(out.contains("CapEff:\t00000000800405fb"), "{out}");
    assert!(
        !out.contains("host-shm"),
        "the host's /dev/shm is reachable: {out}"
    );
    assert!(!out.contains("mounted"), "{out}");
    let devs: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
    ] {
        assert!(devs.contains(&d), "/dev/{d} missing: {devs:?}");
    }
    assert!(
        !devs.iter().any(|d| d.starts_with("sd")
            || d.starts_with("vd")
            || d.starts_with("nvme")
            || *d == "mem"
            || *d == "kmsg"),
        "{devs:?}"
    );
    assert!(
        privileged.contains("host-shm") && privileged.contains("mounted"),
        "{privileged}"
    );
}

/// The files `ldd` says `program` loads (libraries and the loader), canonical.
fn loaded_files(program: &str) -> Vec<PathBuf> {
    let out = common::run_ok(Command::new("ldd").arg(program));
    let mut files: Vec<PathBuf> = out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=> ") {
                Some((_, rest)) => rest.split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    files.push(std::fs::canonicalize(program).expect("program"));
    files
}

/// The kernel's own expectation under `tcb` (LTP's ima_measurements pattern): a dynamically
/// linked program run as root, and as a user, gives the program, each of its libraries and
/// the loader in the list, each exactly once.
#[test]
fn a_dynamic_program_records_each_file_once_as_root_and_as_a_user() {
    let test = "a_dynamic_program_records_each_file_once_as_root_and_as_a_user";
    if !host_root(test) || !common::have_tool("setpriv") || !common::have_tool("ldd") {
        return;
    }
    let files = loaded_files("/usr/bin/ls");
    assert!(files.len() >= 3, "{files:?}");
    for (who, run) in [
        ("root", "/usr/bin/ls / > /dev/null"),
        (
            "uid 1000",
            "setpriv --reuid 1000 --regid 1000 --clear-groups /usr/bin/ls / > /dev/null",
        ),
    ] {
        let list = ok(&run_host(&[], &format!("{run} && cat {LIST}")));
        let recorded = paths(&list);
        for file in &files {
            let name = file.display().to_string();
            let n = recorded.iter().filter(|p| **p == name).count();
            assert_eq!(n, 1, "{who}: {name} recorded {n} times:\n{list}");
        }
    }
}

/// Bad calls keep the kernel's own errnos through the listener (a closed descriptor, a NULL
/// or too long path, a directory, a missing file): the same as natively, and the daemon
/// keeps serving.
#[test]
fn bad_calls_get_the_kernel_s_errnos() {
    let test = "bad_calls_get_the_kernel_s_errnos";
    if !host_python(test) {
        return;
    }
    let probe = "import ctypes, os\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        libc.mmap.restype = ctypes.c_void_p\n\
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]\n\
        libc.execve.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]\n\
        def errno(f):\n    ctypes.set_errno(0); f(); return ctypes.get_errno()\n\
        print('mmap-badfd', errno(lambda: libc.mmap(None, 4096, 5, 2, 999, 0)))\n\
        print('mprotect-unmapped', errno(lambda: libc.mprotect(4096, 4096, 5)))\n\
        print('execve-null', errno(lambda: libc.execve(None, None, None)))\n\
        print('execve-missing', errno(lambda: libc.execve(b'/nonexistent/x', None, None)))\n\
        print('execve-dir', errno(lambda: libc.execve(b'/tmp', None, None)))\n\
        print('execve-long', errno(lambda: libc.execve(b'/' + b'x' * 5000, None, None)))\n";
    let native = common::run_ok(Command::new("/usr/bin/python3").args(["-c", probe]));
    let contained = ok(&run_host(
        &[],
        &format!("/usr/bin/python3 -c \"{probe}\" && /usr/bin/true && echo served"),
    ));
    assert!(native.contains("mmap-badfd 9"), "{native}");
    assert_eq!(contained, format!("{native}served\n"));
}

/// A mapping made by a thread that is not its process's leader (`pidfd_open` refuses a
/// thread id before Linux 6.9) is measured like any other.
#[test]
fn a_thread_s_mapping_is_measured() {
    let test = "a_thread_s_mapping_is_measured";
    if !host_python(test) {
        return;
    }
    let dir = work_dir();
    let lib = dir.path().join("code.bin");
    std::fs::write(&lib, b"\xc3 thread-mapped code\n").expect("write");
    let rules = policy(dir.path(), "measure func=MMAP_CHECK mask=MAY_EXEC\n");
    let probe = format!(
        "import mmap, os, threading\n\
         def map_it():\n\
         \x20   fd = os.open('{lib}', os.O_RDONLY)\n\
         \x20   mmap.mmap(fd, 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n\
         t = threading.Thread(target=map_it)\n\
         t.start()\n\
         t.join()\n",
        lib = lib.display()
    );
    let out = ok(&run_host(
        &["--policy", rules.to_str().expect("utf-8")],
        &format!("/usr/bin/python3 -c \"{probe}\" && cat {LIST}"),
    ));
    let record = format!("sha256:{} {}", sha256_hex(&lib), lib.display());
    assert!(out.lines().any(|l| l.ends_with(&record)), "{record}: {out}");
}

/// `mmap_violation_check`: a signed file passes `appraise func=MMAP_CHECK`, but not while it
/// is mapped writable and shared (EACCES under enforce, a `mmapped_writers` audit record);
/// the pattern of ima-evm-utils' MMAP_CHECK tests.
#[test]
fn an_exec_mapping_of_a_writably_mapped_file_is_refused() {
    let test = "an_exec_mapping_of_a_writably_mapped_file_is_refused";
    if !host_python(test) {
        return;
    }
    let dir = work_dir();
    let Some(signer) = Signer::new(test, dir.path()) else {
        return;
    };
    let code = dir.path().join("code.bin");
    std::fs::write(&code, vec![0xc3u8; 4096]).expect("write");
    std::os::unix::fs::chown(&code, Some(4242), Some(4242)).expect("chown");
    signer.sign(&code);
    let audit = dir.path().join("audit");
    let rules = policy(
        dir.path(),
        "appraise func=MMAP_CHECK fowner=4242 appraise_type=imasig\n",
    );
    let probe = format!(
        "import ctypes, mmap, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         def exec_map():\n\
         \x20   fd = os.open('{f}', os.O_RDONLY)\n\
         \x20   ctypes.set_errno(0)\n\
         \x20   p = libc.mmap(None, 4096, 5, 2, fd, 0)\n\
         \x20   os.close(fd)\n\
         \x20   return 'ok' if p not in (None, 2**64 - 1) else 'errno %d' % ctypes.get_errno()\n\
         print('alone', exec_map())\n\
         w = os.open('{f}', os.O_RDWR)\n\
         shared = mmap.mmap(w, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n\
         print('while-shared', exec_map())\n",
        f = code.display()
    );
    let out = ok(&run_host(
        &[
            "--appraise",
            "enforce",
            "--keys",
            signer.cert.to_str().expect("utf-8"),
            "--policy",
            rules.to_str().expect("utf-8"),
            "--audit",
            audit.to_str().expect("utf-8"),
        ],
        &format!("/usr/bin/python3 -c \"{probe}\""),
    ));
    assert!(out.contains("alone ok"), "{out}");
    assert!(
        out.contains(&format!("while-shared errno {}", libc::EACCES)),
        "{out}"
    );
    let audit = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(audit.contains("mmapped_writers"), "{audit}");
}

/// READ_IMPLIES_EXEC makes later PROT_READ mappings executable with no call the filter can
/// see: setting it is said (the log, `imafs/exec_watch`), not silent.
#[test]
fn read_implies_exec_is_reported() {
    let test = "read_implies_exec_is_reported";
    if !host_python(test) {
        return;
    }
    let probe = "import ctypes\n\
        libc = ctypes.CDLL(None)\n\
        libc.personality(0xffffffff)\n\
        libc.personality(0x0400000)\n";
    let out = run_host(
        &[],
        &format!(
            "cat /sys/kernel/security/imafs/exec_watch; /usr/bin/python3 -c \"{probe}\"; \
             cat /sys/kernel/security/imafs/exec_watch"
        ),
    );
    let text = ok(&out);
    assert_eq!(
        text,
        "measured\nmeasured, but 1 calls could not be checked (see the log)\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("READ_IMPLIES_EXEC"),
        "{out:?}"
    );
}

/// Under load (64 and 256 processes at once, each running a dynamically linked program as
/// a user), every exec and mapping is answered in time, the programs all succeed, the
/// library only their mappings measure is recorded once, and nothing is a violation.
#[test]
fn execs_and_mappings_under_load() {
    let test = "execs_and_mappings_under_load";
    if !host_python(test) || !common::have_tool("setpriv") {
        return;
    }
    let Some(lib) = libselinux(test) else {
        return;
    };
    for procs in [64, 256] {
        let probe = format!(
            "import subprocess\n\
             user = ['setpriv', '--reuid', '1000', '--regid', '1000', '--clear-groups']\n\
             cmds = [user + ['/usr/bin/ls', '/'] for i in range({procs})]\n\
             ps = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in cmds]\n\
             print('failed', sum(p.wait() != 0 for p in ps))\n"
        );
        let out = ok(&run_host(
            &[],
            &format!(
                "timeout 120 /usr/bin/python3 -c \"{probe}\" && \
                 cat /sys/kernel/security/ima/violations {LIST}"
            ),
        ));
        assert!(out.starts_with("failed 0\n0\n"), "{procs} processes: {out}");
        let name = lib.display().to_string();
        let n = paths(&out).iter().filter(|p| **p == name).count();
        assert_eq!(n, 1, "{procs} processes: {name} recorded {n} times");
    }
}
