//! `FS_IOC_GETFSUUID` (Linux 6.5+): the UUID of the file system an open file lives on, the
//! superblock's `s_uuid` that IMA's `fsuuid=` policy condition compares.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `struct fsuuid2` of linux/fs.h.
#[repr(C)]
struct FsUuid2 {
    len: u8,
    uuid: [u8; 16],
}

/// `_IOR(0x15, 0, struct fsuuid2)`.
const FS_IOC_GETFSUUID: libc::c_ulong = 0x8011_1500;

/// The file system UUID of `file`: `Ok(None)` when the file system has none (`s_uuid_len`
/// 0, a null UUID, ENOTTY/EINVAL from kernels or file systems without the ioctl).
pub fn fs_uuid(file: impl AsFd) -> io::Result<Option<[u8; 16]>> {
    let mut out = FsUuid2 {
        len: 0,
        uuid: [0; 16],
    };
    // SAFETY: the ioctl writes at most size_of::<FsUuid2>() bytes (the size encoded in the
    // request number) into `out`, which lives for the whole call; the descriptor is borrowed.
    let rc = unsafe {
        libc::ioctl(
            file.as_fd().as_raw_fd(),
            FS_IOC_GETFSUUID,
            &mut out as *mut FsUuid2,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(err),
        };
    }
    // A null UUID is no UUID (what `fsuuid=` compares against either way).
    match out.len {
        16 if out.uuid != [0; 16] => Ok(Some(out.uuid)),
        _ => Ok(None),
    }
}
