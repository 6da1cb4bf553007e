//! A seccomp filter that hands a container's executable mappings and execs to its daemon
//! (kernel/seccomp.c: user notification, `SECCOMP_RET_USER_NOTIF`), with no IMA knowledge:
//! which calls are sent, how they are read, and how they are answered.
//!
//! Sent to the listener, everything else staying in the kernel at full speed:
//! - `mmap` (`mmap2`, i386's `old_mmap`) with `PROT_EXEC` of a file (not `MAP_ANONYMOUS`):
//!   the calls on which the kernel runs `security_mmap_file` with an executable protection
//!   (mm/util.c: `vm_mmap_pgoff`; mm/mmap.c: `ksys_mmap_pgoff`);
//! - `mprotect` and `pkey_mprotect` adding `PROT_EXEC` (mm/mprotect.c: `do_mprotect_pkey`
//!   calls `security_file_mprotect` for each VMA);
//! - `execve` and `execveat` (fs/exec.c: `do_execveat_common`);
//! - `personality` asking for READ_IMPLIES_EXEC (after which the kernel makes PROT_READ
//!   mappings executable, mm/mmap.c: `do_mmap`), so that the daemon can say what it
//!   cannot see.
//!
//! The filter knows the x86-64 (with x32) and i386 system call tables on x86-64 and the
//! AArch64 table on AArch64; a call of another ABI passes (README "What is measured").
//! A task may have one listener among all its filters (`has_duplicate_listener`): inside a
//! container that has one already (a nested run) installing fails with EBUSY, and the
//! outer listener sees the calls.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

const PROT_EXEC: u32 = libc::PROT_EXEC as u32;
/// include/uapi/linux/personality.h
const READ_IMPLIES_EXEC: u32 = 0x0040_0000;
const MAP_ANONYMOUS: u32 = libc::MAP_ANONYMOUS as u32;
/// `AT_FDCWD` as an argument register carries it (an int, sign-extended or not).
pub const AT_FDCWD: i32 = libc::AT_FDCWD;

/// include/uapi/linux/audit.h
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// arch/x86/include/uapi/asm/unistd.h: `__X32_SYSCALL_BIT`.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// What a system call number means to the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// mmap(addr, len, prot, flags, fd, off) and mmap2.
    Mmap,
    /// i386 old_mmap(struct mmap_arg_struct *).
    OldMmap,
    /// mprotect(addr, len, prot) and pkey_mprotect(addr, len, prot, pkey).
    Mprotect,
    /// execve(path, argv, envp).
    Execve,
    /// execveat(dirfd, path, argv, envp, flags).
    Execveat,
    /// personality(persona) asking for READ_IMPLIES_EXEC.
    Personality,
}

/// One ABI's calls: its `AUDIT_ARCH_*` and (number, kind) pairs.
struct Abi {
    arch: u32,
    calls: &'static [(u32, Kind)],
}

#[cfg(target_arch = "x86_64")]
const ABIS: &[Abi] = &[
    Abi {
        arch: AUDIT_ARCH_X86_64,
        calls: &[
            (9, Kind::Mmap),
            (10, Kind::Mprotect),
            (329, Kind::Mprotect),
            (59, Kind::Execve),
            (322, Kind::Execveat),
            (135, Kind::Personality),
            (X32_SYSCALL_BIT | 9, Kind::Mmap),
            (X32_SYSCALL_BIT | 10, Kind::Mprotect),
            (X32_SYSCALL_BIT | 329, Kind::Mprotect),
            (X32_SYSCALL_BIT | 520, Kind::Execve),
            (X32_SYSCALL_BIT | 545, Kind::Execveat),
            (X32_SYSCALL_BIT | 135, Kind::Personality),
        ],
    },
    Abi {
        arch: AUDIT_ARCH_I386,
        calls: &[
            (192, Kind::Mmap),
            (90, Kind::OldMmap),
            (125, Kind::Mprotect),
            (380, Kind::Mprotect),
            (11, Kind::Execve),
            (358, Kind::Execveat),
            (136, Kind::Personality),
        ],
    },
];

#[cfg(target_arch = "aarch64")]
const ABIS: &[Abi] = &[Abi {
    arch: AUDIT_ARCH_AARCH64,
    calls: &[
        (222, Kind::Mmap),
        (226, Kind::Mprotect),
        (288, Kind::Mprotect),
        (221, Kind::Execve),
        (281, Kind::Execveat),
        (92, Kind::Personality),
    ],
}];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ABIS: &[Abi] = &[];

/// The `struct seccomp_data` offsets (include/uapi/linux/seccomp.h) of the number, the
/// architecture and the low 32 bits of argument `i` (little-endian).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The instructions that decide one call of `kind` (the number matched already).
fn decide(kind: Kind) -> Vec<libc::sock_filter> {
    let notify = stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF);
    let allow = stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW);
    match kind {
        Kind::OldMmap | Kind::Execve | Kind::Execveat => vec![notify],
        Kind::Personality => vec![
            stmt(BPF_LD_W_ABS, arg_low(0)),
            jump(BPF_JSET_K, READ_IMPLIES_EXEC, 0, 1),
            notify,
            allow,
        ],
        Kind::Mprotect => vec![
            stmt(BPF_LD_W_ABS, arg_low(2)),
            jump(BPF_JSET_K, PROT_EXEC, 0, 1),
            notify,
            allow,
        ],
        Kind::Mmap => vec![
            stmt(BPF_LD_W_ABS, arg_low(2)),
            jump(BPF_JSET_K, PROT_EXEC, 0, 3),
            stmt(BPF_LD_W_ABS, arg_low(3)),
            jump(BPF_JSET_K, MAP_ANONYMOUS, 1, 0),
            notify,
            allow,
        ],
    }
}

/// The filter program: per ABI, per call, "number matches → decide", else allow.
pub fn program() -> Vec<libc::sock_filter> {
    let allow = stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW);
    let mut prog = Vec::new();
    for abi in ABIS {
        let mut section = Vec::new();
        for &(nr, kind) in abi.calls {
            let body = decide(kind);
            section.push(stmt(BPF_LD_W_ABS, OFF_NR));
            section.push(jump(BPF_JEQ_K, nr, 0, body.len() as u8));
            section.extend(body);
        }
        section.push(allow);
        prog.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
        prog.push(jump(BPF_JEQ_K, abi.arch, 0, section.len() as u8));
        prog.extend(section);
    }
    prog.push(allow);
    prog
}

/// The calls of [`program`] as an OCI runtime spec names them (`linux.seccomp.syscalls`).
const OCI_CALLS: [&str; 6] = [
    "mmap",
    "mmap2",
    "mprotect",
    "pkey_mprotect",
    "execve",
    "execveat",
];

/// A `linux.seccomp.syscalls` entry.
fn oci_rule(names: &[&str], action: &str, args: &[(u32, u32, u32)]) -> serde_json::Value {
    let args: Vec<serde_json::Value> = args
        .iter()
        .map(|&(index, mask, value)| {
            serde_json::json!({
                "index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"
            })
        })
        .collect();
    serde_json::json!({ "names": names, "action": action, "args": args })
}

/// [`program`] merged into a container's OCI seccomp profile (`linux.seccomp`, `None` for
/// an unconfined container), its listener to be handed to `listener_path` (runc's
/// `listenerPath`). Only calls the profile allows unconditionally are sent to the listener
/// (rules of the profile's own for them are taken out and replaced by the same conditions
/// as [`program`]'s, with complementary allow rules); the profile is otherwise unchanged.
/// `None` when the profile allows none of them unconditionally.
pub fn merge_into_oci_profile(
    profile: Option<&serde_json::Value>,
    listener_path: &str,
) -> Option<serde_json::Value> {
    use serde_json::Value;
    let mut profile = profile.cloned().unwrap_or_else(
        || serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [] }),
    );
    let default_allows =
        profile.get("defaultAction").and_then(Value::as_str) == Some("SCMP_ACT_ALLOW");
    let mut allowed: Vec<&str> = if default_allows {
        OCI_CALLS.to_vec()
    } else {
        Vec::new()
    };
    let syscalls = profile
        .as_object_mut()?
        .entry("syscalls")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()?;
    for rule in syscalls.iter_mut() {
        let unconditional = rule
            .get("args")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        let allows = rule.get("action").and_then(Value::as_str) == Some("SCMP_ACT_ALLOW");
        let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) else {
            continue;
        };
        let ours = |n: &Value| n.as_str().is_some_and(|n| OCI_CALLS.contains(&n));
        if allows && unconditional {
            for n in names.iter().filter_map(Value::as_str) {
                if let Some(c) = OCI_CALLS.iter().find(|c| **c == n) {
                    if !allowed.contains(c) {
                        allowed.push(c);
                    }
                }
            }
            names.retain(|n| !ours(n));
        } else if names.iter().any(ours) && default_allows {
            // The profile restricts one of them itself: keep its rule, not ours.
            names
                .iter()
                .filter_map(Value::as_str)
                .for_each(|n| allowed.retain(|c| *c != n));
        }
    }
    syscalls.retain(|r| {
        r.get("names")
            .and_then(Value::as_array)
            .is_none_or(|n| !n.is_empty())
    });
    if allowed.is_empty() {
        return None;
    }
    let pick = |names: &[&'static str]| -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|n| allowed.contains(n))
            .collect()
    };
    let (exec, map, protect) = (
        pick(&["execve", "execveat"]),
        pick(&["mmap", "mmap2"]),
        pick(&["mprotect", "pkey_mprotect"]),
    );
    let mut add = Vec::new();
    if !exec.is_empty() {
        add.push(oci_rule(&exec, "SCMP_ACT_NOTIFY", &[]));
    }
    if !map.is_empty() {
        add.push(oci_rule(
            &map,
            "SCMP_ACT_NOTIFY",
            &[(2, PROT_EXEC, PROT_EXEC), (3, MAP_ANONYMOUS, 0)],
        ));
        if !default_allows {
            add.push(oci_rule(&map, "SCMP_ACT_ALLOW", &[(2, PROT_EXEC, 0)]));
            add.push(oci_rule(
                &map,
                "SCMP_ACT_ALLOW",
                &[(3, MAP_ANONYMOUS, MAP_ANONYMOUS)],
            ));
        }
    }
    if !protect.is_empty() {
        add.push(oci_rule(
            &protect,
            "SCMP_ACT_NOTIFY",
            &[(2, PROT_EXEC, PROT_EXEC)],
        ));
        if !default_allows {
            add.push(oci_rule(&protect, "SCMP_ACT_ALLOW", &[(2, PROT_EXEC, 0)]));
        }
    }
    syscalls.extend(add);
    profile.as_object_mut()?.insert(
        "listenerPath".into(),
        Value::String(listener_path.to_owned()),
    );
    Some(profile)
}

/// Install the filter on the calling thread (inherited by its children and kept across
/// exec) and return its listener.
pub fn install() -> io::Result<OwnedFd> {
    if ABIS.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no system call table for this architecture",
        ));
    }
    sys::seccomp_install_listener(&program())
}

/// One call waiting for the daemon's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    /// The calling thread, in the listener's pid namespace.
    pub pid: u32,
    pub call: Call,
}

/// The calls the filter sends, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A file mapping with `prot` (PROT_EXEC in it) of the task's descriptor `fd`.
    Mmap { fd: i32, prot: u32, flags: u32 },
    /// `mprotect` of `[addr, addr + len)` to `prot` (PROT_EXEC in it).
    Mprotect { addr: u64, len: u64, prot: u32 },
    /// An exec of `path` (a string in the task's memory) relative to `dirfd`.
    Exec { dirfd: i32, path: u64, flags: u32 },
    /// `personality(persona)` with READ_IMPLIES_EXEC in it: from then on the kernel makes
    /// PROT_READ mappings executable, which the filter cannot see.
    ReadImpliesExec { persona: u32 },
    /// An old_mmap whose argument block could not be read, or a call the filter does not
    /// send (left to the kernel).
    Other,
}

impl Call {
    fn decode(kind: Kind, args: &[u64; 6], pid: u32) -> Call {
        let int = |v: u64| v as u32 as i32;
        match kind {
            Kind::Mmap => Call::Mmap {
                fd: int(args[4]),
                prot: args[2] as u32,
                flags: args[3] as u32,
            },
            Kind::OldMmap => old_mmap(pid, args[0]).unwrap_or(Call::Other),
            Kind::Mprotect => Call::Mprotect {
                addr: args[0],
                len: args[1],
                prot: args[2] as u32,
            },
            Kind::Execve => Call::Exec {
                dirfd: AT_FDCWD,
                path: args[0],
                flags: 0,
            },
            Kind::Execveat => Call::Exec {
                dirfd: int(args[0]),
                path: args[1],
                flags: args[4] as u32,
            },
            Kind::Personality => Call::ReadImpliesExec {
                persona: args[0] as u32,
            },
        }
    }
}

/// i386 `old_mmap`: six 32-bit words (arch/x86/kernel/sys_ia32.c: `struct
/// mmap_arg_struct32`); a mapping that is not executable or anonymous is `Other`.
fn old_mmap(pid: u32, at: u64) -> Option<Call> {
    let mut raw = [0u8; 24];
    if sys::read_task_memory(pid, at, &mut raw).ok()? != raw.len() {
        return None;
    }
    let word =
        |i: usize| u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
    let (prot, flags, fd) = (word(2), word(3), word(4) as i32);
    if prot & PROT_EXEC == 0 || flags & MAP_ANONYMOUS != 0 {
        return Some(Call::Other);
    }
    Some(Call::Mmap { fd, prot, flags })
}

/// The daemon's end of a filter.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// The daemon's end of a filter; answered with synchronous wake-ups where the kernel
    /// has them (6.6+; older kernels keep the default).
    pub fn new(fd: OwnedFd) -> Listener {
        if let Err(e) = sys::seccomp_notif_sync_wake_up(fd.as_fd()) {
            log::debug!("seccomp: no synchronous wake-ups ({e})");
        }
        Listener { fd }
    }

    /// The next call, waiting for one; `None` once no task uses the filter any more (all
    /// have exited: the kernel then ends a receiver's wait, kernel/seccomp.c:
    /// `recv_wait_event`, or a poll says `EPOLLHUP`).
    pub fn receive(&self) -> io::Result<Option<Notification>> {
        loop {
            match sys::seccomp_notif_recv(self.fd.as_fd()) {
                Ok(n) => {
                    let nr = n.data.nr as u32;
                    let kind = ABIS
                        .iter()
                        .find(|abi| abi.arch == n.data.arch)
                        .and_then(|abi| abi.calls.iter().find(|c| c.0 == nr))
                        .map(|c| c.1);
                    let call = match kind {
                        Some(kind) => Call::decode(kind, &n.data.args, n.pid),
                        None => Call::Other,
                    };
                    return Ok(Some(Notification {
                        id: n.id,
                        pid: n.pid,
                        call,
                    }));
                }
                // Nothing to receive: the task was killed before it was received, or no task
                // uses the filter any more (then this would return at once, forever).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if self.unused()? {
                        return Ok(None);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether no task uses the filter any more (`EPOLLHUP` now).
    fn unused(&self) -> io::Result<bool> {
        let mut pfd = [rustix::event::PollFd::new(
            &self.fd,
            rustix::event::PollFlags::empty(),
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut pfd, Some(&zero)) {
            Ok(_) => Ok(pfd[0]
                .revents()
                .intersects(rustix::event::PollFlags::HUP | rustix::event::PollFlags::ERR)),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Let the call run as the task made it. A task gone meanwhile is not an error.
    pub fn allow(&self, id: u64) -> io::Result<()> {
        gone_is_ok(sys::seccomp_notif_send(self.fd.as_fd(), id, true, 0))
    }

    /// Fail the call with `errno`.
    pub fn refuse(&self, id: u64, errno: i32) -> io::Result<()> {
        gone_is_ok(sys::seccomp_notif_send(self.fd.as_fd(), id, false, errno))
    }

    /// Whether the call `id` still waits (what was read of its task belongs to it).
    pub fn still_waiting(&self, id: u64) -> bool {
        sys::seccomp_notif_id_valid(self.fd.as_fd(), id)
    }
}

fn gone_is_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// A task's descriptor as the daemon holds it.
#[derive(Debug)]
pub enum Descriptor {
    /// The task's open file description itself.
    Copy(OwnedFd),
    /// An `O_PATH` descriptor of the same file (it cannot be read).
    Path(OwnedFd),
}

/// A task a notification came from: its descriptors and memory.
#[derive(Debug)]
pub struct Task {
    pid: u32,
    /// A pidfd of its thread group, opened when a descriptor is first taken.
    pidfd: std::cell::OnceCell<OwnedFd>,
}

impl Task {
    /// The task `pid` (a thread id, as notifications carry). Nothing is opened yet.
    pub fn new(pid: u32) -> Task {
        Task {
            pid,
            pidfd: std::cell::OnceCell::new(),
        }
    }

    /// A pidfd of the task's thread group, whose descriptor table and memory the thread
    /// shares (`pidfd_open` takes only a group leader before Linux 6.9). ESRCH when the task
    /// is gone.
    fn pidfd(&self) -> io::Result<BorrowedFd<'_>> {
        if let Some(fd) = self.pidfd.get() {
            return Ok(fd.as_fd());
        }
        let pid = self.pid;
        let pidfd = match sys::pidfd_open(pid) {
            // A thread that is not the leader: EINVAL on older kernels, ENOENT on newer ones.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
                // No such task any more: it exited while its call waited.
                let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
                let tgid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Tgid:"))
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .ok_or(e)?;
                sys::pidfd_open(tgid)?
            }
            r => r?,
        };
        Ok(self.pidfd.get_or_init(|| pidfd).as_fd())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A copy of the task's descriptor `fd` (`pidfd_getfd`); where a seccomp profile
    /// refuses that call (a daemon in a container without CAP_SYS_PTRACE), an `O_PATH`
    /// descriptor of the same file through `/proc/<pid>/fd` (no open of the file itself:
    /// `Descriptor::Path`).
    pub fn descriptor(&self, fd: i32) -> io::Result<Descriptor> {
        match sys::pidfd_getfd(self.pidfd()?, fd) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) => {
                rustix::fs::open(
                    format!("/proc/{}/fd/{fd}", self.pid),
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map(Descriptor::Path)
                .map_err(|_| e)
            }
            r => r.map(Descriptor::Copy),
        }
    }

    /// The NUL-terminated string at `addr` (at most `max` bytes; ENAMETOOLONG beyond, as
    /// the kernel's `strncpy_from_user` for a path). Read with `process_vm_readv`, or through
    /// `/proc/<pid>/mem` where a seccomp profile refuses that call (a daemon in a container
    /// without CAP_SYS_PTRACE).
    pub fn c_string(&self, addr: u64, max: usize) -> io::Result<Vec<u8>> {
        let mem = std::cell::OnceCell::new();
        let read = |at: u64, buf: &mut [u8]| -> io::Result<usize> {
            match sys::read_task_memory(self.pid, at, buf) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) => {
                    let file = match mem.get() {
                        Some(f) => f,
                        None => {
                            let f = std::fs::File::open(format!("/proc/{}/mem", self.pid))?;
                            mem.get_or_init(|| f)
                        }
                    };
                    std::os::unix::fs::FileExt::read_at(file, buf, at)
                }
                r => r,
            }
        };
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page, so no read crosses into an unmapped one.
            let room = 4096 - (at % 4096) as usize;
            let mut chunk = vec![0u8; room.min(max - out.len())];
            let n = read(at, &mut chunk)?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
    }
}

/// Hand a listener (or why there is none) over a Unix socket: the container's side, just
/// before it execs the command.
pub fn send_listener(socket: BorrowedFd<'_>, listener: &io::Result<OwnedFd>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let message;
    let fds;
    match listener {
        Ok(fd) => {
            fds = [fd.as_fd()];
            control.push(SendAncillaryMessage::ScmRights(&fds));
            message = b"ok".to_vec();
        }
        // EBUSY: an outer listener exists already (see the module docs).
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => message = b"busy".to_vec(),
        Err(e) => message = format!("{e}").into_bytes(),
    }
    rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(&message)],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Why a container has no listener of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoListener {
    /// It runs under an outer listener already (a nested container), which sees its calls.
    #[error("the container runs under an outer seccomp listener, which sees its calls")]
    Outer,
    #[error("{0}")]
    Failed(String),
}

/// One message on `socket`: its text (at most `max` bytes) and the first descriptor it
/// carried (SCM_RIGHTS; any others are closed). `what` names the message in errors.
fn receive_text_and_fd(
    socket: BorrowedFd<'_>,
    max: usize,
    what: &str,
) -> Result<(String, Option<OwnedFd>), NoListener> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buf = vec![0u8; max];
    let received = rustix::net::recvmsg(
        socket,
        &mut [io::IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| NoListener::Failed(format!("receiving {what}: {e}")))?;
    let text = String::from_utf8_lossy(&buf[..received.bytes]).into_owned();
    let mut fd = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            fd = fd.or(fds.into_iter().next());
        }
    }
    Ok((text, fd))
}

/// The daemon's side of [`send_listener`]: the listener, or why the container has none; an
/// error also when the container ended before it got there.
pub fn receive_listener(socket: BorrowedFd<'_>) -> Result<Listener, NoListener> {
    let (text, fd) = receive_text_and_fd(socket, 512, "the seccomp listener")?;
    match (fd, text.as_str()) {
        (Some(fd), "ok") => Ok(Listener::new(fd)),
        (_, "busy") => Err(NoListener::Outer),
        (_, "") => Err(NoListener::Failed(
            "the container ended before installing its seccomp filter".into(),
        )),
        (_, reason) => Err(NoListener::Failed(reason.to_owned())),
    }
}

/// A listener a container runtime hands over (runc's `linux.seccomp.listenerPath`: one
/// message on a connection to that socket, carrying the container's state as JSON and the
/// listener as SCM_RIGHTS; libcontainer/seccomp: `sendContainerProcessState`). Returns the
/// listener and the state text.
pub fn receive_runtime_listener(socket: BorrowedFd<'_>) -> Result<(Listener, String), NoListener> {
    let (state, fd) = receive_text_and_fd(socket, 1 << 16, "the runtime's seccomp listener")?;
    match fd {
        Some(fd) => Ok((Listener::new(fd), state)),
        None => Err(NoListener::Failed(
            "the runtime sent no seccomp listener".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oci_profile_sends_what_it_allowed_and_keeps_the_rest() {
        let podman_like = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "mmap", "execve", "mprotect"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        });
        let merged = merge_into_oci_profile(Some(&podman_like), "/run/x.sock").expect("merged");
        assert_eq!(merged["listenerPath"], "/run/x.sock");
        let rules = merged["syscalls"].as_array().expect("rules");
        assert_eq!(rules[0]["names"], serde_json::json!(["read"]));
        let notify: Vec<_> = rules
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_NOTIFY")
            .map(|r| r["names"].clone())
            .collect();
        assert_eq!(
            notify,
            [
                serde_json::json!(["execve"]),
                serde_json::json!(["mmap"]),
                serde_json::json!(["mprotect"])
            ],
            "only what the profile allowed: {merged}"
        );
        // Complementary allows for the calls the listener is not sent.
        assert_eq!(
            rules
                .iter()
                .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
                .count(),
            5
        );
        let unconfined = merge_into_oci_profile(None, "/s").expect("merged");
        assert_eq!(unconfined["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(unconfined["syscalls"].as_array().map(Vec::len), Some(3));
        let none = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []});
        assert!(merge_into_oci_profile(Some(&none), "/s").is_none());
    }

    /// Linux's version as (major, minor), from uname.
    fn kernel_version() -> (u32, u32) {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy().into_owned();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    #[test]
    fn listeners_take_synchronous_wake_ups() {
        if kernel_version() < (6, 6) {
            eprintln!("skipped: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP needs Linux 6.6+");
            return;
        }
        // A thread of its own: the filter and no_new_privs stay with it.
        let fd = std::thread::spawn(|| {
            rustix::thread::set_no_new_privs(true).expect("no_new_privs");
            install()
        })
        .join()
        .expect("thread")
        .expect("install the filter");
        sys::seccomp_notif_sync_wake_up(fd.as_fd()).expect("SECCOMP_IOCTL_NOTIF_SET_FLAGS");
    }

    #[test]
    fn every_jump_stays_inside_the_program() {
        let prog = program();
        assert!(!prog.is_empty() && prog.len() < 4096);
        for (i, ins) in prog.iter().enumerate() {
            if ins.code & 0x07 == libc::BPF_JMP as u16 {
                assert!(i + 1 + (ins.jt as usize) < prog.len(), "jt of {i}");
                assert!(i + 1 + (ins.jf as usize) < prog.len(), "jf of {i}");
            }
        }
        assert_eq!(prog.last().map(|i| i.k), Some(libc::SECCOMP_RET_ALLOW));
    }
}
