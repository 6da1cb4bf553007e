//! Remote attestation of imafs containers by Keylime's own daemons, end to end (issue #19):
//! Keylime 7.14.3's registrar, verifier and keylime_tenant (PyPI, pinned in
//! examples/keylime/requirements.txt, venv under target/keylime-daemons-venv) with their own
//! configuration (examples/keylime/*.conf), SQLite databases and mTLS certificates; the Rust
//! agent built from the pinned rust-keylime source (cached under target/keylime-agent); per
//! container a swtpm, `imafs serve --tpm swtpm:... --tpm-share host=...,port=P --state DIR`
//! and an agent beside it whose TCTI is the daemon's share of the TPM and whose ima_ml_path is
//! the served view. Everything is driven through examples/keylime/imafs-keylime, the README's
//! command, in Keylime's pull model (see README "Attest a container with Keylime").
//!
//! - `tpm_share_serves_two_clients_under_load`: tpm2-tools through `--tpm-share` while the
//!   container's reads extend PCR 10: every command answers, PCR 10 of the TPM equals the
//!   list's, and a client's extend of PCR 10 is refused (seen red with `check_command`
//!   forwarding everything: tpm2_pcrextend 10 then succeeds and PCR 10 no longer matches).
//! - `keylime_attests_imafs_containers`: two containers attested independently while one
//!   reads new files (extends) under the verifier's quotes; the daemon restarted with
//!   --state keeps attesting; a changed /etc/app.conf read in one fails only that one, with
//!   Keylime's runtime_policy_hash event naming the file; a wrong policy, a journal cut short
//!   and a TPM that goes away each fail with Keylime's own event and imafs's message, and the
//!   recorded entries stay in the list (seen red with the changed file not read: the agent
//!   stays attested).
//!
//! Skipped, loudly, where the rust-keylime source tarball is absent.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The pinned Rust agent's source (Apache-2.0), as the issue names it.
const AGENT_TARBALL: &str = "/work/shared/third-party/rust-keylime-3a4d565476dd.tar.gz";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    manifest_dir().join("examples/keylime").join(name)
}

fn tarball() -> PathBuf {
    std::env::var_os("IMAFS_RUST_KEYLIME_TARBALL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(AGENT_TARBALL))
}

/// `keylime_agent` built from the tarball once, cached under target/keylime-agent (rebuilt
/// when the tarball's digest changes).
fn agent_binary() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(build_agent).clone()
}

fn build_agent() -> Result<PathBuf, String> {
    let tar = tarball();
    let bytes = std::fs::read(&tar).map_err(|e| {
        format!(
            "RUST-KEYLIME SOURCE TARBALL ABSENT: {}: {e} (set IMAFS_RUST_KEYLIME_TARBALL)",
            tar.display()
        )
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let dir = manifest_dir().join("target/keylime-agent");
    let bin = dir.join("build/release/keylime_agent");
    let stamp = dir.join("source.sha256");
    if bin.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(dir.join("rust-keylime"));
    std::fs::create_dir_all(&dir).expect("mkdir target/keylime-agent");
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .output()
        .expect("tar");
    assert!(untar.status.success(), "tar: {untar:?}");
    eprintln!("keylime_agent: building from {} (once)", tar.display());
    let mut cargo = Command::new("nice");
    cargo
        .args([
            "-n",
            "19",
            "cargo",
            "build",
            "--release",
            "-p",
            "keylime_agent",
        ])
        .current_dir(dir.join("rust-keylime"))
        .env("CARGO_TARGET_DIR", dir.join("build"));
    // The outer cargo's settings are for imafs, not for this workspace.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k == "RUSTFLAGS" {
            cargo.env_remove(&k);
        }
    }
    cargo.env("CARGO_TARGET_DIR", dir.join("build"));
    let out = cargo.output().expect("cargo");
    assert!(
        out.status.success(),
        "building keylime_agent failed (apt-get install libtss2-dev libssl-dev pkg-config \
         clang): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stamp, &digest).expect("stamp");
    Ok(bin)
}

/// The venv with Keylime's daemons, made by the script from the pinned requirements.
fn keylime_venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = manifest_dir().join("target/keylime-daemons-venv");
        let stamp = venv.join("imafs-requirements.txt");
        let requirements =
            std::fs::read_to_string(example("requirements.txt")).map_err(|e| e.to_string())?;
        let ready = Command::new(venv.join("bin/python"))
            .args(["-c", "import keylime.cmd.verifier, keylime.cmd.tenant, gpg"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready && std::fs::read_to_string(&stamp).ok() == Some(requirements.clone()) {
            return Ok(venv);
        }
        let _ = std::fs::remove_dir_all(&venv);
        let out = Command::new(example("imafs-keylime"))
            .arg("venv")
            .arg(&venv)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "imafs-keylime venv failed (PyPI, python3-venv, python3-gpg): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::fs::write(&stamp, requirements).map_err(|e| e.to_string())?;
        Ok(venv)
    })
    .clone()
}

/// chroot(8) by its path: the container's commands run with PATH=/bin.
fn chroot() -> PathBuf {
    ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("chroot"))
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// What both tests need; `None` after a skip.
fn can_run(test: &str, keylime: bool) -> Option<(PathBuf, PathBuf)> {
    if keylime {
        if let Err(reason) = agent_binary() {
            common::skip(test, &reason);
            return None;
        }
    }
    for tool in [
        "swtpm",
        "tpm2_pcrread",
        "tpm2_pcrextend",
        "chroot",
        "setsid",
    ] {
        if !common::have_tool(tool) {
            common::skip(test, &format!("{tool} not installed (swtpm, tpm2-tools)"));
            return None;
        }
    }
    if !common::is_root() {
        common::skip(
            test,
            "needs root (FUSE allow_other, chroot into the container)",
        );
        return None;
    }
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse cannot be opened");
        return None;
    }
    let Some(bb) = busybox() else {
        common::skip(test, "no busybox (apt-get install busybox-static)");
        return None;
    };
    let venv = if keylime {
        match keylime_venv() {
            Ok(v) => v,
            Err(reason) => {
                common::skip(test, &format!("KEYLIME NOT AVAILABLE: {reason}"));
                return None;
            }
        }
    } else {
        PathBuf::new()
    };
    Some((bb, venv))
}

/// A busybox rootfs with an application, its configuration and a scratch directory.
fn make_rootfs(bb: &Path, root: &Path) {
    for d in [
        "bin", "etc", "opt/app", "tmp", "scratch", "proc", "dev", "sys",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(bb, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "cat", "echo", "seq"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(root.join("etc/app.conf"), "listen 8080\n").expect("write");
    std::fs::write(root.join("opt/app/run.sh"), "#!/bin/sh\nexit 0\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("opt/app/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
}

/// A base port for this run's daemons (the script uses base+1 .. base+220): below the
/// kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), where
/// any outgoing connection on the host may hold a port.
fn port_base() -> u16 {
    20000 + (std::process::id() % 12) as u16 * 1000
}

/// examples/keylime/imafs-keylime with this run's environment.
struct Kl {
    dir: PathBuf,
    venv: PathBuf,
    agent: PathBuf,
    base: u16,
}

impl Kl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(example("imafs-keylime"));
        c.args(args)
            .env("IMAFS", common::imafs_bin())
            .env("KEYLIME_VENV", &self.venv)
            .env("KEYLIME_AGENT", &self.agent)
            .env("IMAFS_KEYLIME_PORT", self.base.to_string())
            .env("KEYLIME_QUOTE_INTERVAL", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("imafs-keylime")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "imafs-keylime {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn d(&self) -> &str {
        self.dir.to_str().expect("utf-8 dir")
    }

    /// The verifier's record of NAME's agent.
    fn info(&self, name: &str) -> Value {
        let out = self.ok(&["info", self.d(), name]);
        serde_json::from_str::<Value>(out.trim())
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
            .unwrap_or(Value::Null)
    }

    /// Poll the verifier until `pred` holds for NAME (a liveness bound, not a timing check).
    fn wait(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.info(name);
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: never {what}; last record {v}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for log in ["keylime/verifier.log", "keylime/registrar.log"] {
            let text = std::fs::read_to_string(self.dir.join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s += &format!(
                "--- {log}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        for c in ["c1", "c2", "c3", "c4"] {
            for f in ["agent.log", "imafs.log"] {
                let p = self.dir.join(c).join(f);
                if let Ok(text) = std::fs::read_to_string(&p) {
                    let tail: Vec<&str> = text.lines().rev().take(8).collect();
                    s += &format!(
                        "--- {c}/{f}\n{}\n",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        s
    }

    fn verifier_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keylime/verifier.log")).unwrap_or_default()
    }

    /// Run a shell command in container NAME (chroot into its overlay as root).
    fn sh(&self, name: &str, script: &str) {
        let out = Command::new(chroot())
            .arg(self.dir.join(name).join("root"))
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/bin")
            .output()
            .expect("chroot");
        assert!(out.status.success(), "{name}: {script}: {out:?}");
    }

    fn list(&self, name: &str) -> String {
        std::fs::read_to_string(
            self.dir
                .join(name)
                .join("sec/integrity/ima/ascii_runtime_measurements"),
        )
        .expect("list")
    }
}

impl Drop for Kl {
    fn drop(&mut self) {
        let _ = self.run(&["stop", self.d()]);
    }
}

fn is_state(v: &Value, state: &str) -> bool {
    v["operational_state"] == state
}

fn count(v: &Value) -> u64 {
    v["attestation_count"].as_u64().unwrap_or(0)
}

/// Attested now and at least `n` more attestations than in `since`.
fn attested_beyond(v: &Value, since: u64, n: u64) -> bool {
    is_state(v, "Get Quote") && v["attestation_status"] == "PASS" && count(v) >= since + n
}

#[test]
fn keylime_attests_imafs_containers() {
    let test = "keylime_attests_imafs_containers";
    let Some((bb, venv)) = can_run(test, true) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("imafs-keylime-agent")
        .tempdir()
        .expect("tempdir");
    let rootfs: Vec<PathBuf> = (1..=4)
        .map(|i| {
            let r = tmp.path().join(format!("rootfs{i}"));
            make_rootfs(&bb, &r);
            r
        })
        .collect();
    let kl = Kl {
        dir: tmp.path().join("kl"),
        venv,
        agent: agent_binary().expect("agent"),
        base: port_base(),
    };
    std::fs::create_dir_all(&kl.dir).unwrap();
    let r = |i: usize| rootfs[i].to_str().unwrap().to_string();
    let app = "cat /etc/app.conf >/dev/null && /opt/app/run.sh";

    // Keylime's daemons, then two containers, each with its own TPM and agent.
    kl.ok(&["keylime", kl.d()]);
    for (name, i) in [("c1", 0), ("c2", 1)] {
        kl.ok(&["container", kl.d(), name, &r(i)]);
        kl.sh(name, app);
        // /scratch holds what the container makes at run time: measured and extended into
        // PCR 10 like everything else, excluded from the policy's file checks.
        kl.ok(&["add", kl.d(), name, &r(i), "--exclude", "/scratch/.*"]);
    }
    let mut c1 = kl.wait("c1", "attested", |v| attested_beyond(v, 0, 1));
    kl.wait("c2", "attested", |v| attested_beyond(v, 0, 1));

    // Load: c1 makes and reads new files (each an extend through the daemon) while the
    // agent quotes the same TPM through the daemon's share, round after round.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = Arc::clone(&stop);
        let root = kl.dir.join("c1/root");
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let script = format!(
                    "for i in $(seq 20); do echo {n}.$i > /scratch/f{n}.$i; cat /scratch/f{n}.$i \
                     >/dev/null; done"
                );
                let ok = Command::new(chroot())
                    .arg(&root)
                    .args(["/bin/sh", "-c", &script])
                    .env_clear()
                    .env("PATH", "/bin")
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "load in c1");
                n += 1;
            }
            n
        })
    };
    let since = count(&c1);
    c1 = kl.wait("c1", "attested under load", |v| {
        attested_beyond(v, since, 4)
    });
    stop.store(true, Ordering::Relaxed);
    let rounds = loader.join().expect("loader");
    assert!(rounds > 0);
    assert!(kl.list("c1").contains("/scratch/f0.1"), "load not measured");

    // The daemon restarted with --state: the list continues, the TPM kept PCR 10.
    kl.ok(&["restart-daemon", kl.d(), "c1"]);
    kl.sh(
        "c1",
        "echo again > /scratch/after-restart; cat /scratch/after-restart; cat /etc/app.conf",
    );
    let since = count(&c1);
    kl.wait("c1", "attested after the daemon's restart", |v| {
        attested_beyond(v, since, 2)
    });
    assert!(kl.list("c1").contains("/scratch/f0.1"), "lost on restart");

    // A program's configuration changed on c2's rootfs and read: c2 fails, naming the file;
    // c1 goes on being attested.
    std::fs::write(rootfs[1].join("etc/app.conf"), "listen 6666\n").unwrap();
    kl.sh("c2", "cat /etc/app.conf >/dev/null");
    let c2 = kl.wait("c2", "failed", |v| is_state(v, "Invalid Quote"));
    assert_eq!(
        c2["last_event_id"], "ima.validation.ima-ng.runtime_policy_hash",
        "{c2}"
    );
    assert!(
        kl.verifier_log()
            .contains("Hashes for file /etc/app.conf don't match"),
        "{}",
        kl.logs()
    );
    let c1 = kl.info("c1");
    let since = count(&c1);
    kl.wait("c1", "still attested beside a failed c2", |v| {
        attested_beyond(v, since, 2)
    });

    // A wrong policy (made from another rootfs, whose app.conf differs): Keylime fails the
    // agent on the file; `imafs verify` with the same policy names it too.
    std::fs::write(rootfs[3].join("etc/app.conf"), "listen 7777\n").unwrap();
    kl.ok(&["container", kl.d(), "c3", &r(2)]);
    kl.sh("c3", app);
    kl.ok(&["add", kl.d(), "c3", &r(3), "--exclude", "/scratch/.*"]);
    let c3 = kl.wait("c3", "failed on a wrong policy", |v| {
        is_state(v, "Invalid Quote")
    });
    assert_eq!(
        c3["last_event_id"], "ima.validation.ima-ng.runtime_policy_hash",
        "{c3}"
    );
    let verify = Command::new(common::imafs_bin())
        .arg("verify")
        .arg("--securityfs")
        .arg(kl.dir.join("c3/sec"))
        .arg("--allowlist")
        .arg(kl.dir.join("c3/policy.json"))
        .arg("-q")
        .output()
        .expect("imafs verify");
    let report = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    assert!(report.contains("/etc/app.conf"), "{report}");
    assert!(kl.list("c3").contains("/opt/app/run.sh"), "list kept");

    // A journal cut short (the daemon's --state lost its tail, as after a crash mid-write):
    // imafs says so and keeps the whole entries before it; the TPM still has the lost
    // entry's extend, so Keylime finds that the list does not match PCR 10.
    kl.ok(&["container", kl.d(), "c4", &r(2)]);
    kl.sh("c4", app);
    let journal = kl.dir.join("c4/state/journal");
    let entries = kl.list("c4").lines().count();
    kl.ok(&["stop-daemon", kl.d(), "c4"]);
    let len = std::fs::metadata(&journal).expect("journal").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    kl.ok(&["start-daemon", kl.d(), "c4"]);
    let imafs_log = std::fs::read_to_string(kl.dir.join("c4/imafs.log")).unwrap();
    assert!(
        imafs_log.contains("torn tail") && imafs_log.contains("entries kept"),
        "{imafs_log}"
    );
    assert_eq!(
        kl.list("c4").lines().count(),
        entries - 1,
        "whole entries kept"
    );
    kl.ok(&["add", kl.d(), "c4", &r(2), "--exclude", "/scratch/.*"]);
    let c4 = kl.wait("c4", "failed on a list cut short", |v| {
        is_state(v, "Invalid Quote")
    });
    assert_eq!(c4["last_event_id"], "ima.pcr_mismatch", "{c4}");

    // The TPM goes away under c1: imafs logs the failed extend and keeps recording; the
    // agent can no longer quote and the verifier stops attesting c1.
    let swtpm_pid = std::fs::read_to_string(kl.dir.join("c1/swtpm.pid")).unwrap();
    let kill = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", swtpm_pid.trim())])
        .status()
        .unwrap();
    assert!(kill.success());
    kl.sh("c1", "echo gone > /scratch/tpm-gone; cat /scratch/tpm-gone");
    let c1 = kl.wait("c1", "failed without its TPM", |v| is_state(v, "Failed"));
    let log = std::fs::read_to_string(kl.dir.join("c1/imafs.log")).unwrap();
    assert!(
        log.contains("Error Communicating to TPM chip"),
        "imafs's message: {log}"
    );
    assert!(kl.list("c1").contains("/scratch/tpm-gone"), "recorded");
    eprintln!(
        "c1 without its TPM: {} ({})",
        c1["operational_state"], c1["last_event_id"]
    );
}

#[test]
fn tpm_share_serves_two_clients_under_load() {
    let test = "tpm_share_serves_two_clients_under_load";
    let Some((bb, _)) = can_run(test, false) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("imafs-tpm-share")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path().join("rootfs");
    make_rootfs(&bb, &root);
    let kl_dir = tmp.path().join("kl");
    // The container without Keylime: swtpm and imafs serve as the script starts them.
    let c = kl_dir.join("c1");
    std::fs::create_dir_all(c.join("tpmstate")).unwrap();
    let swtpm = Command::new("swtpm")
        .args(["socket", "--tpm2", "--server"])
        .arg(format!("type=unixio,path={}/swtpm.sock", c.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}/swtpm.sock.ctrl", c.display()))
        .arg("--tpmstate")
        .arg(format!("dir={}/tpmstate", c.display()))
        .args(["--flags", "startup-clear,not-need-init"])
        .stderr(Stdio::null())
        .spawn()
        .expect("swtpm");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.join("swtpm.sock").exists() {
        assert!(Instant::now() < deadline, "swtpm did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut guard = Guard {
        children: vec![swtpm],
        mounts: vec![c.join("root"), c.join("sec")],
    };
    let share = c.join("tpm");
    std::fs::create_dir_all(c.join("root")).unwrap();
    std::fs::create_dir_all(c.join("sec")).unwrap();
    let daemon = Command::new(common::imafs_bin())
        .arg("serve")
        .arg("--rootfs")
        .arg(&root)
        .arg("--mount")
        .arg(c.join("root"))
        .arg("--securityfs")
        .arg(c.join("sec"))
        .arg("--tpm")
        .arg(format!("swtpm:{}/swtpm.sock", c.display()))
        .arg("--tpm-share")
        .arg(&share)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(c.join("imafs.log")).unwrap())
        .spawn()
        .expect("imafs serve");
    guard.children.insert(0, daemon);
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(guard.children[0].stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
    }
    let tcti = format!("swtpm:path={}", share.display());
    let tool = |args: &[&str]| -> Output {
        Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", &tcti)
            .output()
            .expect("tpm2-tools")
    };

    // Client 1: the container's reads (each new file an extend of PCR 10 by the daemon);
    // client 2: tpm2-tools through the share, at the same time.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = Arc::clone(&stop);
        let root = c.join("root");
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n == 0 {
                let script = format!(
                    "for i in $(seq 25); do echo {n}.$i > /scratch/f{n}.$i; cat /scratch/f{n}.$i \
                     >/dev/null; done"
                );
                let st = Command::new(chroot())
                    .arg(&root)
                    .args(["/bin/sh", "-c", &script])
                    .env_clear()
                    .env("PATH", "/bin")
                    .status()
                    .unwrap();
                assert!(st.success());
                n += 1;
            }
            n
        })
    };
    for i in 0..40 {
        let read = tool(&["tpm2_pcrread", "sha256:10,16"]);
        assert!(read.status.success(), "pcrread {i}: {read:?}");
        let random = tool(&["tpm2_getrandom", "--hex", "16"]);
        assert!(random.status.success(), "getrandom {i}: {random:?}");
        assert_eq!(random.stdout.len(), 32, "{random:?}");
        // Another PCR is the clients' to use.
        let ext = tool(&[
            "tpm2_pcrextend",
            &format!("16:sha256={}", hex::encode([i as u8; 32])),
        ]);
        assert!(ext.status.success(), "pcrextend 16: {ext:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = loader.join().unwrap();

    // PCR 10 is the daemon's: a client's extend is refused with TPM_RC_LOCALITY.
    let ext = tool(&[
        "tpm2_pcrextend",
        &format!("10:sha256={}", hex::encode([7u8; 32])),
    ]);
    assert!(!ext.status.success(), "a client extended PCR 10: {ext:?}");
    assert!(
        String::from_utf8_lossy(&ext.stderr).contains("0x907"),
        "{ext:?}"
    );

    // The TPM's PCR 10 (through the share) is the list's, after all of it.
    let out = tmp.path().join("pcr10");
    let read = tool(&["tpm2_pcrread", "sha256:10", "-o", out.to_str().unwrap()]);
    assert!(read.status.success(), "{read:?}");
    let tpm10 = hex::encode(std::fs::read(&out).unwrap());
    let pcrs = std::fs::read_to_string(c.join("sec/integrity/ima/pcrs")).unwrap();
    let want = pcrs
        .lines()
        .find(|l| l.starts_with("PCR-10 sha256 "))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("PCR-10 sha256 in pcrs")
        .to_string();
    assert_eq!(tpm10, want, "TPM PCR 10 != list after {rounds} rounds");
    let list =
        std::fs::read_to_string(c.join("sec/integrity/ima/ascii_runtime_measurements")).unwrap();
    assert!(list.lines().count() > 25, "{list}");

    drop(guard);
}

/// Processes to end (TERM, then KILL) and mounts to detach when a test ends, passed or not.
struct Guard {
    children: Vec<std::process::Child>,
    mounts: Vec<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for m in &self.mounts {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
