//! The FUSE operations of the overlay.

use super::events::{AttrEvent, EarlierReleases, LowerFs, OpenEvent, ReleaseEvent, FMODE_EXEC};
use super::inodes::{ContentStamp, Inodes, PageCache, ROOT};
use super::{lowerfs, OverlayOptions};
use crate::sys::fd::{is_plain_name, open_beneath, open_path_beneath, proc_fd_path, reopen};
use crate::sys::{fd as sysfd, xattr};
use fuser::{
    AccessFlags, BackingId, CopyFileRangeFlags, Errno as FuseErrno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::Mutex;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

fn errno_of(e: &io::Error) -> FuseErrno {
    crate::engine::Errno::from(e).into()
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Whether a notification to the kernel about node `id` went through (a failure is logged:
/// the caller then falls back to what needs no notification).
fn notify(sent: io::Result<()>, id: u64) -> bool {
    match sent {
        Ok(()) => true,
        Err(e) => {
            log::debug!("overlay: notification about node {id}: {e}");
            false
        }
    }
}

/// Fill `buf` from `file` at `offset`, stopping early only at end of file. An error after
/// some bytes were read ends the read there; an error before any is returned.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// The whole content of `file` if it is exactly `size` bytes long (else it changed since
/// it was measured, and is left to be read on demand).
fn read_exactly(file: &File, size: u64) -> Option<Vec<u8>> {
    // One byte more than expected tells a file that grew.
    let mut data = vec![0u8; usize::try_from(size).ok()? + 1];
    let done = read_full_at(file, &mut data, 0).ok()?;
    (done as u64 == size).then(|| {
        data.truncate(done);
        data
    })
}

#[derive(Default)]
pub struct Stats {
    pub passthrough_opens: AtomicU64,
    pub daemon_opens: AtomicU64,
}

/// One open of a regular file.
struct OpenFile {
    file: File,
    flags: i32,
    path: Vec<u8>,
    fs: Arc<LowerFs>,
    /// How the kernel reaches its data (set when the open is answered).
    io: OpenIo,
}

/// How one open reaches the file's data, and the node it is counted on.
#[derive(Clone, Default)]
struct OpenIo {
    node: u64,
    node_serial: u64,
    /// The passthrough backing file; `None`: the page cache, filled by the daemon.
    backing: Option<Arc<BackingId>>,
    /// The kernel's page cache holds nothing but the version this open found: keep it.
    keep_cache: bool,
}

impl OpenIo {
    fn fopen_flags(&self) -> FopenFlags {
        if self.keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH
        } else {
            FopenFlags::FOPEN_NOFLUSH
        }
    }
}

/// A directory being listed for one READDIR request: its node and a fresh stream of the
/// lower directory.
struct OpenDir {
    node: u64,
    stream: rustix::fs::Dir,
}

pub struct Inner {
    pub options: OverlayOptions,
    inodes: Mutex<Inodes>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    /// Passthrough negotiated at INIT and not switched off since.
    passthrough: AtomicBool,
    lower_magic: u64,
    lower_fs: lowerfs::LowerFsCache,
    /// Process umask, to restore exact creation modes (the kernel already applied the
    /// caller's umask).
    umask: u32,
    root_daemon: bool,
    pub stats: Stats,
    /// The session's channel for invalidating what the kernel caches (set once mounted).
    notifier: std::sync::OnceLock<fuser::Notifier>,
    /// The requests the session's `/dev/fuse` workers are handling (set once mounted).
    in_flight: std::sync::OnceLock<Arc<fuser::InFlight>>,
}

pub struct Adapter(pub Arc<Inner>);

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time_of(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = nsecs.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs.into())
    }
}

fn attr_of(id: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(id),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time_of(st.st_atime, st.st_atime_nsec as i64),
        mtime: time_of(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: time_of(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// The attributes of a negative entry: node id 0, which the kernel reads as "no such name"
/// (dir.c: fuse_lookup_name) before it looks at anything else.
fn absent_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn is_reg(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn is_dir(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn timestamp(t: Option<TimeOrNow>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => rustix::fs::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos().into(),
            },
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nsec = 0i64;
                if d.subsec_nanos() > 0 {
                    secs -= 1;
                    nsec = 1_000_000_000 - i64::from(d.subsec_nanos());
                }
                rustix::fs::Timespec {
                    tv_sec: secs,
                    tv_nsec: nsec as _,
                }
            }
        },
    }
}

impl Inner {
    pub fn new(lower: &Path, options: OverlayOptions) -> io::Result<Inner> {
        let root = rustix::fs::open(
            lower,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&root)?;
        let lower_magic = rustix::fs::fstatfs(&root)?.f_type as u64;
        let capacity = options.fd_cache.unwrap_or_else(|| {
            let limit = sysfd::raise_nofile_soft_limit().unwrap_or(1024);
            (limit / 4).clamp(16, 4096) as usize
        });
        // Read the umask without changing it for longer than this call.
        let umask = rustix::process::umask(Mode::empty());
        rustix::process::umask(umask);
        Ok(Inner {
            inodes: Mutex::new(Inodes::new(root, st.st_dev, st.st_ino, capacity)),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
            lower_magic,
            lower_fs: lowerfs::LowerFsCache::default(),
            umask: umask.bits(),
            root_daemon: rustix::process::geteuid().is_root(),
            stats: Stats::default(),
            notifier: std::sync::OnceLock::new(),
            in_flight: std::sync::OnceLock::new(),
            options,
        })
    }

    /// Give the overlay its session's notifier and in-flight requests (before it serves).
    pub fn attach(&self, notifier: fuser::Notifier, in_flight: Arc<fuser::InFlight>) {
        let _ = self.notifier.set(notifier);
        let _ = self.in_flight.set(in_flight);
    }

    /// Attributes of node `id` for a reply to the kernel, remembering which content version
    /// of a regular file the kernel now has (see [`Inner::open_io`]).
    fn kernel_attr(&self, id: u64, st: &Stat) -> FileAttr {
        self.note_kernel_attrs(id, st);
        attr_of(id, st)
    }

    fn note_kernel_attrs(&self, id: u64, st: &Stat) {
        if is_reg(st) {
            if let Some(node) = self.inodes.lock().nodes.get_mut(&id) {
                node.io.kernel_attrs = Some(ContentStamp::of(st));
            }
        }
    }

    pub fn passthrough_active(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    /// How requests reach this daemon: `io_uring` once one has come through a ring (the
    /// kernel switches a connection to its rings when every CPU's queue is registered,
    /// dev_uring.c: fuse_uring_do_register), else `/dev/fuse`.
    pub fn transport(&self) -> &'static str {
        match self.in_flight.get() {
            Some(f) if f.ring_served() => "io_uring",
            _ => "/dev/fuse",
        }
    }

    /// A read-only descriptor of node `id`'s lower file and its path from the overlay root,
    /// for an open a child namespace forwards (its daemon holds the node open, so the
    /// kernel keeps referencing it). ESTALE when the node is unknown.
    pub fn open_node(&self, id: u64) -> io::Result<(File, Vec<u8>)> {
        // A live readable open of the node (a nested daemon's own open of the file, made
        // just before it forwarded that open here) is duplicated: a new open would go down
        // the whole stack of nested overlays below, one FUSE request per level, for every
        // level above (quadratic in the depth).
        let live = self
            .files
            .lock()
            .values()
            .find(|o| o.io.node == id && o.flags & libc::O_ACCMODE != libc::O_WRONLY)
            .map(|o| o.file.try_clone());
        let file = match live {
            Some(Ok(file)) => file,
            _ => reopen(self.node_fd(id)?.as_fd(), OFlags::RDONLY)?,
        };
        let path = self.inodes.lock().path(id);
        Ok((file, path))
    }

    /// A horizon after every release being handled now (see [`Inner::releases_before`]).
    pub fn release_horizon(&self) -> u64 {
        self.in_flight
            .get()
            .and_then(|f| f.latest())
            .map_or(0, |u| u + 1)
    }

    /// Whether a release that was being handled when `horizon` was taken still is.
    pub fn releases_before(&self, horizon: u64) -> bool {
        self.in_flight.get().is_some_and(|f| f.any_before(horizon))
    }

    pub fn inode_counts(&self) -> (usize, usize) {
        let t = self.inodes.lock();
        (t.nodes.len(), t.cached_count())
    }

    /// The `O_PATH` descriptor of node `id`, re-resolved under its parent when not cached.
    fn node_fd(&self, id: u64) -> io::Result<Arc<OwnedFd>> {
        self.node_fd_depth(id, 0)
    }

    fn node_fd_depth(&self, id: u64, depth: u32) -> io::Result<Arc<OwnedFd>> {
        if depth > 4096 {
            return Err(err(libc::ELOOP));
        }
        let (parent, name, dev, ino) = {
            let mut t = self.inodes.lock();
            if let Some(fd) = t.cached_fd(id) {
                return Ok(fd);
            }
            let node = t.nodes.get(&id).ok_or_else(|| err(libc::ESTALE))?;
            (node.parent, node.name.clone(), node.dev, node.ino)
        };
        let pfd = self.node_fd_depth(parent, depth + 1)?;
        let fd = open_path_beneath(pfd.as_fd(), &name).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                err(libc::ESTALE)
            } else {
                e
            }
        })?;
        let st = sysfd::stat_fd(fd.as_fd())?;
        if (st.st_dev, st.st_ino) != (dev, ino) {
            // The name now refers to another file (changed behind our back).
            return Err(err(libc::ESTALE));
        }
        let fd = Arc::new(fd);
        self.inodes.lock().cache_fd(id, fd.clone());
        Ok(fd)
    }

    /// Current attributes of node `id`: `fstat` of its descriptor when one is open, else one
    /// `fstatat` under the parent's (usually cached) descriptor, checked against `(dev, ino)`,
    /// so stat-heavy walks do not churn the descriptor cache.
    fn node_stat(&self, id: u64) -> io::Result<Stat> {
        let (parent, name, dev, ino) = {
            let mut t = self.inodes.lock();
            if let Some(fd) = t.cached_fd(id) {
                drop(t);
                return sysfd::stat_fd(fd.as_fd());
            }
            let node = t.nodes.get(&id).ok_or_else(|| err(libc::ESTALE))?;
            (node.parent, node.name.clone(), node.dev, node.ino)
        };
        let pfd = self.node_fd(parent)?;
        if let Ok(st) = sysfd::stat_beneath(pfd.as_fd(), &name) {
            if (st.st_dev, st.st_ino) == (dev, ino) {
                return Ok(st);
            }
        }
        let fd = self.node_fd(id)?;
        sysfd::stat_fd(fd.as_fd())
    }

    /// Look up `name` in `parent`: one kernel reference on the resulting node.
    fn lookup_child(&self, parent: u64, name: &[u8]) -> io::Result<(u64, Stat)> {
        if !is_plain_name(name) {
            return Err(err(libc::ENOENT));
        }
        let pfd = self.node_fd(parent)?;
        let st = sysfd::stat_beneath(pfd.as_fd(), name)?;
        let id = self
            .inodes
            .lock()
            .register(parent, name, st.st_dev, st.st_ino);
        Ok((id, st))
    }

    fn entry_reply(&self, reply: ReplyEntry, r: io::Result<(u64, Stat)>) {
        match r {
            Ok((id, st)) => reply.entry_with_ttls(
                &self.options.attr_ttl,
                &self.options.entry_ttl,
                &self.kernel_attr(id, &st),
                Generation(0),
            ),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    /// After creating `name` in `parent`: give it to the caller, restore the exact mode if the
    /// process umask took bits away, and register the node with its fresh descriptor.
    fn finish_new(
        &self,
        req: &Request,
        parent: u64,
        pfd: &OwnedFd,
        name: &[u8],
        mode: u32,
    ) -> io::Result<(u64, Stat)> {
        let fd = open_path_beneath(pfd.as_fd(), name)?;
        self.give_to_caller(req, &fd, pfd)?;
        let st = sysfd::stat_fd(fd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK && mode & self.umask & 0o7777 != 0 {
            rustix::fs::chmod(proc_fd_path(fd.as_fd()), Mode::from_raw_mode(mode & 0o7777))?;
        }
        let st = sysfd::stat_fd(fd.as_fd())?;
        let id = {
            let mut t = self.inodes.lock();
            let id = t.register(parent, name, st.st_dev, st.st_ino);
            t.cache_fd(id, Arc::new(fd));
            id
        };
        Ok((id, st))
    }

    /// A root daemon creates files as root: hand them to the requesting user (the group of
    /// a set-group-id directory is kept, as the kernel would).
    fn give_to_caller(&self, req: &Request, fd: &OwnedFd, pfd: &OwnedFd) -> io::Result<()> {
        if !self.root_daemon || (req.uid() == 0 && req.gid() == 0) {
            return Ok(());
        }
        let parent_sgid = sysfd::stat_fd(pfd.as_fd())?.st_mode & libc::S_ISGID != 0;
        let gid = if parent_sgid {
            None
        } else {
            Some(rustix::process::Gid::from_raw(req.gid()))
        };
        let uid = Some(rustix::process::Uid::from_raw(req.uid()));
        rustix::fs::chownat(
            fd,
            "",
            uid,
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Before `name` in `parent` goes away (unlink, rmdir, rename over it): if the kernel
    /// still references that node under this very name, pin a descriptor so it stays usable.
    fn pin_victim(&self, parent: u64, pfd: &OwnedFd, name: &[u8]) {
        let Ok(st) = sysfd::stat_beneath(pfd.as_fd(), name) else {
            return;
        };
        let id = {
            let t = self.inodes.lock();
            match t.id_of(st.st_dev, st.st_ino) {
                Some(id) => match t.nodes.get(&id) {
                    Some(n) if n.parent == parent && *n.name == *name => id,
                    _ => return,
                },
                None => return,
            }
        };
        if let Ok(fd) = open_path_beneath(pfd.as_fd(), name) {
            let gone = is_dir(&st) || st.st_nlink <= 1;
            self.inodes.lock().pin(id, Arc::new(fd), gone);
        }
    }

    /// Open node `id` for a FUSE open or create, run the open hook, and record the handle.
    fn open_file(
        &self,
        req: &Request,
        id: u64,
        flags: i32,
        created: bool,
        file: Option<File>,
    ) -> io::Result<(u64, Arc<OpenFile>, Stat)> {
        let node_fd = self.node_fd(id)?;
        let exec = flags & FMODE_EXEC != 0;
        let truncate = flags & libc::O_TRUNC != 0;
        // Strip what only the kernel's open needs, and O_TRUNC: it is applied after the hook,
        // as the kernel runs ima_file_check before handle_truncate.
        let oflags =
            flags & !(FMODE_EXEC | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC);
        let file = match file {
            Some(f) => f,
            None => reopen(node_fd.as_fd(), OFlags::from_bits_retain(oflags as u32))?,
        };
        let mut st = rustix::fs::fstat(&file)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let path = self.inodes.lock().path(id);
        // The opened file, not the O_PATH node: the UUID ioctl needs a real descriptor.
        let fs = self.lower_fs.get(file.as_fd(), st.st_dev);
        log::debug!(
            "overlay: open {} flags {flags:#o} exec {exec} created {created}",
            String::from_utf8_lossy(&path)
        );
        if is_reg(&st) {
            let readable = flags & libc::O_ACCMODE != libc::O_WRONLY;
            let extra;
            let hook_file = if readable {
                &file
            } else {
                extra = reopen(node_fd.as_fd(), OFlags::RDONLY)?;
                &extra
            };
            let unique = req.unique().0;
            let in_flight = self.in_flight.get();
            let releasing = || in_flight.is_some_and(|f| f.any_before(unique));
            let earlier_releases: EarlierReleases<'_> = &releasing;
            let ev = OpenEvent {
                path: &path,
                flags,
                exec,
                created,
                uid: req.uid(),
                gid: req.gid(),
                pid: req.pid(),
                stat: &st,
                fs: &fs,
                open_id: fh,
                earlier_releases,
            };
            self.options
                .hooks
                .on_open(&ev, hook_file)
                .map_err(|e| err(e.0))?;
        }
        if truncate && flags & libc::O_ACCMODE != libc::O_RDONLY {
            file.set_len(0)?;
            st = rustix::fs::fstat(&file)?;
        }
        let open = Arc::new(OpenFile {
            file,
            flags,
            path,
            fs,
            io: OpenIo::default(),
        });
        Ok((fh, open, st))
    }

    /// Decide how an open of node `id` (lower attributes `st`, open `flags`, the daemon's
    /// descriptor `file`) reaches the data, and count it on the node; `register` makes a
    /// passthrough backing id of a descriptor.
    ///
    /// * Read-only opens of files up to `page_cache_max` bytes go through the kernel's page
    ///   cache: a warm read of a small file then costs no request but the open and the
    ///   release, where a passthrough read also makes the next `stat` ask for the atime it
    ///   invalidates. Other opens are passed through (when available).
    /// * The kernel refuses (EIO) an open whose mode conflicts with the node's current opens,
    ///   so while a node has opens of one mode, every new open takes that mode.
    /// * The page cache is kept (FOPEN_KEEP_CACHE) only while it holds nothing but the file's
    ///   current version: after a change made through passthrough or behind the daemon's
    ///   back, the open drops the stale pages (FUSE_NOTIFY_INVAL_INODE) before it is
    ///   answered, so the data read is the data measured.
    /// * A page-cache open that is the file's only open and finds the cache without the
    ///   current version fills it (FUSE_NOTIFY_STORE) from the daemon's descriptor, so the
    ///   first read needs no READ request either.
    /// * Page-cache reads stop at the size the kernel caches, so if the kernel's attributes
    ///   are older than the file, they are invalidated first.
    ///
    /// The passthrough backing file is the node's `O_PATH` descriptor, not the open file:
    /// the kernel keeps the registered file while the node lives, and a writable one would
    /// make the lower file "busy" for execve (ETXTBSY). The kernel opens its own backing
    /// file per FUSE open.
    fn open_io(
        &self,
        id: u64,
        st: &Stat,
        flags: i32,
        file: &File,
        register: impl Fn(BorrowedFd<'_>) -> io::Result<BackingId>,
    ) -> OpenIo {
        let stamp = ContentStamp::of(st);
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        // Only an O_RDWR open can be mapped MAP_SHARED and writable. A passthrough mapping
        // maps the backing file (backing-file.c: backing_file_mmap), so the FUSE file and
        // its RELEASE would go at close(2) while the mapping still writes the file, and IMA
        // would miss the writer a kernel sees until munmap (open_writers). Through the page
        // cache the mapping holds the FUSE file, as on a kernel.
        let read_write = flags & libc::O_ACCMODE == libc::O_RDWR;
        let small_read = read_only && size <= self.options.page_cache_max;
        let opath = self
            .passthrough_active()
            .then(|| self.node_fd(id).ok())
            .flatten();
        let notifier = self.notifier.get();
        let mut t = self.inodes.lock();
        let Some(node) = t.nodes.get_mut(&id) else {
            return OpenIo::default();
        };
        let alone = node.io.cached_opens == 0 && node.io.passthrough_opens == 0;
        let attrs_current = node.io.kernel_attrs == Some(stamp);
        let cacheable = small_read && (attrs_current || notifier.is_some());
        // A node with a live backing file can take more passthrough opens even if its
        // descriptor cannot be had now; it must, while it has some (EIO otherwise).
        let can_pass = opath.is_some() || node.backing.is_some();
        let want_passthrough = can_pass
            && (node.io.passthrough_opens > 0
                || (node.io.cached_opens == 0 && !cacheable && !read_write));
        let backing = match (&node.backing, &opath) {
            (Some(b), _) if want_passthrough => Some(b.clone()),
            (None, Some(opath)) if want_passthrough => self.register_backing(opath, &register),
            _ => None,
        };
        let mut io = OpenIo {
            node: id,
            node_serial: node.serial,
            backing,
            keep_cache: false,
        };
        if let Some(b) = &io.backing {
            node.backing = Some(b.clone());
            node.io.passthrough_opens += 1;
            // The kernel refuses FOPEN_KEEP_CACHE with FOPEN_PASSTHROUGH (EIO), so this open
            // empties the page cache, if its reply is processed: until a page-cache open
            // drops it for sure, what it held is not to be kept.
            if node.io.page_cache != PageCache::Empty {
                node.io.page_cache = PageCache::Changing;
            }
            drop(t);
            self.stats.passthrough_opens.fetch_add(1, Ordering::Relaxed);
            return io;
        }
        node.io.cached_opens += 1;
        let cache = node.io.page_cache;
        let current = cache == PageCache::Holds(stamp);
        let stale_pages = !current && cache != PageCache::Empty;
        let fill = notifier.filter(|_| !current && alone && small_read);
        if !current {
            // Until the stale pages are dropped, no other open may keep the cache.
            node.io.page_cache = PageCache::Changing;
        }
        if !attrs_current || stale_pages {
            node.io.kernel_attrs = None;
        }
        drop(t);
        self.stats.daemon_opens.fetch_add(1, Ordering::Relaxed);
        // Drop stale pages (with the attributes) now rather than through this open's reply,
        // which the kernel may never process (an interrupted open).
        let clean = match notifier {
            Some(n) if stale_pages => notify(n.inval_inode(INodeNo(id), 0, 0), id),
            Some(n) if !attrs_current => {
                // Offset -1: the attributes only.
                notify(n.inval_inode(INodeNo(id), -1, 0), id);
                true
            }
            _ => !stale_pages,
        };
        io.keep_cache = clean;
        if !clean {
            // The cache stays marked as changing: the next open drops it again.
            return io;
        }
        if let Some(n) = fill {
            // Whatever the store does not fill is read from the file on demand.
            if size > 0 {
                if let Some(data) = read_exactly(file, size) {
                    notify(n.store(INodeNo(id), 0, &data), id);
                }
            }
        }
        if !current {
            let mut t = self.inodes.lock();
            if let Some(node) = t.nodes.get_mut(&id) {
                if node.serial == io.node_serial && node.io.page_cache == PageCache::Changing {
                    node.io.page_cache = PageCache::Holds(stamp);
                }
            }
        }
        io
    }

    /// Register `opath` as a passthrough backing file. `None` when the kernel refuses; a
    /// refusal for lack of privilege (user namespace) switches passthrough off for good.
    fn register_backing(
        &self,
        opath: &OwnedFd,
        register: &impl Fn(BorrowedFd<'_>) -> io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        let registered = register(opath.as_fd()).or_else(|e| {
            // Kernels that want a real open file: a read-only one.
            if matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::EINVAL)) {
                let ro = reopen(opath.as_fd(), OFlags::RDONLY)?;
                register(ro.as_fd())
            } else {
                Err(e)
            }
        });
        match registered {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                if e.raw_os_error() == Some(libc::EPERM) {
                    log::info!(
                        "overlay: passthrough unavailable ({e}); serving data from the daemon"
                    );
                    self.passthrough.store(false, Ordering::Relaxed);
                } else {
                    log::debug!("overlay: passthrough refused for one open: {e}");
                }
                None
            }
        }
    }

    /// The end of an open counted by [`Inner::open_io`].
    fn release_io(&self, io: &OpenIo) {
        let mut t = self.inodes.lock();
        let Some(node) = t.nodes.get_mut(&io.node) else {
            return;
        };
        if node.serial != io.node_serial {
            return;
        }
        let count = if io.backing.is_some() {
            &mut node.io.passthrough_opens
        } else {
            &mut node.io.cached_opens
        };
        *count = count.saturating_sub(1);
    }

    fn install(&self, fh: u64, mut open: Arc<OpenFile>, io: OpenIo) {
        if let Some(o) = Arc::get_mut(&mut open) {
            o.io = io;
        }
        self.files.lock().insert(fh, open);
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<OpenFile>, FuseErrno> {
        self.files
            .lock()
            .get(&fh.0)
            .cloned()
            .ok_or(FuseErrno::EBADF)
    }

    /// The lower name of the container's xattr `name`: `security.ima` maps to the configured
    /// IMA xattr.
    fn lower_xattr_name<'n>(&'n self, name: &'n [u8]) -> &'n [u8] {
        if name == SECURITY_IMA.as_bytes() {
            self.options.ima_xattr.as_bytes()
        } else {
            name
        }
    }

    /// Perform `write` (a set or removal of the lower xattr `name` of node `id`), passing
    /// writes of the IMA xattr of a regular file through the hooks before and after.
    fn ima_xattr_write(
        &self,
        req: &Request,
        id: u64,
        fd: BorrowedFd<'_>,
        name: &[u8],
        value: Option<&[u8]>,
        write: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if name != self.options.ima_xattr.as_bytes() {
            return write();
        }
        let st = sysfd::stat_fd(fd)?;
        if !is_reg(&st) {
            return write();
        }
        let path = self.inodes.lock().path(id);
        let ev = attr_event(req, &path, &st, fd);
        self.options
            .hooks
            .on_ima_xattr_write(&ev, value)
            .map_err(|e| err(e.0))?;
        write()?;
        let st = sysfd::stat_fd(fd).unwrap_or(st);
        self.options
            .hooks
            .on_ima_xattr_changed(&attr_event(req, &path, &st, fd));
        Ok(())
    }

    fn release_file(&self, fh: FileHandle) {
        let Some(open) = self.files.lock().remove(&fh.0) else {
            return;
        };
        self.release_io(&open.io);
        if let Ok(st) = rustix::fs::fstat(&open.file) {
            if is_reg(&st) {
                let ev = ReleaseEvent {
                    path: &open.path,
                    opened_for_write: open.flags & libc::O_ACCMODE != libc::O_RDONLY,
                    flags: open.flags,
                    stat: &st,
                    fs: &open.fs,
                    open_id: fh.0,
                    file: &open.file,
                };
                self.options.hooks.on_release(&ev);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr_inner(
        &self,
        id: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> io::Result<Stat> {
        let open = fh.and_then(|fh| self.files.lock().get(&fh.0).cloned());
        let fd = self.node_fd(id)?;
        let st = sysfd::stat_fd(fd.as_fd())?;
        let symlink = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                &*fd,
                "",
                uid.map(rustix::process::Uid::from_raw),
                gid.map(rustix::process::Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if let Some(mode) = mode {
            if symlink {
                return Err(err(libc::EOPNOTSUPP));
            }
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match &open {
                Some(o) => rustix::fs::fchmod(&o.file, mode)?,
                None => rustix::fs::chmod(proc_fd_path(fd.as_fd()), mode)?,
            }
        }
        if let Some(size) = size {
            match &open {
                Some(o) if o.flags & libc::O_ACCMODE != libc::O_RDONLY => o.file.set_len(size)?,
                _ => reopen(fd.as_fd(), OFlags::WRONLY)?.set_len(size)?,
            }
        }
        if atime.is_some() || mtime.is_some() {
            let times = rustix::fs::Timestamps {
                last_access: timestamp(atime),
                last_modification: timestamp(mtime),
            };
            if symlink {
                let (parent, name) = {
                    let t = self.inodes.lock();
                    let n = t.nodes.get(&id).ok_or_else(|| err(libc::ESTALE))?;
                    (n.parent, n.name.clone())
                };
                let pfd = self.node_fd(parent)?;
                rustix::fs::utimensat(&*pfd, &*name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            } else {
                rustix::fs::utimensat(
                    rustix::fs::CWD,
                    proc_fd_path(fd.as_fd()),
                    &times,
                    AtFlags::empty(),
                )?;
            }
        }
        let after = sysfd::stat_fd(fd.as_fd())?;
        if size.is_none() {
            self.metadata_changed(&st, Some(after));
        }
        Ok(after)
    }

    fn rename_inner(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> io::Result<()> {
        if !is_plain_name(name) || !is_plain_name(newname) {
            return Err(err(libc::EINVAL));
        }
        let pfd = self.node_fd(parent)?;
        let npfd = self.node_fd(newparent)?;
        let src = sysfd::stat_beneath(pfd.as_fd(), name)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let dst = sysfd::stat_beneath(npfd.as_fd(), newname).ok();
        if !exchange && dst.is_some() {
            self.pin_victim(newparent, &npfd, newname);
        }
        rustix::fs::renameat_with(
            &*pfd,
            name,
            &*npfd,
            newname,
            rustix::fs::RenameFlags::from_bits_retain(flags.bits()),
        )?;
        self.metadata_changed(&src, sysfd::stat_beneath(npfd.as_fd(), newname).ok());
        if let (true, Some(d)) = (exchange, &dst) {
            self.metadata_changed(d, sysfd::stat_beneath(pfd.as_fd(), name).ok());
        }
        let mut t = self.inodes.lock();
        let src_id = t.id_of(src.st_dev, src.st_ino);
        let dst_id = dst.and_then(|d| t.id_of(d.st_dev, d.st_ino));
        if let Some(id) = src_id {
            t.rename(id, newparent, newname);
        }
        if exchange {
            if let Some(id) = dst_id {
                t.rename(id, parent, name);
            }
        }
        Ok(())
    }

    /// Tell the hooks that an operation changed only the metadata of the regular file whose
    /// attributes were `before` (and are now `after`, when it could be seen again).
    fn metadata_changed(&self, before: &Stat, after: Option<Stat>) {
        if let Some(after) =
            after.filter(|a| is_reg(a) && (a.st_dev, a.st_ino) == (before.st_dev, before.st_ino))
        {
            self.options.hooks.on_metadata_changed(before, &after);
        }
    }

    fn remove_inner(&self, parent: u64, name: &[u8], dir: bool) -> io::Result<()> {
        if !is_plain_name(name) {
            return Err(err(libc::EINVAL));
        }
        let pfd = self.node_fd(parent)?;
        self.pin_victim(parent, &pfd, name);
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&*pfd, name, flags)?;
        Ok(())
    }

    /// A fresh stream of directory `node`. OPENDIR is answered ENOSYS (see `opendir`), so
    /// each READDIR opens the lower directory and seeks to the kernel's offset: the lower
    /// file system's directory offsets (`d_off`, as `telldir` gives them) stay valid across
    /// opens.
    fn open_dir(&self, node: u64) -> io::Result<OpenDir> {
        let fd = self.node_fd(node)?;
        let dirfd = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(OpenDir {
            node,
            stream: rustix::fs::Dir::new(dirfd)?,
        })
    }

    fn readdir_inner(
        &self,
        dir: &mut OpenDir,
        offset: u64,
        mut add: impl FnMut(&rustix::fs::DirEntry, &[u8], u64) -> bool,
    ) -> io::Result<()> {
        // A fresh stream starts at 0.
        if offset != 0 {
            dir.stream.seek(offset as i64)?;
        }
        let mut first = true;
        while let Some(entry) = dir.stream.read() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if first => return Err(e.into()),
                Err(_) => break,
            };
            first = false;
            let name = entry.file_name().to_bytes();
            let next = entry.offset() as u64;
            if add(&entry, name, next) {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn dirent_kind(t: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as T;
    match t {
        T::Directory => FileType::Directory,
        T::Symlink => FileType::Symlink,
        T::Fifo => FileType::NamedPipe,
        T::CharacterDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        T::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn name_bytes(name: &OsStr) -> &[u8] {
    name.as_bytes()
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let fs = &self.0;
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            let _ = config.add_capabilities(cap);
        }
        // RELEASE is a background request (file.c: fuse_file_put): past `max_background`
        // (12 by default) the kernel holds it in its background queue, unnumbered and unseen,
        // while the closing process's next OPEN goes ahead, and IMA would see a closed file
        // as open. As many as the kernel allows (an unprivileged mount is capped at the fuse
        // module's max_user_bgreq, inode.c: process_init_limits), so a close's RELEASE is
        // queued, in order, before close(2) returns.
        let _ = config.set_max_background(u16::MAX);
        if fs.options.passthrough && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() {
            // Backing files on a stacked fs (overlayfs) need depth 2; otherwise 1 keeps this
            // mount usable as an overlayfs layer.
            let depth = if fs.lower_magic == OVERLAYFS_SUPER_MAGIC {
                2
            } else {
                1
            };
            if config.set_max_stack_depth(depth).is_ok() {
                fs.passthrough.store(true, Ordering::Relaxed);
            }
        }
        log::info!(
            "overlay: kernel FUSE {:?}, passthrough {}",
            config.kernel_abi(),
            fs.passthrough_active()
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = &self.0;
        match fs.lookup_child(parent.0, name_bytes(name)) {
            // A name that is not there is cached as such for the entry timeout (a zero node
            // id with a timeout; dir.c: fuse_lookup_name, fuse_lookup), as it would be for a
            // name that is: programs probe many absent names (git: MERGE_HEAD, packed-refs,
            // ...). A create, mkdir or rename through the mount replaces it; O_EXCL, rename
            // targets and expiry look up afresh (fuse_dentry_revalidate).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !fs.options.entry_ttl.is_zero() => {
                reply.entry_with_ttls(
                    &Duration::ZERO,
                    &fs.options.entry_ttl,
                    &absent_attr(),
                    Generation(0),
                )
            }
            r => fs.entry_reply(reply, r),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.0.inodes.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = match fh.and_then(|fh| self.0.files.lock().get(&fh.0).cloned()) {
            Some(open) => rustix::fs::fstat(&open.file).map_err(io::Error::from),
            None => self.0.node_stat(ino.0),
        };
        match st {
            Ok(st) => reply.attr(&self.0.options.attr_ttl, &self.0.kernel_attr(ino.0, &st)),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self
            .0
            .setattr_inner(ino.0, mode, uid, gid, size, atime, mtime, fh)
        {
            Ok(st) => {
                if (mode.is_some() || uid.is_some() || gid.is_some()) && is_reg(&st) {
                    if let Ok(fd) = self.0.node_fd(ino.0) {
                        let path = self.0.inodes.lock().path(ino.0);
                        let ev = attr_event(_req, &path, &st, fd.as_fd());
                        self.0.options.hooks.on_attr_changed(&ev);
                    }
                }
                reply.attr(&self.0.options.attr_ttl, &self.0.kernel_attr(ino.0, &st))
            }
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self
            .0
            .node_fd(ino.0)
            .and_then(|fd| Ok(rustix::fs::readlinkat(&*fd, "", Vec::new())?));
        match r {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = name_bytes(name);
        let r = (|| {
            if !is_plain_name(name) {
                return Err(err(libc::EINVAL));
            }
            let pfd = self.0.node_fd(parent.0)?;
            rustix::fs::mknodat(
                &*pfd,
                name,
                rustix::fs::FileType::from_raw_mode(mode),
                Mode::from_raw_mode(mode & 0o7777),
                u64::from(rdev),
            )?;
            self.0.finish_new(req, parent.0, &pfd, name, mode)
        })();
        self.0.entry_reply(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name_bytes(name);
        let r = (|| {
            if !is_plain_name(name) {
                return Err(err(libc::EINVAL));
            }
            let pfd = self.0.node_fd(parent.0)?;
            rustix::fs::mkdirat(&*pfd, name, Mode::from_raw_mode(mode & 0o7777))?;
            self.0.finish_new(req, parent.0, &pfd, name, mode)
        })();
        self.0.entry_reply(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.0.remove_inner(parent.0, name_bytes(name), false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.0.remove_inner(parent.0, name_bytes(name), true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let name = name_bytes(link_name);
        let r = (|| {
            if !is_plain_name(name) {
                return Err(err(libc::EINVAL));
            }
            let pfd = self.0.node_fd(parent.0)?;
            rustix::fs::symlinkat(target, &*pfd, name)?;
            self.0.finish_new(req, parent.0, &pfd, name, 0o777)
        })();
        self.0.entry_reply(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.0.rename_inner(
            parent.0,
            name_bytes(name),
            newparent.0,
            name_bytes(newname),
            flags,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = name_bytes(newname);
        let r = (|| {
            if !is_plain_name(name) {
                return Err(err(libc::EINVAL));
            }
            let fd = self.0.node_fd(ino.0)?;
            let npfd = self.0.node_fd(newparent.0)?;
            let before = sysfd::stat_fd(fd.as_fd())?;
            // Through /proc/self/fd (AT_SYMLINK_FOLLOW follows only that magic link): linking an
            // O_PATH descriptor with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_fd_path(fd.as_fd()),
                &*npfd,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )?;
            self.0
                .metadata_changed(&before, sysfd::stat_fd(fd.as_fd()).ok());
            self.0.lookup_child(newparent.0, name)
        })();
        self.0.entry_reply(reply, r);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = &self.0;
        match fs.open_file(req, ino.0, flags.0, false, None) {
            Ok((fh, open, st)) => {
                let io = fs.open_io(ino.0, &st, flags.0, &open.file, |fd| reply.open_backing(fd));
                let fopen = io.fopen_flags();
                match io.backing.clone() {
                    Some(b) => {
                        fs.install(fh, open, io);
                        reply.opened_passthrough(FileHandle(fh), fopen, &b);
                    }
                    None => {
                        fs.install(fh, open, io);
                        reply.opened(FileHandle(fh), fopen);
                    }
                }
            }
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let open = match self.0.file(fh) {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        // A short reply means end of file to the kernel: fill the buffer unless at EOF.
        match read_full_at(&open.file, &mut buf, offset) {
            Ok(done) => reply.data(&buf[..done]),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let open = match self.0.file(fh) {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        match open.file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    // Opens are answered with FOPEN_NOFLUSH (nothing to do on close(): locks are the
    // kernel's, data is written synchronously), so this only runs for older kernels.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.release_file(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let open = match self.0.file(fh) {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        let r = if datasync {
            open.file.sync_data()
        } else {
            open.file.sync_all()
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    /// Directories are not opened: ENOSYS makes the kernel stop sending OPENDIR and
    /// RELEASEDIR for this mount and open directories itself, with FOPEN_KEEP_CACHE |
    /// FOPEN_CACHE_DIR (file.c: fuse_file_open, `no_opendir`). Two requests fewer per
    /// directory opened (`git status` opens every directory of the work tree), and the
    /// listing stays in the kernel's cache: changes made through this mount invalidate it,
    /// and a changed mtime seen on a revalidation (a change made on the lower side) drops it
    /// (readdir.c: fuse_readdir_cached). IMA has no hook on a directory open
    /// (ima_main.c: process_measurement measures regular files only).
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(FuseErrno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut dir = match self.0.open_dir(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(errno_of(&e)),
        };
        let parent = self
            .0
            .inodes
            .lock()
            .nodes
            .get(&ino.0)
            .map(|n| n.parent)
            .unwrap_or(ROOT);
        let node = dir.node;
        let r = self.0.readdir_inner(&mut dir, offset, |entry, name, next| {
            let id = match name {
                b"." => node,
                b".." => parent,
                _ => entry.ino(),
            };
            reply.add(
                INodeNo(id),
                next,
                dirent_kind(entry.file_type()),
                OsStr::from_bytes(name),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let fs = &self.0;
        let mut dir = match fs.open_dir(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(errno_of(&e)),
        };
        let dir_fd = match fs.node_fd(ino.0) {
            Ok(fd) => fd,
            Err(e) => return reply.error(errno_of(&e)),
        };
        let ttl = fs.options.attr_ttl;
        let node = dir.node;
        let r = fs.readdir_inner(&mut dir, offset, |_entry, name, next| {
            if name == b"." || name == b".." {
                // The kernel does not link dot entries; attributes are not needed.
                let st = match sysfd::stat_fd(dir_fd.as_fd()) {
                    Ok(st) => st,
                    Err(_) => return false,
                };
                return reply.add(
                    INodeNo(node),
                    next,
                    OsStr::from_bytes(name),
                    &ttl,
                    &attr_of(node, &st),
                    Generation(0),
                );
            }
            let Ok(st) = sysfd::stat_beneath(dir_fd.as_fd(), name) else {
                return false; // vanished meanwhile: skip it
            };
            let id = fs.inodes.lock().register(ino.0, name, st.st_dev, st.st_ino);
            let full = reply.add(
                INodeNo(id),
                next,
                OsStr::from_bytes(name),
                &ttl,
                &attr_of(id, &st),
                Generation(0),
            );
            if full {
                // Not sent: the kernel will not count this lookup.
                fs.inodes.lock().forget(id, 1);
            } else {
                fs.note_kernel_attrs(id, &st);
            }
            full
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.0.open_dir(ino.0).and_then(|dir| {
            let fd = dir.stream.fd()?;
            if datasync {
                rustix::fs::fdatasync(fd)?;
            } else {
                rustix::fs::fsync(fd)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let r = self
            .0
            .node_fd(ino.0)
            .and_then(|fd| Ok(rustix::fs::fstatvfs(&*fd)?));
        match r {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = self.0.node_fd(ino.0).and_then(|fd| {
            let name = self.0.lower_xattr_name(name.as_bytes());
            self.0
                .ima_xattr_write(req, ino.0, fd.as_fd(), name, Some(value), || {
                    xattr::set_path_fd(fd.as_fd(), name, value, flags)
                })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = self.0.node_fd(ino.0).and_then(|fd| {
            let name = self.0.lower_xattr_name(name.as_bytes());
            xattr::get_path_fd(fd.as_fd(), name, size as usize)
        });
        match r {
            Ok((_, n)) if size == 0 => reply.size(n as u32),
            Ok((data, _)) => reply.data(&data),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self.0.node_fd(ino.0).and_then(|fd| {
            if self.0.options.ima_xattr == SECURITY_IMA {
                return xattr::list_path_fd(fd.as_fd(), size as usize);
            }
            // The mapped name is listed as `security.ima` too.
            let (mut names, _) = xattr::list_path_fd(fd.as_fd(), XATTR_LIST_MAX)?;
            let stored = self.0.options.ima_xattr.as_bytes();
            let has = |n: &[u8]| names.split(|b| *b == 0).any(|x| x == n);
            if has(stored) && !has(SECURITY_IMA.as_bytes()) {
                names.extend_from_slice(SECURITY_IMA.as_bytes());
                names.push(0);
            }
            let n = names.len();
            if size != 0 && (size as usize) < n {
                return Err(err(libc::ERANGE));
            }
            Ok((names, n))
        });
        match r {
            Ok((_, n)) if size == 0 => reply.size(n as u32),
            Ok((data, _)) => reply.data(&data),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.0.node_fd(ino.0).and_then(|fd| {
            let name = self.0.lower_xattr_name(name.as_bytes());
            self.0
                .ima_xattr_write(req, ino.0, fd.as_fd(), name, None, || {
                    xattr::remove_path_fd(fd.as_fd(), name)
                })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // Reached only without default_permissions: check as the daemon.
        let r = self.0.node_fd(ino.0).and_then(|fd| {
            let st = sysfd::stat_fd(fd.as_fd())?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Ok(());
            }
            Ok(rustix::fs::accessat(
                rustix::fs::CWD,
                proc_fd_path(fd.as_fd()),
                rustix::fs::Access::from_bits_retain(mask.bits() as u32),
                AtFlags::EACCESS,
            )?)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = &self.0;
        let name = name_bytes(name);
        let r = (|| {
            if !is_plain_name(name) {
                return Err(err(libc::EINVAL));
            }
            let pfd = fs.node_fd(parent.0)?;
            let base = flags
                & !(FMODE_EXEC | libc::O_NOCTTY | libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL);
            let mode_bits = Mode::from_raw_mode(mode & 0o7777);
            // Create exclusively so that only a file made by this request is handed to the
            // caller; a name that appeared meanwhile is opened as it is (unless O_EXCL).
            let (fd, created) = match open_beneath(
                pfd.as_fd(),
                name,
                OFlags::from_bits_retain((base | libc::O_CREAT | libc::O_EXCL) as u32),
                mode_bits,
            ) {
                Ok(fd) => (fd, true),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
                    let fd = open_beneath(
                        pfd.as_fd(),
                        name,
                        OFlags::from_bits_retain(base as u32),
                        Mode::empty(),
                    )?;
                    (fd, false)
                }
                Err(e) => return Err(e),
            };
            let file = File::from(fd);
            let st = rustix::fs::fstat(&file)?;
            if created {
                let opath = open_path_beneath(pfd.as_fd(), name)?;
                fs.give_to_caller(req, &opath, &pfd)?;
                if mode & fs.umask & 0o7777 != 0 {
                    rustix::fs::fchmod(&file, mode_bits)?;
                }
            }
            let id = {
                let mut t = fs.inodes.lock();
                t.register(parent.0, name, st.st_dev, st.st_ino)
            };
            match fs.open_file(req, id, flags, created, Some(file)) {
                Ok((fh, open, st)) => Ok((id, st, fh, open)),
                Err(e) => {
                    fs.inodes.lock().forget(id, 1);
                    Err(e)
                }
            }
        })();
        match r {
            Ok((id, st, fh, open)) => {
                // The reply carries these attributes: recorded before the open decides.
                let attr = fs.kernel_attr(id, &st);
                let ttl = fs.options.attr_ttl;
                let io = fs.open_io(id, &st, flags, &open.file, |fd| reply.open_backing(fd));
                let fopen = io.fopen_flags();
                match io.backing.clone() {
                    Some(b) => {
                        fs.install(fh, open, io);
                        reply.created_passthrough(
                            &ttl,
                            &attr,
                            Generation(0),
                            FileHandle(fh),
                            fopen,
                            &b,
                        );
                    }
                    None => {
                        fs.install(fh, open, io);
                        reply.created(&ttl, &attr, Generation(0), FileHandle(fh), fopen);
                    }
                }
            }
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Not a terminal, and no file-system specific ioctls (isatty() asks on every stdio
        // setup, so answer quietly).
        reply.error(FuseErrno::from_i32(libc::ENOTTY));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let open = match self.0.file(fh) {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        let r = rustix::fs::fallocate(
            &open.file,
            rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
            offset,
            length,
        );
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(FuseErrno::from_i32(e.raw_os_error())),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let open = match self.0.file(fh) {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        let pos = match whence {
            libc::SEEK_DATA => rustix::fs::SeekFrom::Data(offset as u64),
            libc::SEEK_HOLE => rustix::fs::SeekFrom::Hole(offset as u64),
            libc::SEEK_SET => rustix::fs::SeekFrom::Start(offset as u64),
            libc::SEEK_END => rustix::fs::SeekFrom::End(offset),
            _ => return reply.error(FuseErrno::EINVAL),
        };
        match rustix::fs::seek(&open.file, pos) {
            Ok(off) => reply.offset(off as i64),
            Err(e) => reply.error(FuseErrno::from_i32(e.raw_os_error())),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (src, dst) = match (self.0.file(fh_in), self.0.file(fh_out)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let mut off_in = offset_in;
        let mut off_out = offset_out;
        let len = len.min(u64::from(u32::MAX) & !0xfff) as usize;
        match rustix::fs::copy_file_range(
            &src.file,
            Some(&mut off_in),
            &dst.file,
            Some(&mut off_out),
            len,
        ) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(FuseErrno::from_i32(e.raw_os_error())),
        }
    }
}

/// The container's name of the IMA xattr.
const SECURITY_IMA: &str = "security.ima";

/// The kernel's limit on the size of an xattr name list.
const XATTR_LIST_MAX: usize = 65536;

fn attr_event<'a>(
    req: &Request,
    path: &'a [u8],
    stat: &'a Stat,
    fd: BorrowedFd<'a>,
) -> AttrEvent<'a> {
    AttrEvent {
        path,
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
        stat,
        fd,
    }
}
