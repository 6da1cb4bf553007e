//! The hooks FUSE never sees, from the container's seccomp notifications
//! (`mount_helper::seccomp`): executable mappings (security/integrity/ima/ima_main.c:
//! `ima_file_mmap`, `ima_file_mprotect`) and execs of files that are not on the overlay
//! (`ima_bprm_check`, with `do_open_execat`'s FILE_CHECK).
//!
//! For each call the daemon takes the task's descriptor (`pidfd_getfd`) or resolves the
//! path in the task's root, checks the call is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`),
//! runs the engine with the task's credentials, and lets the call go on or fails it with the
//! kernel's errno: EACCES for a refused mapping or exec (`process_measurement`), EPERM for a
//! refused mprotect (`ima_file_mprotect`). A file of the overlay is identified by its node,
//! as the overlay's opens are, so a library the loader opened and mapped is one file to IMA.
//!
//! Differences FUSE and seccomp force (README "What is measured"): the answer comes before
//! the kernel maps, so a refused program mapping fails the exec (EACCES) rather than killing
//! the process after the point of no return; the path of an exec is read from the task's
//! memory, so a multi-threaded task that rewrites it between the check and the kernel's
//! lookup can run another file than the one checked (a file of the overlay is measured at
//! its open anyway); after `personality(READ_IMPLIES_EXEC)` the kernel makes PROT_READ
//! mappings executable with no call the filter sees (setting it is logged and counted).
//!
//! Nested namespaces run under the outermost listener (one per task): it records their
//! mappings too and passes each down to them ([`on_parent_event`], `crate::fs::nest`).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mount_helper::seccomp::{Call, Descriptor, Listener, NoListener, Notification, Task, AT_FDCWD};
use parking_lot::Mutex;

use crate::engine::Errno;
use crate::fs::caller::LazyCaller;
use crate::fs::ima_hooks::{ImaHooks, Mapping};
use crate::fs::nest::{MapEvent, NestHost, ParentLink};
use crate::fs::overlay::OverlayStatus;

/// Threads receiving and answering notifications: one hash of a large file must not hold up
/// every other exec of the container.
const WORKERS: usize = 2;

/// What a container's exec mappings are to its daemon: `imafs status` and the log say it.
#[derive(Clone, Debug, Default)]
pub struct Coverage(Arc<Mutex<Option<Result<(), String>>>>, Arc<AtomicU64>);

impl Coverage {
    /// `None` while the container has not started; then measured, or why not.
    pub fn get(&self) -> Option<Result<(), String>> {
        self.0.lock().clone()
    }

    /// How many calls reached the listener but could not be checked (a task the daemon may
    /// not inspect); each is in the log.
    pub fn missed(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    fn miss(&self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }

    /// The container was started without a listener: why.
    pub fn off(&self, reason: &str) {
        self.set(Err(reason.to_owned()));
    }

    fn set(&self, state: Result<(), String>) {
        *self.0.lock() = Some(state);
    }
}

/// What answering a container's calls needs of its namespace.
#[derive(Clone)]
pub struct Watch {
    pub hooks: Arc<ImaHooks>,
    pub overlay: OverlayStatus,
    /// The overlay's mount point in the daemon's view (its device number identifies the
    /// overlay's files).
    pub overlay_root: PathBuf,
    /// Nested namespaces, to pass their containers' mappings down to.
    pub nest: Option<Arc<NestHost>>,
    /// This namespace is a nested one whose parent passes its mappings down.
    pub passed_down: bool,
    pub coverage: Coverage,
}

/// Serves one container's listener.
struct Server {
    listener: Listener,
    watch: Watch,
    /// The overlay's device number as the daemon sees its files.
    overlay_dev: u64,
}

/// Receive the container's listener on `socket` and answer its notifications until the
/// container's last task has exited, on threads of their own.
pub fn serve(socket: OwnedFd, watch: Watch) -> io::Result<()> {
    std::thread::Builder::new()
        .name("imafs-seccomp".into())
        .spawn(move || {
            let received = mount_helper::seccomp::receive_listener(socket.as_fd());
            drop(socket);
            let coverage = watch.coverage.clone();
            match received {
                Ok(listener) => run(listener, watch),
                Err(NoListener::Outer) if watch.passed_down => {
                    log::info!(
                        "seccomp: exec mappings are answered by the outermost namespace's \
                         listener, which passes them down here"
                    );
                    coverage.set(Ok(()));
                }
                Err(NoListener::Outer) => {
                    log::warn!(
                        "seccomp: exec mappings and execs outside the overlay reach an outer \
                         listener, not this namespace"
                    );
                    coverage.set(Err(NoListener::Outer.to_string()));
                }
                Err(NoListener::Failed(reason)) => {
                    log::warn!(
                        "exec mappings and execs outside the overlay are NOT measured in this \
                         container: {reason}"
                    );
                    coverage.set(Err(reason));
                }
            }
        })?;
    Ok(())
}

/// [`serve`] for a container that a runtime makes (runc's `linux.seccomp.listenerPath`):
/// listen on the Unix socket `path` (made now, mode 0600) for the runtime's hand-over.
pub fn serve_runtime(path: &Path, watch: Watch) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let socket = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("imafs-seccomp".into())
        .spawn(move || {
            // One container per daemon; a runtime that restarts it connects again.
            for conn in socket.incoming() {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(e) => {
                        log::warn!("seccomp: accept: {e}");
                        continue;
                    }
                };
                match mount_helper::seccomp::receive_runtime_listener(conn.as_fd()) {
                    Ok((listener, _state)) => {
                        let watch = watch.clone();
                        let spawned = std::thread::Builder::new()
                            .name("imafs-seccomp".into())
                            .spawn(move || run(listener, watch));
                        if let Err(e) = spawned {
                            log::warn!("seccomp: thread: {e}");
                        }
                    }
                    Err(e) => {
                        log::warn!("exec mappings are NOT measured in this container: {e}");
                        watch.coverage.set(Err(e.to_string()));
                    }
                }
            }
        })?;
    Ok(())
}

/// Answer `listener`'s notifications until the container's last task has exited.
fn run(listener: Listener, watch: Watch) {
    let overlay_dev = match std::fs::metadata(&watch.overlay_root) {
        Ok(meta) => meta.dev(),
        Err(e) => {
            log::warn!("stat {}: {e}", watch.overlay_root.display());
            u64::MAX
        }
    };
    watch.coverage.set(Ok(()));
    log::info!("seccomp: exec mappings and execs are measured");
    let server = Arc::new(Server {
        listener,
        watch,
        overlay_dev,
    });
    server.run();
}

impl Server {
    /// Receivers that answer what they receive themselves (no hand-over between threads:
    /// each costs a context switch per call): this thread and `WORKERS - 1` more, until the
    /// container's last task has exited (older kernels leave them waiting: the daemon ends
    /// with its container anyway).
    fn run(self: Arc<Self>) {
        for n in 1..WORKERS {
            let server = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("imafs-seccomp-{n}"))
                .spawn(move || server.receive_and_answer());
            if let Err(e) = spawned {
                log::warn!("seccomp: receiver thread: {e}");
            }
        }
        self.receive_and_answer();
        log::debug!("seccomp: the container's last task exited");
    }

    fn receive_and_answer(&self) {
        loop {
            match self.listener.receive() {
                Ok(Some(notification)) => self.answer(notification),
                Ok(None) => return,
                Err(e) => {
                    log::warn!("seccomp: listener: {e}; exec mappings are no longer measured");
                    return;
                }
            }
        }
    }

    fn answer(&self, n: Notification) {
        log::debug!("seccomp: pid {}: {:?}", n.pid, n.call);
        let verdict = match n.call {
            Call::Mmap { fd, .. } => self.mmap(&n, fd),
            Call::Mprotect { addr, len, .. } => self.mprotect(&n, addr, len),
            Call::Exec { dirfd, path, flags } => self.exec(&n, dirfd, path, flags),
            Call::ReadImpliesExec { persona } => {
                // 0xffffffff only queries the persona.
                if persona != u32::MAX {
                    self.watch.coverage.miss();
                    log::warn!(
                        "seccomp: pid {} sets READ_IMPLIES_EXEC (personality {persona:#x}): \
                         its PROT_READ file mappings become executable without a call the \
                         filter sees; they are not measured",
                        n.pid
                    );
                }
                Ok(())
            }
            Call::Other => Ok(()),
        };
        log::debug!("seccomp: pid {}: {verdict:?}", n.pid);
        let sent = match verdict {
            Ok(()) => self.listener.allow(n.id),
            Err(errno) => self.listener.refuse(n.id, errno.0),
        };
        if let Err(e) = sent {
            log::warn!("seccomp: answering pid {}: {e}", n.pid);
        }
    }

    /// The task's descriptor `fd`, once the call is known still to be pending; `None` when
    /// the task or descriptor is gone (the kernel fails or ends the call itself).
    fn task_file(&self, n: &Notification, task: &Task, fd: i32) -> Option<TaskFile> {
        let (file, readable) = match task.descriptor(fd) {
            Ok(Descriptor::Copy(file)) => (File::from(file), true),
            Ok(Descriptor::Path(file)) => (File::from(file), false),
            Err(e) => {
                if e.raw_os_error() != Some(libc::EBADF) && e.raw_os_error() != Some(libc::ESRCH) {
                    self.watch.coverage.miss();
                    log::warn!(
                        "seccomp: cannot take descriptor {fd} of pid {}: {e}; its mapping is \
                         not measured (a daemon inside a container needs CAP_SYS_PTRACE for \
                         tasks that changed ids)",
                        n.pid
                    );
                }
                return None;
            }
        };
        let for_write = if readable {
            rustix::fs::fcntl_getfl(&file).ok()
        } else {
            fdinfo_flags(n.pid, fd)
        }
        .is_some_and(|f| f.intersects(rustix::fs::OFlags::RDWR | rustix::fs::OFlags::WRONLY));
        let dev = device_of(n.pid, &file);
        self.listener.still_waiting(n.id).then_some(TaskFile {
            file,
            dev,
            readable,
            for_write,
        })
    }

    fn caller(n: &Notification) -> LazyCaller {
        LazyCaller::new(n.pid, OVERFLOW_ID, OVERFLOW_ID)
    }

    /// `ima_file_mmap` with PROT_EXEC requested (the filter sends no other mapping).
    fn mmap(&self, n: &Notification, fd: i32) -> Result<(), Errno> {
        let task = Task::new(n.pid);
        let Some(file) = self.task_file(n, &task, fd) else {
            return Ok(());
        };
        let caller = Self::caller(n);
        self.on_file(n, &file, |target, path, mapped_as| {
            let m = Mapping {
                pid: n.pid,
                caller: &caller,
                path,
                opened_for_write: file.for_write,
                mapped_as,
            };
            self.watch.hooks.mapping(&m, target)
        })?;
        self.pass_down(n, &file, &caller);
        Ok(())
    }

    /// A mapping of a nested namespace's file, answered here: queue it for that namespace.
    fn pass_down(&self, n: &Notification, file: &TaskFile, caller: &LazyCaller) {
        let Some(nest) = &self.watch.nest else {
            return;
        };
        let Some(dev) = file
            .dev
            .filter(|d| self.watch.hooks.child_daemons().is_child_overlay(*d))
        else {
            return;
        };
        nest.pass_down(&MapEvent {
            dev,
            path: path_of(&file.file),
            nspids: nspids(n.pid),
            caller: caller.get().clone(),
            for_write: file.for_write,
        });
    }

    /// `ima_file_mprotect` for each file mapping in `[addr, addr + len)` not executable yet.
    fn mprotect(&self, n: &Notification, addr: u64, len: u64) -> Result<(), Errno> {
        if !self.watch.hooks.ima().appraises() {
            return Ok(());
        }
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", n.pid)).unwrap_or_default();
        let end = addr.saturating_add(len);
        let caller = Self::caller(n);
        for vma in maps.lines().filter_map(Vma::parse) {
            if vma.end <= addr || vma.start >= end || vma.exec || vma.inode == 0 {
                continue;
            }
            let link = format!("/proc/{}/map_files/{:x}-{:x}", n.pid, vma.start, vma.end);
            // O_PATH: no open of the file itself (an open of an overlay file by the daemon
            // would be an event of its own).
            let path_only = |p: &str| {
                rustix::fs::open(
                    p,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map(File::from)
            };
            let file = path_only(&link)
                .or_else(|_| path_only(&format!("/proc/{}/root{}", n.pid, vma.path)));
            let Ok(file) = file else {
                self.watch.coverage.miss();
                log::warn!(
                    "seccomp: cannot open {} mapped by pid {}: its mprotect is not checked",
                    vma.path,
                    n.pid
                );
                continue;
            };
            let file = TaskFile {
                dev: device_of(n.pid, &file),
                file,
                readable: false,
                for_write: false,
            };
            if !self.listener.still_waiting(n.id) {
                return Ok(());
            }
            self.on_file(n, &file, |target, path, mapped_as| {
                let m = Mapping {
                    pid: n.pid,
                    caller: &caller,
                    path,
                    opened_for_write: false,
                    mapped_as,
                };
                self.watch.hooks.mprotect(&m, target)
            })?;
        }
        Ok(())
    }

    /// `execve`/`execveat` of a file that is not on the overlay (the overlay's exec opens
    /// are measured where they are made).
    fn exec(&self, n: &Notification, dirfd: i32, path: u64, flags: u32) -> Result<(), Errno> {
        self.watch.hooks.exec_started(n.pid);
        let task = Task::new(n.pid);
        let name = match task.c_string(path, libc::PATH_MAX as usize) {
            Ok(name) => name,
            // The kernel fails the call itself (EFAULT, ENAMETOOLONG).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EFAULT) | Some(libc::ENAMETOOLONG)
                ) =>
            {
                return Ok(())
            }
            Err(e) => {
                self.watch.coverage.miss();
                log::warn!(
                    "seccomp: cannot read the path pid {} executes: {e}; not measured unless \
                     on the overlay",
                    n.pid
                );
                return Ok(());
            }
        };
        let file = if name.is_empty() && flags & libc::AT_EMPTY_PATH as u32 != 0 {
            match self.task_file(n, &task, dirfd) {
                Some(task_file) => task_file.file,
                None => return Ok(()),
            }
        } else {
            let Some(file) = resolve_in_task(&task, dirfd, &name, flags) else {
                return Ok(());
            };
            if !self.listener.still_waiting(n.id) {
                return Ok(());
            }
            file
        };
        let Some(dev) = device_of(n.pid, &file) else {
            return Ok(());
        };
        // The overlay's exec opens, and a nested namespace's (which forwards them here), are
        // measured where they are made.
        if dev == self.overlay_dev || self.watch.hooks.child_daemons().is_child_overlay(dev) {
            return Ok(());
        }
        // An O_PATH descriptor cannot be read: open the file itself (not through FUSE of
        // ours: the overlay's files were left above).
        let readable = match File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(f) => f,
            Err(e) => {
                log::warn!(
                    "seccomp: cannot read {} executed by pid {}: {e}",
                    String::from_utf8_lossy(&name),
                    n.pid
                );
                return Err(Errno::EACCES);
            }
        };
        let caller = Self::caller(n);
        let path = path_of(&readable);
        let m = Mapping {
            pid: n.pid,
            caller: &caller,
            path: &path,
            opened_for_write: false,
            mapped_as: (dev, 0),
        };
        self.watch.hooks.exec_elsewhere(&m, &readable)
    }

    /// Run `hook` on `file` as IMA knows it: for a file of the overlay, its lower file and
    /// the container's path of it; for a file of a nested namespace's overlay (whose files
    /// this daemon may not even stat: FUSE serves a user namespace's mount to that namespace
    /// only), this container's file under the directory that overlay shows; else the file
    /// itself and its path.
    fn on_file(
        &self,
        n: &Notification,
        task_file: &TaskFile,
        hook: impl Fn(&File, &[u8], (u64, u64)) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let file = &task_file.file;
        let dev = task_file.dev;
        if dev == Some(self.overlay_dev) {
            // The node id is the inode number; a cached one will do (no FUSE request).
            let ino =
                rustix::fs::statx(file, "", CACHED, rustix::fs::StatxFlags::INO).map(|x| x.stx_ino);
            return match ino.map(|ino| (ino, self.watch.overlay.open_node(ino))) {
                Ok((ino, Ok((lower, path)))) => hook(&lower, &path, (self.overlay_dev, ino)),
                Ok((ino, Err(e))) => {
                    log::warn!("seccomp: node {ino} mapped by pid {}: {e}", n.pid);
                    Ok(())
                }
                Err(e) => {
                    log::warn!("seccomp: a file mapped by pid {}: {e}", n.pid);
                    Ok(())
                }
            };
        }
        let path = path_of(file);
        let children = self.watch.hooks.child_daemons();
        if let Some(shown) = dev.and_then(|d| children.child_overlay_root(d)) {
            let ours = [without_trailing_slash(&shown), path.as_slice()].concat();
            // Its inode number is the child's to tell (0: never found in a task's maps).
            let mapped_as = (dev.unwrap_or(0), 0);
            return match self.watch.hooks.open_in_root(&ours) {
                Some(lower) => hook(&lower, &ours, mapped_as),
                None => {
                    log::warn!(
                        "seccomp: {} mapped by pid {} in a nested namespace: not found here",
                        String::from_utf8_lossy(&ours),
                        n.pid
                    );
                    Ok(())
                }
            };
        }
        // A file this daemon cannot even stat (another user namespace's FUSE mount that no
        // nested namespace announced) cannot be measured here: said, not refused.
        let readable = match dev.map(|_| rustix::fs::fstat(file)) {
            Some(Ok(_)) if task_file.readable => None,
            Some(Ok(_)) => File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).ok(),
            _ => None,
        };
        if dev.is_none() || (!task_file.readable && readable.is_none()) {
            self.watch.coverage.miss();
            log::warn!(
                "seccomp: {} mapped by pid {}: its file system does not let this daemon \
                 read it; not measured",
                String::from_utf8_lossy(&path),
                n.pid
            );
            return Ok(());
        }
        let ino = rustix::fs::statx(file, "", CACHED, rustix::fs::StatxFlags::INO)
            .map_or(0, |x| x.stx_ino);
        hook(
            readable.as_ref().unwrap_or(file),
            &path,
            (dev.unwrap_or(0), ino),
        )
    }
}

/// `path` without trailing slashes (`/` becomes empty, so that joining works).
fn without_trailing_slash(mut path: &[u8]) -> &[u8] {
    while let Some(rest) = path.strip_suffix(b"/") {
        path = rest;
    }
    path
}

/// `statx` flags for what the kernel has cached: no request to a FUSE daemon (ours would
/// answer, but a round trip per call is what this avoids).
const CACHED: rustix::fs::AtFlags =
    rustix::fs::AtFlags::EMPTY_PATH.union(rustix::fs::AtFlags::STATX_DONT_SYNC);

/// The device number of the file system holding `file` (our copy of task `pid`'s
/// descriptor), without asking the file system: `statx` for nothing (FUSE answers it even
/// to a process it serves no files, fs/fuse/dir.c: `fuse_getattr`), else the mount's
/// `mnt_id` of `/proc/self/fdinfo` (fs/proc/fd.c: `seq_show`) in the task's mountinfo.
fn device_of(pid: u32, file: &File) -> Option<u64> {
    match rustix::fs::statx(file, "", CACHED, rustix::fs::StatxFlags::empty()) {
        Ok(x) => Some(rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor)),
        Err(_) => mount_device(pid, file),
    }
}

/// [`device_of`] through `/proc`.
fn mount_device(pid: u32, file: &File) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).ok()?;
    let mnt_id = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))?
        .trim()
        .to_owned();
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let line = mounts
        .lines()
        .find(|l| l.split(' ').next() == Some(mnt_id.as_str()))?;
    let (major, minor) = line.split(' ').nth(2)?.split_once(':')?;
    Some(rustix::fs::makedev(
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

/// The pids of task `pid` from this daemon's pid namespace inward (`NSpid:` of
/// `/proc/<pid>/status`, fs/proc/array.c: `task_state`).
fn nspids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("NSpid:")).map(|v| {
                v.split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_else(|| vec![pid])
}

/// A mapping event the parent namespace passed down (see [`crate::fs::nest`]): record it in
/// this namespace, and pass it on when the file is a nested namespace's.
pub fn on_parent_event(watch: &Watch, link: &ParentLink, ev: MapEvent) {
    let own = link.own_overlay() == Some(ev.dev);
    let children = watch.hooks.child_daemons();
    let path = if own {
        ev.path.clone()
    } else if let Some(shown) = children.child_overlay_root(ev.dev) {
        [without_trailing_slash(&shown), ev.path.as_slice()].concat()
    } else {
        return;
    };
    let caller = link.inner_caller(&ev.caller);
    // The task's pid in this daemon's pid namespace (the parent's container's).
    let pid = ev.nspids.get(1).copied().unwrap_or(0);
    match watch.hooks.open_in_root(&path) {
        Some(file) => {
            let lazy = LazyCaller::known(pid, caller.clone());
            let m = Mapping {
                pid,
                caller: &lazy,
                path: &path,
                opened_for_write: ev.for_write,
                mapped_as: (ev.dev, 0),
            };
            if let Err(e) = watch.hooks.mapping(&m, &file) {
                log::info!(
                    "nest: {} mapped in a nested container: this namespace would refuse it \
                     ({e}), the namespace that answered allowed it",
                    String::from_utf8_lossy(&path)
                );
            }
        }
        None => log::warn!(
            "nest: {} mapped in a nested container: not found here",
            String::from_utf8_lossy(&path)
        ),
    }
    if !own {
        if let Some(nest) = &watch.nest {
            nest.pass_down(&MapEvent {
                nspids: ev.nspids.get(1..).map(<[u32]>::to_vec).unwrap_or_default(),
                caller,
                ..ev
            });
        }
    }
}

/// A task's file as the listener holds it.
struct TaskFile {
    file: File,
    /// The device number of its file system ([`device_of`]).
    dev: Option<u64>,
    /// `file` can be read (a copy of the task's descriptor, not an `O_PATH` one).
    readable: bool,
    /// The task's descriptor was opened for write (FMODE_WRITE).
    for_write: bool,
}

/// The open flags of task `pid`'s descriptor `fd` (`flags:` of `/proc/<pid>/fdinfo/<fd>`,
/// octal; fs/proc/fd.c: `seq_show`).
fn fdinfo_flags(pid: u32, fd: i32) -> Option<rustix::fs::OFlags> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let octal = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    u32::from_str_radix(octal, 8)
        .ok()
        .map(rustix::fs::OFlags::from_bits_retain)
}

/// The overflow id (65534) standing for ids of a task gone before they were read.
const OVERFLOW_ID: u32 = 65534;

/// The path the kernel's `ima_d_path` gives a file: as the daemon resolves it (a file of a
/// container's own mount resolves through the container's root, which is the overlay's
/// mount), and for a memfd its name (`memfd:NAME`, no "(deleted)").
fn path_of(file: &File) -> Vec<u8> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_default();
    let link = link
        .strip_suffix(b" (deleted)")
        .map(<[u8]>::to_vec)
        .unwrap_or(link);
    match link.strip_prefix(b"/memfd:") {
        Some(name) => [b"memfd:".as_slice(), name].concat(),
        None => link,
    }
}

use std::os::unix::ffi::OsStringExt;

/// Open (O_PATH) what `execveat(dirfd, name, flags)` of `task` names, resolved in the task's
/// root: an absolute name from it, a relative one from its working directory or `dirfd`.
fn resolve_in_task(task: &Task, dirfd: i32, name: &[u8], flags: u32) -> Option<File> {
    let pid = task.pid();
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let absolute = if name.starts_with(b"/") {
        PathBuf::from(std::ffi::OsStr::from_bytes(name))
    } else {
        let base = if dirfd == AT_FDCWD {
            std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
        } else {
            std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()?
        };
        Path::new(&base).join(std::ffi::OsStr::from_bytes(name))
    };
    let mut oflags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC;
    if flags & libc::AT_SYMLINK_NOFOLLOW as u32 != 0 {
        oflags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let fd: OwnedFd = rustix::fs::openat2(
        &root,
        &absolute,
        oflags,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT,
    )
    .ok()?;
    Some(File::from(fd))
}

/// One line of `/proc/<pid>/maps` (fs/proc/task_mmu.c: `show_map_vma`).
struct Vma<'a> {
    start: u64,
    end: u64,
    exec: bool,
    inode: u64,
    path: &'a str,
}

impl<'a> Vma<'a> {
    fn parse(line: &'a str) -> Option<Vma<'a>> {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let perms = fields.next()?;
        let _offset = fields.next()?;
        let _dev = fields.next()?;
        let inode = fields.next()?.parse().ok()?;
        let path = fields.next().unwrap_or("").trim_start();
        let (start, end) = range.split_once('-')?;
        Some(Vma {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            exec: perms.as_bytes().get(2) == Some(&b'x'),
            inode,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let v = Vma::parse(
            "7f1c2a000000-7f1c2a022000 r--p 00000000 fe:01 1312  /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .expect("line");
        assert_eq!(
            (v.start, v.end, v.exec, v.inode),
            (0x7f1c2a000000, 0x7f1c2a022000, false, 1312)
        );
        assert_eq!(v.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        let anon = Vma::parse("7ffd1000-7ffd2000 rwxp 00000000 00:00 0 ").expect("anon");
        assert!(anon.exec && anon.inode == 0);
        assert!(Vma::parse("garbage").is_none());
    }
}
