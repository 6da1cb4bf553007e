//! `imafs verify` and `imafs status` on lists a real `imafs run` produced: a busybox
//! container that reads and executes files, its lists copied out, then verified against
//! the rootfs (reference tree), a `sha256sum` allowlist made by the real coreutils tool, and
//! a Keylime runtime policy made by `imafs verify --generate-allowlist`; then a changed
//! file, an unknown file, an edited line and a wrong PCR value must each fail, naming what.
//! Inside a container, `imafs verify` reads the live mount and `imafs status` describes it.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = r#"set -e
ima=/sys/kernel/security/ima
cat /etc/app.conf > /dev/null
/opt/app/run.sh
cat $ima/ascii_runtime_measurements > /out/list_sha1
cat $ima/ascii_runtime_measurements_sha256 > /out/list_sha256
cat $ima/binary_runtime_measurements_sha256 > /out/binary_runtime_measurements_sha256
cat $ima/runtime_measurements_count > /out/count
cat $ima/pcrs > /out/pcrs
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
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

/// A busybox rootfs with a config file and a script; `imafs run` (default `tcb` policy:
/// every exec and every read by root) runs SCRIPT in it. Lists land in `out`.
fn run_container(test: &str) -> Option<Fixture> {
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse cannot be opened");
        return None;
    }
    let Some(bb) = busybox().filter(|b| is_static(b)) else {
        common::skip(test, "no static busybox (apt-get install busybox-static)");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("imafs-verify")
        .tempdir()
        .expect("tempdir");
    let root = dir.path().join("root");
    for d in ["bin", "etc", "opt/app", "tmp", "out", "proc", "dev", "sys"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(&bb, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("etc/app.conf"), "listen 8080\n").expect("write");
    std::fs::write(root.join("etc/unused.conf"), "never read\n").expect("write");
    std::fs::write(
        root.join("opt/app/run.sh"),
        "#!/bin/sh\ncat /etc/app.conf > /dev/null\n",
    )
    .expect("write");
    std::fs::set_permissions(
        root.join("opt/app/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "sh", "-c", SCRIPT])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    if !root.join("out/pcrs").exists() {
        common::skip(test, &format!("imafs run did not produce lists: {out:?}"));
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    let out_dir = dir.path().join("out");
    // Keep the lists out of the reference tree.
    std::fs::rename(root.join("out"), &out_dir).expect("move out");
    std::fs::create_dir(root.join("out")).expect("mkdir");
    Some(Fixture {
        _dir: dir,
        root,
        out: out_dir,
    })
}

fn verify(args: &[&str]) -> (i32, String) {
    let out: Output = Command::new(common::imafs_bin())
        .arg("verify")
        .args(args)
        .output()
        .expect("imafs verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The report line of `path` (status, PCR, digest, path).
fn row<'a>(report: &'a str, path: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with("  ") && l.split_whitespace().nth(3) == Some(path))
        .unwrap_or_else(|| panic!("no row for {path}:\n{report}"))
}

#[test]
fn verify_passes_on_an_untouched_container_and_names_what_ran() {
    let test = "verify_passes_on_an_untouched_container_and_names_what_ran";
    let Some(f) = run_container(test) else {
        return;
    };
    let pcrs = f.out.join("pcrs");
    for list in ["list_sha1", "list_sha256"] {
        let (code, report) = verify(&[
            "--ascii",
            p(&f.out.join(list)),
            "--pcrs",
            p(&pcrs),
            "--reference",
            p(&f.root),
        ]);
        assert_eq!(code, 0, "{report}");
        // Executables (executable in the reference) and files read, each checked.
        let execs = report
            .split("executables measured")
            .nth(1)
            .and_then(|s| s.split("other files measured").next())
            .unwrap_or_else(|| panic!("no executables section:\n{report}"));
        assert!(
            execs.contains("/bin/busybox") && execs.contains("/opt/app/run.sh"),
            "{report}"
        );
        assert!(
            row(&report, "/etc/app.conf")
                .trim_start()
                .starts_with("ok "),
            "{report}"
        );
        assert!(!report.contains("/etc/unused.conf"), "{report}");
        // Both banks of the pcrs file replayed and matched.
        assert!(
            report.contains("PCR-10 sha1 ") && report.contains("PCR-10 sha256 "),
            "{report}"
        );
        assert_eq!(report.matches(" matches ").count(), 2, "{report}");
        assert!(report.contains("result: PASS"), "{report}");
    }
    // The binary list, its bank taken from the file name.
    let (code, report) = verify(&[
        "--binary",
        p(&f.out.join("binary_runtime_measurements_sha256")),
        "--pcrs",
        p(&pcrs),
        "--reference",
        p(&f.root),
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("template digests sha256"), "{report}");
    // The list as the usage line gives it (`imafs verify LIST`): the same report as the
    // option that names its kind, for either kind of file, told by its content.
    for (option, list) in [
        ("--ascii", "list_sha256"),
        ("--binary", "binary_runtime_measurements_sha256"),
    ] {
        let path = f.out.join(list);
        let rest = ["--pcrs", p(&pcrs), "--reference", p(&f.root)];
        let named = verify(&[&[option, p(&path)][..], &rest].concat());
        let positional = verify(&[&[p(&path)][..], &rest].concat());
        assert_eq!(named.0, 0, "{}", named.1);
        assert_eq!(positional, named, "{list} given as LIST");
    }

    // A sha256sum allowlist made by coreutils, with the `./path` names it prints.
    if common::have_tool("sha256sum") {
        let sums = Command::new("sh")
            .arg("-c")
            .arg("find . -type f | sort | xargs sha256sum")
            .current_dir(&f.root)
            .output()
            .expect("sha256sum");
        assert!(sums.status.success());
        let allow = f.out.join("sha256sums");
        std::fs::write(&allow, &sums.stdout).expect("write");
        let (code, report) = verify(&[
            "--ascii",
            p(&f.out.join("list_sha1")),
            "--pcrs",
            p(&pcrs),
            "--allowlist",
            p(&allow),
        ]);
        assert_eq!(code, 0, "{report}");
        assert!(
            row(&report, "/bin/busybox").trim_start().starts_with("ok "),
            "{report}"
        );
    }

    // JSON: one entry per list line, all checked, the PCRs matched.
    let (code, json) = verify(&[
        "--ascii",
        p(&f.out.join("list_sha256")),
        "--pcrs",
        p(&pcrs),
        "--reference",
        p(&f.root),
        "--json",
    ]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json report");
    let count: usize = std::fs::read_to_string(f.out.join("count"))
        .expect("count")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(count), "{json}");
    assert_eq!(v["result"], "pass");
    assert!(v["pcrs"]
        .as_array()
        .expect("pcrs")
        .iter()
        .all(|r| r["matches"] == true));
    let run_sh = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["path"] == "/opt/app/run.sh")
        .expect("run.sh entry");
    assert_eq!(run_sh["kind"], "exec");
    assert_eq!(run_sh["status"], "ok");
}

#[test]
fn verify_fails_on_changed_unknown_edited_and_pcr_mismatch() {
    let test = "verify_fails_on_changed_unknown_edited_and_pcr_mismatch";
    let Some(f) = run_container(test) else {
        return;
    };
    let list = f.out.join("list_sha1");
    let pcrs = f.out.join("pcrs");

    // A Keylime runtime policy of the rootfs, boot_aggregate taken from the list.
    let policy = Command::new(common::imafs_bin())
        .args([
            "verify",
            "--generate-allowlist",
            p(&f.root),
            "--ascii",
            p(&list),
        ])
        .output()
        .expect("generate");
    assert!(policy.status.success(), "{policy:?}");
    let v: serde_json::Value = serde_json::from_slice(&policy.stdout).expect("policy json");
    assert_eq!(v["meta"]["version"], 1);
    assert_eq!(v["digests"]["boot_aggregate"][0], "0".repeat(64));
    assert!(v["digests"]["/opt/app/run.sh"][0].is_string(), "{v}");
    let policy_file = f.out.join("policy.json");
    std::fs::write(&policy_file, &policy.stdout).expect("write");
    let (code, report) = verify(&[
        "--ascii",
        p(&list),
        "--pcrs",
        p(&pcrs),
        "--allowlist",
        p(&policy_file),
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(
        row(&report, "boot_aggregate")
            .trim_start()
            .starts_with("ok "),
        "{report}"
    );

    // The file changed in the reference: the measured digest is no longer the expected one.
    std::fs::write(f.root.join("etc/app.conf"), "listen 9090\n").expect("write");
    let (code, report) = verify(&["--ascii", p(&list), "--reference", p(&f.root)]);
    assert_eq!(code, 1, "{report}");
    assert!(
        row(&report, "/etc/app.conf")
            .trim_start()
            .starts_with("CHANGED"),
        "{report}"
    );
    assert!(report.contains("changed (digest differs"), "{report}");
    assert!(report.contains("result: FAIL"), "{report}");

    // A file the allowlist does not know; an `excludes` entry then accepts it.
    let mut v2 = v.clone();
    v2["digests"]
        .as_object_mut()
        .expect("digests")
        .remove("/opt/app/run.sh");
    std::fs::write(&policy_file, v2.to_string()).expect("write");
    let (code, report) = verify(&["--ascii", p(&list), "--allowlist", p(&policy_file)]);
    assert_eq!(code, 1, "{report}");
    assert!(
        row(&report, "/opt/app/run.sh")
            .trim_start()
            .starts_with("UNKNOWN"),
        "{report}"
    );
    assert!(report.contains("unknown (not in the allowlist"), "{report}");
    v2["excludes"] = serde_json::json!(["/opt/app/.*"]);
    std::fs::write(&policy_file, v2.to_string()).expect("write");
    let (code, report) = verify(&["--ascii", p(&list), "--allowlist", p(&policy_file)]);
    assert_eq!(code, 0, "{report}");
    assert!(
        row(&report, "/opt/app/run.sh")
            .trim_start()
            .starts_with("excluded"),
        "{report}"
    );

    // An edited line: the path renamed without recomputing the template digest.
    let text = std::fs::read_to_string(&list).expect("list");
    let edited = f.out.join("edited");
    std::fs::write(&edited, text.replace("/opt/app/run.sh", "/opt/app/ok.sh")).expect("write");
    let (code, report) = verify(&["--ascii", p(&edited), "--pcrs", p(&pcrs)]);
    assert_eq!(code, 1, "{report}");
    assert!(
        row(&report, "/opt/app/ok.sh")
            .trim_start()
            .starts_with("BAD-DIGEST"),
        "{report}"
    );

    // A line dropped from the list: the replay no longer reaches the reported PCRs.
    let dropped: String = text
        .lines()
        .filter(|l| !l.ends_with(" /opt/app/run.sh"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(dropped, text);
    std::fs::write(&edited, dropped).expect("write");
    let (code, report) = verify(&["--ascii", p(&edited), "--pcrs", p(&pcrs)]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report.matches("DIFFERS").count(), 2, "{report}");

    // Unreadable input is exit 2 with the reason.
    std::fs::write(&edited, "10 xyz ima-ng\n").expect("write");
    let (code, report) = verify(&["--ascii", p(&edited)]);
    assert_eq!(code, 2, "{report}");
    assert!(
        report.contains("line 1: template digest is not hex"),
        "{report}"
    );
}

/// Inside a container, both commands read the live securityfs view at its default place,
/// and verify compares with the emulated PCRs.
#[test]
fn verify_and_status_inside_a_container() {
    check_inside_a_container("verify_and_status_inside_a_container", &[]);
}

/// The same in a rootless container (uid 65534 on the host).
#[test]
fn verify_and_status_inside_a_rootless_container() {
    let test = "verify_and_status_inside_a_rootless_container";
    if !common::can_run_as_nobody(test) {
        return;
    }
    check_inside_a_container(test, &common::NOBODY);
}

fn check_inside_a_container(test: &str, prefix: &[&str]) {
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse cannot be opened");
        return;
    }
    let bin = common::imafs_bin();
    let script = format!(
        "cat /etc/hostname > /dev/null 2>&1; {b} verify --quiet --allow-violations; echo verify=$?; {b} status",
        b = bin.display()
    );
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    // Privileged: `imafs status` shows the policy, which only CAP_SYS_ADMIN may read.
    let out = cmd
        .args(["run", "--privileged", "--", "sh", "-c", &script])
        .output()
        .expect("imafs run");
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("verify=") {
        common::skip(test, &format!("imafs run did not start: {out:?}"));
        return;
    }
    assert!(text.contains("verify=0"), "{text}\n{out:?}");
    assert!(
        text.contains("list: /sys/kernel/security/integrity/ima/ascii_runtime_measurements_sha256"),
        "{text}"
    );
    assert!(
        text.contains("PCR-10 sha256 ") && text.contains(" matches "),
        "{text}"
    );
    // status: counts, the tcb policy, the PCRs and the mounts of this container.
    assert!(text.contains("runtime_measurements_count: "), "{text}");
    assert!(
        text.contains("template: ima-ng") && text.contains("file hash: sha256"),
        "{text}"
    );
    assert!(
        text.contains("measure func=BPRM_CHECK mask=MAY_EXEC"),
        "{text}"
    );
    assert!(text.contains("PCRs (imafs `pcrs`):"), "{text}");
    assert!(
        text.contains("/sys/kernel/security securityfs view"),
        "{text}"
    );
    assert!(text.contains("/ overlay (measuring passthrough"), "{text}");
}

/// A violation (ToMToU: a file opened for writing while a measured reader has it open)
/// fails the verification unless allowed; the replay extends it with 0xff as the kernel does,
/// so the PCRs still match.
#[test]
fn verify_reports_violations() {
    let test = "verify_reports_violations";
    let Some(f) = run_container(test) else {
        return;
    };
    let script = "echo one > /tmp/f; exec 3< /tmp/f; echo two > /tmp/f; exec 3<&-; \
                  cat /sys/kernel/security/ima/ascii_runtime_measurements > /out/list; \
                  cat /sys/kernel/security/ima/pcrs > /out/pcrs; \
                  cat /sys/kernel/security/ima/violations > /out/violations";
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(&f.root)
        .args(["--", "sh", "-c", script])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    assert!(out.status.success(), "{out:?}");
    let dir = f.root.join("out");
    assert_eq!(
        std::fs::read_to_string(dir.join("violations")).expect("violations"),
        "1\n"
    );
    let list = dir.join("list");
    let pcrs = dir.join("pcrs");
    let (code, report) = verify(&["--ascii", p(&list), "--pcrs", p(&pcrs)]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("\n  VIOLATION  10 - /tmp/f\n"), "{report}");
    assert!(
        report.contains("violations (ToMToU or open_writers): 1"),
        "{report}"
    );
    assert_eq!(report.matches(" matches ").count(), 2, "{report}");
    let (code, report) = verify(&[
        "--ascii",
        p(&list),
        "--pcrs",
        p(&pcrs),
        "--allow-violations",
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("1 violation (allowed)"), "{report}");
}

/// Against a kernel's securityfs (only the kernel's files: no `pcrs`, `keys`, `active`; a
/// write-only `policy`), status says what is missing instead of failing.
#[test]
fn status_of_a_kernel_like_securityfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ima = dir.path().join("integrity/ima");
    std::fs::create_dir_all(&ima).expect("mkdir");
    let zeros = "0".repeat(64);
    std::fs::write(
        ima.join("ascii_runtime_measurements"),
        format!(
            "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:{zeros} boot_aggregate\n\
             10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /tmp/hello\n"
        ),
    )
    .expect("write");
    std::fs::write(ima.join("runtime_measurements_count"), "2\n").expect("write");
    std::fs::write(ima.join("violations"), "0\n").expect("write");
    let out = Command::new(common::imafs_bin())
        .arg("status")
        .arg("--securityfs")
        .arg(dir.path())
        .output()
        .expect("imafs status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for expected in [
        "runtime_measurements_count: 2",
        "violations: 0",
        "template: ima-ng",
        "file hash: sha256",
        "policy: no policy file",
        "keys: no `keys` file",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    // No IMA files at all: exit 2 with the reason.
    std::fs::create_dir(ima.join("none")).expect("mkdir");
    let out = Command::new(common::imafs_bin())
        .args(["status", "--securityfs"])
        .arg(dir.path().join("integrity/ima/none"))
        .output()
        .expect("imafs status");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no IMA securityfs here"));
}
