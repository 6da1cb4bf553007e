//! Mounting a FUSE file system with mount(2) directly (no fusermount), returning the
//! `/dev/fuse` descriptor for `fuser::Session::from_fd`.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::mount::MountFlags;

use crate::ns::annotate;

/// Options of one FUSE mount.
#[derive(Clone, Debug)]
pub struct FuseMount {
    /// The mount's source as listed in /proc/self/mountinfo (e.g. `imafs`).
    pub fsname: String,
    /// The file system type is `fuse.<subtype>` when set, else `fuse`.
    pub subtype: Option<String>,
    /// Let other users (and, in a user namespace, every process of it) use the mount. The
    /// container's processes are not the daemon, so both imafs mounts need it.
    pub allow_other: bool,
    /// Let the kernel check permissions from the file modes (the daemon does not).
    pub default_permissions: bool,
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
}

impl FuseMount {
    /// The options imafs uses: `allow_other,default_permissions`, read-write, suid and device
    /// nodes allowed as on the lower file system (the kernel forces `nodev` semantics for
    /// mounts made inside a user namespace anyway).
    pub fn new(fsname: &str, subtype: &str) -> FuseMount {
        FuseMount {
            fsname: fsname.to_owned(),
            subtype: Some(subtype.to_owned()),
            allow_other: true,
            default_permissions: true,
            read_only: false,
            nosuid: false,
            nodev: false,
        }
    }

    /// The data string of mount(2) for descriptor `fd` on a mount point of type `root_mode`.
    pub fn data(&self, fd: i32, root_mode: u32, uid: u32, gid: u32) -> String {
        let mut data = format!("fd={fd},rootmode={root_mode:o},user_id={uid},group_id={gid}");
        if self.allow_other {
            data.push_str(",allow_other");
        }
        if self.default_permissions {
            data.push_str(",default_permissions");
        }
        data
    }
}

/// Open `/dev/fuse` and mount a FUSE file system on `mountpoint` (a directory), owned by the
/// caller's effective ids as seen in its user namespace.
///
/// Inside a user namespace the descriptor must be opened there too (the kernel compares the
/// opener's user namespace with the mount's). Nothing answers the kernel's FUSE_INIT yet:
/// hand the descriptor to the daemon (`fuser::Session::from_fd`) before anything looks at
/// the mount point, or that access blocks until it does.
pub fn mount_fuse(mountpoint: &Path, opts: &FuseMount) -> io::Result<OwnedFd> {
    let st = rustix::fs::stat(mountpoint)
        .map_err(|e| annotate(e.into(), &format!("stat {}", mountpoint.display())))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", mountpoint.display()),
        ));
    }
    let fd = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(
        |e| {
            let hint = if e == rustix::io::Errno::ACCESS {
                " (unprivileged use needs /dev/fuse mode 0666, as Debian's udev rules set it)"
            } else if e == rustix::io::Errno::NOENT {
                " (no FUSE device: `modprobe fuse` on the host; in a container, pass the \
                 device, e.g. docker run --device /dev/fuse)"
            } else {
                ""
            };
            annotate(e.into(), &format!("open /dev/fuse{hint}"))
        },
    )?;
    let root_mode = st.st_mode & rustix::fs::FileType::Directory.as_raw_mode();
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let data = CString::new(opts.data(std::os::fd::AsRawFd::as_raw_fd(&fd), root_mode, uid, gid))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fstype = match &opts.subtype {
        Some(sub) => format!("fuse.{sub}"),
        None => "fuse".to_owned(),
    };
    let mut flags = MountFlags::empty();
    if opts.read_only {
        flags |= MountFlags::RDONLY;
    }
    if opts.nosuid {
        flags |= MountFlags::NOSUID;
    }
    if opts.nodev {
        flags |= MountFlags::NODEV;
    }
    rustix::mount::mount(
        opts.fsname.as_str(),
        mountpoint,
        fstype.as_str(),
        flags,
        data.as_c_str(),
    )
    .map_err(|e| {
        annotate(
            e.into(),
            &format!("mount {fstype} on {}", mountpoint.display()),
        )
    })?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_string_has_kernel_option_names() {
        let opts = FuseMount::new("imafs", "imafs");
        assert_eq!(
            opts.data(7, 0o40000, 0, 0),
            "fd=7,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions"
        );
        let plain = FuseMount {
            allow_other: false,
            default_permissions: false,
            ..opts
        };
        assert_eq!(
            plain.data(3, 0o40000, 1000, 100),
            "fd=3,rootmode=40000,user_id=1000,group_id=100"
        );
    }
}
