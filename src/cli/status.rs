//! `imafs status [--securityfs DIR]`: a readable summary of a running IMA namespace (an
//! imafs securityfs view) or of a kernel's IMA: policy, counts, PCRs, keys, the template
//! and hash in use, whether the namespace is active, and the imafs mounts.
//!
//! Every file is optional: a kernel's securityfs has no `pcrs` or `keys`, a policy may be
//! write-only. What cannot be read is said, not guessed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::ascii::{self, AsciiParser};
use crate::engine::hash::HashAlgo;

use super::verify::ima_dir;

/// `imafs status` arguments.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The securityfs mount to describe (its `integrity/ima`, or the `ima` directory).
    #[arg(long, value_name = "DIR", default_value = "/sys/kernel/security")]
    pub securityfs: PathBuf,
}

pub fn main(args: StatusArgs) -> ExitCode {
    let dir = ima_dir(&args.securityfs);
    if !dir.join("runtime_measurements_count").exists() {
        eprintln!(
            "imafs status: {}: no IMA securityfs here (no runtime_measurements_count)",
            dir.display()
        );
        return ExitCode::from(2);
    }
    print!("{}", report(&dir, &mountinfo()));
    ExitCode::SUCCESS
}

/// A file's text, or why it could not be read.
fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// The whole report for the `integrity/ima` directory `dir`.
pub fn report(dir: &Path, mountinfo: &str) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("IMA at {}", dir.display()));

    let value = |name: &str| read_text(&dir.join(name)).map(|s| s.trim().to_string());
    match value("active") {
        Ok(v) => line(format!(
            "  active: {}",
            match v.as_str() {
                "1" => "yes",
                "0" => "no (being configured: nothing is measured yet)",
                other => other,
            }
        )),
        // Unreadable (write-only) counts as present but unknown.
        Err(e) if dir.join("active").exists() => line(format!("  active: unknown ({e})")),
        Err(_) => line(
            "  active: yes (no `active` file: a kernel, or an imafs namespace always active)"
                .into(),
        ),
    }
    for name in ["runtime_measurements_count", "violations"] {
        match value(name) {
            Ok(v) => line(format!("  {name}: {v}")),
            Err(e) => line(format!("  {name}: unreadable ({e})")),
        }
    }
    let (template, hash) = first_entry(dir);
    line(format!(
        "  template: {}",
        template.unwrap_or_else(|| "unknown (empty or unreadable list)".into())
    ));
    line(format!(
        "  file hash: {}",
        hash.unwrap_or_else(|| "unknown".into())
    ));
    let banks = list_banks(dir);
    if !banks.is_empty() {
        line(format!("  list banks: {}", banks.join(", ")));
    }
    // imafs's extension (a kernel has none): whether exec mappings reach this namespace.
    // `integrity/ima` or `ima`: the extension directory is at the view's root.
    let root = dir
        .ancestors()
        .skip(1)
        .take(2)
        .find(|d| d.join("imafs").is_dir());
    if let Some(parent) = root {
        match read_text(&parent.join("imafs/exec_watch")) {
            Ok(v) => line(format!(
                "  exec mappings and execs outside the overlay: {}",
                v.trim()
            )),
            Err(_) => line(
                "  exec mappings and execs outside the overlay: not measured (no seccomp \
                 listener: `imafs serve`, or a container of the OCI hook)"
                    .into(),
            ),
        }
        if let Ok(v) = read_text(&parent.join("imafs/transport")) {
            line(format!("  requests reach the daemon through: {}", v.trim()));
        }
    }

    line(String::new());
    match read_text(&dir.join("policy")) {
        Ok(p) => {
            let rules: Vec<&str> = p.lines().filter(|l| !l.trim().is_empty()).collect();
            line(format!("policy: {} rules", rules.len()));
            for r in rules {
                line(format!("  {}", r.trim_end()));
            }
        }
        Err(e) if !dir.join("policy").exists() => line(format!(
            "policy: no policy file ({e}): a kernel whose policy can no longer be written"
        )),
        Err(e) => line(format!(
            "policy: not readable ({e}; write-only without CONFIG_IMA_READ_POLICY, or not root)"
        )),
    }

    line(String::new());
    match read_text(&dir.join("pcrs")) {
        Ok(p) => {
            line("PCRs (imafs `pcrs`):".into());
            for l in p.lines() {
                line(format!("  {l}"));
            }
        }
        Err(_) => {
            let tpm = tpm_pcrs();
            if tpm.is_empty() {
                line("PCRs: no `pcrs` file and no TPM at /sys/class/tpm/tpm0".into());
            } else {
                line("PCRs (TPM, /sys/class/tpm/tpm0):".into());
                for l in tpm {
                    line(format!("  {l}"));
                }
            }
        }
    }

    line(String::new());
    match read_text(&dir.join("keys")) {
        Ok(k) => {
            let keys: Vec<&str> = k.lines().filter(|l| !l.trim().is_empty()).collect();
            line(format!("keys: {}", keys.len()));
            for k in keys {
                line(format!("  {k}"));
            }
        }
        Err(e) if dir.join("keys").exists() => line(format!("keys: not readable ({e})")),
        Err(_) => line("keys: no `keys` file (a kernel: see `keyctl show %keyring:.ima`)".into()),
    }

    line(String::new());
    let mounts = imafs_mounts(mountinfo);
    if mounts.is_empty() {
        line("imafs mounts: none visible in /proc/self/mountinfo".into());
    } else {
        line("imafs mounts:".into());
        for m in mounts {
            line(format!("  {m}"));
        }
    }
    out
}

/// Template name and file hash algorithm of the first list entry (the boot_aggregate is
/// recorded with the default template and `ima_hash`).
fn first_entry(dir: &Path) -> (Option<String>, Option<String>) {
    let Ok(f) = std::fs::File::open(dir.join("ascii_runtime_measurements")) else {
        return (None, None);
    };
    let mut head = Vec::new();
    // One line is enough; 64 KiB bounds a line of a huge ima-buf entry.
    let _ = f.take(64 * 1024).read_to_end(&mut head);
    let Some(first) = head.split(|&b| b == b'\n').next().filter(|l| !l.is_empty()) else {
        return (None, None);
    };
    let mut parser = AsciiParser::new(None, &[HashAlgo::Sha1]);
    match parser.parse_line(1, first) {
        Ok(e) => {
            let m = ascii::file_measurement(e.record.template(), e.record.template_data());
            (
                Some(e.record.template().display_name().to_string()),
                m.digest.map(|d| d.algo().name().to_string()),
            )
        }
        Err(_) => (None, None),
    }
}

/// The banks that have a list file (`ascii_runtime_measurements_<alg>`, 6.10+).
fn list_banks(dir: &Path) -> Vec<String> {
    let mut banks: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("ascii_runtime_measurements_"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    banks.sort();
    banks
}

/// PCR 10 of every bank of a TPM's sysfs.
fn tpm_pcrs() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/tpm/tpm0") else {
        return out;
    };
    let mut dirs: Vec<_> = rd.flatten().collect();
    dirs.sort_by_key(|e| e.file_name());
    for e in dirs {
        let name = e.file_name();
        if let Some(alg) = name.to_str().and_then(|n| n.strip_prefix("pcr-")) {
            if let Ok(v) = std::fs::read_to_string(e.path().join("10")) {
                out.push(format!("PCR-10 {alg} {}", v.trim().to_ascii_lowercase()));
            }
        }
    }
    out
}

/// imafs's FUSE mounts in a mountinfo text: the overlay (`fuse.imafs`), the securityfs
/// view (`fuse.imafs-securityfs`, or `fuse` with source `securityfs` from `serve`) and
/// the TPM view.
pub fn imafs_mounts(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTS
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (Some(fstype), Some(source)) = (right.next(), right.next()) else {
            continue;
        };
        let Some(mountpoint) = left.get(4) else {
            continue;
        };
        let what = match (fstype, source) {
            ("fuse.imafs", _) | ("fuse", "imafs") => {
                "overlay (measuring passthrough of the rootfs)"
            }
            ("fuse.imafs-securityfs", _) | ("fuse", "securityfs") => "securityfs view",
            ("fuse.imafs-tpm", _) | ("fuse", "tpm") => "TPM sysfs view (emulated PCRs)",
            _ => continue,
        };
        let opts = left.get(5).copied().unwrap_or_default();
        out.push(format!(
            "{} {what} [{fstype} {opts}]",
            unescape_mountinfo(mountpoint)
        ));
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let value = octal.map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')));
        match value.and_then(|v| u8::try_from(v).ok()) {
            Some(v) if b[i] == b'\\' => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imafs_mounts_in_mountinfo() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
            90 30 0:50 / /run/c1/root rw,nosuid,nodev - fuse.imafs imafs rw,user_id=0\n\
            91 30 0:51 / /run/c1/my\\040sec rw - fuse securityfs rw,user_id=0\n\
            92 30 0:52 / /sys/kernel/security rw shared:5 - fuse.imafs-securityfs securityfs rw\n\
            93 30 0:53 / /sys/class/tpm ro - fuse.imafs-tpm tpm ro\n\
            94 30 0:54 / /mnt/other rw - fuse.sshfs host:/ rw\n";
        let m = imafs_mounts(mi);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("/run/c1/root overlay"));
        assert!(m[1].starts_with("/run/c1/my sec securityfs view"));
        assert!(m[2].starts_with("/sys/kernel/security securityfs view"));
        assert!(m[3].starts_with("/sys/class/tpm TPM sysfs view"));
    }

    #[test]
    fn unescape_is_total() {
        assert_eq!(unescape_mountinfo("a\\040b\\134"), "a b\\");
        assert_eq!(unescape_mountinfo("\\"), "\\");
        assert_eq!(unescape_mountinfo("x\\0"), "x\\0");
        assert_eq!(unescape_mountinfo("\\777"), "\\777");
    }
}
