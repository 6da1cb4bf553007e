//! File-descriptor helpers for resolving paths strictly beneath a directory.
//!
//! Everything here is safe `rustix`; it lives in `sys` because it is the system-call layer the
//! overlay builds on.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Resolution flags for every lookup of a single name under a directory of the lower tree: the
/// name must stay beneath `dirfd`, and no symlink (let alone a `/proc` magic link) is followed.
/// With `O_PATH | O_NOFOLLOW` a trailing symlink is opened as itself.
pub const RESOLVE_STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Whether `name` is one plain directory entry name (no `/`, not `.` or `..`, not empty).
pub fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn check_name(name: &[u8]) -> io::Result<()> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// `openat2(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode, RESOLVE_STRICT)` for one entry
/// name. A symlink in place of `name` is never followed.
pub fn open_beneath(
    dirfd: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    check_name(name)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat2(
        dirfd,
        name,
        flags,
        mode,
        RESOLVE_STRICT,
    )?)
}

/// An `O_PATH` handle on the entry `name` of `dirfd` (the entry itself if it is a symlink).
pub fn open_path_beneath(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    open_beneath(dirfd, name, OFlags::PATH, Mode::empty())
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)` for one entry name.
pub fn stat_beneath(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Stat> {
    check_name(name)?;
    Ok(rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `fstat` that also works on `O_PATH` descriptors.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// `/proc/self/fd/N` for `fd`: the kernel's handle for re-opening exactly that inode
/// (an `O_PATH` descriptor cannot be read, written or passed to `f*xattr` directly).
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Re-open the inode behind an `O_PATH` descriptor with real open flags. `O_CREAT`, `O_EXCL`
/// and `O_NOFOLLOW` are dropped (the inode exists and is already resolved).
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> io::Result<File> {
    let flags = (flags - (OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::PATH))
        | OFlags::CLOEXEC;
    let owned = rustix::fs::open(proc_fd_path(fd), flags, Mode::empty())?;
    Ok(File::from(owned))
}

/// Soft limit on open file descriptors of this process.
pub fn nofile_soft_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (what the daemon may use is bounded by its
/// own descriptor cache; the soft default of 1024 would only make that cache smaller).
/// Returns the new soft limit.
pub fn raise_nofile_soft_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current
}

/// Number of file descriptors this process has open (from `/proc/self/fd`).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn plain_names() {
        assert!(is_plain_name(b"a"));
        assert!(is_plain_name(b"..."));
        assert!(!is_plain_name(b""));
        assert!(!is_plain_name(b"."));
        assert!(!is_plain_name(b".."));
        assert!(!is_plain_name(b"a/b"));
        assert!(!is_plain_name(b"a\0"));
    }

    #[test]
    fn open_beneath_refuses_symlinks_and_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let root = File::open(dir.path()).unwrap();
        let sub = open_path_beneath(root.as_fd(), b"sub").unwrap();
        // `..` is not a plain name.
        assert!(open_path_beneath(sub.as_fd(), b"..").is_err());
        // A symlink is opened as itself with O_PATH, never followed.
        let link = open_path_beneath(root.as_fd(), b"link").unwrap();
        let st = stat_fd(link.as_fd()).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        // Asking for a directory through the symlink fails instead of escaping.
        let err = open_beneath(root.as_fd(), b"link", OFlags::DIRECTORY, Mode::empty());
        assert!(err.is_err());
    }
}
