//! The overlay's events: what it reports of each open, release and attribute change of a
//! lower file, and the trait ([`OverlayHooks`]) through which whoever measures opens (the IMA
//! glue, `fs::ima_hooks`) receives them.

use std::fs::File;
use std::os::fd::AsFd;

use crate::engine::Errno;

/// The kernel's `__FMODE_EXEC` bit. `execve()` opens the binary with it, and FUSE forwards the
/// file's `f_flags` (minus `O_CREAT|O_EXCL|O_NOCTTY`) in FUSE_OPEN, so it reaches the daemon.
pub const FMODE_EXEC: i32 = 0x20;

/// The lower file system an opened file lives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerFs {
    /// `statfs().f_type` (e.g. 0x794c7630 for overlayfs, 0xef53 for ext4, 0x01021994 for tmpfs).
    pub magic: u64,
    /// File system type from `/proc/self/mountinfo` (e.g. `ext4`, `overlay`, `tmpfs`): what
    /// a policy's `fsname=` matches. Empty when the mount could not be found.
    pub name: String,
    /// The kernel's `s_id`: the block device's name (`vda`) or else the type (`tmpfs`), as
    /// audit records print it after `dev=`. Empty when the mount could not be found.
    pub s_id: String,
    /// UUID of the file system when known (`FS_IOC_GETFSUUID`, else `/dev/disk/by-uuid`).
    pub uuid: Option<[u8; 16]>,
    /// `st_dev` of the lower files on this file system.
    pub dev: u64,
}

/// One open of a regular file, before the open returns to the caller.
pub struct OpenEvent<'a> {
    /// Path as the container sees it, from the overlay root: `/usr/bin/ls`. A file whose name
    /// was removed while the kernel still holds it ends with ` (deleted)`, like `d_path`.
    pub path: &'a [u8],
    /// FUSE open flags as received (`O_ACCMODE`, `O_APPEND`, `O_TRUNC` (atomic_o_trunc is
    /// negotiated so it is visible), `O_DIRECT`, ... and [`FMODE_EXEC`]).
    pub flags: i32,
    /// The open was made by `execve()` for the binary (flags contain [`FMODE_EXEC`]).
    pub exec: bool,
    /// The file was created by this open (FUSE_CREATE).
    pub created: bool,
    /// Caller credentials and process id, as FUSE reports them.
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// The lower file after the open (after `O_TRUNC`).
    pub stat: &'a rustix::fs::Stat,
    /// The lower file system.
    pub fs: &'a LowerFs,
    /// Identifier of this open, also given to [`ReleaseEvent::open_id`].
    pub open_id: u64,
    /// What the open knows of the releases the kernel queued before it (the RELEASE that
    /// `close(2)` sent just before the caller's open).
    pub earlier_releases: EarlierReleases<'a>,
}

/// What an open knows of the releases the kernel queued before it: whether one may still
/// be unhandled (read or not yet read, in the kernel's order: vendor/fuser
/// `src/in_flight.rs`, for `/dev/fuse` and io_uring alike; opens that are not the overlay's
/// are replayed or forwarded in order). An open that conflicts with files still open waits
/// while this is true.
pub type EarlierReleases<'a> = &'a dyn Fn() -> bool;

impl OpenEvent<'_> {
    /// Opened for writing (`O_WRONLY` or `O_RDWR`).
    pub fn writes(&self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_RDONLY
    }
    /// Opened for reading (`O_RDONLY` or `O_RDWR`).
    pub fn reads(&self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_WRONLY
    }
}

/// The last handle of an open was released.
pub struct ReleaseEvent<'a> {
    /// Path as the container sees it (see [`OpenEvent::path`]).
    pub path: &'a [u8],
    /// The open was for writing (`O_WRONLY` or `O_RDWR`).
    pub opened_for_write: bool,
    /// Open flags as received at open time.
    pub flags: i32,
    /// The lower file after close (size, mtime and ctime reflect every write of this open).
    pub stat: &'a rustix::fs::Stat,
    /// The lower file system.
    pub fs: &'a LowerFs,
    /// The [`OpenEvent::open_id`] of the open being released.
    pub open_id: u64,
    /// The caller's descriptor of the lower file (opened with [`ReleaseEvent::flags`]; it may
    /// be write-only). IMA data the hooks compute (fix mode) is written through it.
    pub file: &'a File,
}

/// A change of a regular file's metadata that IMA watches: a set or removal of the IMA
/// xattr (`security.ima` as the container names it), a chmod or chown.
pub struct AttrEvent<'a> {
    /// Path as the container sees it (see [`OpenEvent::path`]).
    pub path: &'a [u8],
    /// Caller credentials and process id, as FUSE reports them.
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// The lower file (before the change for [`OverlayHooks::on_ima_xattr_write`]).
    pub stat: &'a rustix::fs::Stat,
    /// The lower file (an `O_PATH` descriptor: use it for `fstat`, `fstatfs` and, through
    /// `/proc/self/fd`, xattrs).
    pub fd: std::os::fd::BorrowedFd<'a>,
}

/// Measurement hooks called by the overlay.
pub trait OverlayHooks: Send + Sync + 'static {
    /// Called for every open of a regular file before the open returns; an `Err` denies the
    /// open with that errno. `file` is a readable descriptor of the lower file (a separate
    /// read-only one for write-only opens); read it with positional reads (`read_at`).
    fn on_open(&self, ev: &OpenEvent<'_>, file: &File) -> Result<(), Errno>;
    /// Called when the last handle of that open is released.
    fn on_release(&self, ev: &ReleaseEvent<'_>);
    /// Called before a set (`Some(value)`) or removal (`None`) of the IMA xattr of a regular
    /// file (`ima_inode_setxattr` / `ima_inode_removexattr`); an `Err` refuses it with that
    /// errno.
    fn on_ima_xattr_write(&self, _ev: &AttrEvent<'_>, _value: Option<&[u8]>) -> Result<(), Errno> {
        Ok(())
    }
    /// Called after the IMA xattr of a regular file was set or removed.
    fn on_ima_xattr_changed(&self, _ev: &AttrEvent<'_>) {}
    /// Called after a chmod or chown of a regular file (`ima_inode_post_setattr`).
    fn on_attr_changed(&self, _ev: &AttrEvent<'_>) {}
    /// Called after an operation that changed only a regular file's metadata, not its
    /// content (rename, link, chmod, chown, utimes), with its attributes before and after.
    fn on_metadata_changed(&self, _before: &rustix::fs::Stat, _after: &rustix::fs::Stat) {}
}

/// Hooks that allow everything and record nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl OverlayHooks for NoHooks {
    fn on_open(&self, _ev: &OpenEvent<'_>, _file: &File) -> Result<(), Errno> {
        Ok(())
    }
    fn on_release(&self, _ev: &ReleaseEvent<'_>) {}
}

/// Read the IMA xattr `name` (`security.ima`, or e.g. `user.ima` where `security.*` cannot be
/// written) of an opened file with one `fgetxattr`. `Ok(None)` when it is absent.
pub fn read_ima_xattr(file: &File, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    crate::sys::xattr::fget_opt(file.as_fd(), name.as_bytes())
}
