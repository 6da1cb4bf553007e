//! The glue between the measuring overlay and the IMA engine: each open of a lower file
//! becomes the engine's file hook events (security/integrity/ima/ima_main.c: ima_file_check,
//! ima_bprm_check), each release a `file_closed`.
//!
//! Ids are those of the FUSE connection's user namespace, which is the container's: the
//! daemon of `imafs run` lives in the container's user namespace, so `/proc/<pid>/status`
//! and `fstat` show the ids as the container sees them (the container's root is 0).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use rustix::fs::Stat;

use parking_lot::Mutex;

use crate::engine::audit::AuditTask;
use crate::engine::ima::{AppraiseMode, FileEvent, Ima, LazyXattr, XattrSource};
use crate::engine::measure::{FileId, FileVersion};
use crate::engine::policy::{Actions, Func, MatchInput, Object, MAY_EXEC};
use crate::engine::Errno;
use crate::fs::caller::{open_mask, opened_for_write, Caller, LazyCaller, OpenInfo, CAP_SYS_ADMIN};
use crate::fs::nest::{ChildDaemons, ParentLink};
use crate::fs::overlay::lowerfs::LowerFsCache;
use crate::fs::overlay::{
    read_ima_xattr, AttrEvent, EarlierReleases, LowerFs, OpenEvent, OverlayHooks, ReleaseEvent,
};
use rustix::fs::FileType;
use std::os::unix::ffi::OsStrExt;

use crate::fs::elf::{self, ExecFormat};

/// The set of open ids whose events were not ours (a child daemon's own opens).
#[derive(Default)]
pub struct SkippedOpens(Mutex<HashSet<u64>>);

impl SkippedOpens {
    pub fn insert(&self, open_id: u64) {
        self.0.lock().insert(open_id);
    }
    pub fn take(&self, open_id: u64) -> bool {
        self.0.lock().remove(&open_id)
    }
}

/// Calls the engine for the overlay's opens and releases.
pub struct ImaHooks {
    ima: Arc<Ima>,
    lower_fs: LowerFsCache,
    /// The xattr holding IMA data (`security.ima`; the overlay's `ima_xattr` option).
    ima_xattr: String,
    /// The parent namespace, when this daemon is a nested one (see [`crate::fs::nest`]).
    parent: Option<Arc<ParentLink>>,
    /// Opens forwarded to the parent: overlay open id -> the parent's token.
    forwarded: Mutex<HashMap<u64, u64>>,
    /// Registered child daemons, whose own opens are not this namespace's events.
    children: Arc<ChildDaemons>,
    /// Open ids of such opens (their releases are not events either).
    skipped: SkippedOpens,
    /// Per task: the ELF interpreter its exec in progress will open.
    exec_stages: Mutex<HashMap<u32, ExecStage>>,
    /// The container's `/` as the daemon reads it, where `PT_INTERP` paths resolve.
    lower_root: Option<std::os::fd::OwnedFd>,
}

/// What an exec in progress announced: its ELF interpreter (and when).
struct ExecStage {
    interp: FileId,
    at: std::time::Instant,
}

/// How long an exec's announcement of its interpreter holds (an exec that failed between
/// the two opens leaves one behind; a new exec by the task replaces it).
const EXEC_STAGE_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// From this many announcements on, stale ones are dropped before a new one is added.
const EXEC_STAGES_TIDY: usize = 256;

/// The hooks of an ELF program's exec open (see [`ImaHooks::exec_hooks`]).
const MAPPED_PROGRAM: [(Func, u32); 4] = [
    (Func::FileCheck, MAY_EXEC),
    (Func::BprmCheck, MAY_EXEC),
    (Func::MmapCheckReqprot, MAY_EXEC),
    (Func::MmapCheck, MAY_EXEC),
];
/// The hooks of an ELF interpreter's open by `load_elf_binary`.
const MAPPED_INTERP: [(Func, u32); 3] = [
    (Func::FileCheck, MAY_EXEC),
    (Func::MmapCheckReqprot, MAY_EXEC),
    (Func::MmapCheck, MAY_EXEC),
];

/// One access of a file, as the hooks need it.
struct Access<'a> {
    pid: u32,
    caller: &'a LazyCaller,
    meta: &'a Stat,
    fs: &'a LowerFs,
    path: &'a [u8],
    opened_for_write: bool,
    created: bool,
    /// For an executable mapping: whether the file is mapped writable and shared somewhere
    /// (`mmap_violation_check`).
    writably_mapped: Option<&'a dyn Fn() -> bool>,
}

/// A mapping (or exec) a container's task asked for, seen by the seccomp listener.
pub struct Mapping<'a> {
    pub pid: u32,
    pub caller: &'a LazyCaller,
    /// The file as the container names it.
    pub path: &'a [u8],
    /// The task's descriptor was opened for write (FMODE_WRITE).
    pub opened_for_write: bool,
    /// The file's device and inode numbers as tasks see them (`/proc/<pid>/maps`).
    pub mapped_as: (u64, u64),
}

impl ImaHooks {
    pub fn new(ima: Arc<Ima>) -> ImaHooks {
        ImaHooks {
            ima,
            lower_fs: LowerFsCache::default(),
            ima_xattr: "security.ima".to_owned(),
            parent: None,
            forwarded: Mutex::new(HashMap::new()),
            children: Arc::new(ChildDaemons::default()),
            skipped: SkippedOpens::default(),
            exec_stages: Mutex::new(HashMap::new()),
            lower_root: None,
        }
    }

    /// Forward every open of the parent's files to the parent namespace too.
    pub fn with_parent(mut self, parent: Arc<ParentLink>) -> ImaHooks {
        self.parent = Some(parent);
        self
    }

    /// The parent namespace's link, for a nested daemon.
    pub fn parent(&self) -> Option<&Arc<ParentLink>> {
        self.parent.as_ref()
    }

    /// The registered child daemons (shared with [`crate::fs::nest::NestHost`]).
    pub fn child_daemons(&self) -> &Arc<ChildDaemons> {
        &self.children
    }

    /// Read IMA data from `name` instead of `security.ima` (as the overlay's `ima_xattr`).
    pub fn with_ima_xattr(mut self, name: &str) -> ImaHooks {
        self.ima_xattr = name.to_owned();
        self
    }

    pub fn ima(&self) -> &Arc<Ima> {
        &self.ima
    }

    /// Run the hooks of one open of `file` (the daemon's descriptor of the lower file). An
    /// `Err` refuses the open (appraisal); the engine then counts it as released already.
    /// Not forwarded to a parent namespace (fixture replays use it).
    pub fn open(&self, info: &OpenInfo<'_>, file: &File) -> Result<(), Errno> {
        let caller = LazyCaller::new(info.pid, info.uid, info.gid);
        // Replayed in order, one at a time: no release can be pending.
        self.open_own(info, &caller, file, None, &|| false)
            .map(|_| ())
    }

    /// [`ImaHooks::open`] for `caller`, then the same open in the parent namespace when the
    /// file is one of the parent's: `Ok(Some(token))` names the parent's open, to release
    /// with [`ImaHooks::release_forwarded`] or the overlay's release. A refusal by the
    /// parent undoes this namespace's registration of the open.
    ///
    /// `overlay`: what the overlay knows of the open, when it comes from the overlay;
    /// `releases`: what the open knows of the releases queued before it.
    pub fn open_as(
        &self,
        info: &OpenInfo<'_>,
        caller: &LazyCaller,
        file: &File,
        overlay: Option<&OverlayOpen<'_>>,
        releases: EarlierReleases<'_>,
    ) -> Result<Option<u64>, Errno> {
        let Some(meta) = self.open_own(info, caller, file, overlay, releases)? else {
            return Ok(None);
        };
        let Some(parent) = self.parent.as_ref().filter(|p| p.covers(meta.st_dev)) else {
            return Ok(None);
        };
        match parent.forward_open(meta.st_ino, info, caller.get()) {
            Ok(token) => Ok(Some(token)),
            Err(e) => {
                self.ima.file_closed(
                    file_id(&meta),
                    opened_for_write(info.flags),
                    file_version(&meta),
                );
                Err(e)
            }
        }
    }

    /// The release of an open a child forwarded (`meta`: the file now), and of its own
    /// forward to this namespace's parent.
    pub fn release_forwarded(&self, meta: &Stat, for_write: bool, upward: Option<u64>) {
        if is_regular(meta) {
            self.ima
                .file_closed(file_id(meta), for_write, file_version(meta));
        }
        if let (Some(parent), Some(token)) = (&self.parent, upward) {
            parent.forward_release(token);
        }
    }

    /// This namespace's hooks of one open; the file's metadata when it is a regular file
    /// (the open is then registered with the engine).
    fn open_own(
        &self,
        info: &OpenInfo<'_>,
        caller: &LazyCaller,
        file: &File,
        overlay: Option<&OverlayOpen<'_>>,
        releases: EarlierReleases<'_>,
    ) -> Result<Option<Stat>, Errno> {
        let meta = match overlay {
            Some(o) => *o.stat,
            None => rustix::fs::fstat(file).map_err(|e| Errno(e.raw_os_error()))?,
        };
        // Only regular files are ever processed for file hooks.
        if !is_regular(&meta) {
            return Ok(None);
        }
        let readable;
        let file = if info.flags & libc::O_ACCMODE == libc::O_WRONLY {
            // The engine hashes through a readable descriptor.
            readable = reopen_read_only(file);
            readable.as_ref().unwrap_or(file)
        } else {
            file
        };
        let described;
        let fs = match overlay {
            Some(o) => o.fs,
            None => {
                described = self.lower_fs.get(file.as_fd(), meta.st_dev);
                &*described
            }
        };
        self.settle_pending_releases(file_id(&meta), opened_for_write(info.flags), releases);
        let hooks = if info.exec {
            self.exec_hooks(info.pid, file, &meta)
        } else {
            open_hooks(info.flags, false)
        };
        let access = Access {
            pid: info.pid,
            caller,
            meta: &meta,
            fs,
            path: info.path,
            opened_for_write: opened_for_write(info.flags),
            created: info.created,
            writably_mapped: None,
        };
        self.run_hooks(&hooks, &access, file)?;
        Ok(Some(meta))
    }

    /// The engine's hooks `hooks`, in order, for one access; a FILE_CHECK among them
    /// registers an open, released again when a later hook refuses.
    fn run_hooks(&self, hooks: &[(Func, u32)], a: &Access<'_>, file: &File) -> Result<(), Errno> {
        // Read only if a hook needs it; an unreadable xattr is treated as absent (appraisal
        // then fails as without one).
        let read_xattr = || read_ima_xattr(file, &self.ima_xattr).ok().flatten();
        let ima_xattr = LazyXattr::new(&read_xattr);
        let mut registered_open = false;
        for &(func, mask) in hooks {
            let ev = FileEvent {
                func,
                mask,
                task: a.caller,
                pid: a.pid,
                id: file_id(a.meta),
                version: file_version(a.meta),
                owner: a.meta.st_uid,
                group: a.meta.st_gid,
                mode: a.meta.st_mode,
                fsmagic: a.fs.magic,
                fsname: &a.fs.name,
                fs_id: &a.fs.s_id,
                fsuuid: a.fs.uuid,
                path: a.path,
                ima_xattr: XattrSource::Lazy(&ima_xattr),
                opened_for_write: a.opened_for_write,
                created: a.created,
            };
            let outcome =
                self.ima
                    .process_file_with(&ev, file)
                    .and_then(|outcome| match a.writably_mapped {
                        Some(mapped) => {
                            self.ima.mmap_violation_check(&ev, mapped).map(|()| outcome)
                        }
                        None => Ok(outcome),
                    });
            match outcome {
                Ok(outcome) => {
                    // Fix mode repaired the hash (`ima_fix_xattr`).
                    if let Some(value) = outcome.set_ima_xattr {
                        self.write_ima_xattr(file, &value, a.path);
                    }
                }
                Err(e) => {
                    // A failed FILE_CHECK was released by the engine; a later hook's failure
                    // must release the open the FILE_CHECK registered.
                    if registered_open {
                        self.ima.file_closed(ev.id, ev.opened_for_write, ev.version);
                    }
                    return Err(e);
                }
            }
            registered_open |= func == Func::FileCheck;
        }
        Ok(())
    }

    /// The hooks of an exec open by task `pid` (fs/exec.c: `do_open_execat`, then
    /// `bprm_execve`): the ELF interpreter that task's exec announced is FILE_CHECK and
    /// MMAP_CHECK (`load_elf_binary` opens it with `open_exec` and maps it; it is never the
    /// bprm file); anything else is the program (or a `#!` script's interpreter, a new bprm
    /// file): FILE_CHECK, BPRM_CHECK, and for an ELF program the kernel's mapping of it
    /// (MMAP_CHECK_REQPROT, MMAP_CHECK: `elf_map` → `vm_mmap` → `security_mmap_file`).
    fn exec_hooks(&self, pid: u32, file: &File, meta: &Stat) -> Vec<(Func, u32)> {
        let expected = self.exec_stages.lock().remove(&pid);
        if expected.is_some_and(|e| e.interp == file_id(meta) && e.at.elapsed() < EXEC_STAGE_MAX) {
            return MAPPED_INTERP.to_vec();
        }
        match elf::probe(file) {
            ExecFormat::Elf { interp } => {
                if let Some(id) = interp.and_then(|p| self.resolve_in_root(&p)) {
                    let mut stages = self.exec_stages.lock();
                    // Execs that failed between the two opens leave theirs behind.
                    if stages.len() >= EXEC_STAGES_TIDY {
                        stages.retain(|_, s| s.at.elapsed() < EXEC_STAGE_MAX);
                    }
                    stages.insert(
                        pid,
                        ExecStage {
                            interp: id,
                            at: std::time::Instant::now(),
                        },
                    );
                }
                MAPPED_PROGRAM.to_vec()
            }
            ExecFormat::Script | ExecFormat::Other => open_hooks(0, true),
        }
    }

    /// A new exec by task `pid` begins (its `execve` reached the seccomp listener): what its
    /// last exec announced is stale.
    pub fn exec_started(&self, pid: u32) {
        self.exec_stages.lock().remove(&pid);
    }

    /// The identity of `path` (absolute, as a `PT_INTERP`) in the container's root.
    fn resolve_in_root(&self, path: &[u8]) -> Option<FileId> {
        let file = self.openat_in_root(path, rustix::fs::OFlags::PATH)?;
        rustix::fs::fstat(&file).ok().map(|st| file_id(&st))
    }

    /// The lower file at `path` of the container (absolute), read-only, resolved in the
    /// container's root as the daemon reads it.
    pub fn open_in_root(&self, path: &[u8]) -> Option<File> {
        self.openat_in_root(path, rustix::fs::OFlags::RDONLY)
            .map(File::from)
    }

    fn openat_in_root(
        &self,
        path: &[u8],
        flags: rustix::fs::OFlags,
    ) -> Option<std::os::fd::OwnedFd> {
        rustix::fs::openat2(
            self.lower_root.as_ref()?,
            std::ffi::OsStr::from_bytes(path),
            flags | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::IN_ROOT,
        )
        .ok()
    }

    /// Resolve `PT_INTERP` paths in `root` (the container's `/` as the daemon reads it).
    pub fn with_lower_root(mut self, root: &std::path::Path) -> ImaHooks {
        self.lower_root = rustix::fs::open(
            root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok();
        self
    }

    /// A mapping of `file` with PROT_EXEC requested, so applied too (`ima_file_mmap`):
    /// MMAP_CHECK_REQPROT, then MMAP_CHECK. `file`: a readable descriptor of the file (the
    /// overlay's lower file for a file of the overlay); `path`: the file as the container
    /// names it.
    pub fn mapping(&self, m: &Mapping<'_>, file: &File) -> Result<(), Errno> {
        let hooks = [
            (Func::MmapCheckReqprot, MAY_EXEC),
            (Func::MmapCheck, MAY_EXEC),
        ];
        let mapped = |meta: &Stat| {
            // A writable shared mapping keeps its file open for write (the overlay sends
            // O_RDWR opens through the page cache): no writer, no such mapping.
            let writer = self
                .ima
                .cache()
                .find(file_id(meta))
                .is_some_and(|s| s.lock().writers() > 0);
            writer && writably_mapped(m.mapped_as)
        };
        self.task_file_hooks(m, file, Some(&mapped), |_| hooks.to_vec())
            .map(|_| ())
    }

    /// The hooks `hooks(meta)` for a file a task named (a regular file: its metadata).
    fn task_file_hooks(
        &self,
        m: &Mapping<'_>,
        file: &File,
        writably_mapped: Option<&dyn Fn(&Stat) -> bool>,
        hooks: impl FnOnce(&Stat) -> Vec<(Func, u32)>,
    ) -> Result<Option<Stat>, Errno> {
        let meta = rustix::fs::fstat(file).map_err(|e| Errno(e.raw_os_error()))?;
        if !is_regular(&meta) {
            return Ok(None);
        }
        let fs = self
            .lower_fs
            .get_seen_by(file.as_fd(), meta.st_dev, &m.pid.to_string());
        let hooks = hooks(&meta);
        let mapped = writably_mapped.map(|f| move || f(&meta));
        let access = Access {
            pid: m.pid,
            caller: m.caller,
            meta: &meta,
            fs: &fs,
            path: m.path,
            opened_for_write: m.opened_for_write,
            created: false,
            writably_mapped: mapped.as_ref().map(|f| f as &dyn Fn() -> bool),
        };
        self.run_hooks(&hooks, &access, file)?;
        Ok(Some(meta))
    }

    /// `mprotect` making a mapping of `file` executable (`ima_file_mprotect`).
    pub fn mprotect(&self, m: &Mapping<'_>, file: &File) -> Result<(), Errno> {
        let meta = rustix::fs::fstat(file).map_err(|e| Errno(e.raw_os_error()))?;
        let fs = self
            .lower_fs
            .get_seen_by(file.as_fd(), meta.st_dev, &m.pid.to_string());
        let read_xattr = || None;
        let ima_xattr = LazyXattr::new(&read_xattr);
        let ev = FileEvent {
            func: Func::MmapCheck,
            mask: MAY_EXEC,
            task: m.caller,
            pid: m.pid,
            id: file_id(&meta),
            version: file_version(&meta),
            owner: meta.st_uid,
            group: meta.st_gid,
            mode: meta.st_mode,
            fsmagic: fs.magic,
            fsname: &fs.name,
            fs_id: &fs.s_id,
            fsuuid: fs.uuid,
            path: m.path,
            ima_xattr: XattrSource::Lazy(&ima_xattr),
            opened_for_write: m.opened_for_write,
            created: false,
        };
        self.ima.file_mprotect(&ev)
    }

    /// An exec of `file`, which is not on the overlay (a tmpfs, a memfd, a file system the
    /// container mounted): the program's hooks as at an exec open (`do_open_execat`,
    /// `bprm_execve`); the open is not kept (no release will come for it).
    pub fn exec_elsewhere(&self, m: &Mapping<'_>, file: &File) -> Result<(), Errno> {
        let program =
            self.task_file_hooks(m, file, None, |meta| self.exec_hooks(m.pid, file, meta))?;
        if let Some(meta) = program {
            self.ima
                .file_closed(file_id(&meta), false, file_version(&meta));
        }
        Ok(())
    }

    /// FUSE sends RELEASE after close(2) has returned, so a process that closes a file and
    /// opens it again may have its new open handled before the old one's release. The
    /// kernel would see the first file closed: an open that would otherwise conflict with an
    /// open already closed (a read while the file seems open for write: ToMToU; a write
    /// while it seems open for read: open_writers) waits for the releases queued before it.
    /// The kernel numbers and queues a close's RELEASE before `close(2)` returns (the daemon
    /// raises `max_background`, so none waits unnumbered in the kernel's background queue),
    /// and the workers note every request in the kernel's order, so the wait is exact: as
    /// long as a release numbered before this open is still being handled, or (io_uring)
    /// a request numbered before it has not been read from its CPU's queue yet (however
    /// long: a busy machine, a long rehash), at most [`RELEASE_SETTLE_MAX`]. A conflict still
    /// there is real, and recorded.
    fn settle_pending_releases(
        &self,
        id: FileId,
        for_write: bool,
        earlier_releases: EarlierReleases<'_>,
    ) {
        let Some(state) = self.ima.cache().find(id) else {
            return;
        };
        let conflicting = || {
            let s = state.lock();
            if for_write {
                s.readers() > 0 || s.writers() > 0
            } else {
                s.writers() > 0
            }
        };
        let start = std::time::Instant::now();
        while conflicting() {
            let waited = start.elapsed();
            if !earlier_releases() || waited >= RELEASE_SETTLE_MAX {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }

    /// Store an IMA xattr value the engine computed on the lower file (under the configured
    /// name). A failure leaves the file as it was: the kernel ignores `ima_fix_xattr` errors.
    fn write_ima_xattr(&self, file: &File, value: &[u8], path: &[u8]) {
        let r = rustix::fs::fsetxattr(
            file,
            self.ima_xattr.as_str(),
            value,
            rustix::fs::XattrFlags::empty(),
        );
        if let Err(e) = r {
            log::info!(
                "ima: cannot write {} of {}: {e}",
                self.ima_xattr,
                String::from_utf8_lossy(path)
            );
        }
    }

    /// The release of an open accepted by [`ImaHooks::open`]; `meta` is the file's state now.
    pub fn release(&self, meta: &Stat, flags: i32) {
        if is_regular(meta) {
            self.ima
                .file_closed(file_id(meta), opened_for_write(flags), file_version(meta));
        }
    }
}

/// Whether some task maps the file `(dev, ino)` (as `/proc/<pid>/maps` shows it) writable
/// and shared (the kernel's `mapping_writably_mapped`): a `rw?s` line of any process this
/// daemon can see.
fn writably_mapped((dev, ino): (u64, u64)) -> bool {
    let want_dev = format!(
        "{:02x}:{:02x}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("maps")).ok())
        .any(|maps| {
            maps.lines().any(|l| {
                let f: Vec<&str> = l.split_ascii_whitespace().take(5).collect();
                matches!(f[..], [_, perms, _, d, i]
                    if perms.as_bytes().get(1) == Some(&b'w')
                        && perms.as_bytes().get(3) == Some(&b's')
                        && d == want_dev
                        && i.parse() == Ok(ino))
            })
        })
}

/// How long an open waits at most while earlier releases are still being handled (see
/// [`ImaHooks::settle_pending_releases`]).
const RELEASE_SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// What the overlay knows of an open it reports: the file's attributes and file system as it
/// just read them.
pub struct OverlayOpen<'a> {
    pub stat: &'a Stat,
    pub fs: &'a LowerFs,
}

fn is_regular(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
}

/// The engine's identity of a lower file.
pub fn file_id(st: &Stat) -> FileId {
    FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// The version of a lower file's content (no change cookie: statx does not export it).
pub fn file_version(st: &Stat) -> FileVersion {
    FileVersion {
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
        change_cookie: None,
    }
}

/// A read-only descriptor of the same file (through `/proc/self/fd`), if permitted.
fn reopen_read_only(file: &File) -> Option<File> {
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// The hooks an open runs, in the kernel's order, with their masks: an open by execve is
/// FILE_CHECK(MAY_EXEC) for the open of the binary (fs/exec.c: do_open_execat), then
/// BPRM_CHECK(MAY_EXEC) (ima_main.c: ima_bprm_check); any other open is FILE_CHECK
/// (ima_main.c: ima_file_check) with the mask from the access mode, O_APPEND and O_TRUNC
/// (fs/open.c: build_open_flags).
pub fn open_hooks(flags: i32, exec: bool) -> Vec<(Func, u32)> {
    if exec {
        return vec![(Func::FileCheck, MAY_EXEC), (Func::BprmCheck, MAY_EXEC)];
    }
    vec![(Func::FileCheck, open_mask(flags))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::{MAY_APPEND, MAY_READ, MAY_WRITE};

    #[test]
    fn masks_follow_the_kernel_table() {
        assert_eq!(open_mask(libc::O_RDONLY), MAY_READ);
        assert_eq!(open_mask(libc::O_WRONLY), MAY_WRITE);
        assert_eq!(open_mask(libc::O_RDWR), MAY_READ | MAY_WRITE);
        assert_eq!(
            open_mask(libc::O_WRONLY | libc::O_APPEND),
            MAY_WRITE | MAY_APPEND
        );
        // O_TRUNC on a read-only open still asks for MAY_WRITE.
        assert_eq!(
            open_mask(libc::O_RDONLY | libc::O_TRUNC),
            MAY_READ | MAY_WRITE
        );
        assert_eq!(
            open_hooks(libc::O_RDONLY, true),
            vec![(Func::FileCheck, MAY_EXEC), (Func::BprmCheck, MAY_EXEC)]
        );
        assert_eq!(open_hooks(libc::O_RDWR, false), vec![(Func::FileCheck, 6)]);
        assert!(opened_for_write(libc::O_WRONLY));
        assert!(!opened_for_write(libc::O_RDONLY | libc::O_APPEND));
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::engine::ima::Config;
    use crate::engine::measurement_list::ViewKind;
    use sha2::Digest;
    use std::io::Write;

    /// `hooks.open_own` of an open with no release pending before it (no overlay).
    fn open_in_order(hooks: &ImaHooks, info: &OpenInfo<'_>, caller: &LazyCaller, file: &File) {
        hooks
            .open_own(info, caller, file, None, &|| false)
            .expect("open");
    }

    fn ascii_list(ima: &Ima) -> String {
        let list = ima.list();
        let bank = list
            .bank_index(crate::engine::hash::HashAlgo::Sha256)
            .expect("sha256");
        let mut buf = vec![0u8; list.view_len(ViewKind::Ascii, bank) as usize];
        let n = list.read(ViewKind::Ascii, bank, 0, &mut buf);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// A read-only open of `path` by this test process, as root.
    fn read_by_me(path: &'static [u8]) -> OpenInfo<'static> {
        OpenInfo {
            flags: libc::O_RDONLY,
            exec: false,
            created: false,
            pid: std::process::id(),
            uid: 0,
            gid: 0,
            path,
        }
    }

    /// A file with a reader and a writer open on it.
    fn read_and_written() -> (tempfile::NamedTempFile, File, File) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target");
        let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp");
        tmp.write_all(b"data\n").expect("write");
        let reader = File::open(tmp.path()).expect("open");
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .open(tmp.path())
            .expect("open");
        (tmp, reader, writer)
    }

    /// `/proc/<pid>/status` is read only when a rule tests the subject or a record names the
    /// task: here a ToMToU violation, whose audit record carries our own comm.
    #[test]
    fn caller_is_read_only_when_needed() {
        let (_tmp, reader, writer) = read_and_written();
        let me = std::process::id();
        let read = read_by_me(b"/data");
        let write = OpenInfo {
            flags: libc::O_WRONLY,
            ..read
        };
        let hooks_with = |policy: &str| {
            let ima = Arc::new(Ima::new(Config::default()).expect("engine"));
            ima.load_policy_text(policy, &|_| Ok(Vec::new()))
                .expect("policy");
            ImaHooks::new(ima)
        };

        let hooks = hooks_with("measure func=FILE_CHECK mask=MAY_READ\n");
        let caller = LazyCaller::new(me, 4242, 4242);
        open_in_order(&hooks, &read, &caller, &reader);
        assert!(
            !caller.was_read(),
            "no rule tests the subject, nothing to audit"
        );
        // Opening for read while a writer holds the file: ToMToU, audited with the comm.
        let writing = LazyCaller::new(me, 4242, 4242);
        open_in_order(&hooks, &write, &writing, &writer);
        let violating = LazyCaller::new(me, 4242, 4242);
        open_in_order(&hooks, &read, &violating, &reader);
        assert!(
            violating.was_read(),
            "the violation's record names the task"
        );
        let own_comm = Caller::of_task(me, 0, 0).comm;
        let records = hooks.ima().audit().recent();
        assert!(
            records
                .iter()
                .any(|r| r.body.contains("cause=ToMToU") && r.body.contains(&own_comm)),
            "{records:?}"
        );

        let hooks = hooks_with("measure func=FILE_CHECK uid=4242\n");
        let caller = LazyCaller::new(me, 4242, 4242);
        open_in_order(&hooks, &read, &caller, &reader);
        assert!(
            caller.was_read(),
            "a uid rule tests the real uid, which FUSE does not tell"
        );
    }

    /// A read open that finds the file open for write while a release queued before it is
    /// still being handled waits for that release (however long it takes): no ToMToU. With
    /// no release in flight, the conflict is real after the short settle.
    #[test]
    fn an_open_waits_for_a_release_still_being_handled() {
        let (_tmp, reader, writer) = read_and_written();
        let st = rustix::fs::fstat(&reader).expect("stat");
        let fs = crate::fs::overlay::lowerfs::describe(reader.as_fd(), st.st_dev).expect("fs");
        let read = read_by_me(b"/data");
        let write = OpenInfo {
            flags: libc::O_WRONLY,
            ..read
        };
        let ima = Arc::new(Ima::new(Config::default()).expect("engine"));
        ima.load_policy_text("measure func=FILE_CHECK mask=MAY_READ\n", &|_| {
            Ok(Vec::new())
        })
        .expect("policy");
        let hooks = ImaHooks::new(ima.clone());
        let caller = || LazyCaller::new(std::process::id(), 0, 0);
        let open = |info: &OpenInfo<'_>, file: &File, releasing: &dyn Fn() -> bool| {
            let overlay = OverlayOpen { stat: &st, fs: &fs };
            hooks
                .open_own(info, &caller(), file, Some(&overlay), releasing)
                .expect("open");
        };

        open(&write, &writer, &|| false);
        let released = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // The writer's release, handled late (a busy machine).
                std::thread::sleep(std::time::Duration::from_millis(100));
                ima.file_closed(file_id(&st), true, file_version(&st));
                released.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            open(&read, &reader, &|| {
                !released.load(std::sync::atomic::Ordering::SeqCst)
            });
        });
        assert_eq!(
            ima.violations(),
            0,
            "ToMToU for a writer whose release was in flight"
        );
        ima.file_closed(file_id(&st), false, file_version(&st));

        open(&write, &writer, &|| false);
        open(&read, &reader, &|| false);
        assert_eq!(ima.violations(), 1, "a writer still open is a ToMToU");
    }

    #[test]
    fn reads_by_root_and_execs_are_measured_under_tcb() {
        if !rustix::process::geteuid().is_root() {
            return; // tcb measures root's reads: the subject comes from our own /proc entry.
        }
        let ima = Arc::new(Ima::new(Config::default()).expect("engine"));
        let hooks = ImaHooks::new(ima.clone());
        // Under target/, not /tmp: tcb does not measure tmpfs.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target");
        let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp");
        tmp.write_all(b"hello\n").expect("write");
        let mut prog = tempfile::NamedTempFile::new_in(dir).expect("temp");
        prog.write_all(b"#!/bin/true\n").expect("write");
        let file = File::open(tmp.path()).expect("open");
        let read = read_by_me(b"/etc/hello");
        hooks.open(&read, &file).expect("read open");
        hooks.release(&rustix::fs::fstat(&file).expect("stat"), libc::O_RDONLY);
        // Unchanged file, same PCR: no second entry.
        hooks.open(&read, &file).expect("second read open");
        hooks.release(&rustix::fs::fstat(&file).expect("stat"), libc::O_RDONLY);
        let exec = OpenInfo {
            exec: true,
            path: b"/bin/hello",
            ..read
        };
        let program = File::open(prog.path()).expect("open");
        hooks.open(&exec, &program).expect("exec open");
        // A non-root write open is not measured (tcb: reads by root, execs).
        let write = OpenInfo {
            flags: libc::O_WRONLY | libc::O_TRUNC,
            path: b"/tmp/w",
            ..read
        };
        let writable = std::fs::OpenOptions::new()
            .write(true)
            .open(tmp.path())
            .expect("open");
        hooks.open(&write, &writable).expect("write open");
        let list = ascii_list(&ima);
        let hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let true_script = sha2::Sha256::digest(b"#!/bin/true\n");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "{list}");
        assert!(
            lines[1].ends_with(&format!("ima-ng sha256:{hello} /etc/hello")),
            "{list}"
        );
        assert!(
            lines[2].ends_with(&format!(
                "ima-ng sha256:{} /bin/hello",
                hex::encode(true_script)
            )),
            "{list}"
        );
    }
}

impl OverlayHooks for ImaHooks {
    fn on_open(&self, ev: &OpenEvent<'_>, file: &File) -> Result<(), Errno> {
        if self.children.is_child_daemon(ev.pid) {
            // A nested daemon reading for its container: the open arrives forwarded.
            self.skipped.insert(ev.open_id);
            return Ok(());
        }
        let info = OpenInfo {
            flags: ev.flags,
            exec: ev.exec,
            created: ev.created,
            pid: ev.pid,
            uid: ev.uid,
            gid: ev.gid,
            path: ev.path,
        };
        let caller = LazyCaller::new(ev.pid, ev.uid, ev.gid);
        let overlay = OverlayOpen {
            stat: ev.stat,
            fs: ev.fs,
        };
        let forwarded = self.open_as(&info, &caller, file, Some(&overlay), ev.earlier_releases)?;
        if let Some(token) = forwarded {
            self.forwarded.lock().insert(ev.open_id, token);
        }
        Ok(())
    }

    fn on_release(&self, ev: &ReleaseEvent<'_>) {
        if self.skipped.take(ev.open_id) {
            return;
        }
        if let Some(token) = self.forwarded.lock().remove(&ev.open_id) {
            if let Some(parent) = &self.parent {
                parent.forward_release(token);
            }
        }
        let st = ev.stat;
        if !is_regular(st) {
            return;
        }
        let id = file_id(st);
        let version = file_version(st);
        // The last writer's close of a file under an appraise or hash rule rehashes it
        // (`ima_update_xattr`): the engine reads through a readable descriptor.
        let readable = if ev.flags & libc::O_ACCMODE == libc::O_WRONLY {
            reopen_read_only(ev.file)
        } else {
            None
        };
        let file = readable.as_ref().unwrap_or(ev.file);
        if let Some(value) = self
            .ima
            .file_closed_with(id, ev.opened_for_write, version, Some(file))
        {
            self.write_ima_xattr(ev.file, &value, ev.path);
        }
    }

    fn on_ima_xattr_write(&self, ev: &AttrEvent<'_>, value: Option<&[u8]>) -> Result<(), Errno> {
        let caller = Caller::of_task(ev.pid, ev.uid, ev.gid);
        // `ima_protect_xattr`: only CAP_SYS_ADMIN may set or remove IMA data. This holds for
        // the stored name too (`user.ima`), or any writer of a file could forge it.
        if !caller.has_cap(CAP_SYS_ADMIN) {
            return Err(Errno::EPERM);
        }
        let Some(value) = value else {
            return Ok(());
        };
        let [uid, euid, suid, gid, egid, sgid] = caller.subject_ids;
        let task = AuditTask {
            pid: ev.pid,
            uid,
            gid,
            euid,
            suid,
            fsuid: ev.uid,
            egid,
            sgid,
            fsgid: ev.gid,
            comm: caller.comm.as_bytes(),
            ..AuditTask::default()
        };
        self.ima.check_ima_xattr_write(value, ev.path, &task)
    }

    fn on_ima_xattr_changed(&self, ev: &AttrEvent<'_>) {
        self.ima.xattr_changed(FileId {
            dev: ev.stat.st_dev,
            ino: ev.stat.st_ino,
        });
    }

    fn on_metadata_changed(&self, before: &Stat, after: &Stat) {
        self.ima
            .metadata_changed(file_id(before), &file_version(before), &file_version(after));
    }

    fn on_attr_changed(&self, ev: &AttrEvent<'_>) {
        let id = FileId {
            dev: ev.stat.st_dev,
            ino: ev.stat.st_ino,
        };
        self.ima.attr_changed(id);
        if !self.still_appraised(ev) {
            // `ima_inode_post_setattr`: a file no appraise or hash rule covers any more
            // (a chown out of an `fowner=` rule) loses its IMA xattr.
            match crate::sys::xattr::remove_path_fd(ev.fd, self.ima_xattr.as_bytes()) {
                Ok(()) => self.ima.xattr_changed(id),
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => log::info!(
                    "ima: cannot remove {} of {}: {e}",
                    self.ima_xattr,
                    String::from_utf8_lossy(ev.path)
                ),
            }
        }
    }
}

impl ImaHooks {
    /// `ima_must_appraise(POST_SETATTR)` after a chmod or chown; true when appraisal is off
    /// altogether (`ima_policy_flag` without IMA_APPRAISE: nothing is removed).
    fn still_appraised(&self, ev: &AttrEvent<'_>) -> bool {
        if self.ima.config().appraise == AppraiseMode::Off {
            return true;
        }
        let policy = self.ima.active_policy();
        if !policy.actions_used().contains(Actions::APPRAISE) {
            return true;
        }
        let Ok(file) = ev.fd.try_clone_to_owned().map(File::from) else {
            return true;
        };
        let fs = self.lower_fs.get(file.as_fd(), ev.stat.st_dev);
        let caller = Caller::of_task(ev.pid, ev.uid, ev.gid);
        let subject = caller.subject();
        let object = Object {
            uid: ev.stat.st_uid,
            gid: ev.stat.st_gid,
            fsmagic: fs.magic,
            fsname: &fs.name,
            fs_subtype: "",
            fsuuid: fs.uuid,
        };
        let input = MatchInput {
            func: Func::PostSetattr,
            mask: MAY_ACCESS,
            subject: &subject,
            object: Some(&object),
            keyring: None,
            label: None,
        };
        let decision = policy.evaluate(&input, Actions::APPRAISE | Actions::HASH);
        !decision.actions.is_empty()
    }
}

/// The kernel's `MAY_ACCESS` (include/linux/fs.h), the mask `ima_must_appraise` passes.
const MAY_ACCESS: u32 = 0x10;
