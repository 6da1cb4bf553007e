//! The demo's root file system, built from host files without network: a static busybox
//! (Debian's `busybox-static`) with its applets, or, without busybox, a few host programs
//! and the libraries `ldd` names for them.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled recipe files (the policy is [`super::demo::POLICY`]).
pub const DEMO_CONF: &str = include_str!("../../fixtures/demo/demo.conf");

/// Commands the demo script uses.
pub const APPLETS: &[&str] = &[
    "sh",
    "cat",
    "echo",
    "grep",
    "id",
    "ls",
    "sha256sum",
    "head",
    "wc",
    "true",
];

/// Where a busybox binary is, if installed.
pub fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Build the demo rootfs in `dir` (an empty directory): `/bin` with the tools, `/etc` with
/// the demo configuration, and the mount points a container needs. Returns a description
/// of where the tools came from.
pub fn build(dir: &Path) -> io::Result<String> {
    for sub in ["bin", "etc", "proc", "dev", "sys", "root", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(dir.join("etc/demo.conf"), DEMO_CONF)?;
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    if let Some(busybox) = find_busybox() {
        copy_program(&busybox, dir, Path::new("/bin/busybox"))?;
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
        }
        return Ok(format!("busybox from {}", busybox.display()));
    }
    let mut found = Vec::new();
    for tool in APPLETS {
        let Some(path) = which(tool) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("neither busybox nor `{tool}` found (apt-get install busybox-static)"),
            ));
        };
        copy_program(&path, dir, &Path::new("/bin").join(tool))?;
        found.push(path.display().to_string());
    }
    Ok(format!(
        "host programs {} with their libraries",
        found.join(" ")
    ))
}

/// `command -v NAME` over PATH (regular executable files only).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Copy the program at `src` to `root/dest`, with the shared libraries `ldd` lists at their
/// own paths under `root` (nothing for a static program).
fn copy_program(src: &Path, root: &Path, dest: &Path) -> io::Result<()> {
    let target = root.join(dest.strip_prefix("/").unwrap_or(dest));
    std::fs::copy(src, &target)?;
    for lib in shared_libraries(src) {
        let lib_target = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        if lib_target.exists() {
            continue;
        }
        if let Some(parent) = lib_target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&lib, &lib_target)?;
    }
    Ok(())
}

/// Absolute library paths from `ldd PROGRAM` (none when ldd is missing or the program is
/// static).
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(program).output() else {
        return Vec::new();
    };
    parse_ldd(&String::from_utf8_lossy(&out.stdout))
}

/// The absolute paths in `ldd` output (`libc.so.6 => /lib/.../libc.so.6 (0x...)` and the
/// loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
            \tnot a dynamic executable\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn rootfs_has_tools_and_mount_points() {
        let dir = tempfile::tempdir().expect("temp dir");
        let how = build(dir.path()).expect("build rootfs");
        assert!(!how.is_empty());
        for needed in [
            "bin/sh",
            "bin/sha256sum",
            "etc/demo.conf",
            "proc",
            "dev",
            "sys",
        ] {
            assert!(dir.path().join(needed).exists(), "{needed} missing");
        }
        let out = Command::new(dir.path().join("bin/sh"))
            .args(["-c", "echo ok"])
            .output()
            .expect("run the copied shell");
        assert_eq!(out.stdout, b"ok\n");
    }
}
