//! The task behind a FUSE request, as IMA's rules and audit records see it: its ids,
//! effective capabilities and comm, read from `/proc/<pid>/status` (`fs/proc/array.c`:
//! `proc_pid_status`, `task_state`, `render_cap_t`) only when needed, and what the overlay
//! tells of one open (its flags, the caller's thread id and fs ids, the path). A leaf module:
//! the hooks, nesting and the securityfs view use it; it uses none of them.

use std::fs::File;

use crate::engine::ima::EventTask;
use crate::engine::policy::{Subject, MAY_APPEND, MAY_READ, MAY_WRITE};

/// One open of a lower file as the overlay saw it.
#[derive(Clone, Copy, Debug)]
pub struct OpenInfo<'a> {
    /// open(2) flags of the caller (O_ACCMODE, O_APPEND, O_TRUNC, ...).
    pub flags: i32,
    /// The open was made by execve (the kernel's `__FMODE_EXEC`, 0x20, in the FUSE flags).
    pub exec: bool,
    /// This open created the file.
    pub created: bool,
    /// The caller's thread id and fs ids from the FUSE request.
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Path as the container sees it (`/etc/passwd`).
    pub path: &'a [u8],
}

/// The FILE_CHECK mask of an open with `flags` (`MAY_OPEN` is stripped, as in the kernel).
pub fn open_mask(flags: i32) -> u32 {
    let mut mask = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => MAY_READ,
        libc::O_WRONLY => MAY_WRITE,
        _ => MAY_READ | MAY_WRITE,
    };
    if flags & libc::O_APPEND != 0 {
        mask |= MAY_APPEND;
    }
    if flags & libc::O_TRUNC != 0 {
        mask |= MAY_WRITE;
    }
    mask
}

/// Whether an open with `flags` makes the file description writable (FMODE_WRITE).
pub fn opened_for_write(flags: i32) -> bool {
    matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
}

/// The calling task as IMA sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub subject_ids: [u32; 6],
    /// The effective capability set (`CapEff`).
    pub cap_effective: u64,
    pub comm: String,
}

impl Caller {
    pub fn subject(&self) -> Subject {
        let [uid, euid, suid, gid, egid, sgid] = self.subject_ids;
        Subject {
            uid,
            euid,
            suid,
            gid,
            egid,
            sgid,
            cap_setuid: self.has_cap(CAP_SETUID),
            cap_setgid: self.has_cap(CAP_SETGID),
        }
    }

    /// Whether the effective set holds capability number `cap` (linux/capability.h).
    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.cap_effective & (1u64 << cap) != 0
    }

    /// The task `pid` (a thread id, as FUSE requests carry) from one read of
    /// `/proc/<pid>/status` (ids, capabilities and, from `Name:`, the comm); when the task is
    /// gone already, the request's fs ids stand in for all of them.
    pub fn of_task(pid: u32, fsuid: u32, fsgid: u32) -> Caller {
        let status = read_status(pid).unwrap_or_default();
        parse_status(&status).unwrap_or(Caller {
            subject_ids: [fsuid, fsuid, fsuid, fsgid, fsgid, fsgid],
            ..Caller::default()
        })
    }
}

/// The caller of one FUSE request. FUSE tells only its thread id and fs ids; the rest (real
/// and saved ids, capabilities, comm) is a `/proc/<pid>/status` read, about half the
/// daemon's work for an open of a file measured already. So it is read the first time a
/// policy rule tests the subject, an audit record names the task or the open is forwarded
/// to a parent namespace: while the open is being answered, the task is blocked in it and
/// still there to be read.
#[derive(Debug)]
pub struct LazyCaller {
    pid: u32,
    fsuid: u32,
    fsgid: u32,
    details: std::cell::OnceCell<Caller>,
}

impl LazyCaller {
    pub fn new(pid: u32, fsuid: u32, fsgid: u32) -> LazyCaller {
        LazyCaller {
            pid,
            fsuid,
            fsgid,
            details: std::cell::OnceCell::new(),
        }
    }

    /// A caller known already (an open a child namespace forwarded with its caller).
    pub fn known(pid: u32, caller: Caller) -> LazyCaller {
        let [_, fsuid, _, _, fsgid, _] = caller.subject_ids;
        LazyCaller {
            pid,
            fsuid,
            fsgid,
            details: std::cell::OnceCell::from(caller),
        }
    }

    /// The whole caller, read now if it was not before.
    pub fn get(&self) -> &Caller {
        self.details
            .get_or_init(|| Caller::of_task(self.pid, self.fsuid, self.fsgid))
    }

    /// Whether `/proc` was read for this caller (tests).
    pub fn was_read(&self) -> bool {
        self.details.get().is_some()
    }
}

impl EventTask for LazyCaller {
    fn subject(&self) -> Subject {
        self.get().subject()
    }
    fn comm(&self) -> &str {
        &self.get().comm
    }
}

/// `/proc/<pid>/status` in one read(2) when it fits 4 KiB (it does: ~1.5 KiB), as this
/// runs for every open.
fn read_status(pid: u32) -> Option<String> {
    use std::io::Read;
    let mut f = File::open(format!("/proc/{pid}/status")).ok()?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..]).ok()?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// Capability bit numbers (linux/capability.h).
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
pub const CAP_SYS_ADMIN: u32 = 21;

/// Parse the `Uid:`, `Gid:`, `CapEff:` and `Name:` lines of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> Option<Caller> {
    let ids = |key: &str| -> Option<[u32; 3]> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let mut it = line[key.len()..]
            .split_whitespace()
            .map(|v| v.parse::<u32>());
        Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
    };
    let [uid, euid, suid] = ids("Uid:")?;
    let [gid, egid, sgid] = ids("Gid:")?;
    let cap_effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let comm = status
        .lines()
        .find_map(|l| l.strip_prefix("Name:\t"))
        .map(unescape_task_name)
        .unwrap_or_default();
    Some(Caller {
        subject_ids: [uid, euid, suid, gid, egid, sgid],
        cap_effective,
        comm,
    })
}

/// The comm as `/proc/<pid>/status` prints it after `Name:`: `proc_task_name` escapes
/// only `\n` and `\\` (`seq_escape_str(..., "\n\\")`), so this gives the raw comm back.
fn unescape_task_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_all_ids_and_caps() {
        let status = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\n\
            Uid:\t1000\t0\t1001\t0\nGid:\t100\t101\t102\t101\n\
            CapInh:\t0000000000000000\nCapEff:\t00000000000000c0\n";
        let caller = parse_status(status).expect("parses");
        assert_eq!(caller.subject_ids, [1000, 0, 1001, 100, 101, 102]);
        assert!(caller.has_cap(CAP_SETUID) && caller.has_cap(CAP_SETGID));
        assert!(!caller.has_cap(CAP_SYS_ADMIN));
        assert_eq!(caller.comm, "cat");
        // Spaces are kept; `\n` and `\\` come back from their escapes.
        let odd = parse_status("Name:\tmy prog\\n\\\\x\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
            .expect("parses");
        assert_eq!(odd.comm, "my prog\n\\x");
        let s = caller.subject();
        assert_eq!((s.uid, s.euid, s.gid, s.egid), (1000, 0, 100, 101));
        assert_eq!(parse_status("Name:\tx\nUid:\t1\t2\n"), None);
    }

    #[test]
    fn own_task_is_read_from_proc() {
        let me = Caller::of_task(std::process::id(), 4242, 4242);
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(me.subject_ids[0], uid);
        assert!(!me.comm.is_empty());
    }
}
