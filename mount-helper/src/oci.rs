//! OCI hook mode (`mount-helper oci-hook precreate|poststop`): one `imafs serve` per
//! container that asks for it with the annotation `io.imafs.enable=true`.
//!
//! - `precreate` (Podman, CRI-O: the hook gets the container's OCI config on stdin and
//!   prints the config to use): starts `imafs serve --rootfs <root.path> --mount
//!   <dir>/root --securityfs <dir>/securityfs` in its own session, waits for its `ready`,
//!   points `root.path` at the overlay, adds a bind mount of the view at
//!   `/sys/kernel/security`, and records the daemon's directory in the annotation
//!   `io.imafs.dir`.
//! - `poststop` (the container's state on stdin): stops that daemon (SIGTERM: it unmounts
//!   both file systems) and removes its directory.
//!
//! Options come from annotations: `io.imafs.policy` (a policy file on the host),
//! `io.imafs.appraise` (`enforce|fix|log|off`), `io.imafs.keys` (certificate file or
//! directory), `io.imafs.template`, `io.imafs.hash`, `io.imafs.state` (a state directory).
//! This crate knows nothing of IMA: it only passes them on to `imafs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

/// The annotation that turns the hook on for a container.
pub const ENABLE: &str = "io.imafs.enable";
/// The annotation the hook adds: the daemon's directory (for `poststop`).
pub const DIR: &str = "io.imafs.dir";

/// Annotations passed to `imafs serve` as options, with the option's name.
const OPTIONS: [(&str, &str); 6] = [
    ("io.imafs.policy", "--policy"),
    ("io.imafs.appraise", "--appraise"),
    ("io.imafs.keys", "--keys"),
    ("io.imafs.template", "--template"),
    ("io.imafs.hash", "--hash"),
    ("io.imafs.state", "--state"),
];

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("OCI hook: {0}")]
    Input(String),
    #[error("OCI hook: {0}: {1}")]
    Io(String, std::io::Error),
}

fn input(msg: impl Into<String>) -> HookError {
    HookError::Input(msg.into())
}

fn annotations(doc: &Value) -> Map<String, Value> {
    doc.get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The `imafs serve` options a container's annotations ask for. Unknown `io.imafs.*`
/// annotations and malformed values are errors: a typo must not start a container
/// without the integrity checks its owner asked for.
pub fn serve_options(doc: &Value) -> Result<Vec<String>, HookError> {
    let ann = annotations(doc);
    let mut out = Vec::new();
    for (key, value) in &ann {
        if !key.starts_with("io.imafs.") || key == ENABLE || key == DIR {
            continue;
        }
        let (_, option) = OPTIONS
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| input(format!("unknown annotation {key}")))?;
        let value = value
            .as_str()
            .filter(|v| !v.is_empty() && !v.contains('\0'))
            .ok_or_else(|| input(format!("annotation {key}: expected a non-empty string")))?;
        if *option == "--appraise" && !matches!(value, "enforce" | "fix" | "log" | "off") {
            return Err(input(format!(
                "annotation {key}={value}: enforce, fix, log or off"
            )));
        }
        if matches!(*option, "--policy" | "--keys" | "--state") && !value.starts_with('/') {
            return Err(input(format!(
                "annotation {key}={value}: an absolute host path"
            )));
        }
        out.push(format!("{option}={value}"));
    }
    Ok(out)
}

/// Whether the container asked for imafs.
pub fn enabled(doc: &Value) -> bool {
    annotations(doc).get(ENABLE).and_then(Value::as_str) == Some("true")
}

/// The config with the overlay as root, the view at `/sys/kernel/security` and the
/// daemon's directory recorded.
pub fn rewrite_config(mut config: Value, dir: &Path) -> Result<Value, HookError> {
    let obj = config
        .as_object_mut()
        .ok_or_else(|| input("the config is not a JSON object"))?;
    let root = obj
        .get_mut("root")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| input("the config has no root"))?;
    root.insert(
        "path".into(),
        Value::String(dir.join("root").to_string_lossy().into_owned()),
    );
    let mounts = obj
        .entry("mounts")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| input("config mounts is not an array"))?;
    mounts.push(json!({
        "destination": "/sys/kernel/security",
        "type": "bind",
        "source": dir.join("securityfs").to_string_lossy(),
        "options": ["rbind", "rw"],
    }));
    let ann = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| input("config annotations is not an object"))?;
    ann.insert(
        DIR.into(),
        Value::String(dir.to_string_lossy().into_owned()),
    );
    // The container's exec mappings and execs go to the daemon's listener socket too
    // (runc's `linux.seccomp.listenerPath`), on top of the container's own profile.
    let socket = dir.join(SECCOMP_SOCKET).to_string_lossy().into_owned();
    let linux = obj
        .entry("linux")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| input("config linux is not an object"))?;
    match crate::seccomp::merge_into_oci_profile(linux.get("seccomp"), &socket) {
        Some(profile) => {
            linux.insert("seccomp".into(), profile);
        }
        None => log::warn!(
            "the container's seccomp profile allows no exec or mapping call unconditionally: \
             its exec mappings are not measured"
        ),
    }
    Ok(config)
}

/// The daemon's socket for the runtime's seccomp listener, in its directory.
const SECCOMP_SOCKET: &str = "seccomp.sock";

/// The `imafs` binary: `$IMAFS`, else next to this program, else on PATH.
fn imafs_program() -> PathBuf {
    if let Some(p) = std::env::var_os("IMAFS") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("imafs")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("imafs"))
}

/// Where daemons' directories may go: `$IMAFS_RUN_DIR`, else `/run/imafs`, else (rootless
/// Podman runs hooks as the user, in its user namespace, with an empty environment)
/// `/tmp/imafs-<uid>`, named by the user's id on the host.
fn run_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("IMAFS_RUN_DIR") {
        return vec![PathBuf::from(dir)];
    }
    vec![
        PathBuf::from("/run/imafs"),
        PathBuf::from(format!("/tmp/imafs-{}", host_uid())),
    ]
}

/// This process's uid on the host: through the first line of its user namespace's uid map.
fn host_uid() -> u32 {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|map| {
            map.lines().find_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                match f[..] {
                    [inside, outside, count] if uid >= inside && uid - inside < count => {
                        Some(outside + (uid - inside))
                    }
                    _ => None,
                }
            })
        })
        .unwrap_or(uid)
}

/// A new daemon directory in the first of [`run_dirs`] where one can be made.
fn new_daemon_dir() -> Result<PathBuf, HookError> {
    let mut last = None;
    for base in run_dirs() {
        let made = std::fs::create_dir_all(&base).and_then(|()| {
            tempfile::Builder::new()
                .prefix("ctr-")
                .tempdir_in(&base)
                .map(|d| d.keep())
        });
        match made {
            Ok(dir) => return Ok(dir),
            Err(e) => last = Some(HookError::Io(base.display().to_string(), e)),
        }
    }
    Err(last.unwrap_or_else(|| input("no run directory")))
}

fn read_stdin() -> Result<Value, HookError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| HookError::Io("stdin".into(), e))?;
    serde_json::from_str(&text).map_err(|e| input(format!("stdin is not JSON: {e}")))
}

/// `precreate`: config in, config out.
pub fn precreate() -> Result<(), HookError> {
    let config = read_stdin()?;
    let out = if enabled(&config) {
        start_daemon(config)?
    } else {
        config
    };
    let text = serde_json::to_string(&out).map_err(|e| input(e.to_string()))?;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| HookError::Io("stdout".into(), e))
}

fn start_daemon(config: Value) -> Result<Value, HookError> {
    let options = serve_options(&config)?;
    let rootfs = config
        .pointer("/root/path")
        .and_then(Value::as_str)
        .ok_or_else(|| input("the config has no root.path"))?
        .to_owned();
    let dir = new_daemon_dir()?;
    for sub in ["root", "securityfs"] {
        std::fs::create_dir(dir.join(sub))
            .map_err(|e| HookError::Io(dir.join(sub).display().to_string(), e))?;
    }
    let log = std::fs::File::create(dir.join("log"))
        .map_err(|e| HookError::Io(dir.join("log").display().to_string(), e))?;
    let mut cmd = Command::new(imafs_program());
    cmd.arg("serve")
        .arg("--rootfs")
        .arg(&rootfs)
        .arg("--mount")
        .arg(dir.join("root"))
        .arg("--securityfs")
        .arg(dir.join("securityfs"))
        .arg("--seccomp-listener")
        .arg(dir.join(SECCOMP_SOCKET))
        .args(&options)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // Its own session: the runtime may kill the hook's process group when the hook ends.
    crate::sys::new_session_on_exec(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| HookError::Io(imafs_program().display().to_string(), e))?;
    let ready = child
        .stdout
        .take()
        .map(|out| {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            line == "ready\n"
        })
        .unwrap_or(false);
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        return Err(input(format!("imafs serve did not start: {}", log.trim())));
    }
    std::fs::write(dir.join("pid"), child.id().to_string())
        .map_err(|e| HookError::Io(dir.join("pid").display().to_string(), e))?;
    rewrite_config(config, &dir)
}

/// `prestart` (the container's state on stdin, with the pid of its first process): start
/// a watcher that stops the daemon as soon as that process is gone. Poststop hooks run too
/// late for this: Podman unmounts the container's rootfs first, which the daemon keeps busy.
pub fn prestart() -> Result<(), HookError> {
    let state = read_stdin()?;
    let Some(dir) = hook_dir(&state)? else {
        return Ok(());
    };
    let pid = state
        .get("pid")
        .and_then(Value::as_i64)
        .filter(|&p| p > 0 && p <= i64::from(i32::MAX))
        .ok_or_else(|| input("the state has no pid"))?;
    let exe = std::env::current_exe().map_err(|e| HookError::Io("current_exe".into(), e))?;
    let mut cmd = Command::new(exe);
    cmd.args(["oci-hook", "watch"])
        .env(WATCH_DIR, &dir)
        .env(WATCH_PID, pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::sys::new_session_on_exec(&mut cmd);
    cmd.spawn()
        .map_err(|e| HookError::Io("watcher".into(), e))?;
    Ok(())
}

const WATCH_DIR: &str = "IMAFS_WATCH_DIR";
const WATCH_PID: &str = "IMAFS_WATCH_PID";

/// The watcher `prestart` starts: wait for the container's first process to end, then stop
/// the daemon.
pub fn watch() -> Result<(), HookError> {
    let dir = std::env::var_os(WATCH_DIR)
        .map(PathBuf::from)
        .ok_or_else(|| input("watch: no directory"))?;
    let pid = std::env::var(WATCH_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| input("watch: no pid"))?;
    while rustix::process::test_kill_process(pid).is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop_daemon(&dir);
    Ok(())
}

/// The daemon directory a state names, if it is one this hook made.
fn hook_dir(state: &Value) -> Result<Option<PathBuf>, HookError> {
    let Some(dir) = annotations(state)
        .get(DIR)
        .and_then(Value::as_str)
        .map(PathBuf::from)
    else {
        return Ok(None);
    };
    // Only directories this hook made.
    if !run_dirs().iter().any(|d| dir.parent() == Some(d.as_path())) {
        return Err(input(format!(
            "{DIR}={}: not made by this hook",
            dir.display()
        )));
    }
    Ok(Some(dir))
}

/// `poststop`: the container's state in; stop its daemon if it still runs.
pub fn poststop() -> Result<(), HookError> {
    let state = read_stdin()?;
    if let Some(dir) = hook_dir(&state)? {
        stop_daemon(&dir);
    }
    Ok(())
}

fn stop_daemon(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        for _ in 0..200 {
            if rustix::process::test_kill_process(pid).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }
    for sub in ["root", "securityfs"] {
        let _ = rustix::mount::unmount(dir.join(sub), rustix::mount::UnmountFlags::DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ann: Value) -> Value {
        json!({"ociVersion": "1.0.2", "root": {"path": "/var/lib/c/merged"},
               "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
               "annotations": ann})
    }

    #[test]
    fn annotations_become_serve_options() {
        let c = config(
            json!({"io.imafs.enable": "true", "io.imafs.policy": "/etc/p",
                              "io.imafs.appraise": "enforce", "other": "x"}),
        );
        assert!(enabled(&c));
        let mut o = serve_options(&c).expect("valid");
        o.sort();
        assert_eq!(o, ["--appraise=enforce", "--policy=/etc/p"]);
        assert!(!enabled(&config(json!({"io.imafs.enable": "yes"}))));
        assert!(!enabled(&json!({})));
    }

    #[test]
    fn bad_annotations_are_refused() {
        for ann in [
            json!({"io.imafs.polcy": "/etc/p"}),
            json!({"io.imafs.appraise": "sometimes"}),
            json!({"io.imafs.policy": "relative/p"}),
            json!({"io.imafs.policy": ""}),
            json!({"io.imafs.hash": 5}),
        ] {
            assert!(serve_options(&config(ann.clone())).is_err(), "{ann}");
        }
    }

    #[test]
    fn config_points_at_the_overlay_and_the_view() {
        let c = rewrite_config(config(json!({})), Path::new("/run/imafs/ctr-1")).expect("ok");
        assert_eq!(
            c.pointer("/root/path"),
            Some(&json!("/run/imafs/ctr-1/root"))
        );
        let last = c.pointer("/mounts/1").expect("added mount");
        assert_eq!(last["destination"], "/sys/kernel/security");
        assert_eq!(last["source"], "/run/imafs/ctr-1/securityfs");
        assert_eq!(
            c.pointer("/annotations/io.imafs.dir"),
            Some(&json!("/run/imafs/ctr-1"))
        );
        assert!(rewrite_config(json!([1]), Path::new("/x")).is_err());
        assert!(rewrite_config(json!({"mounts": []}), Path::new("/x")).is_err());
    }
}
