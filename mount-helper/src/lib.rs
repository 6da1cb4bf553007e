//! Namespace and mount plumbing for imafs, with no IMA knowledge.
//!
//! A daemon that serves a container's file systems uses it in this order:
//!
//! 1. [`Scratch::create`] a private directory for mount points, as the calling user;
//! 2. [`ns::enter`] a new mount namespace (and user namespace when unprivileged) while the
//!    process is still single-threaded (`CLONE_NEWUSER` demands it);
//! 3. [`bind_recursive`] the lower tree to a scratch directory *before* mounting anything
//!    over it, so the daemon reads the lower files through a copy of the mount tree that does
//!    not contain its own FUSE mounts (looking a path up through its own mount would
//!    deadlock the daemon);
//! 4. [`mount_fuse`] each FUSE file system, keeping the returned `/dev/fuse` descriptors;
//! 5. [`Container::spawn`] the container's child (still single-threaded);
//! 6. start the FUSE sessions on threads (`fuser::Session::from_fd`), then
//!    [`Container::start`] and [`Container::wait`] for CMD's exit status.
//!
//! [`exec`] does steps 1-6 without FUSE for a plain directory (the `mount-helper exec`
//! command, useful in CI and for checking a machine).
//!
//! OCI hooks: a `mount-helper oci-hook` mode (a `createRuntime` hook that reads the OCI state
//! on stdin, starts one daemon per container in the container's namespaces and mounts the
//! overlay and securityfs view into its rootfs) is planned as a separate module `oci` next to
//! [`container`]; it reuses [`ns`] and [`fuse`] and replaces [`container`]'s pivot/exec, which
//! the runtime does itself.
// Input from a container, a policy writer or a file never panics the daemon: no unwrap,
// expect or panic outside tests (errors are returned and logged with context).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// `unsafe` lives only in `sys`, which allows it (and requires a `// SAFETY:` comment on
// every block).
#![deny(unsafe_code)]

pub mod container;
pub mod fuse;
pub mod ns;
pub mod oci;
pub mod seccomp;
#[allow(unsafe_code)]
mod sys;

pub use container::{bind_recursive, remount_read_only, Bind, Container, ContainerSpec};
pub use fuse::{mount_fuse, FuseMount};
pub use ns::{Namespaces, UserNamespace};

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;

/// A private directory under the system's temporary directory holding mount points; removed
/// (with the empty directories made in it) on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    subdirs: Vec<PathBuf>,
}

impl Scratch {
    /// Create `<tmp>/<prefix>-<pid>-<n>` with mode 0700. Call before entering a user
    /// namespace so the directory belongs to the caller on the host.
    pub fn create(prefix: &str) -> io::Result<Scratch> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for n in 0..1000u32 {
            let path = base.join(format!("{prefix}-{pid}-{n}"));
            match rustix::fs::mkdir(&path, rustix::fs::Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    return Ok(Scratch {
                        path,
                        subdirs: Vec::new(),
                    })
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(ns::annotate(e.into(), &format!("mkdir {}", path.display()))),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free scratch directory name",
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create (mode 0755) and remember a subdirectory.
    pub fn subdir(&mut self, name: &str) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        rustix::fs::mkdir(&path, rustix::fs::Mode::from_raw_mode(0o755))
            .map_err(|e| ns::annotate(e.into(), &format!("mkdir {}", path.display())))?;
        self.subdirs.push(path.clone());
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for dir in self.subdirs.iter().rev() {
            // Lazily detach whatever is still mounted there (in our namespace only).
            let _ = rustix::mount::unmount(dir, UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// What [`exec`] runs.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// The directory that becomes `/`.
    pub root: PathBuf,
    /// A directory to show at `/sys/kernel/security`.
    pub securityfs: Option<PathBuf>,
    pub user_ns: UserNamespace,
    pub new_pid_ns: bool,
    pub command: Vec<OsString>,
}

/// Run `command` with `root` as `/` (bound, not measured) in new namespaces, with `/proc`,
/// `/dev`, `/sys` and optionally a securityfs directory; return its exit status.
pub fn exec(opts: &ExecOptions) -> io::Result<i32> {
    let root = std::fs::canonicalize(&opts.root)
        .map_err(|e| ns::annotate(e, &format!("{}", opts.root.display())))?;
    let securityfs = match &opts.securityfs {
        Some(dir) => Some(
            std::fs::canonicalize(dir)
                .map_err(|e| ns::annotate(e, &format!("{}", dir.display())))?,
        ),
        None => None,
    };
    let mut scratch = Scratch::create("mount-helper")?;
    let new_root = scratch.subdir("root")?;
    ns::enter(opts.user_ns)?;
    bind_recursive(&root, &new_root)?;
    let mut spec = ContainerSpec::new(&new_root, opts.command.clone());
    spec.securityfs = securityfs;
    spec.new_pid_ns = opts.new_pid_ns;
    let mut container = Container::spawn(&spec)?;
    let started = container.start();
    let status = container.wait()?;
    if let Err(e) = started {
        eprintln!("mount-helper: {e}");
    }
    drop(scratch);
    Ok(status)
}
