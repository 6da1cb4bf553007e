//! Configuring a namespace before its first process (README "Configuring a namespace before
//! its first process"): the user-namespace series' `active` file with `imafs run
//! --inactive`, and Huawei's `*_for_children` staging files, through real mounts.
mod common;

use std::path::Path;
use std::process::Command;

const APPLETS: &[&str] = &["sh", "cat", "echo", "printf", "dd"];

fn out(rootfs: &Path, name: &str) -> String {
    std::fs::read_to_string(rootfs.join("out").join(name))
        .unwrap_or_else(|e| panic!("/out/{name} not written: {e}"))
}

/// Inside an inactive namespace: its policy can be set, nothing is measured, `active`
/// reads 0; `echo 1 > active` starts it with a boot aggregate; a second activation is
/// EBUSY, any other value EINVAL (as `ima_write_active`).
const ACTIVE_SCRIPT: &str = r#"
ima=/sys/kernel/security/integrity/ima
cat $ima/active > /out/active0
echo 'measure func=FILE_CHECK mask=MAY_READ' > $ima/policy || echo policy-refused > /out/err
cat /etc/one > /dev/null
cat $ima/runtime_measurements_count > /out/count0
echo 2 > $ima/active 2> /out/err_two
echo 1 > $ima/active || echo activation-failed >> /out/err
cat $ima/active > /out/active1
echo 1 > $ima/active 2> /out/err_again
cat /etc/two > /dev/null
cat $ima/ascii_runtime_measurements_sha256 > /out/list
exit 0
"#;

fn check_active(test: &str, prefix: &[&str]) {
    let Some(dir) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let root = dir.path();
    std::fs::write(root.join("etc/one"), "one\n").expect("write");
    std::fs::write(root.join("etc/two"), "two\n").expect("write");
    if !prefix.is_empty() {
        // The unprivileged container's root is the caller: give it the tree.
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(root)
            .status()
            .expect("chown");
        assert!(status.success());
    }
    let bin = common::imafs_bin();
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let o = cmd
        .arg("run")
        .arg("--rootfs")
        .arg(root)
        .args(["--inactive", "--", "sh", "-c", ACTIVE_SCRIPT])
        .env("PATH", "/bin")
        .output()
        .expect("run imafs");
    assert!(
        o.status.success(),
        "{test}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!root.join("out/err").exists(), "{}", out(root, "err"));
    // The series' read: scnprintf into a 2-byte buffer, so no newline.
    assert_eq!(out(root, "active0"), "0");
    assert_eq!(
        out(root, "count0"),
        "0\n",
        "nothing is measured while inactive"
    );
    assert!(
        out(root, "err_two").contains("Invalid argument"),
        "{}",
        out(root, "err_two")
    );
    assert_eq!(out(root, "active1"), "1");
    assert!(
        out(root, "err_again").contains("busy"),
        "{}",
        out(root, "err_again")
    );
    let list = out(root, "list");
    let paths: Vec<&str> = list
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(paths.first(), Some(&"boot_aggregate"), "{list}");
    assert!(paths.contains(&"/etc/two"), "{list}");
    assert!(
        !paths.contains(&"/etc/one"),
        "read before activation: {list}"
    );
}

#[test]
fn active_gates_an_inactive_namespace() {
    check_active("active_gates_an_inactive_namespace", &[]);
}

#[test]
fn active_gates_an_inactive_namespace_unprivileged() {
    let test = "active_gates_an_inactive_namespace_unprivileged";
    if !common::can_run_as_nobody(test) {
        return;
    }
    check_active(test, &common::NOBODY);
}

/// The staging files: write-only, one write at offset 0 of a path (policy, certificate) or
/// of `ima_*=` options; bad input is refused with the errno and nothing is staged. What is
/// staged is handed to the next child namespace (tests/nested.rs).
const STAGE_SCRIPT: &str = r#"
ima=/sys/kernel/security/integrity/ima
dd if=$ima/kcmd_for_children of=/dev/null 2> /out/err_read
echo ima_hash=nope > $ima/kcmd_for_children 2> /out/err_kcmd
echo 'ima_appraise=log ima_hash=sha512' > $ima/kcmd_for_children || echo kcmd >> /out/err
echo /etc/missing > $ima/policy_for_children 2> /out/err_missing
echo /etc/bad_policy > $ima/policy_for_children 2> /out/err_bad_policy
echo /etc/child_policy > $ima/policy_for_children || echo policy >> /out/err
echo /etc/one > $ima/x509_for_children 2> /out/err_cert
exit 0
"#;

#[test]
fn for_children_files_validate_what_they_stage() {
    let test = "for_children_files_validate_what_they_stage";
    let Some(dir) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let root = dir.path();
    std::fs::write(root.join("etc/one"), "one\n").expect("write");
    std::fs::write(root.join("etc/bad_policy"), "measure func=NOPE\n").expect("write");
    std::fs::write(root.join("etc/child_policy"), "measure func=BPRM_CHECK\n").expect("write");
    let o = common::run_sh_in(root, &[], STAGE_SCRIPT);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!root.join("out/err").exists(), "{}", out(root, "err"));
    for (file, want) in [
        ("err_read", "Invalid argument"),
        ("err_kcmd", "Invalid argument"),
        ("err_missing", "No such file"),
        ("err_bad_policy", "Invalid argument"),
        ("err_cert", "Bad message"),
    ] {
        let text = out(root, file);
        assert!(text.contains(want), "{file}: {text:?} lacks {want:?}");
    }
}
