//! Serving a FUSE session until it is unmounted or the daemon is asked to stop.
//!
//! * SIGTERM / SIGINT: caught from before the mount exists ([`stop_signals`]); the mount is
//!   taken down cleanly and the session loop returns, so the daemon exits 0 with no mount
//!   left behind.
//! * SIGKILL (or any other death): nothing runs in the daemon, so a separate process does
//!   it: [`UnmountWatchdog`] waits for EOF on a pipe only the daemon holds and then
//!   detaches the mount, so `stat` of the mount point never gives ENOTCONN. (fuser's
//!   `AutoUnmount`, which delegates the same job to `fusermount3`, was tried first: on
//!   this machine the `fusermount3` helper exited right after mounting and the mount
//!   survived a SIGKILL of the daemon, so it is not used.) A mount made inside a private
//!   mount namespace (`imafs run`) goes away with the namespace and needs no watchdog.

use fuser::{Filesystem, Session};
use std::io;

/// Catch SIGTERM and SIGINT from now on. Call this before mounting, so a stop request that
/// arrives while the mount is being set up is not lost (nor kills the daemon with the
/// mount left behind).
pub fn stop_signals() -> io::Result<signal_hook::iterator::Signals> {
    signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
}

/// Run `session` (mounted at `mountpoint`) on the calling thread until the file system is
/// unmounted (by anyone) or one of `signals` arrives (then unmount it and return `Ok`).
///
/// fuser's unmount is a plain umount(2), which fails with EBUSY while anything still
/// references the mount, even for an instant (a child forked by another thread between
/// fork and exec inherits open files); the session would then serve on and the daemon
/// never exit. So a failed unmount falls back to a lazy detach: the mount leaves the
/// namespace at once and the session ends when its last open file is closed.
pub fn run_until_signal<FS: Filesystem + Send + Sync + 'static>(
    mut session: Session<FS>,
    mut signals: signal_hook::iterator::Signals,
    mountpoint: &std::path::Path,
    name: &'static str,
) -> io::Result<()> {
    let mut unmounter = session.unmount_callable();
    let handle = signals.handle();
    let mountpoint = mountpoint.to_path_buf();
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_seen = stopping.clone();
    let watcher = std::thread::Builder::new()
        .name(format!("{name}-signals"))
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                stop_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                log::info!("{name}: signal {sig}, unmounting");
                if let Err(e) = unmounter.unmount() {
                    log::info!("{name}: unmount: {e}; detaching {}", mountpoint.display());
                    if let Err(e) = detach(&mountpoint) {
                        log::warn!("{name}: detach {}: {e}", mountpoint.display());
                    }
                }
            }
        })?;
    let result = session.run();
    handle.close();
    let _ = watcher.join();
    match result {
        // After a detach the worker reading /dev/fuse when the last user lets go may see
        // the connection aborted rather than ENODEV: still the end we asked for.
        Err(e)
            if e.raw_os_error() == Some(libc::ECONNABORTED)
                && stopping.load(std::sync::atomic::Ordering::SeqCst) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// A helper process that lazily unmounts a mount point once the daemon is gone, however
/// it died (SIGKILL included): it waits for EOF on a pipe whose write end only the daemon
/// holds, so no dead mount (ENOTCONN) is left behind. Dropping it (after a clean
/// unmount) ends the helper without touching the mount point.
pub struct UnmountWatchdog {
    child: std::process::Child,
}

impl UnmountWatchdog {
    /// Start `program args... <mountpoint>` (an `imafs` binary's hidden
    /// `unmount-watchdog` subcommand) with its stdin on a pipe kept by this process.
    pub fn spawn(
        program: &std::path::Path,
        args: &[&str],
        mountpoint: &std::path::Path,
    ) -> io::Result<UnmountWatchdog> {
        let child = std::process::Command::new(program)
            .args(args)
            .arg(mountpoint)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(UnmountWatchdog { child })
    }
}

impl Drop for UnmountWatchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The watchdog's side: ignore the stop signals a terminal or a process group gets, wait
/// for EOF on stdin (the daemon is gone), then detach the mount.
pub fn watchdog_main(mountpoint: &std::path::Path) -> io::Result<()> {
    use std::io::Read;
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, ignored.clone())?;
    }
    let mut sink = [0u8; 64];
    let mut stdin = io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    detach(mountpoint)
}

/// Lazily unmount `mountpoint` (MNT_DETACH), through `fusermount3 -u -z` when this process
/// may not unmount itself.
pub fn detach(mountpoint: &std::path::Path) -> io::Result<()> {
    match rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        // A daemon without CAP_SYS_ADMIN mounted through fusermount3 (setuid); only it
        // may take the mount down again for us.
        Err(rustix::io::Errno::PERM) => fusermount_unmount(mountpoint),
        Err(e) => Err(e.into()),
    }
}

/// `fusermount3 -u -z DIR` (or `fusermount`): the unprivileged way to detach a FUSE mount
/// that this user made.
fn fusermount_unmount(mountpoint: &std::path::Path) -> io::Result<()> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no fusermount3 or fusermount");
    for tool in ["fusermount3", "fusermount"] {
        match std::process::Command::new(tool)
            .args(["-u", "-z", "--"])
            .arg(mountpoint)
            .stdin(std::process::Stdio::null())
            .status()
        {
            Ok(st) if st.success() => return Ok(()),
            Ok(st) => last = io::Error::other(format!("{tool} -u -z: {st}")),
            Err(e) => last = e,
        }
    }
    Err(last)
}
