//! Records and violations as the kernel writes them, in situations where imafs once differed
//! (issue 18): a file renamed or linked is measured and audited once per inode version, not
//! once per name; an invalid policy line fails at write(2), so the shell reports it there;
//! several daemons sharing one `--audit` file never split each other's records. Each runs
//! real programs (busybox) in `imafs run` containers.
mod common;

use std::process::{Command, Output};

const APPLETS: &[&str] = &["sh", "cat", "echo", "mv", "ln", "chmod", "touch", "seq"];
const ASCII: &str = "/sys/kernel/security/ima/ascii_runtime_measurements";

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The paths of an ASCII list's records (last field), boot_aggregate left out.
fn paths(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p != "boot_aggregate")
        .map(str::to_owned)
        .collect()
}

/// `mv a b; cat b`, `ln b c; cat c`, `chmod`, `touch` of a file measured and audited once:
/// the kernel keeps IMA_MEASURED and IMA_AUDITED in the inode's integrity data, whatever
/// its names or ctime, so nothing more is recorded (ima_main.c: process_measurement).
#[test]
fn a_renamed_or_linked_file_is_measured_and_audited_once() {
    let test = "a_renamed_or_linked_file_is_measured_and_audited_once";
    let Some(root) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let r = root.path();
    std::fs::write(r.join("tmp/a"), "some content\n").expect("write");
    std::fs::write(
        r.join("etc/policy"),
        "measure func=FILE_CHECK mask=MAY_READ\naudit func=FILE_CHECK mask=MAY_READ\n",
    )
    .expect("write");
    let audit = r.join("out/audit.log");
    let script = format!(
        "cat /tmp/a >/dev/null && mv /tmp/a /tmp/b && cat /tmp/b >/dev/null && \
         ln /tmp/b /tmp/c && cat /tmp/c >/dev/null && chmod 600 /tmp/c && \
         cat /tmp/c >/dev/null && touch /tmp/c && cat /tmp/b >/dev/null && \
         cat {ASCII} > /out/list"
    );
    let out = common::run_sh_in(
        r,
        &[
            "--policy",
            r.join("etc/policy").to_str().expect("utf-8"),
            "--audit",
            audit.to_str().expect("utf-8"),
        ],
        &script,
    );
    assert_ok(&out);
    let list = std::fs::read_to_string(r.join("out/list")).expect("list");
    let files: Vec<String> = paths(&list)
        .into_iter()
        .filter(|p| p.starts_with("/tmp/"))
        .collect();
    assert_eq!(files, ["/tmp/a"], "{list}");
    let audit = std::fs::read_to_string(&audit).expect("audit file");
    let rules: Vec<&str> = audit
        .lines()
        .filter(|l| l.starts_with("type=INTEGRITY_RULE ") && l.contains("/tmp/"))
        .collect();
    assert_eq!(rules.len(), 1, "{audit}");
    assert!(rules[0].contains("file=\"/tmp/a\""), "{audit}");
}

/// An invalid rule fails at write(2) with EINVAL, as `ima_write_policy` returns the
/// parser's error for that write: busybox sh reports `write error: Invalid argument`, and a
/// valid rule written next in a new session is accepted.
#[test]
fn an_invalid_policy_line_fails_at_write() {
    let test = "an_invalid_policy_line_fails_at_write";
    let Some(root) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let policy = "/sys/kernel/security/ima/policy";
    // Privileged: the policy is read back, which needs CAP_SYS_ADMIN (ima_open_policy).
    let out = common::run_sh_in(
        root.path(),
        &["--privileged"],
        &format!(
            "echo 'dnt_measure fsmagic=0x73636673' > {policy}; echo \"status $?\"; \
             echo 'measure func=BPRM_CHECK' > {policy}; echo \"status $?\"; cat {policy}"
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("write error: Invalid argument"))
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stdout, "status 1\nstatus 0\nmeasure func=BPRM_CHECK \n",
        "{stderr}"
    );
}

/// Four containers writing audit records into one `--audit` file at once: every line is
/// one whole record (one write(2) per record to an O_APPEND file), and none is lost.
#[test]
fn daemons_sharing_an_audit_file_never_split_records() {
    let test = "daemons_sharing_an_audit_file_never_split_records";
    let Some(root) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let r = root.path();
    const FILES: usize = 400;
    const CONTAINERS: usize = 4;
    for c in 0..CONTAINERS {
        let dir = r.join(format!("tmp/c{c}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for i in 0..FILES {
            std::fs::write(dir.join(i.to_string()), format!("{c} {i}\n")).expect("write");
        }
    }
    std::fs::write(
        r.join("etc/policy"),
        "audit func=FILE_CHECK mask=MAY_READ\n",
    )
    .expect("write");
    let audit = r.join("out/audit.log");
    let children: Vec<_> = (0..CONTAINERS)
        .map(|c| {
            Command::new(common::imafs_bin())
                .arg("run")
                .arg("--rootfs")
                .arg(r)
                .arg("--policy")
                .arg(r.join("etc/policy"))
                .arg("--audit")
                .arg(&audit)
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "for i in $(seq 0 {}); do cat /tmp/c{c}/$i; done >/dev/null",
                    FILES - 1
                ))
                .env("PATH", "/bin")
                .spawn()
                .expect("imafs run")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let text = std::fs::read_to_string(&audit).expect("audit file");
    let mut rules = 0;
    for line in text.lines() {
        assert!(
            line.starts_with("type=") && line.matches("type=").count() == 1,
            "split or merged record: {line:?}"
        );
        if line.starts_with("type=INTEGRITY_RULE ") && line.contains("file=\"/tmp/c") {
            rules += 1;
        }
    }
    assert_eq!(rules, FILES * CONTAINERS);
}

/// Reads of the IMA files themselves are measured when the policy does not exclude
/// securityfs (`dont_measure fsmagic=0x73636673`, which `tcb` has): each under the path
/// opened, a symlink under its target (`ascii_runtime_measurements` is
/// `ascii_runtime_measurements_sha1` on a 6.10+ layout), and hashed as empty, their size
/// being 0 to the kernel.
#[test]
fn reads_of_the_ima_files_are_measured_unless_excluded() {
    let test = "reads_of_the_ima_files_are_measured_unless_excluded";
    let Some(root) = common::busybox_rootfs(test, APPLETS) else {
        return;
    };
    let r = root.path();
    let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let ima = "/sys/kernel/security/ima";
    let script = format!(
        "cat {ima}/runtime_measurements_count {ima}/violations {ima}/policy >/dev/null && \
         cat {ASCII} >/dev/null && cat {ima}/ascii_runtime_measurements_sha256 > /out/list"
    );
    for (policy, measured) in [
        ("measure func=FILE_CHECK mask=MAY_READ\n", true),
        (
            "dont_measure fsmagic=0x73636673\nmeasure func=FILE_CHECK mask=MAY_READ\n",
            false,
        ),
    ] {
        std::fs::write(r.join("etc/policy"), policy).expect("write");
        // Privileged: reading `policy` needs CAP_SYS_ADMIN (ima_fs.c: ima_open_policy).
        let out = common::run_sh_in(
            r,
            &[
                "--privileged",
                "--policy",
                r.join("etc/policy").to_str().expect("utf-8"),
            ],
            &script,
        );
        assert_ok(&out);
        let list = std::fs::read_to_string(r.join("out/list")).expect("list");
        let seen: Vec<(String, String)> = list
            .lines()
            .filter(|l| l.contains(" /sys/"))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[3].to_owned(), f[4].to_owned())
            })
            .collect();
        let want: Vec<(String, String)> = if measured {
            [
                "runtime_measurements_count",
                "violations",
                "policy",
                "ascii_runtime_measurements_sha1",
                "ascii_runtime_measurements_sha256",
            ]
            .iter()
            .map(|name| {
                (
                    format!("sha256:{empty_sha256}"),
                    format!("/sys/kernel/security/integrity/ima/{name}"),
                )
            })
            .collect()
        } else {
            Vec::new()
        };
        assert_eq!(seen, want, "{policy}{list}");
    }
}

/// A writer through a mapping (the kernel's i_writecount stays raised while a MAP_SHARED
/// writable mapping holds the file, after its descriptor is closed): a read by another
/// process meanwhile is an open_writers violation (ima_main.c: ima_rdwr_violation_check),
/// counted, recorded and audited, right after the plain open_writers and ToMToU sequences
/// on the same file with the 6.15+ rate limiting in force. Python's `mmap` maps, `cat`
/// reads, in `imafs run` over the host's root.
#[test]
fn a_writer_through_a_mapping_makes_a_reader_an_open_writers_violation() {
    let test = "a_writer_through_a_mapping_makes_a_reader_an_open_writers_violation";
    if !common::can_run_python_over_host_root(test) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-mmap")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let d = dir.path();
    let file = d.join("data");
    std::fs::write(&file, "mapped data\n").expect("write");
    std::fs::write(
        d.join("policy"),
        "dont_measure fsmagic=0x73636673\nmeasure func=FILE_CHECK mask=MAY_READ\n",
    )
    .expect("write");
    std::fs::write(
        d.join("map.py"),
        format!(
            r#"import mmap, os, subprocess
path = "{path}"
def cat():
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
def violations():
    return int(open("/sys/kernel/security/ima/violations").read())
counts = [violations()]
# open_writers: a read while a writer holds the file.
w = os.open(path, os.O_WRONLY); cat(); os.close(w)
counts.append(violations())
# ToMToU: a writer while a reader holds it.
r = os.open(path, os.O_RDONLY); w = os.open(path, os.O_WRONLY); os.close(w); os.close(r)
counts.append(violations())
# The mapping: the descriptor closed, the mapping still writable.
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
os.close(fd)
cat()
counts.append(violations())
m.close()
cat()
counts.append(violations())
print(" ".join(map(str, counts)))
"#,
            path = file.display()
        ),
    )
    .expect("write");
    let audit = d.join("audit.log");
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--policy")
        .arg(d.join("policy"))
        .arg("--audit")
        .arg(&audit)
        .args(["--", "/usr/bin/python3"])
        .arg(d.join("map.py"))
        .output()
        .expect("imafs run");
    assert_ok(&out);
    // 0, then one for each sequence; the read after munmap is no violation.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 1 2 3 3\n");
    let audit = std::fs::read_to_string(&audit).expect("audit file");
    let causes: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("op=invalid_pcr") && l.contains(&*file.to_string_lossy()))
        .filter_map(|l| l.split(' ').find(|f| f.starts_with("cause=")))
        .collect();
    assert_eq!(
        causes,
        ["cause=open_writers", "cause=ToMToU", "cause=open_writers"],
        "{audit}"
    );
}
