//! The measuring passthrough overlay: a FUSE view of a lower directory (the container rootfs).
//!
//! * Safety: every lower path is resolved one component at a time under the parent's
//!   descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`
//!   and `O_NOFOLLOW`, so absolute symlinks, `..` and directories swapped for symlinks cannot
//!   lead outside the lower directory (see [`crate::sys::fd`]).
//! * Inodes: identified by lower `(st_dev, st_ino)`; descriptors are opened on demand and kept
//!   in a bounded cache (see [`inodes`]), so walking any number of files fits a small
//!   `RLIMIT_NOFILE`.
//! * Data: kernel FUSE passthrough (one `BackingId` per inode shared by its opens) when the
//!   daemon may register backing files (`CAP_SYS_ADMIN` in the initial user namespace); if
//!   registering fails with `EPERM` (user namespace) passthrough is switched off for the rest
//!   of the session and reads/writes go through the daemon. `OverlayOptions::passthrough`
//!   turns it off entirely. Read-only opens of small files go through the kernel's page cache
//!   instead (fewer requests per open), kept coherent with the file's other opens and with
//!   changes behind the mount (see `Inner::open_io` in `ops`).
//! * Locks: `flock` and POSIX locks are handled by the kernel locally (the capabilities are
//!   not negotiated); the container is the only user of the mount, so local locks are exact.
//! * Hooks: every open of a regular file calls [`OverlayHooks::on_open`] before it returns
//!   (like `ima_file_check`, before `O_TRUNC` is applied), and the release of that open calls
//!   [`OverlayHooks::on_release`].

mod events;
mod inodes;
pub mod lowerfs;
mod ops;

pub use events::{
    read_ima_xattr, AttrEvent, EarlierReleases, LowerFs, NoHooks, OpenEvent, OverlayHooks,
    ReleaseEvent, FMODE_EXEC,
};

use fuser::{Config, MountOption, Session, SessionACL};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The default of [`OverlayOptions::idle_poll`].
pub const DEFAULT_IDLE_POLL: Duration = Duration::from_micros(200);

/// The default of [`OverlayOptions::attr_ttl`] and `entry_ttl`. The kernel's overlayfs never
/// revalidates what it caches of its layers (changing them under a mount is undefined) and
/// fuse-overlayfs caches for 10^9 s; a minute keeps a warm container from asking again for
/// what it used seconds ago, while a host that edits the rootfs directly is seen within a
/// minute (every open, and what it measures and reads, is current at once).
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default of [`OverlayOptions::page_cache_max`]: small files, whose cost is the requests
/// per open rather than the copy, and whose double caching (lower and overlay page cache)
/// costs little memory.
pub const DEFAULT_PAGE_CACHE_MAX: u64 = 256 * 1024;

/// How the overlay is served.
#[derive(Clone)]
pub struct OverlayOptions {
    /// Use kernel FUSE passthrough for file data when possible (default true).
    pub passthrough: bool,
    /// FUSE worker threads (default: max(2, CPUs)).
    pub threads: usize,
    /// How long the kernel may cache attributes and names (default [`DEFAULT_CACHE_TIMEOUT`]).
    /// Opens are checked, measured and appraised whatever these are; they only bound how
    /// long a change made behind the daemon's back (not through this mount) stays unseen
    /// in `stat` and path lookups.
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    /// Read-only opens of regular files up to this size are served from the kernel's page
    /// cache (filled by the daemon) rather than passed through (default
    /// [`DEFAULT_PAGE_CACHE_MAX`]; 0: pass every open through when passthrough is available).
    pub page_cache_max: u64,
    /// How long an idle FUSE worker polls for the next request before it sleeps, at most
    /// (adaptive: the window grows in bursts of requests and falls to nothing when they
    /// stop; see vendor/fuser/src/idle_poll.rs). Zero never polls.
    pub idle_poll: Duration,
    /// Serve requests through FUSE over io_uring when the kernel offers it (Linux 6.14+ with
    /// `fuse.enable_uring=1`): one worker per CPU, pinned, answering the requests made on
    /// its CPU (default; false: `/dev/fuse` only). Where the kernel does not offer it, or
    /// refuses the rings, requests go through `/dev/fuse`.
    pub io_uring: bool,
    /// Descriptor cache capacity (default: min(4096, RLIMIT_NOFILE/4), after raising the soft
    /// limit to the hard one).
    pub fd_cache: Option<usize>,
    /// Let the kernel check permissions from the attributes (default: when the daemon is root).
    /// Without it every request is performed with the daemon's credentials, so an unprivileged
    /// daemon in a user namespace must rely on its own uid owning the files.
    pub default_permissions: bool,
    /// Allow users other than the daemon's to access the mount (default: when root).
    pub allow_other: bool,
    /// The lower xattr holding IMA data (default `security.ima` when the daemon is root,
    /// `user.ima`, where `evmctl --xattr-user` writes, otherwise: an unprivileged daemon cannot
    /// write `security.*`). When it is not `security.ima`, the container's `security.ima` is
    /// mapped onto it: getxattr, setxattr, removexattr and listxattr of `security.ima` act on
    /// this name, so the container sees `security.ima` as on a host.
    pub ima_xattr: String,
    /// Hooks called on opens and releases (default [`NoHooks`]).
    pub hooks: Arc<dyn OverlayHooks>,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        OverlayOptions {
            passthrough: true,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
            attr_ttl: DEFAULT_CACHE_TIMEOUT,
            entry_ttl: DEFAULT_CACHE_TIMEOUT,
            page_cache_max: DEFAULT_PAGE_CACHE_MAX,
            idle_poll: DEFAULT_IDLE_POLL,
            io_uring: true,
            fd_cache: None,
            default_permissions: root,
            allow_other: root,
            ima_xattr: if root { "security.ima" } else { "user.ima" }.into(),
            hooks: Arc::new(NoHooks),
        }
    }
}

impl std::fmt::Debug for OverlayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayOptions")
            .field("passthrough", &self.passthrough)
            .field("threads", &self.threads)
            .field("attr_ttl", &self.attr_ttl)
            .field("entry_ttl", &self.entry_ttl)
            .field("page_cache_max", &self.page_cache_max)
            .field("idle_poll", &self.idle_poll)
            .field("io_uring", &self.io_uring)
            .field("fd_cache", &self.fd_cache)
            .field("default_permissions", &self.default_permissions)
            .field("allow_other", &self.allow_other)
            .field("ima_xattr", &self.ima_xattr)
            .finish_non_exhaustive()
    }
}

/// Counters and state of a running overlay, shared with the serving threads.
#[derive(Clone)]
pub struct OverlayStatus(Arc<ops::Inner>);

impl OverlayStatus {
    /// Whether passthrough is in use (negotiated and not switched off by a failure).
    pub fn passthrough_active(&self) -> bool {
        self.0.passthrough_active()
    }
    /// How requests reach the daemon: `io_uring` or `/dev/fuse`.
    pub fn transport(&self) -> &'static str {
        self.0.transport()
    }
    /// Number of opens served with a passthrough backing file so far.
    pub fn passthrough_opens(&self) -> u64 {
        self.0
            .stats
            .passthrough_opens
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Number of opens served through the daemon so far.
    pub fn daemon_opens(&self) -> u64 {
        self.0
            .stats
            .daemon_opens
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Open node `id` (a FUSE node id, which is what `st_ino` shows through the mount)
    /// read-only: its lower file and its path as the container sees it.
    pub fn open_node(&self, id: u64) -> io::Result<(std::fs::File, Vec<u8>)> {
        self.0.open_node(id)
    }
    /// A horizon after every release being handled now: an open that does not come from
    /// the overlay itself (a nested daemon's forwarded open) waits for the releases before
    /// it with [`OverlayStatus::releases_before`].
    pub fn release_horizon(&self) -> u64 {
        self.0.release_horizon()
    }
    /// Whether a release that was being handled when `horizon` was taken still is.
    pub fn releases_before(&self, horizon: u64) -> bool {
        self.0.releases_before(horizon)
    }
    /// Nodes the kernel currently references, and cached descriptors.
    pub fn inode_counts(&self) -> (usize, usize) {
        self.0.inode_counts()
    }
}

/// A passthrough overlay of a lower directory, ready to be mounted.
pub struct Overlay {
    inner: Arc<ops::Inner>,
}

impl Overlay {
    /// Open `lower` (which must be a directory) for serving.
    pub fn new(lower: &Path, options: OverlayOptions) -> io::Result<Overlay> {
        Ok(Overlay {
            inner: Arc::new(ops::Inner::new(lower, options)?),
        })
    }

    /// State shared with the serving threads.
    pub fn status(&self) -> OverlayStatus {
        OverlayStatus(self.inner.clone())
    }

    /// The fuser configuration used to mount: `fsname=imafs`, `default_permissions` and
    /// `allow_other` per the options, `dev,suid` when root, worker threads with cloned fds
    /// that poll for requests when idle (per the options).
    pub fn fuser_config(&self) -> Config {
        let o = &self.inner.options;
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("imafs".into()),
            MountOption::Subtype("imafs".into()),
        ];
        if o.default_permissions {
            cfg.mount_options.push(MountOption::DefaultPermissions);
        }
        if rustix::process::geteuid().is_root() {
            cfg.mount_options.push(MountOption::Dev);
            cfg.mount_options.push(MountOption::Suid);
        }
        cfg.acl = if o.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        cfg.n_threads = Some(o.threads.max(2));
        cfg.clone_fd = true;
        cfg.idle_poll = o.idle_poll;
        cfg.io_uring = o.io_uring;
        cfg
    }

    /// Mount at `mountpoint` and serve from background threads.
    pub fn mount(self, mountpoint: &Path) -> io::Result<MountedOverlay> {
        let cfg = self.fuser_config();
        let status = self.status();
        let session = self.session_at(mountpoint, &cfg)?;
        Ok(MountedOverlay {
            session: session.spawn()?,
            status,
        })
    }

    /// Mount at `mountpoint` and serve until the file system is unmounted, or until SIGTERM or
    /// SIGINT (then unmount cleanly and return).
    pub fn serve(self, mountpoint: &Path) -> io::Result<()> {
        let cfg = self.fuser_config();
        let signals = super::session::stop_signals()?;
        let session = self.session_at(mountpoint, &cfg)?;
        super::session::run_until_signal(session, signals, mountpoint, "overlay")
    }

    /// Serve a `/dev/fuse` descriptor that the caller mounted itself (the mount helper, in a
    /// user namespace): mount data `fd=N,rootmode=40000,user_id=U,group_id=G` plus
    /// `default_permissions`/`allow_other` as wanted. The mount must be made before or while
    /// this runs: the call waits for the kernel's INIT, then serves from background threads.
    pub fn spawn_fd(self, fuse_fd: OwnedFd) -> io::Result<MountedOverlay> {
        let cfg = self.fuser_config();
        let status = self.status();
        let session = self.session_on(fuse_fd, &cfg)?;
        Ok(MountedOverlay {
            session: session.spawn()?,
            status,
        })
    }

    /// Like [`Overlay::spawn_fd`] but serving on the calling thread until the file system is
    /// unmounted.
    pub fn serve_fd(self, fuse_fd: OwnedFd) -> io::Result<()> {
        let cfg = self.fuser_config();
        self.session_on(fuse_fd, &cfg)?.run()
    }

    /// A session mounting the overlay at `mountpoint`, attached to the overlay.
    fn session_at(&self, mountpoint: &Path, cfg: &Config) -> io::Result<Session<ops::Adapter>> {
        let session = Session::new(ops::Adapter(self.inner.clone()), mountpoint, cfg)?;
        self.inner.attach(session.notifier(), session.in_flight());
        Ok(session)
    }

    /// A session on a `/dev/fuse` descriptor mounted by the caller, attached to the overlay.
    fn session_on(&self, fuse_fd: OwnedFd, cfg: &Config) -> io::Result<Session<ops::Adapter>> {
        let session = Session::from_fd(
            ops::Adapter(self.inner.clone()),
            fuse_fd,
            cfg.acl,
            cfg.clone(),
        )?;
        self.inner.attach(session.notifier(), session.in_flight());
        Ok(session)
    }
}

/// An overlay being served from background threads.
pub struct MountedOverlay {
    session: fuser::BackgroundSession,
    status: OverlayStatus,
}

impl MountedOverlay {
    pub fn status(&self) -> &OverlayStatus {
        &self.status
    }

    /// Unmount (when this process mounted it) and wait for the serving threads.
    pub fn unmount(self) -> io::Result<()> {
        self.session.umount_and_join()
    }

    /// Wait until the file system is unmounted by someone else.
    pub fn join(self) -> io::Result<()> {
        self.session.join()
    }
}
