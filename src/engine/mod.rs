//! The IMA engine: everything the kernel's `security/integrity/ima/` does, in-process.

pub mod appraise;
pub mod ascii;
pub mod audit;
pub mod children;
pub mod hash;
pub mod ima;
pub mod journal;
pub mod keys;
pub mod measure;
pub mod measurement_list;
pub mod pcr;
pub mod policy;
pub mod template;
pub mod tpm;
pub mod tpm_share;
pub mod xattr;

/// An errno value as the kernel would return it (positive, e.g. `Errno::EINVAL`).
/// The engine has no FUSE in it; the file systems translate this to their reply type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const ENOKEY: Errno = Errno(libc::ENOKEY);
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

impl From<&std::io::Error> for Errno {
    /// The errno of a failed system call (EIO for an error that carries none).
    fn from(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}
