//! One `imafs serve` daemon per test, as a child process: started with its `ready` line,
//! signalled, killed, waited for with a deadline, its mounts detached afterwards.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The list files a restart must keep byte for byte.
pub const LIST_FILES: [&str; 5] = [
    "ascii_runtime_measurements_sha1",
    "ascii_runtime_measurements_sha256",
    "binary_runtime_measurements_sha1",
    "binary_runtime_measurements_sha256",
    "binary_runtime_measurements",
];

/// One `imafs serve` daemon over `<dir>/sfs`, stderr kept in `<dir>/stderr-<n>`.
pub struct Daemon {
    pub child: Option<Child>,
    pub _stdout: Option<ChildStdout>,
    pub sfs: PathBuf,
    pub mnt: Option<PathBuf>,
    pub stderr: PathBuf,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Start `imafs serve --securityfs dir/sfs ARGS`; `Err(stderr)` if it exits before `ready`.
pub fn serve(dir: &Path, args: &[&str], overlay: bool) -> Result<Daemon, String> {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sfs = dir.join("sfs");
    std::fs::create_dir_all(&sfs).unwrap();
    let stderr = dir.join(format!("stderr-{n}"));
    let mut cmd = Command::new(super::imafs_bin());
    cmd.arg("serve").arg("--securityfs").arg(&sfs);
    let mnt = overlay.then(|| {
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        cmd.arg("--mount")
            .arg(&mnt)
            .arg("--rootfs")
            .arg(dir.join("rootfs"));
        mnt
    });
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    if line != "ready\n" {
        let _ = child.wait();
        return Err(std::fs::read_to_string(&stderr).unwrap());
    }
    Ok(Daemon {
        child: Some(child),
        _stdout: Some(stdout.into_inner()),
        sfs,
        mnt,
        stderr,
    })
}

impl Daemon {
    pub fn ima(&self, name: &str) -> PathBuf {
        self.sfs.join("integrity/ima").join(name)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.ima(name)).unwrap()
    }

    /// Everything a restart must keep: every list file, pcrs, violations, policy.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        LIST_FILES
            .iter()
            .chain(&["pcrs", "violations", "runtime_measurements_count", "policy"])
            .map(|n| (n.to_string(), self.read(n)))
            .collect()
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Wait for the daemon's exit (killed after 60 s: a hang fails instead of blocking).
    pub fn wait(&mut self) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The mounts of a killed daemon are detached by its watchdog; make sure.
        for m in std::iter::once(&self.sfs).chain(self.mnt.as_ref()) {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
    }

    pub fn kill9(mut self) {
        self.signal(rustix::process::Signal::KILL);
        self.wait();
    }

    pub fn stop(mut self) {
        self.signal(rustix::process::Signal::TERM);
        self.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(rustix::process::Signal::TERM);
            self.wait();
        }
    }
}
