//! Permissions (issue 9): with `allow_other` a root daemon's view is reachable by every
//! user, and the kernel's modes decide (`default_permissions`): another user can neither
//! read the lists nor write `policy`, `keys`, `active`, the `*_for_children` files or the
//! nested-namespace control file.
mod common;

use common::daemon::serve;
use std::process::Command;

#[test]
fn other_users_get_what_the_kernel_modes_allow() {
    let test = "other_users_get_what_the_kernel_modes_allow";
    if !common::is_root() || !common::fuse_available() || !common::have_tool("setpriv") {
        common::skip(test, "needs root, /dev/fuse and setpriv");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("rootfs")).expect("mkdir");
    let daemon = serve(d, &[], true).expect("serve");
    let ima = daemon.sfs.join("integrity/ima");
    let cases = [
        ("ascii_runtime_measurements_sha256", "r", "EACCES"),
        ("binary_runtime_measurements_sha1", "r", "EACCES"),
        ("runtime_measurements_count", "r", "EACCES"),
        ("violations", "r", "EACCES"),
        ("policy", "w", "EACCES"),
        ("policy", "r", "EACCES"),
        ("keys", "w", "EACCES"),
        ("active", "w", "EACCES"),
        ("active", "r", "EACCES"),
        ("policy_for_children", "w", "EACCES"),
        ("kcmd_for_children", "w", "EACCES"),
        ("../../imafs/nest", "rw", "EACCES"),
    ];
    let mut script = String::from("import errno, os\n");
    for (name, mode, _) in &cases {
        let flags = match *mode {
            "r" => "os.O_RDONLY",
            "w" => "os.O_WRONLY",
            _ => "os.O_RDWR",
        };
        script.push_str(&format!(
            "try:\n    os.close(os.open('{}', {flags})); print('ok')\n\
             except OSError as e: print(errno.errorcode[e.errno])\n",
            ima.join(name).display()
        ));
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(&script)
        .output()
        .expect("python3");
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        got.len(),
        cases.len(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ((name, mode, want), got) in cases.iter().zip(&got) {
        assert_eq!(got, want, "{name} opened {mode} by uid 65534");
    }
    // The directory itself and the `ima` link are readable by all, as on a kernel.
    let ls = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
        .arg(&ima)
        .output()
        .expect("ls");
    assert!(ls.status.success());
    daemon.stop();
}
