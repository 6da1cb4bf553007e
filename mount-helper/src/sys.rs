//! The only `unsafe` of the crate: `fork`, `unshare`, closing inherited descriptors, and a
//! `setsid` between fork and exec.
//!
//! Each wrapper states the condition under which the call is sound; callers in this crate
//! respect them (namespace work happens while the process is single-threaded).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::RawFd;

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
