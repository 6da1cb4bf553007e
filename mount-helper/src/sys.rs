//! The only `unsafe` of the crate: `fork`, `unshare`, closing inherited descriptors, a
//! `setsid` between fork and exec, and the seccomp user-notification calls (installing a
//! filter with a listener, receiving and answering notifications, `pidfd_getfd`,
//! `process_vm_readv`).
//!
//! Each wrapper states the condition under which the call is sound; callers in this crate
//! respect them (namespace work happens while the process is single-threaded).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::thread::UnshareFlags;

/// Result of [`fork`] as seen by the caller.
pub enum Forked {
    Child,
    Parent(rustix::process::Pid),
}

/// `fork(2)`.
///
/// The child of a multi-threaded parent may only call async-signal-safe functions; callers
/// fork only while single-threaded (before any FUSE worker thread exists), so the child can
/// allocate and use the standard library freely.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the child continues with a
    // copy of this (single-threaded) process, so no lock can be held by a vanished thread.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork: bad pid"))?,
        )),
    }
}

/// `unshare(2)` of namespaces (never `CLONE_FILES`, which is what makes the rustix call unsafe).
pub fn unshare_namespaces(flags: UnshareFlags) -> io::Result<()> {
    if flags.contains(UnshareFlags::FILES) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: without CLONE_FILES the descriptor table stays shared with any other thread, so
    // no thread can observe a descriptor that another thread's table lacks.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// Close every descriptor above 2 except those in `keep`, so a forked child does not hold the
/// daemon's `/dev/fuse` connections open (an open copy would keep a dead daemon's mount hanging).
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut open = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Some(fd) = name.to_str().and_then(|s| s.parse::<RawFd>().ok()) {
            open.push(fd);
        }
    }
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: close(2) on a raw number has no memory-safety preconditions. The caller
            // is a freshly forked, single-threaded child about to exec: nothing in it owns
            // these descriptors any more, and the ones it needs are listed in `keep`. The
            // number of read_dir's own, already closed descriptor fails with EBADF, ignored.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// `_exit(2)`: leave a forked child without running the parent's atexit handlers or
/// flushing its copied stdio buffers twice.
pub fn exit_immediately(status: i32) -> ! {
    // SAFETY: _exit is always sound; it never returns.
    unsafe { libc::_exit(status) }
}

/// Ignore SIGINT and SIGQUIT in a process that only waits for its child (as `unshare --fork`
/// does): the terminal sends them to the whole foreground group, and they are the child's
/// to handle.
pub fn ignore_terminal_signals() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: installing SIG_IGN involves no handler code; the process is single-threaded.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Make the program `cmd` runs the leader of a new session (`setsid` in the child).
pub fn new_session_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it makes one async-signal-safe
    // system call and touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog)`: install
/// `program` on the calling thread and return the filter's user-notification listener
/// (kernel/seccomp.c: `seccomp_set_mode_filter`, `init_listener`). The caller needs
/// no_new_privs or CAP_SYS_ADMIN in its user namespace; a task whose filters have a
/// listener already gets EBUSY (`has_duplicate_listener`).
pub fn seccomp_install_listener(program: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call (the kernel
    // copies them); the flags ask only for a new listener descriptor as the result.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A seccomp listener ioctl whose argument points at `arg`, read or written in place.
/// Callers pass the request's own argument type (include/uapi/linux/seccomp.h).
fn listener_ioctl<T>(
    listener: BorrowedFd<'_>,
    request: libc::Ioctl,
    arg: &mut T,
) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed value of the type `request` reads or
    // writes (one struct or u64, no further), per the callers below.
    let r = unsafe { libc::ioctl(listener.as_raw_fd(), request, arg as *mut T) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: wait for the next notification of `listener`.
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain data for which all-zero is valid; the kernel requires
    // the buffer zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    listener_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif)?;
    Ok(notif)
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answer notification `id`: let the call go on
/// (`continue_call`), or fail it with `-errno`.
pub fn seccomp_notif_send(
    listener: BorrowedFd<'_>,
    id: u64,
    continue_call: bool,
    errno: i32,
) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: if continue_call { 0 } else { -errno },
        flags: if continue_call {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    listener_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether the task of notification `id` is still waiting
/// for the answer (so what was read of it belongs to that call).
pub fn seccomp_notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    listener_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id).is_ok()
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6+):
/// the kernel wakes the receiver, and later the task, on the current CPU
/// (kernel/seccomp.c: `seccomp_do_user_notification`, `seccomp_notify_send`), so a call's
/// round trip is two switches on one CPU instead of two cross-CPU wake-ups. The flags are
/// the ioctl's argument itself, not a pointer to them (`seccomp_notify_set_flags(filter,
/// arg)`).
pub fn seccomp_notif_sync_wake_up(listener: BorrowedFd<'_>) -> io::Result<()> {
    /// include/uapi/linux/seccomp.h
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
    // SAFETY: the argument is a plain integer; the kernel reads nothing through it.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd(2)`: a copy of descriptor `fd` of the task behind `pidfd` (needs ptrace
/// access to it, PTRACE_MODE_ATTACH_REALCREDS).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes plain integers and returns a new descriptor or -1.
    let new = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0u32) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new (CLOEXEC) descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new as RawFd) })
}

/// `process_vm_readv(2)` of `buf.len()` bytes at `addr` in task `pid`; the count read
/// (short at the end of a mapping).
pub fn read_task_memory(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers exactly `buf`, which we own mutably; the remote one is
    // only an address in another process, checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
