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
    /// TCP data port instead of the unix socket.
    port: Option<u16>,
}

impl Swtpm {
    fn start(dir: &Path) -> Swtpm {
        Swtpm::start_on(dir, None)
    }

    fn start_on(dir: &Path, port: Option<u16>) -> Swtpm {
        Swtpm::start_with(dir, port, &["--flags", "startup-clear,not-need-init"])
    }

    fn start_with(dir: &Path, port: Option<u16>, extra: &[&str]) -> Swtpm {
        let state = dir.join("tpmstate");
        std::fs::create_dir_all(&state).unwrap();
        let sock = dir.join("swtpm.sock");
        let (server, ctrl) = match port {
            None => (
                format!("type=unixio,path={}", sock.display()),
                format!("type=unixio,path={}.ctrl", sock.display()),
            ),
            Some(p) => (
                format!("type=tcp,port={p},bindaddr=127.0.0.1"),
                format!("type=tcp,port={},bindaddr=127.0.0.1", p + 1),
            ),
        };
        let mut child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--server")
            .arg(server)
            .arg("--ctrl")
            .arg(ctrl)
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .args(extra)
            .stderr(File::create(dir.join("swtpm.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let up = |sock: &Path| match port {
            None => std::os::unix::net::UnixStream::connect(sock).is_ok(),
            Some(p) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
        };
        while !up(&sock) {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!(
                    "swtpm did not come up: {}",
                    std::fs::read_to_string(dir.join("swtpm.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, sock, port }
    }

    fn tcti(&self) -> String {
        match self.port {
            None => format!("swtpm:path={}", self.sock.display()),
            Some(p) => format!("swtpm:host=127.0.0.1,port={p}"),
        }
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

#[test]
fn swtpm_over_tcp() {
    let test = "swtpm_over_tcp";
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A port pair unlikely to be taken; a busy one makes swtpm exit and the test fail.
    let port = 20000 + (std::process::id() % 20000) as u16 * 2;
    let tpm = Swtpm::start_on(dir, Some(port));
    let events = dir.join("events");
    std::fs::write(&events, "read /etc/passwd\nread /etc/hostname\n").unwrap();
    let spec = format!("swtpm:host=127.0.0.1,port={port}");
    let d = Daemon::start(dir, &["--tpm", &spec, "--events", events.to_str().unwrap()]);
    let pcrs = d.read("pcrs");
    for bank in ["sha1", "sha256"] {
        let tpm_pcr10 = hex::encode(tpm.pcrread(&format!("{bank}:10"), &dir.join("p")));
        assert_eq!(tpm_pcr10, pcrs_value(&pcrs, bank), "{bank}");
    }
    assert!(d
        .read("ascii_runtime_measurements")
        .contains(" /etc/hostname\n"));
}

#[test]
fn a_tpm_that_goes_away_is_audited_and_the_list_goes_on() {
    let test = "a_tpm_that_goes_away_is_audited_and_the_list_goes_on";
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tpm = Swtpm::start(dir);
    let fifo = dir.join("events.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let audit = dir.join("audit.log");
    let spec = format!("swtpm:{}", tpm.sock.display());
    let d = Daemon::start(
        dir,
        &[
            "--tpm",
            &spec,
            "--events",
            fifo.to_str().unwrap(),
            "--audit",
            audit.to_str().unwrap(),
        ],
    );
    let mut events = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    use std::io::Write as _;
    writeln!(events, "read /etc/passwd").unwrap();
    let wait_for = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.read("ascii_runtime_measurements").contains(name) {
            assert!(Instant::now() < deadline, "{name} never measured");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(" /etc/passwd\n");
    drop(tpm);
    writeln!(events, "read /etc/hostname").unwrap();
    wait_for(" /etc/hostname\n");
    // The record is in the list before the failed extend is audited (ima_queue.c:
    // ima_add_template_entry adds, then extends, then audits the TPM error): wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let log = std::fs::read_to_string(&audit).unwrap_or_default();
        let found = log
            .lines()
            .find(|l| l.contains("name=\"/etc/hostname\"") && l.contains("INTEGRITY_PCR"))
            .map(str::to_owned);
        match found {
            Some(line) => break line,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => panic!("no INTEGRITY_PCR record for /etc/hostname in the audit log:\n{log}"),
        }
    };
    assert!(line.contains("cause=TPM_error("), "{line}");
    assert!(line.contains("res=1"), "{line}");
    // Every record is in the list and counted (the emulated banks stay authoritative).
    let ascii = d.read("ascii_runtime_measurements");
    assert_eq!(ascii.lines().count() as u64, {
        let n: u64 = d.read("runtime_measurements_count").trim().parse().unwrap();
        n
    });
}

#[test]
fn a_swtpm_waiting_for_init_is_initialized() {
    let test = "a_swtpm_waiting_for_init_is_initialized";
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // No flags: swtpm runs no command before CMD_INIT on its control channel.
    let tpm = Swtpm::start_with(dir, None, &[]);
    let events = dir.join("events");
    std::fs::write(&events, "read /etc/passwd\n").unwrap();
    let spec = format!("swtpm:{}", tpm.sock.display());
    let d = Daemon::start(dir, &["--tpm", &spec, "--events", events.to_str().unwrap()]);
    let pcrs = d.read("pcrs");
    let tpm_pcr10 = hex::encode(tpm.pcrread("sha256:10", &dir.join("p")));
    assert_eq!(tpm_pcr10, pcrs_value(&pcrs, "sha256"));
}
