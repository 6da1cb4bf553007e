//! `imafs run [--rootfs DIR] [ENGINE OPTIONS] -- CMD...`: CMD in new namespaces with the
//! measuring overlay of DIR as `/` and the securityfs view at `/sys/kernel/security`.
//!
//! Order of work (see `mount_helper` for why): scratch directories as the calling user;
//! user + mount namespace while single-threaded; a recursive bind of the rootfs that the
//! daemon reads the lower files through (it cannot see the daemon's own mounts); the two
//! FUSE mounts; fork the container's child; start the FUSE sessions; let the child pivot
//! into the overlay and exec CMD; wait; unmount.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use mount_helper::{Container, ContainerSpec, FuseMount, Scratch, UserNamespace};

use std::process::ExitCode;

use crate::engine::ima::Ima;
use crate::fs::ima_hooks::ImaHooks;
use crate::fs::mappings::{self, Coverage, Watch};
use crate::fs::nest::{NestHost, ParentLink};
use crate::fs::overlay::{MountedOverlay, Overlay, OverlayOptions};
use crate::fs::securityfs::{SecurityFs, SecurityFsOptions};
use crate::fs::tpm_sysfs::TpmSysfs;

use super::overlay_mount::OverlayTuning;

pub use super::engine_args::{load_policy, EngineArgs as EngineOptions};

/// The kernel-side paths the daemon serves, for the file systems' constructors.
pub struct Mounts {
    /// The lower tree as the daemon reads it (a private recursive bind of `--rootfs`).
    pub lower: PathBuf,
    /// `/dev/fuse` of the overlay mount, ready for `fuser::Session::from_fd`.
    pub overlay_fd: OwnedFd,
    /// `/dev/fuse` of the securityfs view mount, when [`RunOptions::securityfs`] asks for it.
    pub securityfs_fd: Option<OwnedFd>,
    /// `/dev/fuse` of the TPM sysfs view mount, when [`RunOptions::tpm_view`] asks for it.
    pub tpm_fd: Option<OwnedFd>,
    /// Whether the daemon runs in a new user namespace (no FUSE passthrough then).
    pub user_ns: bool,
    /// The overlay's mount point in the daemon's view.
    pub overlay_root: PathBuf,
    /// The directory the overlay shows (`--rootfs`, canonical).
    pub rootfs: PathBuf,
    /// The socket on which the container hands over its seccomp listener
    /// ([`RunOptions::exec_listener`]), served by [`crate::fs::mappings`].
    pub listener: Option<OwnedFd>,
}

/// Something that keeps the FUSE sessions served until dropped (after the unmounts).
pub type Daemons = Box<dyn std::any::Any>;

/// How to set the container up.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub rootfs: PathBuf,
    pub command: Vec<OsString>,
    pub user_ns: UserNamespace,
    pub new_pid_ns: bool,
    /// Mount the securityfs view at `/sys/kernel/security`.
    pub securityfs: bool,
    /// Mount the emulated TPM's PCRs at `/sys/class/tpm` (`tpm0/pcr-<alg>/<n>`,
    /// `tpm0/device/pcrs`), where tools such as `evmctl` read PCRs.
    pub tpm_view: bool,
    /// Keep every capability and the host's `/dev` (see [`ContainerSpec::privileged`]).
    pub privileged: bool,
    /// Send the container's executable mappings and execs to the daemon (seccomp user
    /// notification, [`crate::fs::mappings`]).
    pub exec_listener: bool,
}

impl RunOptions {
    /// A container running `command` over `rootfs` with the defaults of `imafs run`.
    pub fn new(rootfs: PathBuf, command: Vec<OsString>) -> RunOptions {
        RunOptions {
            rootfs,
            command,
            user_ns: UserNamespace::Auto,
            new_pid_ns: true,
            securityfs: true,
            tpm_view: false,
            privileged: false,
            exec_listener: true,
        }
    }
}

/// Run `opts.command` in the container; `start` turns the mounts' descriptors into served
/// sessions (it runs after the fork, so it may spawn threads). Returns CMD's exit status.
pub fn run_container(
    opts: &RunOptions,
    start: impl FnOnce(Mounts) -> io::Result<Daemons>,
) -> io::Result<i32> {
    let rootfs = std::fs::canonicalize(&opts.rootfs)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", opts.rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let mut scratch = Scratch::create("imafs")?;
    let lower = scratch.subdir("lower")?;
    let root = scratch.subdir("root")?;
    let securityfs = scratch.subdir("securityfs")?;
    let tpm = scratch.subdir("tpm")?;
    let namespaces = mount_helper::ns::enter(opts.user_ns)?;
    // Taken before the FUSE mounts exist, so the copy does not contain them.
    mount_helper::bind_recursive(&rootfs, &lower)?;
    let overlay_fd = mount_helper::mount_fuse(&root, &FuseMount::new("imafs", "imafs"))?;
    let mut spec = ContainerSpec::new(&root, opts.command.clone());
    spec.new_pid_ns = opts.new_pid_ns;
    spec.privileged = opts.privileged;
    spec.exec_listener = opts.exec_listener;
    // Start where the caller is when that is inside the rootfs (`imafs run -- make test`
    // in a checkout), else at `/`.
    if let Some(rel) = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.strip_prefix(&rootfs).ok().map(Path::to_path_buf))
    {
        spec.workdir = Path::new("/").join(rel);
    }
    let securityfs_fd = if opts.securityfs {
        let fd = mount_helper::mount_fuse(
            &securityfs,
            &FuseMount::new("securityfs", "imafs-securityfs"),
        )?;
        spec.securityfs = Some(securityfs.clone());
        Some(fd)
    } else {
        None
    };
    let tpm_fd = if opts.tpm_view {
        let mut options = FuseMount::new("tpm", "imafs-tpm");
        options.read_only = true;
        let fd = mount_helper::mount_fuse(&tpm, &options)?;
        spec.sys_class_tpm = Some(tpm.clone());
        Some(fd)
    } else {
        None
    };
    let status = serve_and_wait(&spec, |listener| {
        start(Mounts {
            lower: lower.clone(),
            overlay_fd,
            securityfs_fd,
            tpm_fd,
            user_ns: namespaces.user_ns,
            overlay_root: root.clone(),
            rootfs: rootfs.clone(),
            listener,
        })
    });
    for dir in [&root, &securityfs, &tpm, &lower] {
        detach(dir);
    }
    drop(scratch);
    status
}

/// Fork the container (still single-threaded), start the daemons, let the container run,
/// and wait; the FUSE mounts are detached before the daemons are dropped so their session
/// threads end. SIGTERM and SIGHUP to the daemon end the container (the daemon
/// must outlive it: every path of the container is served by it) and give 128 + n; SIGINT is left to the container.
fn serve_and_wait(
    spec: &ContainerSpec,
    start: impl FnOnce(Option<OwnedFd>) -> io::Result<Daemons>,
) -> io::Result<i32> {
    let mut container = Container::spawn(spec)?;
    let listener = container.listener_socket();
    let daemons = match start(listener) {
        Ok(daemons) => daemons,
        Err(e) => {
            // The child gives up when its start pipe closes.
            let _ = container.wait();
            return Err(e);
        }
    };
    let stop = forward_stop_signals(container.pid());
    let started = container.start();
    let status = container.wait();
    if let Err(e) = started {
        eprintln!("imafs run: {e}");
    }
    detach(&spec.root);
    for view in [&spec.securityfs, &spec.sys_class_tpm]
        .into_iter()
        .flatten()
    {
        detach(view);
    }
    drop(daemons);
    let signal = stop.map(|(handle, received)| {
        handle.close();
        received.load(Ordering::SeqCst)
    });
    match signal {
        Some(n) if n > 0 => Ok(128 + n),
        _ => status,
    }
}

/// On SIGTERM or SIGHUP, kill the container's stage process (its pid 1 follows through
/// PR_SET_PDEATHSIG) and remember the signal. SIGINT is ignored, as `unshare --fork` does:
/// the terminal delivers it to the container's processes too, and an interactive shell in
/// the container must survive it.
fn forward_stop_signals(
    stage: rustix::process::Pid,
) -> Option<(signal_hook::iterator::Handle, Arc<AtomicI32>)> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
    let handle = signals.handle();
    let received = Arc::new(AtomicI32::new(0));
    let seen = received.clone();
    std::thread::Builder::new()
        .name("imafs-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().find(|&sig| sig != SIGINT) {
                seen.store(sig, Ordering::SeqCst);
                let _ = rustix::process::kill_process(stage, rustix::process::Signal::KILL);
            }
        })
        .ok()?;
    Some((handle, received))
}

/// Lazily unmount whatever is mounted on `dir` in the daemon's namespace.
fn detach(dir: &Path) {
    let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
}

/// `imafs run` arguments.
#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Lower tree shown as the container's `/`. Without root, files of it that are not the
    /// caller's are read-only inside (the kernel refuses writes to inodes whose owner is not
    /// mapped in the user namespace).
    #[arg(long, default_value = "/")]
    pub rootfs: PathBuf,
    #[command(flatten)]
    pub engine: EngineOptions,
    /// Create a user namespace: auto (only when not root), always, never.
    #[arg(long, value_enum, default_value_t = UserNs::Auto)]
    pub userns: UserNs,
    /// Keep the host's pid namespace (and bind its /proc) instead of a new one.
    #[arg(long)]
    pub no_pid_ns: bool,
    /// Give the container every capability and the host's whole `/dev`, instead of
    /// Podman's default capabilities and a private `/dev`. Outside the guarantee: such a
    /// container can mount file systems and reach devices imafs does not see.
    #[arg(long)]
    pub privileged: bool,
    /// Do not send the container's executable mappings and execs to the daemon (no seccomp
    /// filter): libraries mapped by non-root tasks and programs run from outside the
    /// overlay are then not measured (README "What is measured").
    #[arg(long)]
    pub no_exec_watch: bool,
    #[command(flatten)]
    pub tuning: OverlayTuning,
    /// The command and its arguments.
    #[arg(required = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum UserNs {
    Auto,
    Always,
    Never,
}

impl From<UserNs> for UserNamespace {
    fn from(u: UserNs) -> UserNamespace {
        match u {
            UserNs::Auto => UserNamespace::Auto,
            UserNs::Always => UserNamespace::Always,
            UserNs::Never => UserNamespace::Never,
        }
    }
}

/// `imafs run`.
pub fn main(mut args: RunArgs) -> ExitCode {
    let parent = match args.engine.join_parent() {
        Ok(parent) => parent,
        Err(e) => {
            eprintln!("imafs run: {e}");
            return ExitCode::from(mount_helper::container::EXIT_SETUP_FAILED as u8);
        }
    };
    let ima = match args.engine.build() {
        Ok(ima) => Arc::new(ima),
        Err(e) => {
            eprintln!("imafs run: {e}");
            return ExitCode::from(mount_helper::container::EXIT_SETUP_FAILED as u8);
        }
    };
    let opts = RunOptions {
        user_ns: args.userns.into(),
        new_pid_ns: !args.no_pid_ns,
        tpm_view: !ima.config().banks.is_empty(),
        privileged: args.privileged,
        exec_listener: !args.no_exec_watch,
        ..RunOptions::new(args.rootfs, args.command)
    };
    // A daemon in a user namespace cannot write `security.*` on the host's files.
    let ima_xattr = match (&args.engine.ima_xattr, args.userns) {
        (None, UserNs::Always) => "user.ima".to_owned(),
        _ => args.engine.ima_xattr_name(),
    };
    match run_container(&opts, move |mounts| {
        start_namespace(ima, mounts, ima_xattr, parent, args.tuning)
    }) {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("imafs run: {e}");
            ExitCode::from(mount_helper::container::EXIT_SETUP_FAILED as u8)
        }
    }
}

/// Serve the overlay (measuring through [`ImaHooks`]) and the securityfs view of `ima` on
/// the mounts' descriptors. Runs after the container's fork: it may spawn threads.
pub fn start_filesystems(ima: Arc<Ima>, mounts: Mounts) -> io::Result<Daemons> {
    let ima_xattr = OverlayOptions::default().ima_xattr;
    start_filesystems_with(ima, mounts, ima_xattr)
}

/// [`start_filesystems`] with the lower xattr that stores the container's `security.ima`.
pub fn start_filesystems_with(
    ima: Arc<Ima>,
    mounts: Mounts,
    ima_xattr: String,
) -> io::Result<Daemons> {
    start_namespace(ima, mounts, ima_xattr, None, OverlayTuning::default())
}

/// [`start_filesystems_with`] for a namespace that is the child of `parent` (a nested
/// daemon, see [`crate::fs::nest`]); its securityfs view hosts children of its own.
pub fn start_namespace(
    ima: Arc<Ima>,
    mounts: Mounts,
    ima_xattr: String,
    parent: Option<Arc<ParentLink>>,
    tuning: OverlayTuning,
) -> io::Result<Daemons> {
    let mut hooks = ImaHooks::new(ima.clone()).with_ima_xattr(&ima_xattr);
    if let Some(parent) = &parent {
        if mounts.user_ns {
            parent.entered_user_ns();
        }
        hooks = hooks.with_parent(parent.clone());
    }
    let hooks = Arc::new(hooks.with_lower_root(&mounts.lower));
    let options = OverlayOptions {
        ima_xattr,
        hooks: hooks.clone(),
        ..tuning.apply(OverlayOptions::default())
    };
    let overlay = Overlay::new(&mounts.lower, options)?.spawn_fd(mounts.overlay_fd)?;
    if let Some(parent) = &parent {
        // Served now: the stat is answered by the session just started.
        match std::fs::metadata(&mounts.overlay_root) {
            Ok(meta) => {
                parent.announce_overlay(std::os::unix::fs::MetadataExt::dev(&meta), &mounts.rootfs)
            }
            Err(e) => log::warn!("stat {}: {e}", mounts.overlay_root.display()),
        }
    }
    let nest = Arc::new(NestHost::new(hooks.clone(), Some(overlay.status().clone())));
    let coverage = Coverage::default();
    let watch = Watch {
        hooks: hooks.clone(),
        overlay: overlay.status().clone(),
        overlay_root: mounts.overlay_root.clone(),
        nest: Some(nest.clone()),
        passed_down: parent.is_some(),
        coverage: coverage.clone(),
    };
    match mounts.listener {
        Some(socket) => mappings::serve(socket, watch.clone())?,
        None => coverage.off("no seccomp filter (imafs run --no-exec-watch)"),
    }
    // Under an outer listener, the parent passes this namespace's mappings down.
    if let Some(parent) = &parent {
        let link = parent.clone();
        parent.follow_events(move |ev| mappings::on_parent_event(&watch, &link, ev))?;
    }
    let securityfs = match mounts.securityfs_fd {
        Some(fd) => Some(
            SecurityFs::with_nest(ima.clone(), SecurityFsOptions::default(), Some(nest))
                .with_exec_watch(coverage)
                .spawn_fd(fd)?,
        ),
        None => None,
    };
    let tpm = match mounts.tpm_fd {
        Some(fd) => Some(TpmSysfs::new(ima).spawn_fd(fd)?),
        None => None,
    };
    Ok(Box::new(Served {
        overlay: Some(overlay),
        securityfs,
        tpm,
    }))
}

/// The running sessions; dropping waits for them to end (after the unmounts).
struct Served {
    overlay: Option<MountedOverlay>,
    securityfs: Option<fuser::BackgroundSession>,
    tpm: Option<fuser::BackgroundSession>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(overlay) = self.overlay.take() {
            if let Err(e) = overlay.join() {
                log::warn!("overlay session: {e}");
            }
        }
        if let Some(securityfs) = self.securityfs.take() {
            if let Err(e) = securityfs.join() {
                log::warn!("securityfs session: {e}");
            }
        }
        if let Some(tpm) = self.tpm.take() {
            if let Err(e) = tpm.join() {
                log::warn!("TPM view session: {e}");
            }
        }
    }
}
