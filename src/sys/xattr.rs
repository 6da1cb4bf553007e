//! Extended attribute wrappers (safe `rustix` calls) with size probing.
//!
//! Two kinds of targets: a real open file ([`fget`], `f*xattr`), or an inode held by an
//! `O_PATH` descriptor, reached through its `/proc/self/fd/N` link (`O_PATH` descriptors are
//! refused by `f*xattr`).

use std::io;
use std::os::fd::BorrowedFd;

use super::fd::proc_fd_path;

/// Largest value the kernel allows (XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Largest name list the kernel returns (XATTR_LIST_MAX).
pub const XATTR_LIST_MAX: usize = 65536;

/// Read a value with a growing buffer: the value may change between the size query and the
/// read (ERANGE), so retry until it fits or exceeds the kernel's limit.
fn read_growing(
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut size = 256usize;
    loop {
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if size < max => {
                size = (size * 4).min(max);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fgetxattr(fd, name)`: the whole value. `ENODATA` when absent.
pub fn fget(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    read_growing(|buf| rustix::fs::fgetxattr(fd, name, buf), XATTR_SIZE_MAX)
}

/// `fgetxattr` that maps "absent" (`ENODATA`) to `Ok(None)`.
pub fn fget_opt(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    match fget(fd, name) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `getxattr` of the inode behind an `O_PATH` descriptor. `size == 0` asks for the length only
/// (the result is then empty and the length is returned separately).
pub fn get_path_fd(fd: BorrowedFd<'_>, name: &[u8], size: usize) -> io::Result<(Vec<u8>, usize)> {
    let path = proc_fd_path(fd);
    if size == 0 {
        let n = rustix::fs::getxattr_query(path.as_str(), name)?;
        return Ok((Vec::new(), n));
    }
    let mut buf = vec![0u8; size.min(XATTR_SIZE_MAX)];
    let n = rustix::fs::getxattr(path.as_str(), name, &mut buf[..])?;
    buf.truncate(n);
    Ok((buf, n))
}

/// `listxattr` of the inode behind an `O_PATH` descriptor (same `size` convention).
pub fn list_path_fd(fd: BorrowedFd<'_>, size: usize) -> io::Result<(Vec<u8>, usize)> {
    let path = proc_fd_path(fd);
    if size == 0 {
        let n = rustix::fs::listxattr_query(path.as_str())?;
        return Ok((Vec::new(), n));
    }
    let mut buf = vec![0u8; size.min(XATTR_LIST_MAX)];
    let n = rustix::fs::listxattr(path.as_str(), &mut buf[..])?;
    buf.truncate(n);
    Ok((buf, n))
}

/// `setxattr` on the inode behind an `O_PATH` descriptor; `flags` are XATTR_CREATE/REPLACE.
pub fn set_path_fd(fd: BorrowedFd<'_>, name: &[u8], value: &[u8], flags: i32) -> io::Result<()> {
    let path = proc_fd_path(fd);
    let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
    Ok(rustix::fs::setxattr(path.as_str(), name, value, flags)?)
}

/// `removexattr` on the inode behind an `O_PATH` descriptor.
pub fn remove_path_fd(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let path = proc_fd_path(fd);
    Ok(rustix::fs::removexattr(path.as_str(), name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn user_xattr_roundtrip_through_o_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let opath = rustix::fs::open(
            &p,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        match set_path_fd(opath.as_fd(), b"user.t", &[7u8; 1000], 0) {
            Ok(()) => {}
            // tmpfs without user xattrs: nothing to test here.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            Err(e) => panic!("{e}"),
        }
        assert_eq!(fget(f.as_fd(), b"user.t").unwrap(), vec![7u8; 1000]);
        assert_eq!(get_path_fd(opath.as_fd(), b"user.t", 0).unwrap().1, 1000);
        let (names, _) = list_path_fd(opath.as_fd(), 4096).unwrap();
        assert!(names.split(|b| *b == 0).any(|n| n == b"user.t"));
        assert_eq!(fget_opt(f.as_fd(), b"user.none").unwrap(), None);
        remove_path_fd(opath.as_fd(), b"user.t").unwrap();
        assert_eq!(fget_opt(f.as_fd(), b"user.t").unwrap(), None);
    }
}
