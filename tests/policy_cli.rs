//! `imafs policy check`: built-ins, fixtures, and a corpus of valid and invalid rules
//! checked against the kernel's security/integrity/ima/ima_policy.c (ima_parse_add_rule,
//! ima_parse_rule, ima_validate_rule, ima_policy_show, and the 1807 audit records of
//! ima_log_string), run through the real binary.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn imafs(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(common::imafs_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn imafs");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait imafs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/policies")
        .join(name)
}

/// (rule as written, read-back line). Every read-back line ends with " \n".
const VALID: &[(&str, &str)] = &[
    // ima_policy_show read-back examples.
    ("dont_measure fsmagic=0x9fa0", "dont_measure fsmagic=0x9fa0 \n"),
    ("measure func=FILE_CHECK mask=^MAY_READ euid=0", "measure func=FILE_CHECK mask=^MAY_READ euid=0 \n"),
    ("measure func=MMAP_CHECK mask=MAY_EXEC", "measure func=MMAP_CHECK mask=MAY_EXEC \n"),
    ("measure func=BPRM_CHECK mask=MAY_EXEC template=ima-sig", "measure func=BPRM_CHECK mask=MAY_EXEC template=ima-sig \n"),
    ("appraise func=MODULE_CHECK appraise_type=imasig", "appraise func=MODULE_CHECK appraise_type=imasig \n"),
    ("appraise fowner=0", "appraise fowner=0 \n"),
    ("measure func=KEY_CHECK keyrings=.ima|.builtin_trusted_keys template=ima-buf", "measure func=KEY_CHECK keyrings=.ima|.builtin_trusted_keys template=ima-buf \n"),
    ("measure func=CRITICAL_DATA label=selinux", "measure func=CRITICAL_DATA label=selinux \n"),
    ("appraise func=SETXATTR_CHECK appraise_algos=sha256,sha384,sha512", "appraise func=SETXATTR_CHECK appraise_algos=sha256,sha384,sha512 \n"),
    // ima_policy_show: aliases normalised, fsmagic lowercase without leading zeros, algos in
    // enum order.
    ("measure func=PATH_CHECK", "measure func=FILE_CHECK \n"),
    ("measure func=FILE_MMAP mask=MAY_EXEC", "measure func=MMAP_CHECK mask=MAY_EXEC \n"),
    ("dont_measure fsmagic=0x01021994", "dont_measure fsmagic=0x1021994 \n"),
    ("dont_measure fsmagic=DE5E81E4", "dont_measure fsmagic=0xde5e81e4 \n"),
    ("appraise func=SETXATTR_CHECK appraise_algos=sha512,sha1,sha256", "appraise func=SETXATTR_CHECK appraise_algos=sha1,sha256,sha512 \n"),
    // ima_policy_show field order regardless of written order; operators as written.
    ("measure template=ima-ng uid>1000 func=FILE_CHECK fsname=ext4 mask=MAY_READ", "measure func=FILE_CHECK mask=MAY_READ fsname=ext4 uid>1000 template=ima-ng \n"),
    ("measure fgroup<100 fowner>0 egid=5 euid<7 pcr=11 func=BPRM_CHECK", "measure func=BPRM_CHECK pcr=11 euid<7 egid=5 fowner>0 fgroup<100 \n"),
    ("dont_measure fsuuid=6A9C8E1D-2B3C-4D5E-8F90-A1B2C3D4E5F6", "dont_measure fsuuid=6a9c8e1d-2b3c-4d5e-8f90-a1b2c3d4e5f6 \n"),
    ("measure gid=0 func=MODULE_CHECK", "measure func=MODULE_CHECK gid=0 \n"),
    // ima_parse_rule: every action.
    ("measure", "measure \n"),
    ("dont_measure", "dont_measure \n"),
    ("appraise", "appraise \n"),
    ("dont_appraise", "dont_appraise \n"),
    ("audit func=BPRM_CHECK", "audit func=BPRM_CHECK \n"),
    ("hash func=FILE_CHECK", "hash func=FILE_CHECK \n"),
    ("dont_hash fsmagic=0x9fa0", "dont_hash fsmagic=0x9fa0 \n"),
    ("dont_audit fsname=fuse fs_subtype=sshfs", "dont_audit fsname=fuse fs_subtype=sshfs \n"),
    // ima_parse_rule: every func= value.
    ("measure func=MMAP_CHECK_REQPROT", "measure func=MMAP_CHECK_REQPROT \n"),
    ("measure func=CREDS_CHECK", "measure func=CREDS_CHECK \n"),
    ("measure func=FIRMWARE_CHECK", "measure func=FIRMWARE_CHECK \n"),
    ("measure func=KEXEC_KERNEL_CHECK", "measure func=KEXEC_KERNEL_CHECK \n"),
    ("measure func=KEXEC_INITRAMFS_CHECK", "measure func=KEXEC_INITRAMFS_CHECK \n"),
    ("measure func=POLICY_CHECK", "measure func=POLICY_CHECK \n"),
    ("measure func=KEXEC_CMDLINE pcr=12", "measure func=KEXEC_CMDLINE pcr=12 \n"),
    ("measure func=KEY_CHECK", "measure func=KEY_CHECK \n"),
    // ima_parse_rule: options.
    ("appraise func=MODULE_CHECK appraise_type=imasig|modsig", "appraise func=MODULE_CHECK appraise_type=imasig|modsig \n"),
    ("appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3", "appraise func=BPRM_CHECK appraise_type=sigv3 digest_type=verity \n"),
    ("measure func=BPRM_CHECK digest_type=verity template=ima-ngv2", "measure func=BPRM_CHECK template=ima-ngv2 digest_type=verity \n"),
    ("appraise func=FILE_CHECK permit_directio", "appraise func=FILE_CHECK permit_directio \n"),
    ("appraise func=KEXEC_KERNEL_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig", "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig \n"),
    ("measure pcr=0", "measure pcr=0 \n"),
    ("measure pcr=63", "measure pcr=63 \n"),
    ("measure template=ima", "measure template=ima \n"),
    ("measure template=evm-sig", "measure template=evm-sig \n"),
    ("measure template=ima-modsig func=MODULE_CHECK", "measure func=MODULE_CHECK template=ima-modsig \n"),
    // ima_parse_rule: tokens separated by any run of spaces and tabs; ima_parse_add_rule:
    // leading blanks skipped.
    ("  \t measure \t\t func=BPRM_CHECK   mask=MAY_EXEC", "measure func=BPRM_CHECK mask=MAY_EXEC \n"),
];

/// (rule, a word of the expected reason). All are EINVAL in the kernel.
const INVALID: &[(&str, &str)] = &[
    // ima_parse_rule: no action, two actions, no dont_audit-like inventions.
    ("func=BPRM_CHECK", "no action"),
    ("measure appraise", "more than one action"),
    ("measure measure", "more than one action"),
    ("dont_mesure", "unknown token"),
    // ima_parse_rule: unknown tokens, case sensitivity, empty values.
    ("Measure", "unknown token"),
    ("measure FUNC=BPRM_CHECK", "unknown token"),
    ("measure func=", "unknown token"),
    ("measure foo=bar", "unknown token"),
    ("measure func=BPRM_CHECK # trailing comment", "unknown token"),
    // ima_parse_rule: duplicates and bad values.
    ("measure func=BPRM_CHECK func=FILE_CHECK", "duplicate func"),
    ("measure func=POST_SETATTR", "invalid func"),
    ("measure mask=MAY_READ mask=MAY_EXEC", "duplicate mask"),
    ("measure mask=^MAY_READ|MAY_WRITE", "invalid mask"),
    ("measure fsmagic=0x9fa0 fsmagic=0x62656572", "duplicate fsmagic"),
    ("measure fsmagic=proc", "invalid fsmagic"),
    ("measure fsuuid=6a9c8e1d-2b3c-4d5e-8f90", "invalid fsuuid"),
    ("measure fsuuid=6a9c8e1d-2b3c-4d5e-8f90-a1b2c3d4e5f6 fsuuid=6a9c8e1d-2b3c-4d5e-8f90-a1b2c3d4e5f7", "duplicate fsuuid"),
    ("measure uid=0 euid=0", "duplicate uid"),
    ("measure uid=0 uid>5", "duplicate uid"),
    ("measure gid=0 egid=0", "duplicate gid"),
    ("measure fowner=0 fowner=1", "duplicate fowner"),
    ("measure fgroup=0 fgroup<1", "duplicate fgroup"),
    ("measure uid=4294967296", "invalid uid"),
    ("measure uid=4294967295", "invalid uid"),
    ("measure euid=-1", "invalid euid"),
    ("measure fs_subtype=a fs_subtype=b", "duplicate fs_subtype"),
    ("measure func=KEY_CHECK keyrings=.ima||.evm", "empty item"),
    ("measure func=CRITICAL_DATA label=a label=b", "duplicate label"),
    // ima_parse_rule (ima_lsm_rule_init): LSM labels cannot be resolved (no LSM) while the
    // built-in policy is active.
    ("measure obj_type=bin_t", "undefined"),
    ("dont_measure subj_role=system_r", "undefined"),
    // ima_parse_rule: options.
    ("appraise func=BPRM_CHECK appraise_type=sigv3", "requires digest_type=verity"),
    ("appraise func=BPRM_CHECK appraise_type=imasig digest_type=verity", "before appraise_type"),
    ("appraise func=BPRM_CHECK digest_type=verity appraise_type=imasig", "cannot be used"),
    ("appraise func=BPRM_CHECK appraise_type=foo", "invalid appraise_type"),
    ("appraise appraise_algos=sha256,nosuch", "unknown hash algorithm"),
    ("appraise appraise_algos=", "unknown token"),
    ("appraise appraise_algos=sha256 appraise_algos=sha512", "duplicate appraise_algos"),
    ("measure pcr=64", "invalid pcr"),
    ("measure pcr=ten", "invalid pcr"),
    ("measure template=ima-foo", "unknown template"),
    ("template=ima-sig measure", "requires the measure action"),
    ("dont_measure template=ima-sig", "requires the measure action"),
    ("measure template=ima-ng template=ima-sig", "duplicate template"),
    // ima_validate_rule.
    ("appraise pcr=10", "only allowed with measure"),
    ("measure appraise_type=imasig", "only allowed with appraise"),
    ("hash appraise_algos=sha256", "only allowed with appraise"),
    ("appraise func=FILE_CHECK appraise_type=imasig|modsig", "not allowed with func=FILE_CHECK"),
    ("appraise func=BPRM_CHECK appraise_type=imasig|modsig", "not allowed with func=BPRM_CHECK"),
    ("appraise func=MODULE_CHECK digest_type=verity appraise_type=sigv3", "not allowed with func=MODULE_CHECK"),
    ("appraise func=KEXEC_CMDLINE", "only allows measure"),
    ("measure func=KEXEC_CMDLINE mask=MAY_READ", "not allowed with func=KEXEC_CMDLINE"),
    ("measure func=KEXEC_CMDLINE template=ima-buf permit_directio", "not allowed with func=KEXEC_CMDLINE"),
    ("appraise func=KEY_CHECK", "only allows measure"),
    ("measure func=KEY_CHECK fsmagic=0x9fa0", "not allowed with func=KEY_CHECK"),
    ("measure func=KEY_CHECK euid=0", "not allowed with func=KEY_CHECK"),
    ("measure func=KEY_CHECK label=x", "not allowed with func=KEY_CHECK"),
    ("measure func=CRITICAL_DATA keyrings=.ima", "not allowed with func=CRITICAL_DATA"),
    ("measure func=CRITICAL_DATA fowner=0", "not allowed with func=CRITICAL_DATA"),
    ("measure keyrings=.ima", "not allowed with func=(none)"),
    ("measure func=FILE_CHECK label=selinux", "not allowed with func=FILE_CHECK"),
    ("measure func=SETXATTR_CHECK", "only allows appraise"),
    ("appraise func=SETXATTR_CHECK", "requires appraise_algos"),
    ("appraise func=SETXATTR_CHECK appraise_algos=sha256 fowner=0", "not allowed with func=SETXATTR_CHECK"),
    ("appraise func=BPRM_CHECK digest_type=verity", "requires appraise_type=sigv3"),
];

#[test]
fn valid_rules_read_back_like_the_kernel() {
    for (input, want) in VALID {
        let out = imafs(&["policy", "check", "-"], Some(&format!("{input}\n")));
        assert!(out.status.success(), "{input}: {}", stderr(&out));
        assert_eq!(stdout(&out), *want, "{input}");
    }
}

#[test]
fn invalid_rules_fail_with_the_line_number() {
    for (input, reason) in INVALID {
        // Two good lines first, so the failing rule is on line 3.
        let text = format!("measure func=BPRM_CHECK\n# comment\n{input}\nmeasure\n");
        let out = imafs(&["policy", "check"], Some(&text));
        assert_eq!(out.status.code(), Some(1), "{input} was accepted");
        assert!(out.stdout.is_empty(), "{input}: stdout {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.starts_with("line 3: "), "{input}: {err}");
        assert!(
            err.contains(reason),
            "{input}: expected {reason:?} in {err:?}"
        );
    }
}

#[test]
fn builtins_print_in_kernel_order() {
    let tcb = imafs(&["policy", "check", "--builtin", "tcb"], None);
    assert!(tcb.status.success());
    let text = stdout(&tcb);
    assert_eq!(text.lines().count(), 20);
    assert!(text.starts_with("dont_measure fsmagic=0x9fa0 \ndont_measure fsmagic=0x62656572 \n"));
    // Debian's linux-source-6.12 (6.12.118) ima_policy.c: the tmpfs rule has no func.
    assert!(text.contains("\ndont_measure fsmagic=0x1021994 \n"));
    assert!(text.ends_with(
        "measure func=FILE_CHECK mask=^MAY_READ euid=0 \nmeasure func=FILE_CHECK mask=^MAY_READ uid=0 \nmeasure func=MODULE_CHECK \nmeasure func=FIRMWARE_CHECK \nmeasure func=POLICY_CHECK \n"
    ));

    let orig = stdout(&imafs(&["policy", "check", "--builtin", "ima_tcb"], None));
    assert_eq!(orig.lines().count(), 18);
    assert!(orig.ends_with("measure func=FILE_CHECK mask=MAY_READ uid=0 \nmeasure func=MODULE_CHECK \nmeasure func=FIRMWARE_CHECK \n"));

    // Written order does not matter: secure_boot comes before appraise_tcb, critical_data last.
    let all = stdout(&imafs(
        &[
            "policy",
            "check",
            "--builtin",
            "critical_data,appraise_tcb,secure_boot",
        ],
        None,
    ));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4 + 16 + 1);
    assert_eq!(lines[0], "appraise func=MODULE_CHECK appraise_type=imasig ");
    assert_eq!(lines[3], "appraise func=POLICY_CHECK appraise_type=imasig ");
    assert_eq!(lines[4], "dont_appraise fsmagic=0x9fa0 ");
    assert_eq!(lines[8], "dont_appraise fsmagic=0x858458f6 ");
    assert_eq!(
        lines[18],
        "appraise func=POLICY_CHECK appraise_type=imasig "
    );
    assert_eq!(lines[19], "appraise fowner=0 ");
    assert_eq!(lines[20], "measure func=CRITICAL_DATA ");

    let fs = imafs(&["policy", "check", "--builtin", "fail_securely"], None);
    assert!(fs.status.success() && fs.stdout.is_empty());
    let bad = imafs(&["policy", "check", "--builtin", "tcb,nosuch"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("\"nosuch\" not found"));
}

#[test]
fn fixtures_parse_and_match_their_builtins() {
    for name in ["tcb", "appraise_tcb"] {
        let path = fixture(name);
        let from_file = imafs(
            &["policy", "check", path.to_str().expect("utf-8 path")],
            None,
        );
        let builtin = imafs(&["policy", "check", "--builtin", name], None);
        assert!(from_file.status.success(), "{name}: {}", stderr(&from_file));
        assert_eq!(stdout(&from_file), stdout(&builtin), "{name}");
    }
    for name in ["demo", "exec-sig", "keylime", "appraise-hash"] {
        let path = fixture(name);
        let out = imafs(
            &["policy", "check", path.to_str().expect("utf-8 path")],
            None,
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            !text.is_empty() && text.lines().all(|l| l.ends_with(' ')),
            "{name}: {text}"
        );
        // The read-back is itself a valid policy that reads back identically.
        let again = imafs(&["policy", "check", "-"], Some(&text));
        assert_eq!(stdout(&again), text, "{name}");
    }
    let demo = stdout(&imafs(
        &["policy", "check", fixture("demo").to_str().unwrap_or("")],
        None,
    ));
    assert!(demo.contains("measure func=BPRM_CHECK mask=MAY_EXEC \n"));
    assert!(demo.contains("measure func=FILE_CHECK mask=^MAY_READ uid=0 \n"));
    let sig = stdout(&imafs(
        &[
            "policy",
            "check",
            fixture("exec-sig").to_str().unwrap_or(""),
        ],
        None,
    ));
    assert!(sig.contains("measure func=BPRM_CHECK mask=MAY_EXEC template=ima-sig \n"));
}

#[test]
fn audit_records_and_later_loads() {
    // ima_parse_rule's audit (ima_log_string): one 1807 body per rule line; tokens after a
    // failure are not listed.
    let out = imafs(
        &["policy", "check", "--audit"],
        Some("measure func=BPRM_CHECK mask=MAY_EXEC\n\nmeasure uid>5 permit_directio pcr=3\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "action=measure func=BPRM_CHECK mask=MAY_EXEC res=1\naction=measure uid>5 pcr=3 res=1\n"
    );
    let out = imafs(
        &["policy", "check", "--audit"],
        Some("measure bogus func=FILE_CHECK\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "action=measure UNKNOWN=bogus res=0\n");

    // After a custom policy is active, LSM rules are accepted but hidden from the read-back.
    let out = imafs(
        &["policy", "check", "--after-load"],
        Some("measure obj_type=bin_t\nmeasure func=BPRM_CHECK\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "measure func=BPRM_CHECK \n");
}

#[test]
fn missing_file_and_empty_policy() {
    let out = imafs(&["policy", "check", "/nonexistent/policy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/policy"));
    let out = imafs(&["policy", "check"], Some("# only a comment\n\n"));
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}
