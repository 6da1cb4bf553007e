//! `--tpm swtpm:SOCKET`: a real software TPM (swtpm) gets the PCR extends; tpm2-tools read
//! it back. PCR 10 of the TPM equals the replay of the list, and boot_aggregate is the hash
//! of the TPM's PCRs 0-9 (sha256 bank).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Swtpm {
    child: Child,
    sock: PathBuf,
}

impl Swtpm {
    fn start(dir: &Path) -> Swtpm {
        let state = dir.join("tpmstate");
        std::fs::create_dir_all(&state).unwrap();
        let sock = dir.join("swtpm.sock");
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--server")
            .arg(format!("type=unixio,path={}", sock.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}.ctrl", sock.display()))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .args(["--flags", "startup-clear,not-need-init"])
            .stderr(File::create(dir.join("swtpm.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "swtpm did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, sock }
    }

    fn tcti(&self) -> String {
        format!("swtpm:path={}", self.sock.display())
    }

    /// `tpm2_pcrread ALG:PCRS -o FILE`: the raw PCR values, concatenated.
    fn pcrread(&self, selection: &str, out: &Path) -> Vec<u8> {
        let o = Command::new("tpm2_pcrread")
            .env("TPM2TOOLS_TCTI", self.tcti())
            .arg(selection)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tpm2_pcrread {selection}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(out).unwrap()
    }

    fn pcrextend(&self, arg: &str) {
        let o = Command::new("tpm2_pcrextend")
            .env("TPM2TOOLS_TCTI", self.tcti())
            .arg(arg)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tpm2_pcrextend: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Daemon {
    child: Option<Child>,
    _stdout: ChildStdout,
    sfs: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, args: &[&str]) -> Daemon {
        let sfs = dir.join("sfs");
        std::fs::create_dir_all(&sfs).unwrap();
        let stderr = dir.join("imafs.stderr");
        let mut child = Command::new(common::imafs_bin())
            .arg("serve")
            .arg("--securityfs")
            .arg(&sfs)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            "ready\n",
            "imafs serve did not come up: {}",
            std::fs::read_to_string(&stderr).unwrap()
        );
        Daemon {
            child: Some(child),
            _stdout: out.into_inner(),
            sfs,
            stderr,
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.sfs.join("integrity/ima").join(name)).unwrap()
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        let _ = rustix::mount::unmount(&self.sfs, rustix::mount::UnmountFlags::DETACH);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn can_run(test: &str) -> bool {
    for tool in ["swtpm", "tpm2_pcrread", "tpm2_pcrextend"] {
        if !common::have_tool(tool) {
            common::skip(test, &format!("{tool} not installed (swtpm, tpm2-tools)"));
            return false;
        }
    }
    if !common::is_root() {
        common::skip(test, "needs root to mount FUSE with allow_other");
        return false;
    }
    if !common::fuse_available() {
        common::skip(test, "/dev/fuse not available");
        return false;
    }
    true
}

/// The `PCR-10 <bank> <hex>` value of the `pcrs` file.
fn pcrs_value(pcrs: &str, bank: &str) -> String {
    pcrs.lines()
        .find_map(|l| l.strip_prefix(&format!("PCR-10 {bank} ")))
        .unwrap_or_else(|| panic!("no PCR-10 {bank} in {pcrs}"))
        .to_string()
}

fn evmctl_replays_against_tpm(list: &Path, tpm: &Swtpm, dir: &Path) {
    if !common::have_tool("evmctl") {
        eprintln!("evmctl not installed: replay check not done");
        return;
    }
    let mut args = Vec::new();
    for (bank, size) in [("sha1", 20), ("sha256", 32)] {
        let mut text = String::new();
        for i in 0..24 {
            let v = if i == 10 {
                hex::encode(tpm.pcrread(&format!("{bank}:10"), &dir.join("pcr.bin")))
            } else {
                "00".repeat(size)
            };
            text.push_str(&format!("PCR-{i:02} {v}\n"));
        }
        let path = dir.join(format!("tpm-{bank}"));
        std::fs::write(&path, text).unwrap();
        args.push("--pcrs".to_string());
        args.push(format!("{bank},{}", path.display()));
    }
    let out = Command::new("evmctl")
        .args(["ima_measurement", "--ignore-violations"])
        .args(&args)
        .arg(list)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Matched per TPM bank calculated digest(s)."),
        "{text}"
    );
}

#[test]
fn swtpm_pcr10_equals_the_list_replay_and_boot_aggregate_its_pcrs() {
    let test = "swtpm_pcr10_equals_the_list_replay_and_boot_aggregate_its_pcrs";
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tpm = Swtpm::start(dir);
    // Firmware-like measurements into PCRs 0 and 8, so the aggregate is not all zeros and
    // PCR 8 (hashed for sha256, not for sha1) matters.
    tpm.pcrextend(&format!(
        "0:sha256={},sha1={}",
        "ab".repeat(32),
        "cd".repeat(20)
    ));
    tpm.pcrextend(&format!("8:sha256={}", "12".repeat(32)));
    let events = dir.join("events");
    std::fs::write(
        &events,
        "read /etc/passwd\nexec /bin/sh\nread /etc/hostname\n",
    )
    .unwrap();
    let state = dir.join("state");
    let spec = format!("swtpm:{}", tpm.sock.display());
    let d = Daemon::start(
        dir,
        &[
            "--tpm",
            &spec,
            "--events",
            events.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    // The list has one file per TPM bank (swtpm allocates sha1, sha256, sha384, sha512).
    let pcrs = d.read("pcrs");
    for bank in ["sha1", "sha256"] {
        let tpm_pcr10 = hex::encode(tpm.pcrread(&format!("{bank}:10"), &dir.join("p")));
        assert_eq!(tpm_pcr10, pcrs_value(&pcrs, bank), "{bank}");
    }
    let ascii = d.read("ascii_runtime_measurements_sha256");
    let first = ascii.lines().next().unwrap();
    assert!(first.ends_with(" boot_aggregate"), "{first}");
    let pcrs0_9 = tpm.pcrread("sha256:0,1,2,3,4,5,6,7,8,9", &dir.join("p0-9"));
    assert_eq!(pcrs0_9.len(), 320);
    use sha2::Digest as _;
    let want = hex::encode(sha2::Sha256::digest(&pcrs0_9));
    assert_eq!(
        first.split(' ').nth(3).unwrap(),
        format!("sha256:{want}"),
        "{first}"
    );
    evmctl_replays_against_tpm(
        &d.sfs.join("integrity/ima/binary_runtime_measurements"),
        &tpm,
        dir,
    );
    d.stop();

    // Restarted with the same state and the same (not reset) TPM: no extend is repeated,
    // new records extend both, and they still agree.
    std::fs::write(&events, "read /etc/group\n").unwrap();
    let d = Daemon::start(
        dir,
        &[
            "--tpm",
            &spec,
            "--events",
            events.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    let pcrs = d.read("pcrs");
    assert!(d
        .read("ascii_runtime_measurements")
        .ends_with(" /etc/group\n"));
    for bank in ["sha1", "sha256"] {
        let tpm_pcr10 = hex::encode(tpm.pcrread(&format!("{bank}:10"), &dir.join("p")));
        assert_eq!(tpm_pcr10, pcrs_value(&pcrs, bank), "{bank} after restart");
    }
    let stderr = std::fs::read_to_string(&d.stderr).unwrap();
    assert!(!stderr.contains("TPM was reset"), "{stderr}");
}

#[test]
fn a_reset_tpm_is_reported_at_restart() {
    let test = "a_reset_tpm_is_reported_at_restart";
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let state = dir.join("state");
    let tpm = Swtpm::start(dir);
    let spec = format!("swtpm:path={}", tpm.sock.display());
    let args = ["--tpm", &spec, "--state", state.to_str().unwrap()];
    Daemon::start(dir, &args).stop();
    drop(tpm);
    // A new TPM (a reboot): PCR 10 is zero again while the journal replays a list.
    let _ = std::fs::remove_dir_all(dir.join("tpmstate"));
    let _ = std::fs::remove_file(dir.join("swtpm.sock"));
    let tpm = Swtpm::start(dir);
    let d = Daemon::start(dir, &args);
    let stderr = std::fs::read_to_string(&d.stderr).unwrap();
    assert!(
        stderr.contains("TPM was reset or extended by someone else"),
        "{stderr}"
    );
    assert!(hex::encode(tpm.pcrread("sha256:10", &dir.join("p")))
        .chars()
        .all(|c| c == '0'));
}
