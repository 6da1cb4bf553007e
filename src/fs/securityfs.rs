//! The virtual securityfs served over FUSE: `integrity/ima/` as a 6.10+ kernel lays it out
//! (security/integrity/ima/ima_fs.c: ima_fs_init), backed by one [`Ima`] engine.
//!
//! Tree (inode numbers are fixed, so they are stable across lookups and mounts):
//!
//! ```text
//! /                                   dir 0755
//! ima -> integrity/ima                symlink 0444
//! integrity/                          dir 0755
//! integrity/ima/                      dir 0755
//!   ascii_runtime_measurements_<alg>  0440 (one pair per file bank: TPM banks + sha1 slot;
//!   binary_runtime_measurements_<alg> 0440  never the extra ima_hash slot: ima_crypto.c
//!                                         ima_init_crypto, ima_fs.c
//!                                         create_securityfs_measurement_lists)
//!   ascii_runtime_measurements  -> ascii_runtime_measurements_sha1    symlink 0444
//!   binary_runtime_measurements -> binary_runtime_measurements_sha1   symlink 0444
//!   runtime_measurements_count        0440  "N\n", generated per read
//!   violations                        0440  "N\n", generated per read
//!   policy                            0600 / 0200 / 0400 / gone (ima_fs.c ima_release_policy)
//!   pcrs                              0440  extension: "PCR-10 sha256 <hex>\n" per PCR and bank
//!   keys                              0600  extension: read lists the IMA keyring; write loads
//!                                             a certificate (DER/PEM bytes, or /path)
//! ```
//!
//! Everything is owned by uid 0 / gid 0 of the FUSE connection's user namespace (the
//! namespace's root inside a user namespace); timestamps are the mount time.
//!
//! **Sizes and `direct_io` (the busybox finding).** securityfs reports `st_size` 0 and
//! readers read to EOF. Over FUSE every generated file must be opened with `direct_io`
//! (content changes under the reader, and `policy` must see each write(2) as one request),
//! but on this kernel (6.18) `splice`/`sendfile` from a FUSE file never goes through the
//! direct path: `fuse_splice_read` uses `filemap_splice_read`, which stops at `i_size`. With
//! `st_size` 0, busybox `cat` (which copies with `sendfile`) printed nothing while read(2)
//! readers worked. We therefore report the *current* length of each generated file as its
//! size (for the lists: the byte length of the view right now, which always falls on a
//! record boundary). read(2) stays on the direct path and ignores the size, so a reader
//! holding an fd sees appended records; a `sendfile` reader gets a consistent snapshot up
//! to the size at its open (name lookups are never cached, so each path walk refreshes
//! `i_size`, and a size change drops the file's page cache, so no stale page survives).
//! The trade-off: `stat` shows a non-zero size where the kernel shows 0; no known client
//! relies on the 0 (they all read to EOF).
//!
//! **`policy` writes.** securityfs never advances the file position, so every write(2) on
//! one fd is at position 0 and anything else is EINVAL ("no partial writes"). FUSE advances
//! the position by what each write returned, so each handle remembers where its position
//! stands after its last write: a write at that offset (or at 0) is a write at kernel
//! position 0; any other offset (`pwrite` at a non-zero offset as the first write, an
//! `lseek` forward) is EINVAL as on a kernel. The kernel may return one byte more than was
//! written (a line without `\n`); FUSE rejects a write reply larger than the request, so
//! such a write returns the request's length instead (callers see a complete write either
//! way).
//!
//! **Who may read the policy.** The kernel checks CAP_SYS_ADMIN of the opener; we read the
//! effective capability set of the requesting thread from `/proc/<pid>/status` (`CapEff`,
//! bit 21). The pid FUSE reports is in the daemon's pid namespace, and the capability is
//! relative to the caller's user namespace, which is the daemon's for `imafs run`.
//!
//! **Policy files by path.** A write starting with `/` names a file as the writer sees it:
//! it is read as `/proc/<pid>/root/<path>` (the writer's root directory), with its
//! `security.ima`, by the daemon (the kernel reads it with kernel credentials too).

use crate::engine::hash::HashAlgo;
use crate::engine::ima::{FileEvent, XattrSource};
use crate::engine::ima::{Ima, PolicyAccess, PolicyFile, PolicyFileState, PolicyHandle};
use crate::engine::measure::{FileId, FileVersion};
use crate::engine::measurement_list::ViewKind;
use crate::engine::policy::Func;
use crate::engine::policy::Subject;
use crate::fs::caller::{open_mask, opened_for_write, Caller, LazyCaller, CAP_SYS_ADMIN};
use crate::fs::mappings::Coverage;
use crate::fs::nest::NestHost;
use crate::fs::static_tree::{
    reply_opendir, reply_readdir, reply_seq_lseek, StaticTree, TreeEntry, ROOT,
};
use fuser::{
    Config, Errno as FuseErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, SessionACL, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const IMA_LINK: u64 = 2;
const INTEGRITY: u64 = 3;
const IMA_DIR: u64 = 4;
const COUNT: u64 = 5;
const VIOLATIONS: u64 = 6;
const POLICY: u64 = 7;
const PCRS: u64 = 8;
const KEYS: u64 = 9;
const ASCII_LEGACY: u64 = 10;
const BINARY_LEGACY: u64 = 11;
const ACTIVE: u64 = 12;
const POLICY_FOR_CHILDREN: u64 = 13;
const X509_FOR_CHILDREN: u64 = 14;
const KCMD_FOR_CHILDREN: u64 = 15;
/// The `imafs/` extension directory and its `nest` control file (after the list files).
const IMAFS_DIR: u64 = 1000;
const NEST: u64 = 1001;
const EXEC_WATCH: u64 = 1002;
const TRANSPORT: u64 = 1003;
/// `ascii_runtime_measurements_<alg>` of file bank `i` is `LIST_BASE + 2i`, binary `+ 1`.
const LIST_BASE: u64 = 16;

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    Symlink(String),
    /// A measurement list view; `bank` indexes the list's banks.
    List {
        kind: ViewKind,
        bank: usize,
    },
    Count,
    Violations,
    Policy,
    Pcrs,
    Keys,
    /// `active` of Stefan Berger's user-namespace IMA series (2021-2023, not in mainline).
    Active,
    /// Huawei's `*_for_children` staging files (CLONE_NEWIMA series, not in mainline).
    ForChildren(ChildItem),
    /// `imafs/nest`: nested daemons register and forward their events here.
    Nest,
    /// `imafs/exec_watch`: whether the container's exec mappings and execs outside the
    /// overlay reach this namespace (`imafs status` shows it).
    ExecWatch,
    /// `imafs/transport`: how the overlay's requests reach the daemon (`io_uring` or
    /// `/dev/fuse`; `imafs status` shows it).
    Transport,
}

impl Node {
    /// imafs's own files, which are not securityfs's: not measured when opened.
    fn is_extension(&self) -> bool {
        matches!(self, Node::Nest | Node::ExecWatch | Node::Transport)
    }
}

/// What a `*_for_children` file stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildItem {
    /// `policy_for_children`: the path of a policy file.
    Policy,
    /// `x509_for_children`: the path of a certificate.
    X509,
    /// `kcmd_for_children`: `ima_*=` options.
    Kcmd,
}

type Entry = TreeEntry<Node>;

/// How the securityfs view is served.
#[derive(Clone, Debug)]
pub struct SecurityFsOptions {
    /// FUSE worker threads (at least 4).
    pub threads: usize,
    /// Let every user reach the mount (the kernel's modes still apply through
    /// `default_permissions`); default: when the daemon is root.
    pub allow_other: bool,
    /// Owner of every node, in the FUSE connection's user namespace (default 0:0).
    pub uid: u32,
    pub gid: u32,
}

impl Default for SecurityFsOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        SecurityFsOptions {
            threads: 4,
            allow_other: root,
            uid: 0,
            gid: 0,
        }
    }
}

/// One open file.
enum Handle {
    /// A measurement list: reads go straight to the engine.
    List,
    /// A text rendered at read time from offset 0 and kept for later offsets, as seq_file
    /// does for one read sequence.
    Text(Option<Vec<u8>>),
    PolicyWrite {
        /// `None` once committed at a flush (see [`Inner::flush_policy`]).
        session: Option<PolicyHandle>,
        /// The FUSE file position after the last write (see the module docs).
        position: u64,
        pid: u32,
        /// The lock owner (the writer's fd table) of the last write, when FUSE told it.
        writer: Option<u64>,
        /// Who opened the session, to start another after an early commit.
        opener: (u32, u32, String),
        /// A close(2) of this file was seen (FLUSH): its release may be on its way.
        closed: bool,
    },
    KeysWrite {
        data: Vec<u8>,
        pid: u32,
        uid: u32,
        gid: u32,
    },
    /// `active` opened for writing.
    ActiveWrite,
    /// A `*_for_children` file; `pid` opened it (paths are resolved as it sees them).
    ForChildren { item: ChildItem, pid: u32 },
    /// A child namespace's registration (`imafs/nest`), with the reply it reads.
    Nest { registration: u64, reply: Vec<u8> },
}

struct Inner {
    ima: Arc<Ima>,
    /// Hosts nested namespaces (`imafs/nest`) when the namespace has an overlay.
    nest: Option<Arc<NestHost>>,
    /// What `imafs/exec_watch` reports.
    exec_watch: Option<Coverage>,
    options: SecurityFsOptions,
    tree: StaticTree<Node>,
    /// The session's notifier, to show a list file grown by its own open (see
    /// [`Inner::show_own_record`]).
    notifier: std::sync::OnceLock<fuser::Notifier>,
    /// An empty file: what the engine hashes for a measured securityfs file (`None` when
    /// none could be made: then the view's files are not measured, as logged).
    empty: Option<std::fs::File>,
    mount_time: SystemTime,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    next_fh: AtomicU64,
}

/// The securityfs view of one IMA engine, ready to be mounted.
pub struct SecurityFs {
    inner: Arc<Inner>,
}

fn bank_name(algo: HashAlgo) -> String {
    algo.name().to_string()
}

fn build_entries(ima: &Ima) -> Vec<Entry> {
    // In creation order (readdir lists it reversed): the integrity core makes
    // `integrity/`, then ima_fs_init `integrity/ima/` and the `ima` link.
    let mut e = vec![
        Entry {
            ino: INTEGRITY,
            parent: ROOT,
            name: "integrity".into(),
            node: Node::Dir,
        },
        Entry {
            ino: IMA_DIR,
            parent: INTEGRITY,
            name: "ima".into(),
            node: Node::Dir,
        },
        Entry {
            ino: IMA_LINK,
            parent: ROOT,
            name: "ima".into(),
            node: Node::Symlink("integrity/ima".into()),
        },
    ];
    // Creation order of ima_fs_init: per-bank files, legacy links, count, violations, policy.
    for (i, algo) in ima.file_banks().into_iter().enumerate() {
        let Some(bank) = ima.list().bank_index(algo) else {
            continue;
        };
        let name = bank_name(algo);
        for (k, (kind, prefix)) in [(ViewKind::Ascii, "ascii"), (ViewKind::Binary, "binary")]
            .into_iter()
            .enumerate()
        {
            e.push(Entry {
                ino: LIST_BASE + 2 * i as u64 + k as u64,
                parent: IMA_DIR,
                name: format!("{prefix}_runtime_measurements_{name}"),
                node: Node::List { kind, bank },
            });
        }
    }
    let plain = [
        (
            ASCII_LEGACY,
            "ascii_runtime_measurements",
            Node::Symlink("ascii_runtime_measurements_sha1".into()),
        ),
        (
            BINARY_LEGACY,
            "binary_runtime_measurements",
            Node::Symlink("binary_runtime_measurements_sha1".into()),
        ),
        (COUNT, "runtime_measurements_count", Node::Count),
        (VIOLATIONS, "violations", Node::Violations),
        (POLICY, "policy", Node::Policy),
        (PCRS, "pcrs", Node::Pcrs),
        (KEYS, "keys", Node::Keys),
        (ACTIVE, "active", Node::Active),
        (
            POLICY_FOR_CHILDREN,
            "policy_for_children",
            Node::ForChildren(ChildItem::Policy),
        ),
        (
            X509_FOR_CHILDREN,
            "x509_for_children",
            Node::ForChildren(ChildItem::X509),
        ),
        (
            KCMD_FOR_CHILDREN,
            "kcmd_for_children",
            Node::ForChildren(ChildItem::Kcmd),
        ),
    ];
    for (ino, name, node) in plain {
        e.push(Entry {
            ino,
            parent: IMA_DIR,
            name: name.into(),
            node,
        });
    }
    e
}

fn err(code: i32) -> FuseErrno {
    FuseErrno::from_i32(code)
}

/// How long a write open of `policy` waits for the release of a session already closed
/// (see [`Inner::open_policy_settled`]).
const POLICY_RELEASE_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// `SECURITYFS_MAGIC`: what `fsmagic=` rules match for the view's files.
const SECURITYFS_MAGIC: u64 = 0x7363_6673;

/// Where the view is mounted in a container: the kernel names a measured securityfs file by
/// its path there (`d_path`).
const MOUNT_PATH: &str = "/sys/kernel/security";

/// The engine's identity of the view's file `ino`: no lower file system holds it, so a
/// device number no real file has (0).
fn securityfs_file_id(ino: u64) -> FileId {
    FileId { dev: 0, ino }
}

/// An empty anonymous file (see [`Inner::file_check`]).
fn empty_file() -> Option<std::fs::File> {
    match rustix::fs::memfd_create("imafs-securityfs-empty", rustix::fs::MemfdFlags::CLOEXEC) {
        Ok(fd) => Some(std::fs::File::from(fd)),
        Err(e) => {
            log::error!("securityfs: no empty file to hash ({e}): its files are not measured");
            None
        }
    }
}

/// `path` (absolute) as task `pid` sees it.
fn path_as_seen_by(pid: u32, path: &str) -> String {
    format!("/proc/{pid}/root{path}")
}

/// Read a policy file named in a write, with its `security.ima`.
fn read_policy_file(pid: u32, path: &str) -> io::Result<PolicyFile> {
    let file = std::fs::File::open(path_as_seen_by(pid, path))?;
    let mut content = Vec::new();
    io::Read::read_to_end(&mut &file, &mut content)?;
    let mut buf = vec![0u8; 1024];
    let ima_xattr = match rustix::fs::fgetxattr(&file, "security.ima", &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    };
    Ok(PolicyFile { content, ima_xattr })
}

impl Inner {
    fn entry(&self, ino: u64) -> Option<&Entry> {
        self.tree.entry(ino)
    }

    /// Whether the entry currently exists (`policy` may be removed after the first load).
    fn present(&self, e: &Entry) -> bool {
        e.node != Node::Policy || self.ima.policy_file_state() != PolicyFileState::Removed
    }

    fn node(&self, ino: u64) -> Option<Node> {
        if ino == ROOT {
            return Some(Node::Dir);
        }
        self.entry(ino)
            .filter(|e| self.present(e))
            .map(|e| e.node.clone())
    }

    fn perm(&self, node: &Node) -> u16 {
        match node {
            Node::Dir => 0o755,
            Node::Symlink(_) => 0o444,
            Node::List { .. } | Node::Count | Node::Violations | Node::Pcrs => 0o440,
            Node::Keys => 0o600,
            // S_IRUSR | S_IWUSR | S_IRGRP in the series.
            Node::Active => 0o640,
            // Write-only; Huawei's RFC created them 0202, we leave out the write bit for
            // others (anyone could configure the next child otherwise).
            Node::ForChildren(_) => 0o200,
            Node::Nest => 0o600,
            Node::ExecWatch | Node::Transport => 0o444,
            Node::Policy => match self.ima.policy_file_state() {
                PolicyFileState::ReadOnly => 0o400,
                _ if self.ima.config().read_policy => 0o600,
                _ => 0o200,
            },
        }
    }

    /// The current text of a generated file (not the lists).
    fn render(&self, node: &Node) -> Vec<u8> {
        match node {
            Node::Count => format!("{}\n", self.ima.list().len()).into_bytes(),
            Node::Violations => format!("{}\n", self.ima.violations()).into_bytes(),
            Node::Policy => self.ima.policy_text().into_bytes(),
            Node::Pcrs => {
                let banks = self.ima.file_banks();
                let mut out = String::new();
                for (pcr, bank, value) in self.ima.pcr_values() {
                    if banks.contains(&bank) {
                        out.push_str(&format!("PCR-{pcr:02} {bank} {}\n", value.to_hex()));
                    }
                }
                out.into_bytes()
            }
            Node::Keys => {
                let mut out = String::new();
                for line in self.ima.keyring().list() {
                    out.push_str(&line);
                    out.push('\n');
                }
                out.into_bytes()
            }
            // `scnprintf(tmpbuf, 2, "%d\n", ...)` in ima_show_active: the 2-byte buffer
            // keeps the digit and drops the newline.
            Node::Active => if self.ima.is_active() { "1" } else { "0" }
                .as_bytes()
                .to_vec(),
            Node::Symlink(target) => target.clone().into_bytes(),
            Node::ExecWatch => match self.exec_watch.as_ref().and_then(Coverage::get) {
                Some(Ok(())) => match self.exec_watch.as_ref().map_or(0, Coverage::missed) {
                    0 => "measured\n".to_owned(),
                    n => format!("measured, but {n} calls could not be checked (see the log)\n"),
                },
                Some(Err(reason)) => format!("not measured: {reason}\n"),
                None if self.exec_watch.is_some() => "not started\n".to_owned(),
                None => "not measured: no seccomp listener (imafs serve; an OCI hook \
                         container without a runtime listener)\n"
                    .to_owned(),
            }
            .into_bytes(),
            Node::Transport => match self.nest.as_ref().and_then(|n| n.overlay()) {
                Some(overlay) => format!("{}\n", overlay.transport()),
                None => "no overlay\n".to_owned(),
            }
            .into_bytes(),
            Node::Dir | Node::List { .. } | Node::ForChildren(_) | Node::Nest => Vec::new(),
        }
    }

    /// The size we report (see the module docs: the current length, for `sendfile`).
    fn size(&self, node: &Node) -> u64 {
        match node {
            Node::Dir => 0,
            Node::List { kind, bank } => self.ima.list().view_len(*kind, *bank),
            Node::Policy if !self.ima.config().read_policy => 0,
            other => self.render(other).len() as u64,
        }
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, nlink) = match node {
            Node::Dir => (
                FileType::Directory,
                2 + self
                    .tree
                    .children(ino)
                    .filter(|e| e.node == Node::Dir)
                    .count() as u32,
            ),
            Node::Symlink(_) => (FileType::Symlink, 1),
            _ => (FileType::RegularFile, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size: self.size(node),
            blocks: 0,
            atime: self.mount_time,
            mtime: self.mount_time,
            ctime: self.mount_time,
            crtime: self.mount_time,
            kind,
            perm: self.perm(node),
            nlink,
            uid: self.options.uid,
            gid: self.options.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(Mutex::new(h)));
        fh
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Mutex<Handle>>, FuseErrno> {
        self.handles
            .lock()
            .get(&fh.0)
            .cloned()
            .ok_or(FuseErrno::EBADF)
    }

    /// `ima_file_check` of an open of the view's file `ino` (after the file's own open
    /// succeeded, as in `do_open`): a securityfs file is measured like any other when the
    /// policy does not exclude `fsmagic=0x73636673`, under the path it has in the container
    /// (a symlink's target for `ascii_runtime_measurements`), and hashed as the kernel
    /// hashes it: empty, its `i_size` being 0 (ima_crypto.c: ima_calc_file_hash). The
    /// `imafs/nest` control file is the daemons' protocol, not the container's, and is left
    /// out.
    fn file_check(&self, req: &Request, ino: u64, flags: i32) -> Result<(), FuseErrno> {
        let Some(empty) = &self.empty else {
            return Ok(());
        };
        let node = self.node(ino).ok_or(FuseErrno::ENOENT)?;
        if node.is_extension() {
            return Ok(());
        }
        let caller = LazyCaller::new(req.pid(), req.uid(), req.gid());
        let path = self.path_of(ino);
        let ev = FileEvent {
            func: Func::FileCheck,
            mask: open_mask(flags),
            task: &caller,
            pid: req.pid(),
            id: securityfs_file_id(ino),
            version: self.file_version(),
            owner: self.options.uid,
            group: self.options.gid,
            mode: libc::S_IFREG | u32::from(self.perm(&node)),
            fsmagic: SECURITYFS_MAGIC,
            fsname: "securityfs",
            fs_id: "securityfs",
            fsuuid: None,
            path: path.as_bytes(),
            ima_xattr: XattrSource::Known(None),
            opened_for_write: opened_for_write(flags),
            created: false,
        };
        // Only a list can grow by this open's own record (the other files render their text
        // to know their size, for nothing).
        let before = matches!(node, Node::List { .. }).then(|| self.size(&node));
        self.ima.process_file(&ev, empty).map_err(FuseErrno::from)?;
        if let Some(before) = before {
            self.show_own_record(ino, &node, before);
        }
        Ok(())
    }

    /// A list file that its own open made longer (its measurement record, as a kernel's
    /// open appends it before the first read): the kernel took the file's size at lookup,
    /// and `sendfile` readers (busybox `cat`) stop there, so the size becomes the new one
    /// before the open returns: cached pages are dropped (the last one may hold zeros past
    /// the old end), then the view's last byte is stored at its offset, which extends
    /// `i_size` (dev.c: fuse_notify_store; an empty store would not: fuse_write_update_attr
    /// moves the size only for a write of at least one byte).
    fn show_own_record(&self, ino: u64, node: &Node, before: u64) {
        let (Some(notifier), Node::List { kind, bank }) = (self.notifier.get(), node) else {
            return;
        };
        let after = self.size(node);
        let mut last = [0u8; 1];
        if after <= before || self.ima.list().read(*kind, *bank, after - 1, &mut last) != 1 {
            return;
        }
        let ino = INodeNo(ino);
        let shown = notifier
            .inval_inode(ino, 0, 0)
            .and_then(|()| notifier.store(ino, after - 1, &last));
        if let Err(e) = shown {
            log::debug!("securityfs: size of inode {} not refreshed: {e}", ino.0);
        }
    }

    /// `ima_file_free` of an open that [`Inner::file_check`] registered.
    fn file_closed(&self, ino: u64, flags: i32) {
        if self.empty.is_some() && self.node(ino).is_some_and(|n| !n.is_extension()) {
            self.ima.file_closed(
                securityfs_file_id(ino),
                opened_for_write(flags),
                self.file_version(),
            );
        }
    }

    /// The one version of every file of the view: securityfs inodes keep `i_size` 0 and
    /// their times, whatever they show.
    fn file_version(&self) -> FileVersion {
        let t = self
            .mount_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        FileVersion {
            size: 0,
            mtime_ns: t,
            ctime_ns: t,
            change_cookie: None,
        }
    }

    /// The path of `ino` in the container: `/sys/kernel/security/integrity/ima/NAME`.
    fn path_of(&self, ino: u64) -> String {
        let mut names = Vec::new();
        let mut at = ino;
        while let Some(e) = self.entry(at) {
            names.push(e.name.as_str());
            at = e.parent;
        }
        names.reverse();
        format!("{MOUNT_PATH}/{}", names.join("/"))
    }

    fn open(&self, req: &Request, ino: u64, flags: i32) -> Result<Handle, FuseErrno> {
        let node = self.node(ino).ok_or(FuseErrno::ENOENT)?;
        let accmode = flags & libc::O_ACCMODE;
        match node {
            Node::Dir => Err(FuseErrno::EISDIR),
            Node::Symlink(_) => Err(FuseErrno::ELOOP),
            // Opening for write is left to DAC (only root passes); the kernel's files have no
            // write method, so write(2) is EINVAL.
            Node::List { .. } | Node::Count | Node::Violations | Node::Pcrs => Ok(match node {
                Node::List { .. } => Handle::List,
                _ => Handle::Text(None),
            }),
            Node::Policy => {
                // ima_open_policy (ima_fs.c) tests the O_WRONLY bit only.
                let access = if flags & libc::O_WRONLY != 0 {
                    PolicyAccess::Write
                } else if accmode == libc::O_RDWR {
                    PolicyAccess::ReadWrite
                } else {
                    PolicyAccess::Read
                };
                let admin = access == PolicyAccess::Read
                    && Caller::of_task(req.pid(), req.uid(), req.gid()).has_cap(CAP_SYS_ADMIN);
                let mut session = self.open_policy_settled(access, admin)?;
                if !session.is_write() {
                    self.ima.policy_release(session);
                    return Ok(Handle::Text(None));
                }
                let caller = Caller::of_task(req.pid(), req.uid(), req.gid());
                session.pid = req.pid();
                session.uid = caller.subject_ids[0];
                session.comm = caller.comm.clone();
                Ok(Handle::PolicyWrite {
                    session: Some(session),
                    position: 0,
                    pid: req.pid(),
                    writer: None,
                    opener: (req.pid(), caller.subject_ids[0], caller.comm),
                    closed: false,
                })
            }
            Node::Nest => {
                let host = self.nest.as_ref().ok_or(FuseErrno::ENOENT)?;
                if accmode != libc::O_RDWR {
                    return Err(FuseErrno::EINVAL);
                }
                let (registration, reply) = host.register(req.pid()).map_err(FuseErrno::from)?;
                Ok(Handle::Nest {
                    registration,
                    reply,
                })
            }
            Node::ExecWatch | Node::Transport => Ok(Handle::Text(None)),
            Node::Active if accmode == libc::O_RDONLY => Ok(Handle::Text(None)),
            Node::Active => Ok(Handle::ActiveWrite),
            // No read method: a read-only open works (DAC permitting), read(2) is EINVAL.
            Node::ForChildren(item) => Ok(Handle::ForChildren {
                item,
                pid: req.pid(),
            }),
            Node::Keys => {
                if accmode == libc::O_RDONLY {
                    Ok(Handle::Text(None))
                } else {
                    Ok(Handle::KeysWrite {
                        data: Vec::new(),
                        pid: req.pid(),
                        uid: req.uid(),
                        gid: req.gid(),
                    })
                }
            }
        }
    }

    fn read(&self, ino: u64, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, FuseErrno> {
        let handle = self.handle(fh)?;
        let mut h = handle.lock();
        match &mut *h {
            Handle::List => {
                let Some(Node::List { kind, bank }) = self.node(ino) else {
                    return Err(FuseErrno::EBADF);
                };
                let mut buf = vec![0u8; size as usize];
                let n = self.ima.list().read(kind, bank, offset, &mut buf);
                buf.truncate(n);
                Ok(buf)
            }
            Handle::Text(text) => {
                let node = self
                    .entry(ino)
                    .map(|e| e.node.clone())
                    .ok_or(FuseErrno::EBADF)?;
                // Counters are generated per read (simple_read_from_buffer); other texts
                // once per read sequence from offset 0 (seq_file).
                if offset == 0 || text.is_none() || matches!(node, Node::Count | Node::Violations) {
                    *text = Some(self.render(&node));
                }
                let text = text.as_deref().unwrap_or_default();
                let start = (offset as usize).min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                Ok(text[start..end].to_vec())
            }
            Handle::PolicyWrite { .. } | Handle::KeysWrite { .. } | Handle::ActiveWrite => {
                Err(FuseErrno::EBADF)
            }
            Handle::ForChildren { .. } => Err(FuseErrno::EINVAL),
            Handle::Nest {
                reply,
                registration,
            } => {
                // The configuration, then the stream of mapping events (see nest's docs).
                let len = reply.len() as u64;
                if offset >= len {
                    let host = self.nest.as_ref().ok_or(FuseErrno::EBADF)?;
                    return Ok(host.events(*registration, offset - len, size as usize));
                }
                let start = offset as usize;
                let end = start.saturating_add(size as usize).min(reply.len());
                Ok(reply[start..end].to_vec())
            }
        }
    }

    fn write(
        &self,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        lock_owner: Option<u64>,
        append: bool,
    ) -> Result<u32, FuseErrno> {
        let handle = self.handle(fh)?;
        let mut h = handle.lock();
        match &mut *h {
            Handle::PolicyWrite {
                session,
                position,
                pid,
                writer,
                opener,
                closed,
            } => {
                *writer = lock_owner;
                // Written to: still open somewhere, whatever close was seen before.
                *closed = false;
                if session.is_none() {
                    // Committed at an earlier flush while this file stayed open elsewhere
                    // (a dup): carry on as a new write session, as a later open would.
                    let mut s = self
                        .ima
                        .open_policy(PolicyAccess::Write, false)
                        .map_err(FuseErrno::from)?;
                    (s.pid, s.uid, s.comm) = opener.clone();
                    *session = Some(s);
                    *position = offset;
                }
                let session = session.as_mut().ok_or(FuseErrno::EBADF)?;
                // See the module docs: the kernel's position is always 0 for write(2). With
                // O_APPEND (`echo rule >> policy`) FUSE writes at its cached i_size, while
                // ima_write_policy, which never calls generic_write_checks, still sees
                // f_pos 0: such a write is at position 0 too.
                let kernel_pos = if append || offset == *position {
                    0
                } else {
                    offset
                };
                let pid = *pid;
                let loader = |path: &str| read_policy_file(pid, path);
                let n = self
                    .ima
                    .policy_write_file(session, kernel_pos, data, &loader)
                    .map_err(FuseErrno::from)?;
                let n = n.min(data.len());
                *position = offset + n as u64;
                Ok(n as u32)
            }
            Handle::KeysWrite { data: buf, .. } => {
                buf.extend_from_slice(data);
                Ok(data.len() as u32)
            }
            Handle::ActiveWrite => self.write_active(offset, data),
            Handle::Nest { registration, .. } => {
                let host = self.nest.as_ref().ok_or(FuseErrno::EBADF)?;
                let registration = *registration;
                // The request can take long (hashing, the parent's own parent): do not
                // hold the handle's lock meanwhile.
                drop(h);
                host.request(registration, data).map_err(FuseErrno::from)?;
                Ok(data.len() as u32)
            }
            Handle::ForChildren { item, pid } => self.write_for_children(*item, *pid, offset, data),
            Handle::List | Handle::Text(_) => Err(FuseErrno::EINVAL),
        }
    }

    /// `ima_write_active`: EBUSY once active; only `1` (with an optional newline or NUL) in
    /// one write at offset 0.
    fn write_active(&self, offset: u64, data: &[u8]) -> Result<u32, FuseErrno> {
        if self.ima.is_active() {
            return Err(FuseErrno::EBUSY);
        }
        if data.len() >= 3 || offset != 0 {
            return Err(FuseErrno::EINVAL);
        }
        // memdup_user_nul + kstrtouint: the text ends at a NUL, one trailing newline is
        // allowed, base 10 with an optional `+`.
        let text = data.split(|&b| b == 0).next().unwrap_or_default();
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let digits = text.strip_prefix(b"+").unwrap_or(text);
        let value = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(FuseErrno::EINVAL)?;
        if value != 1 {
            return Err(FuseErrno::EINVAL);
        }
        self.ima.activate().map_err(FuseErrno::from)?;
        Ok(data.len() as u32)
    }

    /// A write to a `*_for_children` file (Huawei's `ima_write_*_for_children`): one write
    /// of less than a page at offset 0, else EINVAL. Paths are read when written, as the
    /// writer sees them (the RFC reads them when the child starts); a file that cannot be
    /// read, a policy that does not parse, a certificate that does not load and a bad
    /// kcmd option fail the write (ENOENT..., EINVAL, EBADMSG) instead of the child's start.
    fn write_for_children(
        &self,
        item: ChildItem,
        pid: u32,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, FuseErrno> {
        if offset != 0 || data.len() >= 4096 {
            return Err(FuseErrno::EINVAL);
        }
        let text = std::str::from_utf8(data).map_err(|_| FuseErrno::EINVAL)?;
        // `echo path >` adds a newline the RFC would take as part of the path.
        let text = text.trim_end_matches(['\n', '\0']);
        let read = |path: &str| -> Result<Vec<u8>, FuseErrno> {
            if !path.starts_with('/') {
                return Err(FuseErrno::EINVAL);
            }
            std::fs::read(path_as_seen_by(pid, path)).map_err(|e| {
                log::warn!("ima: {item:?} for children: {path}: {e}");
                err(e.raw_os_error().unwrap_or(libc::EIO))
            })
        };
        match item {
            ChildItem::Policy => {
                let policy = String::from_utf8(read(text)?).map_err(|_| FuseErrno::EINVAL)?;
                if let Err((line, e)) = crate::engine::policy::parse_text(&policy) {
                    log::warn!("ima: policy_for_children {text}: line {line}: {e}");
                    return Err(FuseErrno::EINVAL);
                }
                self.ima.stage_child_policy(policy);
            }
            ChildItem::X509 => {
                let cert = read(text)?;
                if let Err(e) = crate::engine::keys::Keyring::new().add_bytes(&cert) {
                    log::warn!("ima: x509_for_children {text}: {e}");
                    return Err(FuseErrno::from(e.errno()));
                }
                self.ima.stage_child_x509(cert);
            }
            ChildItem::Kcmd => {
                let kcmd = crate::engine::children::parse_kcmd(text).map_err(|e| {
                    log::warn!("ima: kcmd_for_children: {e}");
                    FuseErrno::EINVAL
                })?;
                self.ima.stage_child_kcmd(kcmd);
            }
        }
        Ok(data.len() as u32)
    }

    /// Load what was written to `keys` (at each close of the fd, so `close` reports errors).
    fn flush_keys(&self, fh: FileHandle) -> Result<(), FuseErrno> {
        let handle = self.handle(fh)?;
        let mut h = handle.lock();
        let Handle::KeysWrite {
            data,
            pid,
            uid,
            gid,
        } = &mut *h
        else {
            return Ok(());
        };
        if data.is_empty() {
            return Ok(());
        }
        let written = std::mem::take(data);
        let bytes = if written.first() == Some(&b'/') {
            let text = String::from_utf8_lossy(&written);
            let path = text.trim_end_matches(['\n', '\0']);
            std::fs::read(path_as_seen_by(*pid, path))
                .map_err(|e| err(e.raw_os_error().unwrap_or(libc::EIO)))?
        } else {
            written
        };
        let subject: Subject = Caller::of_task(*pid, *uid, *gid).subject();
        self.ima
            .add_keys(&bytes, &subject)
            .map(|_| ())
            .map_err(|e| FuseErrno::from(e.errno()))
    }

    /// Commit a policy write session at the flush of the close(2) by the process that wrote
    /// it. The kernel commits in ->release, which runs before close(2) returns to the
    /// caller; FUSE sends RELEASE asynchronously, and with several worker threads a
    /// following `cat policy` or the next writer's open could overtake it (stale read-back,
    /// spurious EBUSY). FLUSH is synchronous with close(2). It carries the closer's lock
    /// owner (its fd table), which a direct-I/O WRITE carries too, so a flush by the
    /// writer's own fd table commits; closes elsewhere (a shell's dup2 juggling before the
    /// first write, a forked child) leave the session to RELEASE. The divergence: a writer
    /// that dup()s the fd and closes one copy commits early; its later writes start a new
    /// session.
    fn flush_policy(&self, fh: FileHandle, lock_owner: u64) {
        let Ok(handle) = self.handle(fh) else {
            return;
        };
        let mut h = handle.lock();
        if let Handle::PolicyWrite {
            session,
            writer,
            closed,
            ..
        } = &mut *h
        {
            *closed = true;
            if *writer == Some(lock_owner) {
                if let Some(session) = session.take() {
                    let committed = self.ima.policy_release(session);
                    log::debug!("policy write session closed at flush (committed: {committed})");
                }
            }
        }
    }

    /// `ima_open_policy`, except that a write open finding the policy busy with a session
    /// whose file was closed (FLUSH seen) but not yet released gives that release the time
    /// to arrive (at most [`POLICY_RELEASE_SETTLE`]): the kernel ends the session within
    /// close(2), FUSE sends RELEASE after it, so `close` then `open` would otherwise see a
    /// spurious EBUSY.
    fn open_policy_settled(
        &self,
        access: PolicyAccess,
        admin: bool,
    ) -> Result<PolicyHandle, FuseErrno> {
        let start = std::time::Instant::now();
        loop {
            match self.ima.open_policy(access, admin) {
                Err(e) if e.0 == libc::EBUSY && start.elapsed() < POLICY_RELEASE_SETTLE => {
                    if !self.policy_writer_closing() {
                        return Err(FuseErrno::from(e));
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                r => return r.map_err(FuseErrno::from),
            }
        }
    }

    /// Whether an open policy write session's file has been closed (its release pending).
    fn policy_writer_closing(&self) -> bool {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        handles
            .iter()
            .any(|h| matches!(&*h.lock(), Handle::PolicyWrite { closed: true, .. }))
    }

    fn release(&self, fh: FileHandle) {
        let Ok(handle) = self.handle(fh) else {
            return;
        };
        let mut h = handle.lock();
        if let Handle::PolicyWrite { session, .. } = &mut *h {
            if let Some(session) = session.take() {
                self.ima.policy_release(session);
            }
        }
        // Only now: a write open waiting for this session's end looks for it here.
        self.handles.lock().remove(&fh.0);
        if let (Handle::Nest { registration, .. }, Some(host)) = (&*h, &self.nest) {
            host.unregister(*registration);
        }
    }

    /// Directory entries of `ino` after `.` and `..`.
    fn children(&self, ino: u64) -> Vec<(u64, FileType, String)> {
        self.tree
            .children(ino)
            .filter(|e| self.present(e))
            .map(|e| {
                let kind = match e.node {
                    Node::Dir => FileType::Directory,
                    Node::Symlink(_) => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                (e.ino, kind, e.name.clone())
            })
            .collect()
    }
}

/// Files are never cached by the kernel: each path walk looks the name up again, which
/// refreshes the size (see the module docs) and makes a removed `policy` disappear at once.
/// Directories and symlinks never change, so their entries and attributes are cached (a
/// path walk to a file then costs one LOOKUP instead of three).
fn ttl(node: &Node) -> Duration {
    match node {
        Node::Dir | Node::Symlink(_) => Duration::from_secs(3600),
        _ => Duration::ZERO,
    }
}

struct Adapter(Arc<Inner>);

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> io::Result<()> {
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = &self.0;
        let found = fs.tree.lookup(parent.0, name).filter(|e| fs.present(e));
        match found {
            Some(e) => reply.entry(&ttl(&e.node), &fs.attr(e.ino, &e.node), Generation(0)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.node(ino.0) {
            Some(node) => reply.attr(&ttl(&node), &self.0.attr(ino.0, &node)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(node) = self.0.node(ino.0) else {
            return reply.error(FuseErrno::ENOENT);
        };
        // O_TRUNC (`echo rule > policy`) arrives as a size change after the open: securityfs
        // accepts and ignores it. Modes and owners are fixed here.
        if mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(FuseErrno::EPERM);
        }
        reply.attr(&ttl(&node), &self.0.attr(ino.0, &node));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.0.node(ino.0) {
            Some(Node::Symlink(target)) => reply.data(target.as_bytes()),
            Some(_) => reply.error(FuseErrno::EINVAL),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.0.open(req, ino.0, flags.0) {
            Ok(h) => {
                let fh = self.0.add_handle(h);
                match self.0.file_check(req, ino.0, flags.0) {
                    Ok(()) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                    // Refused by appraisal: the open is undone (and already released in
                    // the engine).
                    Err(e) => {
                        self.0.release(FileHandle(fh));
                        reply.error(e);
                    }
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.0.read(ino.0, fh, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
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
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let append = flags.0 & libc::O_APPEND != 0;
        match self
            .0
            .write(fh, offset, data, lock_owner.map(|o| o.0), append)
        {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.0.flush_policy(fh, lock_owner.0);
        match self.0.flush_keys(fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.release(fh);
        self.0.file_closed(ino.0, flags.0);
        reply.ok();
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // securityfs has no xattr handlers.
        reply.error(FuseErrno::EOPNOTSUPP);
    }

    #[allow(clippy::too_many_arguments)]
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
        // securityfs files have no ->unlocked_ioctl: isatty() and friends get ENOTTY.
        reply.error(FuseErrno::ENOTTY);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        reply_seq_lseek(reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply_opendir(self.0.node(ino.0).map(|n| n == Node::Dir), reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let fs = &self.0;
        if fs.node(ino.0) != Some(Node::Dir) {
            return reply.error(FuseErrno::ENOTDIR);
        }
        // securityfs lists a directory with dcache_readdir, which walks the children
        // newest first (`ls -U` on this machine's securityfs shows `lockdown` before the
        // earlier `lsm`): reverse creation order after `.` and `..`.
        let children = fs.children(ino.0).into_iter().rev();
        reply_readdir(reply, ino.0, fs.tree.parent_of(ino.0), children, offset);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        // securityfs directories have no ->create.
        reply.error(FuseErrno::EACCES);
    }
}

impl SecurityFs {
    pub fn new(ima: Arc<Ima>, options: SecurityFsOptions) -> SecurityFs {
        SecurityFs::with_nest(ima, options, None)
    }

    /// Report `coverage` in `imafs/exec_watch` (a view with `imafs/`, before it is served).
    pub fn with_exec_watch(mut self, coverage: Coverage) -> SecurityFs {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.exec_watch = Some(coverage);
        }
        self
    }

    /// [`SecurityFs::new`] hosting nested namespaces through `imafs/nest` (see
    /// [`crate::fs::nest`]).
    pub fn with_nest(
        ima: Arc<Ima>,
        options: SecurityFsOptions,
        nest: Option<Arc<NestHost>>,
    ) -> SecurityFs {
        let mut entries = build_entries(&ima);
        if nest.is_some() {
            entries.push(Entry {
                ino: IMAFS_DIR,
                parent: ROOT,
                name: "imafs".into(),
                node: Node::Dir,
            });
            entries.push(Entry {
                ino: NEST,
                parent: IMAFS_DIR,
                name: "nest".into(),
                node: Node::Nest,
            });
            entries.push(Entry {
                ino: EXEC_WATCH,
                parent: IMAFS_DIR,
                name: "exec_watch".into(),
                node: Node::ExecWatch,
            });
            entries.push(Entry {
                ino: TRANSPORT,
                parent: IMAFS_DIR,
                name: "transport".into(),
                node: Node::Transport,
            });
        }
        SecurityFs {
            inner: Arc::new(Inner {
                ima,
                nest,
                exec_watch: None,
                options,
                tree: StaticTree::new(entries),
                notifier: std::sync::OnceLock::new(),
                empty: empty_file(),
                mount_time: SystemTime::now(),
                handles: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
            }),
        }
    }

    /// Names of the files in `integrity/ima/`, in creation order (for tests and tools).
    pub fn ima_dir_names(&self) -> Vec<String> {
        self.inner
            .children(IMA_DIR)
            .into_iter()
            .map(|c| c.2)
            .collect()
    }

    /// fuser configuration: source `securityfs`, type `fuse.imafs-securityfs`,
    /// `default_permissions` (the kernel enforces the modes), `allow_other` per the
    /// options, at least 4 worker threads with cloned fds. (A dead daemon's mount is
    /// cleaned up by [`super::session::UnmountWatchdog`], not fuser's `AutoUnmount`.)
    pub fn fuser_config(&self) -> Config {
        let o = &self.inner.options;
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("securityfs".into()),
            // As a kernel option, so a direct mount(2) shows it too (fuser passes
            // `Subtype` only to fusermount3); /proc/mounts then reads
            // `securityfs <dir> fuse.imafs-securityfs ...`.
            MountOption::CUSTOM("subtype=imafs-securityfs".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoExec,
        ];
        cfg.acl = if o.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        cfg.n_threads = Some(o.threads.max(4));
        cfg.clone_fd = true;
        cfg
    }

    /// Mount at `mountpoint` and serve from background threads.
    pub fn mount(self, mountpoint: &Path) -> io::Result<fuser::BackgroundSession> {
        let cfg = self.fuser_config();
        let inner = self.inner.clone();
        let session = fuser::Session::new(Adapter(self.inner), mountpoint, &cfg)?;
        let _ = inner.notifier.set(session.notifier());
        session.spawn()
    }

    /// Mount at `mountpoint` and serve until unmounted, or until SIGTERM/SIGINT (then
    /// unmount cleanly and return).
    pub fn serve(self, mountpoint: &Path) -> io::Result<()> {
        self.serve_with(mountpoint, || {})
    }

    /// [`SecurityFs::serve`], calling `ready` once the mount is live.
    pub fn serve_with(self, mountpoint: &Path, ready: impl FnOnce()) -> io::Result<()> {
        let cfg = self.fuser_config();
        let signals = super::session::stop_signals()?;
        let inner = self.inner.clone();
        let session = fuser::Session::new(Adapter(self.inner), mountpoint, &cfg)?;
        let _ = inner.notifier.set(session.notifier());
        ready();
        super::session::run_until_signal(session, signals, mountpoint, "securityfs")
    }

    /// Serve a `/dev/fuse` descriptor mounted by the caller (the mount helper) from
    /// background threads.
    pub fn spawn_fd(self, fuse_fd: OwnedFd) -> io::Result<fuser::BackgroundSession> {
        let cfg = self.fuser_config();
        let inner = self.inner.clone();
        let session = fuser::Session::from_fd(Adapter(self.inner), fuse_fd, cfg.acl, cfg.clone())?;
        let _ = inner.notifier.set(session.notifier());
        session.spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ima::Config as ImaConfig;

    fn names(cfg: ImaConfig) -> Vec<String> {
        let ima = Arc::new(Ima::new(cfg).expect("engine"));
        SecurityFs::new(ima, SecurityFsOptions::default()).ima_dir_names()
    }

    #[test]
    fn files_exist_for_tpm_banks_and_sha1_slot_only() {
        // sha256-only TPM, ima_hash=sha512: files for sha256 and the extra sha1 slot, none
        // for the ima_hash slot (ima_crypto.c: ima_init_crypto; ima_fs.c:
        // create_securityfs_measurement_lists).
        let cfg = ImaConfig {
            banks: vec![HashAlgo::Sha256],
            hash: HashAlgo::Sha512,
            ..ImaConfig::default()
        };
        assert_eq!(
            names(cfg),
            [
                "ascii_runtime_measurements_sha256",
                "binary_runtime_measurements_sha256",
                "ascii_runtime_measurements_sha1",
                "binary_runtime_measurements_sha1",
                "ascii_runtime_measurements",
                "binary_runtime_measurements",
                "runtime_measurements_count",
                "violations",
                "policy",
                "pcrs",
                "keys",
                "active",
                "policy_for_children",
                "x509_for_children",
                "kcmd_for_children",
            ]
        );
    }

    #[test]
    fn no_tpm_gives_sha1_files_only() {
        let cfg = ImaConfig {
            banks: vec![],
            hash: HashAlgo::Sha256,
            ..ImaConfig::default()
        };
        let n = names(cfg);
        assert!(n.contains(&"ascii_runtime_measurements_sha1".to_string()));
        assert!(!n.iter().any(|x| x.ends_with("_sha256")), "{n:?}");
    }

    #[test]
    fn pcrs_lists_file_banks() {
        let ima = Arc::new(Ima::new(ImaConfig::default()).expect("engine"));
        let fs = SecurityFs::new(ima, SecurityFsOptions::default());
        let text = String::from_utf8(fs.inner.render(&Node::Pcrs)).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("PCR-10 sha1 ") && lines[0].len() == 12 + 40);
        assert!(lines[1].starts_with("PCR-10 sha256 ") && lines[1].len() == 14 + 64);
    }
}
