//! Keylime's own verifier code (PyPI `keylime`, pinned in tests/fixtures/keylime/
//! requirements.txt, installed into `target/keylime-venv`) on lists imafs produced:
//!
//! - a real `imafs run` that reads and executes files; a runtime policy made by `imafs verify
//!   --generate-allowlist` (checked by Keylime's JSON schema); Keylime replays the list
//!   against the PCR 10 value imafs reports and validates every entry: it passes, for the
//!   sha1 list (`ascii_runtime_measurements`) and the sha256 one; after a file changed, a
//!   second run's list fails with Keylime's `runtime_policy_hash` event naming the file;
//! - the pull model's incremental path against a live `imafs serve` mount: the agent side
//!   remembers each entry's byte offset and resumes reading the list there, the verifier
//!   side continues from its remembered PCR state; new entries pass, a changed file fails.
//!
//! The Python side is tests/fixtures/keylime/keylime_check.py.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures/keylime").join(name)
}

/// The venv's python with Keylime importable, or why there is none. Made once per run.
fn keylime_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(setup_venv).clone()
}

fn setup_venv() -> Result<PathBuf, String> {
    let venv = manifest_dir().join("target/keylime-venv");
    let python = venv.join("bin/python");
    let importable = |python: &Path| {
        Command::new(python)
            .args(["-c", "import keylime.tpm.tpm_main, keylime.ima.ima"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    // A venv of an earlier run is reused when it has the pinned version.
    let stamp = venv.join("imafs-requirements.txt");
    let requirements = std::fs::read_to_string(fixture("requirements.txt"))
        .map_err(|e| format!("requirements.txt: {e}"))?;
    if importable(&python) && std::fs::read_to_string(&stamp).ok() == Some(requirements.clone()) {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&venv);
    // Debian's python3: its python3-gpg (imported by keylime.signing) is visible through
    // --system-site-packages; everything else comes pinned from PyPI.
    let out = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("/usr/bin/python3: {e} (apt-get install python3 python3-venv)"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 -m venv failed (apt-get install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "-r",
        ])
        .arg(fixture("requirements.txt"))
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip could not install keylime (no PyPI access?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let check = Command::new(&python)
        .args(["-c", "import keylime.tpm.tpm_main, keylime.ima.ima"])
        .output()
        .map_err(|e| format!("python: {e}"))?;
    if !check.status.success() {
        return Err(format!(
            "keylime does not import (apt-get install python3-gpg): {}",
            String::from_utf8_lossy(&check.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    std::fs::write(&stamp, requirements).map_err(|e| e.to_string())?;
    Ok(python)
}

fn python_or_skip(test: &str) -> Option<PathBuf> {
    match keylime_python() {
        Ok(p) => Some(p),
        Err(reason) => {
            common::skip(test, &format!("KEYLIME NOT AVAILABLE: {reason}"));
            None
        }
    }
}

fn busybox() -> Option<PathBuf> {
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

/// A busybox rootfs: configuration files and an application script.
fn make_rootfs(test: &str, dir: &Path) -> Option<PathBuf> {
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse cannot be opened");
        return None;
    }
    let Some(bb) = busybox() else {
        common::skip(test, "no static busybox (apt-get install busybox-static)");
        return None;
    };
    let root = dir.join("root");
    for d in ["bin", "etc", "opt/app", "tmp", "out", "proc", "dev", "sys"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(&bb, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("etc/app.conf"), "listen 8080\n").expect("write");
    std::fs::write(root.join("etc/other.conf"), "debug off\n").expect("write");
    std::fs::write(root.join("opt/app/run.sh"), "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(
        root.join("opt/app/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(root.join("out"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    Some(root)
}

/// `imafs run` reading and executing files; the lists and PCRs copied to `out/<tag>.*`.
fn run_container(root: &Path, tag: &str) {
    run_container_with(root, tag, &[]);
}

fn run_container_with(root: &Path, tag: &str, options: &[&str]) {
    let script = format!(
        "set -e; cat /etc/app.conf > /dev/null; /opt/app/run.sh; ima=/sys/kernel/security/ima; \
         cat $ima/ascii_runtime_measurements > /out/{tag}.sha1; \
         cat $ima/ascii_runtime_measurements_sha256 > /out/{tag}.sha256; \
         cat $ima/pcrs > /out/{tag}.pcrs"
    );
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(root)
        .args(options)
        .args(["--", "sh", "-c", &script])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    assert!(out.status.success(), "{out:?}");
}

/// A Keylime runtime policy of `root`'s files (boot_aggregate from `list`).
fn generate_policy(root: &Path, list_args: &[&str], log_hash_alg: &str, out: &Path) {
    let policy = Command::new(common::imafs_bin())
        .arg("verify")
        .arg("--generate-allowlist")
        .arg(root)
        .args(list_args)
        .args(["--log-hash-alg", log_hash_alg, "--exclude", "/out/.*"])
        .output()
        .expect("imafs verify --generate-allowlist");
    assert!(policy.status.success(), "{policy:?}");
    std::fs::write(out, &policy.stdout).expect("write policy");
}

fn keylime_full(python: &Path, policy: &Path, list: &Path, pcrs: &Path) -> Value {
    let out = Command::new(python)
        .arg(fixture("keylime_check.py"))
        .arg("full")
        .args([policy, list, pcrs])
        .arg("sha256")
        .output()
        .expect("python");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Keylime's failure for a file whose digest is not in the policy: the event and its log
/// line naming the file, with the digest it saw.
fn assert_flags_file(result: &Value, path: &str, digest: &str) {
    assert_eq!(result["ok"], false, "{result}");
    let events = result["events"].as_array().expect("events");
    let event = events
        .iter()
        .find(|e| e["id"] == "ima.validation.ima-ng.runtime_policy_hash")
        .unwrap_or_else(|| panic!("no runtime_policy_hash event: {result}"));
    let context: Value =
        serde_json::from_str(event["context"].as_str().expect("context")).expect("json");
    assert_eq!(context["got"], digest, "{result}");
    let log = result["log"].as_array().expect("log");
    assert!(
        log.iter().any(|l| l.as_str().is_some_and(
            |l| l.starts_with(&format!("Hashes for file {path} don't match {digest}"))
        )),
        "{result}"
    );
    // Nothing else failed: the list itself (PCR replay, template hashes) was fine.
    assert_eq!(events.len(), 1, "{result}");
}

#[test]
fn keylime_verifies_an_imafs_run_list_and_flags_a_changed_file() {
    let test = "keylime_verifies_an_imafs_run_list_and_flags_a_changed_file";
    let dir = tempfile::Builder::new()
        .prefix("imafs-keylime")
        .tempdir()
        .expect("tempdir");
    let Some(root) = make_rootfs(test, dir.path()) else {
        return;
    };
    let Some(python) = python_or_skip(test) else {
        return;
    };
    run_container(&root, "first");
    let out = root.join("out");
    let policy_sha1 = dir.path().join("policy-sha1.json");
    let policy_sha256 = dir.path().join("policy-sha256.json");
    let first_sha1 = out.join("first.sha1");
    generate_policy(
        &root,
        &["--ascii", first_sha1.to_str().unwrap()],
        "sha1",
        &policy_sha1,
    );
    generate_policy(
        &root,
        &["--ascii", first_sha1.to_str().unwrap()],
        "sha256",
        &policy_sha256,
    );

    // The list as Keylime's agent sends it (template hashes sha1) and the per-bank sha256
    // list, both replayed against the sha256 PCR 10 imafs reports.
    let pcrs = out.join("first.pcrs");
    for (list, policy) in [
        ("first.sha1", &policy_sha1),
        ("first.sha256", &policy_sha256),
    ] {
        let result = keylime_full(&python, policy, &out.join(list), &pcrs);
        assert_eq!(result["ok"], true, "{list}: {result}");
        let text = std::fs::read_to_string(out.join(list)).expect("list");
        assert_eq!(result["entries"], text.lines().count(), "{result}");
        for path in ["/bin/busybox", "/etc/app.conf", "/opt/app/run.sh"] {
            assert!(
                text.contains(&format!(" {path}\n")),
                "{path} not measured:\n{text}"
            );
        }
    }

    // The other templates Keylime parses: `ima-sig` (no signatures here: Keylime falls back
    // to the policy) and `ima`, whose `d` field is the file's sha1.
    for (template, hash) in [("ima-sig", "sha256"), ("ima", "sha1")] {
        let tag = format!("t-{template}");
        run_container_with(&root, &tag, &["--template", template]);
        let list = out.join(format!("{tag}.sha1"));
        let text = std::fs::read_to_string(&list).expect("list");
        assert!(
            text.lines().all(|l| l.split(' ').nth(2) == Some(template)),
            "{text}"
        );
        let policy = dir.path().join(format!("policy-{template}.json"));
        let list_arg = list.to_str().unwrap().to_string();
        generate_policy(
            &root,
            &["--ascii", &list_arg, "--hash", hash],
            "sha1",
            &policy,
        );
        let result = keylime_full(&python, &policy, &list, &out.join(format!("{tag}.pcrs")));
        assert_eq!(result["ok"], true, "{template}: {result}\n{text}");
    }

    // Keylime notices a list that does not replay to the reported PCR (a dropped line).
    let text = std::fs::read_to_string(&first_sha1).expect("list");
    let dropped: String = text
        .lines()
        .filter(|l| !l.ends_with(" /etc/app.conf"))
        .map(|l| format!("{l}\n"))
        .collect();
    let dropped_list = dir.path().join("dropped");
    std::fs::write(&dropped_list, dropped).expect("write");
    let result = keylime_full(&python, &policy_sha1, &dropped_list, &pcrs);
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["id"] == "ima.pcr_mismatch"),
        "{result}"
    );

    // A violation (ToMToU): Keylime replays its zero template hash as 0xff.., as the kernel
    // extends it, so the list still matches the PCR, and reports the violation itself.
    let script = "echo one > /tmp/f; exec 3< /tmp/f; echo two > /tmp/f; exec 3<&-; \
                  cat /sys/kernel/security/ima/ascii_runtime_measurements > /out/v.sha1; \
                  cat /sys/kernel/security/ima/pcrs > /out/v.pcrs";
    let run = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .args(["--", "sh", "-c", script])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    assert!(run.status.success(), "{run:?}");
    let v_list = out.join("v.sha1");
    assert!(std::fs::read_to_string(&v_list)
        .expect("list")
        .contains(&format!(" {} ima-ng ", "0".repeat(40))));
    let v_policy = dir.path().join("policy-v.json");
    let v_list_arg = v_list.to_str().unwrap().to_string();
    let policy = Command::new(common::imafs_bin())
        .args(["verify", "--generate-allowlist"])
        .arg(&root)
        .args([
            "--ascii",
            &v_list_arg,
            "--exclude",
            "/out/.*",
            "--exclude",
            "/tmp/.*",
        ])
        .output()
        .expect("generate");
    assert!(policy.status.success(), "{policy:?}");
    std::fs::write(&v_policy, &policy.stdout).expect("write");
    let result = keylime_full(&python, &v_policy, &v_list, &out.join("v.pcrs"));
    let ids: Vec<&str> = result["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["ima.validation.tomtou"], "{result}");

    // The file changes; a second container measures the new content; Keylime flags it.
    let tampered = b"listen 8080\nexec /tmp/backdoor\n";
    std::fs::write(root.join("etc/app.conf"), tampered).expect("write");
    run_container(&root, "second");
    let result = keylime_full(
        &python,
        &policy_sha1,
        &out.join("second.sha1"),
        &out.join("second.pcrs"),
    );
    assert_flags_file(&result, "/etc/app.conf", &sha256_hex(tampered));
}

/// Sends SIGTERM to the daemon on drop (it unmounts both views), and reaps it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn keylime_agent_resumes_at_remembered_offsets_of_a_live_list() {
    let test = "keylime_agent_resumes_at_remembered_offsets_of_a_live_list";
    if !common::is_root() {
        common::skip(
            test,
            "needs root (the securityfs view is root's, mode 0440)",
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-keylime-agent")
        .tempdir()
        .expect("tempdir");
    let Some(root) = make_rootfs(test, dir.path()) else {
        return;
    };
    let Some(python) = python_or_skip(test) else {
        return;
    };
    let mount = dir.path().join("mnt");
    let sec = dir.path().join("sec");
    std::fs::create_dir(&mount).expect("mkdir");
    std::fs::create_dir(&sec).expect("mkdir");
    let mut child = Command::new(common::imafs_bin())
        .arg("serve")
        .arg("--rootfs")
        .arg(&root)
        .arg("--mount")
        .arg(&mount)
        .arg("--securityfs")
        .arg(&sec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("imafs serve");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read");
    let _daemon = Daemon(child);
    assert_eq!(ready.trim(), "ready", "imafs serve did not start");

    // The container's work, through the measuring overlay: a read and an exec.
    std::fs::read(mount.join("etc/app.conf")).expect("read through the overlay");
    let status = Command::new(mount.join("opt/app/run.sh"))
        .status()
        .expect("exec through the overlay");
    assert!(status.success());

    let ima = sec.join("integrity/ima");
    let policy = dir.path().join("policy.json");
    generate_policy(
        &root,
        &["--securityfs", sec.to_str().unwrap()],
        "sha1",
        &policy,
    );

    let mut agent = Command::new(&python)
        .arg(fixture("keylime_check.py"))
        .arg("agent")
        .arg(&policy)
        .arg(ima.join("ascii_runtime_measurements"))
        .arg(ima.join("pcrs"))
        .arg("sha256")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python");
    let mut to_agent = agent.stdin.take().expect("stdin");
    let mut from_agent = BufReader::new(agent.stdout.take().expect("stdout"));
    let mut round = || -> Value {
        to_agent.write_all(b"round\n").expect("write");
        to_agent.flush().expect("flush");
        let mut line = String::new();
        from_agent.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };

    // Round 1: the whole list from entry 0.
    let first = round();
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["nth_entry"], 0);
    let n1 = first["lines"].as_u64().expect("lines");
    assert!(n1 >= 3, "boot_aggregate, app.conf, run.sh: {first}");
    assert_eq!(first["next_entry"], n1, "{first}");

    // Round 2: one new entry; the agent reads from the byte offset it remembered.
    std::fs::read(mount.join("etc/other.conf")).expect("read through the overlay");
    let second = round();
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(second["nth_entry"], n1, "{second}");
    let offset = second["offset"].as_u64().expect("offset");
    let sha1_list = std::fs::read(ima.join("ascii_runtime_measurements")).expect("list");
    let prefix_lines = sha1_list[..offset as usize]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    assert_eq!(prefix_lines, n1, "the offset is the start of entry {n1}");
    assert_eq!(second["lines"], 1, "{second}");
    assert!(
        second["first_line"]
            .as_str()
            .is_some_and(|l| l.ends_with(" /etc/other.conf")),
        "{second}"
    );
    assert_eq!(second["next_entry"], n1 + 1, "{second}");

    // Round 3: a file changed through the container's mount and read again.
    let tampered = b"listen 9999\n";
    std::fs::write(mount.join("etc/app.conf"), tampered).expect("write through the overlay");
    std::fs::read(mount.join("etc/app.conf")).expect("read through the overlay");
    let third = round();
    assert_eq!(third["nth_entry"], n1 + 1, "{third}");
    assert_flags_file(&third, "/etc/app.conf", &sha256_hex(tampered));

    drop(to_agent);
    let _ = agent.wait();
}

/// Kills the software TPM on drop.
struct Swtpm(Child);

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tpm2-tools command against the software TPM at `tcti`; its stdout.
fn tpm2(tcti: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", tcti)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whole verifier check of a TPM quote: imafs extends a software TPM (`--tpm`), tpm2-tools
/// quote PCR 10 with an attestation key, and Keylime's `Tpm.check_quote` verifies the quote's
/// signature, nonce and PCR digest, then replays imafs's list against the quoted PCR 10 and
/// validates it with the generated policy.
#[test]
fn keylime_checks_a_tpm_quote_of_the_pcr_imafs_extended() {
    let test = "keylime_checks_a_tpm_quote_of_the_pcr_imafs_extended";
    for tool in [
        "swtpm",
        "tpm2_createek",
        "tpm2_createak",
        "tpm2_quote",
        "tpm2_flushcontext",
    ] {
        if !common::have_tool(tool) {
            common::skip(
                test,
                &format!("{tool} not installed (apt-get install swtpm tpm2-tools)"),
            );
            return;
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-keylime-quote")
        .tempdir()
        .expect("tempdir");
    let Some(root) = make_rootfs(test, dir.path()) else {
        return;
    };
    let Some(python) = python_or_skip(test) else {
        return;
    };
    let tpm_dir = dir.path().join("tpm");
    std::fs::create_dir(&tpm_dir).expect("mkdir");
    let sock = tpm_dir.join("sock");
    // tpm2-tss's swtpm TCTI finds the control channel at `<path>.ctrl`.
    let swtpm = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--server")
        .arg(format!("type=unixio,path={}", sock.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}.ctrl", sock.display()))
        .arg("--tpmstate")
        .arg(format!("dir={}", tpm_dir.display()))
        .args(["--flags", "startup-clear"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("swtpm");
    let _swtpm = Swtpm(swtpm);
    // The socket file appears at bind(), before listen(): wait until a connection succeeds
    // (swtpm serves the next client once this one is closed).
    let listening = || std::os::unix::net::UnixStream::connect(&sock).is_ok();
    let mut ready = false;
    for _ in 0..200 {
        if listening() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "swtpm does not listen on {}", sock.display());

    // The container's work, PCR 10 extended in the TPM as it goes.
    let out = Command::new(common::imafs_bin())
        .arg("run")
        .arg("--tpm")
        .arg(format!("swtpm:{}", sock.display()))
        .arg("--rootfs")
        .arg(&root)
        .args([
            "--",
            "sh",
            "-c",
            "cat /etc/app.conf > /dev/null; /opt/app/run.sh; \
             cat /sys/kernel/security/ima/ascii_runtime_measurements > /out/list",
        ])
        .env("PATH", "/bin")
        .output()
        .expect("imafs run");
    assert!(out.status.success(), "{out:?}");
    let list = root.join("out/list");
    let policy = dir.path().join("policy.json");
    generate_policy(&root, &["--ascii", list.to_str().unwrap()], "sha1", &policy);

    // An attestation key under a persistent EK (swtpm has three transient object slots).
    let tcti = format!("swtpm:path={}", sock.display());
    tpm2(
        &tcti,
        &tpm_dir,
        &[
            "tpm2_createek",
            "-c",
            "0x81010001",
            "-G",
            "rsa",
            "-u",
            "ek.pub",
        ],
    );
    tpm2(&tcti, &tpm_dir, &["tpm2_flushcontext", "-t"]);
    tpm2(
        &tcti,
        &tpm_dir,
        &[
            "tpm2_createak",
            "-C",
            "0x81010001",
            "-c",
            "ak.ctx",
            "-G",
            "rsa",
            "-g",
            "sha256",
            "-s",
            "rsassa",
            "-u",
            "ak.pub",
            "-n",
            "ak.name",
        ],
    );
    tpm2(&tcti, &tpm_dir, &["tpm2_flushcontext", "-t"]);
    let nonce = "imafs-keylime-nonce-1";
    tpm2(
        &tcti,
        &tpm_dir,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:10",
            "-q",
            &hex::encode(nonce),
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-o",
            "quote.pcrs",
            "-g",
            "sha256",
        ],
    );

    // `imafs verify` reads the TPM's PCRs as tpm2_pcrread prints them.
    let pcrread = tpm_dir.join("pcrread");
    std::fs::write(
        &pcrread,
        tpm2(&tcti, &tpm_dir, &["tpm2_pcrread", "sha1:10+sha256:10"]),
    )
    .expect("write");
    let verify = Command::new(common::imafs_bin())
        .arg("verify")
        .arg("--ascii")
        .arg(&list)
        .arg("--pcrs")
        .arg(&pcrread)
        .arg("--allowlist")
        .arg(&policy)
        .output()
        .expect("imafs verify");
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert_eq!(report.matches(" matches ").count(), 2, "{report}");

    let keylime_quote = |list: &Path, nonce: &str| -> Value {
        let out = Command::new(&python)
            .arg(fixture("keylime_check.py"))
            .arg("quote")
            .arg(&policy)
            .arg(list)
            .arg(&tpm_dir)
            .arg(nonce)
            .output()
            .expect("python");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let result = keylime_quote(&list, nonce);
    assert_eq!(result["ok"], true, "{result}");

    // The same quote with another nonce (a replay) is refused before the list is looked at.
    let result = keylime_quote(&list, "another-nonce");
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["events"][0]["context"]
            .as_str()
            .is_some_and(|c| c.contains("nonce")),
        "{result}"
    );

    // A list with an entry removed no longer replays to the quoted PCR 10.
    let text = std::fs::read_to_string(&list).expect("list");
    let dropped: String = text
        .lines()
        .filter(|l| !l.ends_with(" /opt/app/run.sh"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(dropped, text);
    let dropped_list = dir.path().join("dropped");
    std::fs::write(&dropped_list, dropped).expect("write");
    let result = keylime_quote(&dropped_list, nonce);
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["id"] == "ima.pcr_mismatch"),
        "{result}"
    );
}
