//! Starting the container's command: a child in its own copy of the mount namespace (so the
//! daemon keeps its view), with `/proc`, `/dev`, `/sys` and the securityfs view mounted in
//! the new root, `pivot_root` into it, and exec.
//!
//! Process layout (the daemon is the caller):
//!
//! ```text
//! daemon (user+mount ns, FUSE threads) ── fork before any thread ──▶ stage
//!     stage: waits for `start`, unshare(CLONE_NEWNS), unshare(CLONE_NEWPID), fork ──▶ init
//!     init (pid 1 of the new pid namespace): mounts, pivot_root, exec CMD
//! ```
//!
//! The fork happens while the daemon is still single-threaded, so the children may allocate
//! and use the standard library; they wait on a pipe until the daemon's FUSE sessions serve,
//! since every path under the new root is answered by the daemon.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::fs::StatVfsMountFlags;
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::process::{Pid, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, UnshareFlags};

use crate::ns::{annotate, make_private_recursive};
use crate::sys::{self, Forked};

/// Exit status when setting up the container failed (as `podman run` uses 125).
pub const EXIT_SETUP_FAILED: i32 = 125;
/// Exit status when CMD exists but cannot be executed (as a shell).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when CMD was not found (as a shell).
pub const EXIT_NOT_FOUND: i32 = 127;

/// An extra bind mount into the container.
#[derive(Clone, Debug)]
pub struct Bind {
    /// Path in the daemon's view.
    pub source: PathBuf,
    /// Absolute path inside the container (must exist in the new root).
    pub target: PathBuf,
    pub read_only: bool,
}

/// What the container looks like.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Directory that becomes `/`. It must be a mount point in the caller's mount namespace
    /// (the overlay's FUSE mount, or a bind mount; see [`crate::bind_recursive`]).
    pub root: PathBuf,
    /// Directory mounted at `/sys/kernel/security` (the securityfs view).
    pub securityfs: Option<PathBuf>,
    /// Directory mounted at `/sys/class/tpm` (a view of emulated TPM PCRs). Without a host
    /// TPM class directory, a tmpfs at `/sys/class` holds the host's classes bound back and
    /// the new `tpm`.
    pub sys_class_tpm: Option<PathBuf>,
    /// Mount a fresh `/proc` of a new pid namespace (CMD is its pid 1); when the kernel
    /// refuses, or when false, the daemon's `/proc` is bound instead.
    pub new_pid_ns: bool,
    /// Mount `/proc`, `/dev` and `/sys` (read-only bind).
    pub system_mounts: bool,
    /// Keep every capability and the host's whole `/dev` (`--privileged`). Otherwise the
    /// command gets what a container runtime gives by default: Podman's default capability
    /// set ([`DEFAULT_CAPABILITIES`]) and a private `/dev` ([`mount_private_dev`]).
    pub privileged: bool,
    /// Install the seccomp filter of [`crate::seccomp`] in the command's process just
    /// before it execs, and hand its listener to the daemon ([`Container::listener_socket`]).
    pub exec_listener: bool,
    pub binds: Vec<Bind>,
    /// CMD and its arguments (looked up in PATH inside the new root).
    pub command: Vec<OsString>,
    /// Working directory inside the container.
    pub workdir: PathBuf,
}

impl ContainerSpec {
    pub fn new(root: impl Into<PathBuf>, command: Vec<OsString>) -> ContainerSpec {
        ContainerSpec {
            root: root.into(),
            securityfs: None,
            sys_class_tpm: None,
            new_pid_ns: true,
            system_mounts: true,
            privileged: false,
            exec_listener: false,
            binds: Vec::new(),
            command,
            workdir: PathBuf::from("/"),
        }
    }
}

/// A forked container child waiting for [`Container::start`].
#[derive(Debug)]
pub struct Container {
    pid: Pid,
    go: Option<OwnedFd>,
    errors: Option<OwnedFd>,
    listener: Option<OwnedFd>,
}

impl Container {
    /// Fork the container's child. Call while the process is single-threaded (before FUSE
    /// worker threads exist); the child does nothing until [`Container::start`].
    pub fn spawn(spec: &ContainerSpec) -> io::Result<Container> {
        if spec.command.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
        }
        let (go_read, go_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (listener_daemon, listener_container) = if spec.exec_listener {
            let (a, b) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )?;
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        match sys::fork()? {
            Forked::Child => {
                drop(go_write);
                drop(err_read);
                drop(listener_daemon);
                stage(spec, go_read, err_write, listener_container)
            }
            Forked::Parent(pid) => Ok(Container {
                pid,
                go: Some(go_write),
                errors: Some(err_read),
                listener: listener_daemon,
            }),
        }
    }

    /// The socket on which the command's process sends its seccomp listener (or why it has
    /// none) just before it execs ([`crate::seccomp::receive_listener`]); read it on another
    /// thread than [`Container::start`]'s, since the exec waits for the listener's answer.
    pub fn listener_socket(&mut self) -> Option<OwnedFd> {
        self.listener.take()
    }

    /// Host-side pid of the child (the stage process, parent of the command's pid 1).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Let the child set up the container and exec CMD. Returns once CMD was executed, or
    /// the error of the step that failed (the child then exits with [`EXIT_SETUP_FAILED`],
    /// [`EXIT_CANNOT_EXECUTE`] or [`EXIT_NOT_FOUND`]; still call [`Container::wait`]).
    pub fn start(&mut self) -> io::Result<()> {
        if let Some(go) = self.go.take() {
            let mut go = std::fs::File::from(go);
            // The child may already be gone; its status tells why.
            let _ = go.write_all(b"1");
        }
        let Some(errors) = self.errors.take() else {
            return Ok(());
        };
        // The pipe closes on exec (CLOEXEC) or at the child's exit; a message means failure.
        let mut message = String::new();
        std::fs::File::from(errors).read_to_string(&mut message)?;
        if message.is_empty() {
            Ok(())
        } else {
            Err(io::Error::other(message))
        }
    }

    /// Wait for the child and return CMD's exit status (a signal `n` gives `128 + n`).
    pub fn wait(mut self) -> io::Result<i32> {
        // Never leave the child waiting for a start that will not come.
        drop(self.go.take());
        wait_status(self.pid)
    }

    /// Send a signal to the child (and so, when it is pid 1's parent, end the container:
    /// the stage forwards SIGKILL through PR_SET_PDEATHSIG).
    pub fn kill(&self, signal: Signal) -> io::Result<()> {
        rustix::process::kill_process(self.pid, signal).map_err(io::Error::from)
    }
}

/// Wait for `pid`; exit code, or 128 + signal number.
pub fn wait_status(pid: Pid) -> io::Result<i32> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The forked child: wait for the go, new mount (and pid) namespace, then become CMD.
fn stage(spec: &ContainerSpec, go: OwnedFd, errors: OwnedFd, listener: Option<OwnedFd>) -> ! {
    let keep = [
        go.as_raw_fd(),
        errors.as_raw_fd(),
        listener.as_ref().map_or(-1, |l| l.as_raw_fd()),
    ];
    let mut errors = std::fs::File::from(errors);
    if let Err(e) = sys::close_fds_except(&keep) {
        fail(
            &mut errors,
            EXIT_SETUP_FAILED,
            &annotate(e, "close descriptors"),
        );
    }
    // Die with the daemon rather than outlive its mounts.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    let mut byte = [0u8; 1];
    match std::fs::File::from(go).read(&mut byte) {
        Ok(1) => {}
        // The daemon gave up before starting us.
        _ => sys::exit_immediately(EXIT_SETUP_FAILED),
    }
    if let Err(e) = sys::unshare_namespaces(UnshareFlags::NEWNS)
        .map_err(|e| annotate(e, "unshare(CLONE_NEWNS)"))
        .and_then(|()| make_private_recursive(Path::new("/")))
    {
        fail(&mut errors, EXIT_SETUP_FAILED, &e);
    }
    let pid_ns = spec.new_pid_ns && sys::unshare_namespaces(UnshareFlags::NEWPID).is_ok();
    if pid_ns {
        match sys::fork() {
            Ok(Forked::Child) => {
                let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
                enter_and_exec(spec, true, errors, listener)
            }
            Ok(Forked::Parent(init)) => {
                drop(errors);
                drop(listener);
                sys::ignore_terminal_signals();
                match wait_status(init) {
                    Ok(code) => sys::exit_immediately(code),
                    Err(_) => sys::exit_immediately(EXIT_SETUP_FAILED),
                }
            }
            Err(e) => fail(&mut errors, EXIT_SETUP_FAILED, &annotate(e, "fork")),
        }
    }
    enter_and_exec(spec, false, errors, listener)
}

/// As pid 1 of the new pid namespace, fork CMD and reap until it exits, then exit with its
/// status (the kernel then ends the namespace's other processes). CMD is not pid 1 itself
/// because pid 1 does not get signals it has no handler for, so a Ctrl-C or `kill` would
/// not end a plain program; this init has no handlers either, so it outlives them while
/// CMD, in the terminal's foreground group, gets them. Returns the error pipe in the child,
/// which goes on to exec CMD.
fn be_init(mut errors: std::fs::File) -> std::fs::File {
    let command = match sys::fork() {
        Ok(Forked::Child) => {
            let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
            return errors;
        }
        Ok(Forked::Parent(pid)) => pid,
        Err(e) => fail(&mut errors, EXIT_SETUP_FAILED, &annotate(e, "fork")),
    };
    // The child reports exec failures; the daemon's read ends when it execs, so this copy
    // must not keep the pipe open.
    drop(errors);
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid == command => {
                let code = status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|n| 128 + n))
                    .unwrap_or(EXIT_SETUP_FAILED);
                sys::exit_immediately(code);
            }
            // An orphan reparented to us.
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => sys::exit_immediately(EXIT_SETUP_FAILED),
        }
    }
}

/// Report a setup error to the daemon and exit.
fn fail(errors: &mut std::fs::File, code: i32, err: &io::Error) -> ! {
    let _ = errors.write_all(err.to_string().as_bytes());
    sys::exit_immediately(code)
}

fn enter_and_exec(
    spec: &ContainerSpec,
    pid_ns: bool,
    mut errors: std::fs::File,
    listener: Option<OwnedFd>,
) -> ! {
    if let Err(e) = prepare_root(spec, pid_ns) {
        fail(&mut errors, EXIT_SETUP_FAILED, &e);
    }
    if pid_ns {
        errors = be_init(errors);
    }
    // The filter goes on last but for the capabilities (installing it needs CAP_SYS_ADMIN
    // in the user namespace, or no_new_privs, which would break setuid programs): from here
    // on, the command's every exec and executable mapping waits for the daemon's answer.
    if let Some(socket) = listener {
        // EBUSY (an outer listener) goes as it is: the daemon tells it from a failure.
        let installed = crate::seccomp::install().map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => e,
            _ => annotate(e, "installing the seccomp filter for exec mappings"),
        });
        if let Err(e) = crate::seccomp::send_listener(socket.as_fd(), &installed) {
            fail(
                &mut errors,
                EXIT_SETUP_FAILED,
                &annotate(e, "sending the seccomp listener"),
            );
        }
        // Only the daemon may hold it: a listener kept here would answer to nobody.
        drop(installed);
        drop(socket);
    }
    if !spec.privileged {
        if let Err(e) = drop_capabilities() {
            fail(&mut errors, EXIT_SETUP_FAILED, &e);
        }
    }
    let err = std::process::Command::new(&spec.command[0])
        .args(&spec.command[1..])
        .exec();
    let code = if err.kind() == io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    };
    let cmd = spec.command[0].to_string_lossy();
    fail(&mut errors, code, &annotate(err, &format!("exec {cmd}")))
}

/// Mount what a container needs inside `spec.root`, then make it `/`.
fn prepare_root(spec: &ContainerSpec, fresh_proc: bool) -> io::Result<()> {
    let root = &spec.root;
    if spec.system_mounts {
        mount_proc(&root.join("proc"), fresh_proc)?;
        if let Some(dev) = existing_dir(&root.join("dev")) {
            if spec.privileged {
                bind_recursive(Path::new("/dev"), &dev)?;
            } else {
                mount_private_dev(&dev)?;
            }
        }
        if let Some(sysdir) = existing_dir(&root.join("sys")) {
            bind_recursive(Path::new("/sys"), &sysdir)?;
            remount_read_only(&sysdir)?;
        }
    }
    if let Some(securityfs) = &spec.securityfs {
        mount_securityfs(root, securityfs)?;
    }
    if let Some(tpm) = &spec.sys_class_tpm {
        mount_sys_class_tpm(root, tpm)?;
    }
    for bind in &spec.binds {
        let target = root.join(bind.target.strip_prefix("/").unwrap_or(&bind.target));
        bind_recursive(&bind.source, &target)?;
        if bind.read_only {
            remount_read_only(&target)?;
        }
    }
    enter_root(root)?;
    enter_workdir(&spec.workdir)
}

/// Start in `workdir`; when the container's user cannot enter it (a checkout under a 0700
/// home, whose owner is not mapped into the user namespace), start in its nearest ancestor
/// that can be entered (at worst `/`) with one warning, as a user expects, instead of failing.
fn enter_workdir(workdir: &Path) -> io::Result<()> {
    let Err(first) = std::env::set_current_dir(workdir) else {
        return Ok(());
    };
    for dir in workdir.ancestors().skip(1) {
        if std::env::set_current_dir(dir).is_ok() {
            log::warn!(
                "cannot enter {} ({first}); starting in {}",
                workdir.display(),
                dir.display()
            );
            return Ok(());
        }
    }
    Err(annotate(first, &format!("chdir {}", workdir.display())))
}

/// A fresh proc of the new pid namespace, or the daemon's when that is refused.
fn mount_proc(target: &Path, fresh: bool) -> io::Result<()> {
    let Some(target) = existing_dir(target) else {
        return Ok(());
    };
    if fresh {
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        match rustix::mount::mount("proc", &target, "proc", flags, None) {
            Ok(()) => return Ok(()),
            Err(e) => log::warn!("mounting a fresh /proc failed ({e}); binding the host's"),
        }
    }
    bind_recursive(Path::new("/proc"), &target)
}

/// The securityfs view at `<root>/sys/kernel/security`. When the directory does not exist
/// (no `/sys` bind, or a kernel without securityfs) a tmpfs at `<root>/sys/kernel` provides it.
fn mount_securityfs(root: &Path, source: &Path) -> io::Result<()> {
    let target = root.join("sys/kernel/security");
    if !target.is_dir() {
        let kernel = root.join("sys/kernel");
        if !kernel.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist in the new root", kernel.display()),
            ));
        }
        rustix::mount::mount(
            "tmpfs",
            &kernel,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"mode=755",
        )
        .map_err(|e| annotate(e.into(), &format!("mount tmpfs on {}", kernel.display())))?;
        std::fs::create_dir(&target)
            .map_err(|e| annotate(e, &format!("mkdir {}", target.display())))?;
    }
    bind_recursive(source, &target)
}

/// `source` at `<root>/sys/class/tpm`, over the host's TPM class directory when there is one,
/// else in a tmpfs at `<root>/sys/class` to which every host class is bound back.
fn mount_sys_class_tpm(root: &Path, source: &Path) -> io::Result<()> {
    let class = root.join("sys/class");
    let target = class.join("tpm");
    if !target.is_dir() {
        if !class.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist in the new root", class.display()),
            ));
        }
        let host_classes: Vec<std::ffi::OsString> = std::fs::read_dir(&class)
            .map_err(|e| annotate(e, &format!("read {}", class.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        rustix::mount::mount(
            "tmpfs",
            &class,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"mode=755",
        )
        .map_err(|e| annotate(e.into(), &format!("mount tmpfs on {}", class.display())))?;
        for name in host_classes {
            let dir = class.join(&name);
            std::fs::create_dir(&dir)
                .map_err(|e| annotate(e, &format!("mkdir {}", dir.display())))?;
            // The daemon's view of /sys is still reachable before pivot_root.
            bind_recursive(&Path::new("/sys/class").join(&name), &dir)?;
        }
        std::fs::create_dir(&target)
            .map_err(|e| annotate(e, &format!("mkdir {}", target.display())))?;
    }
    bind_recursive(source, &target)
}

/// `mount --rbind SOURCE TARGET`.
pub fn bind_recursive(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind_recursive(source, target).map_err(|e| {
        annotate(
            e.into(),
            &format!("bind {} on {}", source.display(), target.display()),
        )
    })
}

/// Make the bind mount at `target` read-only, keeping the flags it has (inside a user
/// namespace the kernel refuses a remount that would clear a locked nosuid/nodev/noexec).
pub fn remount_read_only(target: &Path) -> io::Result<()> {
    let current = rustix::fs::statvfs(target)
        .map_err(|e| annotate(e.into(), &format!("statvfs {}", target.display())))?
        .f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (have, keep) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if current.contains(have) {
            flags |= keep;
        }
    }
    rustix::mount::mount_remount(target, flags, "")
        .map_err(|e| annotate(e.into(), &format!("remount {} read-only", target.display())))
}

/// `pivot_root` into `root` without a put-old directory: stack the old root on the new one,
/// then detach it (what runc does), so no path of the daemon's view stays reachable.
fn enter_root(root: &Path) -> io::Result<()> {
    std::env::set_current_dir(root)
        .map_err(|e| annotate(e, &format!("chdir {}", root.display())))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| annotate(e.into(), &format!("pivot_root {}", root.display())))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| annotate(e.into(), "detach the old root"))?;
    std::env::set_current_dir("/").map_err(|e| annotate(e, "chdir /"))
}

fn existing_dir(path: &Path) -> Option<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Some(path.to_path_buf()),
        _ => {
            log::warn!(
                "{} is not a directory in the new root; not mounted",
                path.display()
            );
            None
        }
    }
}

/// Podman's default capability set (containers.conf `default_capabilities`): what a root
/// command keeps unless the container is privileged.
pub const DEFAULT_CAPABILITIES: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SYS_CHROOT);

/// Keep only [`DEFAULT_CAPABILITIES`]: out of the bounding set (so no exec gets them back),
/// the permitted, effective and inheritable sets, and the ambient set emptied.
fn drop_capabilities() -> io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    let keep = DEFAULT_CAPABILITIES;
    for cap in 0..=last.min(63) {
        let cap = CapabilitySet::from_bits_retain(1u64 << cap);
        if keep.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => {
                return Err(annotate(
                    e.into(),
                    "drop a capability from the bounding set",
                ))
            }
        }
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    let mut sets =
        rustix::thread::capabilities(None).map_err(|e| annotate(e.into(), "read capabilities"))?;
    sets.effective &= keep;
    sets.permitted &= keep;
    sets.inheritable &= keep;
    rustix::thread::set_capabilities(None, sets).map_err(|e| annotate(e.into(), "set capabilities"))
}

/// A container's own `/dev`, as runc makes it: a tmpfs with the host's `null`, `zero`,
/// `full`, `random`, `urandom` and `tty` bound in (binds, so it works in a user namespace
/// too), `fuse` when the host has it (so nested imafs runs work), a new `devpts` instance
/// with `ptmx`, its own `shm` tmpfs, and the usual symlinks. No disk, no host `/dev/shm`.
pub fn mount_private_dev(dev: &Path) -> io::Result<()> {
    let at = |name: &str| dev.join(name);
    rustix::mount::mount(
        "tmpfs",
        dev,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"mode=755,size=65536k",
    )
    .map_err(|e| annotate(e.into(), &format!("mount tmpfs on {}", dev.display())))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty", "fuse"] {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = at(name);
        std::fs::File::create(&node)
            .map_err(|e| annotate(e, &format!("create {}", node.display())))?;
        rustix::mount::mount_bind(&host, &node).map_err(|e| {
            annotate(
                e.into(),
                &format!("bind {} on {}", host.display(), node.display()),
            )
        })?;
    }
    let pts = at("pts");
    std::fs::create_dir(&pts).map_err(|e| annotate(e, &format!("mkdir {}", pts.display())))?;
    match rustix::mount::mount(
        "devpts",
        &pts,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"newinstance,ptmxmode=0666,mode=0620",
    ) {
        Ok(()) => std::os::unix::fs::symlink("pts/ptmx", at("ptmx"))
            .map_err(|e| annotate(e, "symlink /dev/ptmx"))?,
        Err(e) => log::warn!("no devpts in the container's /dev: {e}"),
    }
    std::fs::create_dir(at("shm")).map_err(|e| annotate(e, "mkdir /dev/shm"))?;
    rustix::mount::mount(
        "shm",
        at("shm"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"mode=1777,size=65536k",
    )
    .map_err(|e| annotate(e.into(), "mount /dev/shm"))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        std::os::unix::fs::symlink(target, at(link))
            .map_err(|e| annotate(e, &format!("symlink /dev/{link}")))?;
    }
    Ok(())
}
