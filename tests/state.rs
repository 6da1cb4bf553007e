//! `--state DIR`: the list, PCRs, violations and policy of a daemon survive kill -9 and a
//! restart byte for byte; torn journals are cut with a message, corrupt ones refused, and a
//! state directory serves one daemon at a time.

mod common;

use common::daemon::{serve, Daemon, LIST_FILES};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn events(dir: &Path) -> PathBuf {
    let path = dir.join("events");
    std::fs::write(
        &path,
        "read /etc/passwd\nread /etc/hostname\nexec /bin/sh\nread /etc/group\n",
    )
    .unwrap();
    path
}

fn state_arg(dir: &Path) -> String {
    dir.join("state").to_str().unwrap().to_string()
}

fn write_policy(d: &Daemon, text: &str) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(d.ima("policy"))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn cat(path: &Path) {
    let st = Command::new("cat")
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "cat {}", path.display());
}

/// `evmctl ima_measurement` replays the daemon's list to its `pcrs`.
fn evmctl_replays(d: &Daemon, dir: &Path) {
    if !common::have_tool("evmctl") {
        eprintln!("evmctl not installed: replay check not done");
        return;
    }
    let pcrs = String::from_utf8(d.read("pcrs")).unwrap();
    let sha1 = common::evmctl_pcr_file(&pcrs, "sha1", &dir.join("pcr-sha1"));
    let sha256 = common::evmctl_pcr_file(&pcrs, "sha256", &dir.join("pcr-sha256"));
    common::assert_evmctl_replays(&d.ima("binary_runtime_measurements"), &[sha1, sha256]);
}

fn ascii_lines(d: &Daemon) -> Vec<String> {
    String::from_utf8(d.read("ascii_runtime_measurements_sha256"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_9_and_restart_keeps_list_pcrs_violations_and_policy() {
    let test = "kill_9_and_restart_keeps_list_pcrs_violations_and_policy";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for (name, body) in [
        ("a", "alpha\n"),
        ("b", "beta\n"),
        ("c", "gamma\n"),
        ("d", "delta\n"),
    ] {
        std::fs::write(rootfs.join(name), body).unwrap();
    }
    let state = state_arg(dir);
    let d = serve(dir, &["--state", &state], true).unwrap();
    let mnt = d.mnt.clone().unwrap();
    cat(&mnt.join("a"));
    // A custom policy replaces the built-in tcb rules; measurements follow it. Like tcb, it
    // leaves out the IMA files themselves, which this test reads.
    write_policy(
        &d,
        "dont_measure fsmagic=0x73636673\nmeasure func=FILE_CHECK mask=MAY_READ uid=0\n\
         measure func=BPRM_CHECK\n",
    );
    cat(&mnt.join("b"));
    // open_writers violation: a reader while a writer holds the file.
    let writer = OpenOptions::new().write(true).open(mnt.join("c")).unwrap();
    cat(&mnt.join("c"));
    drop(writer);
    let before = d.snapshot();
    let violations = String::from_utf8(d.read("violations")).unwrap();
    assert_eq!(violations.trim(), "1", "the test needs a violation");
    let lines = ascii_lines(&d);
    assert!(lines[0].ends_with(" boot_aggregate"), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("/a")), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("/b")), "{lines:?}");
    d.kill9();

    let d = serve(dir, &["--state", &state], true).unwrap();
    let after = d.snapshot();
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert!(a == b, "{name} changed across kill -9 and restart");
    }
    // One boot_aggregate only.
    let lines = ascii_lines(&d);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(" boot_aggregate"))
            .count(),
        1
    );
    // Reading an already measured file adds nothing; a new one comes after the old bytes.
    let mnt = d.mnt.clone().unwrap();
    cat(&mnt.join("a"));
    assert_eq!(d.read("ascii_runtime_measurements_sha256"), before[1].1);
    cat(&mnt.join("d"));
    for (name, old) in before.iter().take(LIST_FILES.len()) {
        let now = d.read(name);
        assert!(now.len() > old.len(), "{name}: no new record");
        assert_eq!(&now[..old.len()], &old[..], "{name}: old bytes moved");
        // Reading at the old end gives exactly the new record.
        let f = File::open(d.ima(name)).unwrap();
        let mut buf = vec![0u8; now.len()];
        let n = f.read_at(&mut buf, old.len() as u64).unwrap();
        assert_eq!(&buf[..n], &now[old.len()..], "{name}");
    }
    assert!(ascii_lines(&d).last().unwrap().ends_with("/d"));
    // The replayed policy is the custom one, and a second load appends (kernel semantics:
    // only the first load replaces the built-in rules).
    write_policy(&d, "dont_measure fsmagic=0x01021994\n");
    let policy = String::from_utf8(d.read("policy")).unwrap();
    assert_eq!(
        policy,
        "dont_measure fsmagic=0x73636673 \nmeasure func=FILE_CHECK mask=MAY_READ uid=0 \n\
         measure func=BPRM_CHECK \n\
         dont_measure fsmagic=0x1021994 \n",
    );
    evmctl_replays(&d, dir);
    let snapshot = d.snapshot();
    d.stop();

    // A clean stop and restart keeps everything too, including the appended policy.
    let d = serve(dir, &["--state", &state], true).unwrap();
    assert!(
        d.snapshot() == snapshot,
        "state changed across a clean restart"
    );
    evmctl_replays(&d, dir);
}

#[test]
fn policy_option_is_not_loaded_again_on_restart() {
    let test = "policy_option_is_not_loaded_again_on_restart";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let policy = dir.join("policy.txt");
    std::fs::write(&policy, "measure func=FILE_CHECK\n").unwrap();
    let state = state_arg(dir);
    let args = ["--state", &state, "--policy", policy.to_str().unwrap()];
    let d = serve(dir, &args, false).unwrap();
    let text = d.read("policy");
    assert_eq!(text, b"measure func=FILE_CHECK \n");
    d.kill9();
    let d = serve(dir, &args, false).unwrap();
    assert_eq!(d.read("policy"), text, "rules appended twice");
    assert!(
        d.stderr()
            .contains("not loaded, the state directory's policy is in force"),
        "{}",
        d.stderr()
    );
}

/// Serve the fixture events with `--state`, stop, and return the ascii list and journal.
fn journal_with_records(dir: &Path) -> (Vec<String>, PathBuf) {
    let state = state_arg(dir);
    let ev = events(dir);
    let d = serve(
        dir,
        &["--state", &state, "--events", ev.to_str().unwrap()],
        false,
    )
    .unwrap();
    let lines = ascii_lines(&d);
    assert!(lines.len() >= 5, "{lines:?}");
    d.stop();
    (lines, dir.join("state/journal"))
}

#[test]
fn torn_journal_tail_is_cut_with_a_message() {
    let test = "torn_journal_tail_is_cut_with_a_message";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (lines, journal) = journal_with_records(dir);
    let state = state_arg(dir);
    let full = std::fs::metadata(&journal).unwrap().len();

    // A partial last entry (the daemon died mid-write, or the disk lost the end).
    let f = OpenOptions::new().write(true).open(&journal).unwrap();
    f.set_len(full - 5).unwrap();
    drop(f);
    let d = serve(dir, &["--state", &state], false).unwrap();
    let err = d.stderr();
    assert!(err.contains("torn tail at offset"), "{err}");
    let cut: u64 = err
        .split("torn tail at offset ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        err.contains(&format!("{} bytes cut", full - 5 - cut)),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), cut);
    // The last record is gone, the rest is intact.
    assert_eq!(ascii_lines(&d), lines[..lines.len() - 1]);
    d.stop();

    // A flipped byte in the (new) last entry is cut the same way.
    let len = std::fs::metadata(&journal).unwrap().len();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&journal)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_at(&mut b, len - 3).unwrap();
    f.write_at(&[b[0] ^ 0x20], len - 3).unwrap();
    drop(f);
    let d = serve(dir, &["--state", &state], false).unwrap();
    let err = d.stderr();
    assert!(err.contains("torn tail at offset"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(ascii_lines(&d), lines[..lines.len() - 2]);
}

#[test]
fn corrupt_journal_middle_is_refused_with_the_intact_prefix() {
    let test = "corrupt_journal_middle_is_refused_with_the_intact_prefix";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (lines, journal) = journal_with_records(dir);
    let state = state_arg(dir);
    let bytes = std::fs::read(&journal).unwrap();
    // Flip a byte inside the entry holding /etc/passwd's record.
    let at = bytes.windows(11).position(|w| w == b"/etc/passwd").unwrap();
    let mut bad = bytes.clone();
    bad[at] ^= 0x01;
    std::fs::write(&journal, &bad).unwrap();
    let err = serve(dir, &["--state", &state], false)
        .err()
        .expect("a corrupt journal must not start");
    assert!(err.contains("corrupt entry at offset"), "{err}");
    assert!(err.contains("truncate the journal to"), "{err}");
    // The file is left as it was for the operator.
    assert_eq!(std::fs::read(&journal).unwrap(), bad);
    // Taking the suggested option keeps the intact prefix.
    let keep: u64 = err
        .split("truncate the journal to ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let f = OpenOptions::new().write(true).open(&journal).unwrap();
    f.set_len(keep).unwrap();
    drop(f);
    let d = serve(dir, &["--state", &state], false).unwrap();
    let now = ascii_lines(&d);
    assert!(!now.is_empty() && now.len() < lines.len(), "{now:?}");
    assert_eq!(now[..], lines[..now.len()]);
    assert!(now[0].ends_with(" boot_aggregate"));
}

#[test]
fn two_daemons_cannot_share_a_state_directory() {
    let test = "two_daemons_cannot_share_a_state_directory";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = state_arg(tmp.path());
    let first = serve(tmp.path(), &["--state", &state], false).unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let err = serve(&other, &["--state", &state], false)
        .err()
        .expect("second daemon must refuse");
    let pid = first.child.as_ref().unwrap().id();
    assert!(
        err.contains("is in use by another imafs daemon") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    // The first one is unaffected.
    assert!(!first.read("ascii_runtime_measurements").is_empty());
}

#[test]
fn different_engine_options_are_refused() {
    let test = "different_engine_options_are_refused";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = state_arg(tmp.path());
    serve(tmp.path(), &["--state", &state], false)
        .unwrap()
        .stop();
    let err = serve(
        tmp.path(),
        &["--state", &state, "--template", "ima-sig"],
        false,
    )
    .err()
    .expect("a journal of another template must not be continued");
    assert!(err.contains("template=ima-ng"), "{err}");
    assert!(err.contains("template=ima-sig"), "{err}");
}

/// `imafs run --state DIR -- sh -c '...'` with the host's `/` as the rootfs; its stdout.
fn run_in_container(state: &str, script: &str) -> String {
    let out = Command::new(common::imafs_bin())
        .args([
            "run", "--rootfs", "/", "--userns", "never", "--state", state,
        ])
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imafs run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn run_continues_the_list_of_the_previous_container() {
    let test = "run_continues_the_list_of_the_previous_container";
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = state_arg(tmp.path());
    let list = "/sys/kernel/security/ima/ascii_runtime_measurements";
    let first = run_in_container(&state, &format!("cat /etc/hostname >/dev/null; cat {list}"));
    assert!(first.starts_with("10 "), "{first}");
    assert!(first.contains(" /etc/hostname\n"), "{first}");
    let second = run_in_container(&state, &format!("cat /etc/passwd >/dev/null; cat {list}"));
    assert!(
        second.starts_with(&first),
        "the second container's list does not continue the first's:\n{first}\n---\n{second}"
    );
    assert!(second[first.len()..].contains(" /etc/passwd\n"), "{second}");
    assert_eq!(second.matches(" boot_aggregate\n").count(), 1, "{second}");
}

fn make_cert(dir: &Path, cn: &str) -> PathBuf {
    let cert = dir.join(format!("{cn}.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={cn}"))
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(dir.join(format!("{cn}.key")))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

#[test]
fn keys_added_at_runtime_survive_a_restart() {
    let test = "keys_added_at_runtime_survive_a_restart";
    if !common::have_tool("openssl") {
        common::skip(test, "openssl not installed");
        return;
    }
    if !common::can_mount_as_root(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let state = state_arg(dir);
    let early = make_cert(dir, "early key");
    let late = make_cert(dir, "late key");
    let d = serve(dir, &["--state", &state], false).unwrap();
    // Added at run time before any key-measuring policy: in the keyring, not measured (a
    // namespace has no early-boot key queue), neither now nor at the policy's load.
    std::fs::write(d.ima("keys"), std::fs::read(&early).unwrap()).unwrap();
    d.kill9();
    let d = serve(dir, &["--state", &state], false).unwrap();
    let keys = String::from_utf8(d.read("keys")).unwrap();
    assert!(keys.contains("early key"), "{keys}");
    write_policy(
        &d,
        "measure func=KEY_CHECK keyrings=_ima template=ima-buf\n",
    );
    let count_buf = |d: &Daemon| {
        String::from_utf8(d.read("ascii_runtime_measurements"))
            .unwrap()
            .lines()
            .filter(|l| l.contains(" ima-buf ") && l.contains(" _ima "))
            .count()
    };
    assert_eq!(count_buf(&d), 0);
    std::fs::write(d.ima("keys"), std::fs::read(&late).unwrap()).unwrap();
    assert_eq!(count_buf(&d), 1);
    let before = d.snapshot();
    let keys = d.read("keys");
    d.kill9();
    let d = serve(dir, &["--state", &state], false).unwrap();
    assert_eq!(d.read("keys"), keys);
    assert!(d.snapshot() == before, "state changed across the restart");
}
