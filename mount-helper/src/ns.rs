//! Entering the namespaces a container's daemon lives in.
//!
//! Design choice for the ids:
//! - an unprivileged caller gets a new user namespace in which its uid and gid are mapped to
//!   0 (one-line maps, `setgroups` denied, as `unshare --map-root-user` does). Inside, it is
//!   root for the namespace's mount namespace: it may mount FUSE (since Linux 4.18), bind
//!   mounts, proc and tmpfs, and `pivot_root`. Files it creates on the host belong to it;
//!   host files of other users appear as the overflow id (65534).
//! - root keeps its real ids and gets a mount namespace only. FUSE passthrough (backing
//!   files) needs CAP_SYS_ADMIN in the *initial* user namespace, which a new user namespace
//!   would take away; and root in the container is then the same root that owns the files.
//!
//! Either way every mount made afterwards is private: nothing propagates back to the host.

use std::io;
use std::path::Path;

use rustix::mount::{mount_change, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use crate::sys;

/// Whether to create a user namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserNamespace {
    /// A user namespace for unprivileged callers (and root without CAP_SYS_ADMIN, as in a
    /// container), none for root (see the module docs).
    #[default]
    Auto,
    /// Always create one (as root this maps 0 to 0 and drops initial-namespace capabilities).
    Always,
    /// Never: the caller must be privileged enough to create a mount namespace.
    Never,
}

/// What [`enter`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// A user namespace was created (ids inside are 0; see `outside_uid`/`outside_gid`).
    pub user_ns: bool,
    /// The caller's uid and gid outside (the host's view of the container's root).
    pub outside_uid: u32,
    pub outside_gid: u32,
}

/// Move the calling process into a new mount namespace (and a new user namespace when the
/// `mode` asks for one) and make every mount in it private.
///
/// Must be called while the process is single-threaded: the kernel refuses `CLONE_NEWUSER`
/// otherwise (EINVAL). Create FUSE worker threads only afterwards.
pub fn enter(mode: UserNamespace) -> io::Result<Namespaces> {
    let outside_uid = rustix::process::geteuid().as_raw();
    let outside_gid = rustix::process::getegid().as_raw();
    let user_ns = match mode {
        UserNamespace::Auto => outside_uid != 0 || !has_sys_admin(),
        UserNamespace::Always => true,
        UserNamespace::Never => false,
    };
    if user_ns {
        sys::unshare_namespaces(UnshareFlags::NEWUSER | UnshareFlags::NEWNS).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSPC) => {
                    " (unprivileged user namespaces are disabled here: see the sysctls \
                     user.max_user_namespaces, kernel.unprivileged_userns_clone and \
                     kernel.apparmor_restrict_unprivileged_userns)"
                }
                _ => "",
            };
            annotate(e, &format!("unshare(CLONE_NEWUSER|CLONE_NEWNS){hint}"))
        })?;
        write_id_maps(outside_uid, outside_gid)?;
    } else {
        sys::unshare_namespaces(UnshareFlags::NEWNS)
            .map_err(|e| annotate(e, "unshare(CLONE_NEWNS)"))?;
    }
    make_private_recursive(Path::new("/"))?;
    Ok(Namespaces {
        user_ns,
        outside_uid,
        outside_gid,
    })
}

/// Whether the calling thread has CAP_SYS_ADMIN in its user namespace (root in a container
/// with the default capabilities has not: it gets a user namespace of its own, as any user).
pub fn has_sys_admin() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
    })
}

/// Map uid and gid 0 of the new user namespace to the caller's ids. `setgroups` must be
/// denied before an unprivileged process may write `gid_map` (user_namespaces(7)).
fn write_id_maps(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")
        .map_err(|e| annotate(e, "write /proc/self/setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n"))
        .map_err(|e| annotate(e, "write /proc/self/uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n"))
        .map_err(|e| annotate(e, "write /proc/self/gid_map"))?;
    Ok(())
}

/// `mount --make-rprivate PATH`.
pub fn make_private_recursive(path: &Path) -> io::Result<()> {
    mount_change(
        path,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| annotate(e.into(), &format!("make {} private", path.display())))
}

/// Prefix an error with the step that failed, keeping its kind.
pub(crate) fn annotate(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
