//! The TPM's PCRs where tools look for them in sysfs, for `imafs run` containers (there is
//! no TPM behind the emulated PCR banks): `tpm0/pcr-<alg>/<n>` for every bank (TPM 2.0
//! kernels: the value in upper-case hex and a newline) and, with a sha1 bank,
//! `tpm0/device/pcrs` (TPM 1.2 kernels: `PCR-NN: XX XX ... \n` for PCRs 0-23), which
//! `evmctl ima_measurement` 1.4 reads. Mounted at the container's `/sys/class/tpm`. Values
//! are read from the engine at each read, so they follow the measurement list.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno as FuseErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, Request, SessionACL,
};

use crate::engine::hash::HashAlgo;
use crate::engine::ima::Ima;
use crate::fs::static_tree::{
    reply_opendir, reply_readdir, reply_seq_lseek, StaticTree, TreeEntry, ROOT,
};

/// PCRs a TPM has.
const PCRS: u32 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    /// TPM 1.2 `device/pcrs` (sha1 bank).
    Pcrs,
    /// TPM 2.0 `pcr-<alg>/<n>`.
    Pcr(HashAlgo, u32),
}

/// The view of one engine's PCR banks.
pub struct TpmSysfs {
    ima: Arc<Ima>,
    tree: StaticTree<Node>,
    mounted_at: SystemTime,
}

impl TpmSysfs {
    pub fn new(ima: Arc<Ima>) -> TpmSysfs {
        let mut entries = Vec::new();
        let mut next = ROOT + 1;
        let mut add = |parent: u64, name: String, node: Node| -> u64 {
            let ino = next;
            next += 1;
            entries.push(TreeEntry {
                ino,
                parent,
                name,
                node,
            });
            ino
        };
        let tpm0 = add(ROOT, "tpm0".into(), Node::Dir);
        let banks = ima.config().banks.clone();
        if banks.contains(&HashAlgo::Sha1) {
            let device = add(tpm0, "device".into(), Node::Dir);
            add(device, "pcrs".into(), Node::Pcrs);
        }
        for algo in banks {
            let dir = add(tpm0, format!("pcr-{algo}"), Node::Dir);
            for n in 0..PCRS {
                add(dir, n.to_string(), Node::Pcr(algo, n));
            }
        }
        TpmSysfs {
            ima,
            tree: StaticTree::new(entries),
            mounted_at: SystemTime::now(),
        }
    }

    fn node(&self, ino: u64) -> Option<Node> {
        if ino == ROOT {
            return Some(Node::Dir);
        }
        self.tree.entry(ino).map(|e| e.node)
    }

    fn pcr(&self, algo: HashAlgo, n: u32) -> Vec<u8> {
        self.ima
            .pcr_values()
            .into_iter()
            .find(|(pcr, bank, _)| *pcr == n && *bank == algo)
            .map(|(_, _, digest)| digest.as_bytes().to_vec())
            .unwrap_or_else(|| vec![0; algo.digest_size()])
    }

    /// The file's content now.
    fn content(&self, node: Node) -> Vec<u8> {
        match node {
            Node::Dir => Vec::new(),
            Node::Pcr(algo, n) => {
                format!("{}\n", hex::encode_upper(self.pcr(algo, n))).into_bytes()
            }
            Node::Pcrs => {
                let mut text = String::new();
                for n in 0..PCRS {
                    text.push_str(&format!("PCR-{n:02}: "));
                    for byte in self.pcr(HashAlgo::Sha1, n) {
                        text.push_str(&format!("{byte:02X} "));
                    }
                    text.push('\n');
                }
                text.into_bytes()
            }
        }
    }

    fn attr(&self, ino: u64, node: Node) -> FileAttr {
        let (kind, perm, nlink) = match node {
            Node::Dir => (FileType::Directory, 0o755, 2),
            _ => (FileType::RegularFile, 0o444, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            // The length never changes (fixed-width values); sendfile readers stop there.
            size: self.content(node).len() as u64,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn fuser_config() -> Config {
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("tpm".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoExec,
            MountOption::RO,
        ];
        cfg.acl = SessionACL::All;
        cfg
    }

    /// Serve a `/dev/fuse` descriptor mounted by the caller (see `mount_helper::mount_fuse`).
    pub fn spawn_fd(self, fuse_fd: OwnedFd) -> io::Result<fuser::BackgroundSession> {
        let cfg = Self::fuser_config();
        fuser::Session::from_fd(self, fuse_fd, cfg.acl, cfg.clone())?.spawn()
    }
}

const TTL: Duration = Duration::from_secs(3600);

impl Filesystem for TpmSysfs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.tree.lookup(parent.0, name) {
            Some(e) => reply.entry(&TTL, &self.attr(e.ino, e.node), fuser::Generation(0)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino.0) {
            Some(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino.0) {
            Some(Node::Dir) => reply.error(FuseErrno::EISDIR),
            Some(_) if flags.0 & libc::O_ACCMODE != libc::O_RDONLY => {
                reply.error(FuseErrno::EACCES)
            }
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(node) = self.node(ino.0) else {
            return reply.error(FuseErrno::ENOENT);
        };
        let content = self.content(node);
        let start = (offset as usize).min(content.len());
        let end = start.saturating_add(size as usize).min(content.len());
        reply.data(&content[start..end]);
    }

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
        reply_opendir(self.node(ino.0).map(|n| n == Node::Dir), reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        if self.node(ino.0) != Some(Node::Dir) {
            return reply.error(FuseErrno::ENOTDIR);
        }
        // kernfs lists a directory's entries in the order they were made.
        let children = self.tree.children(ino.0).map(|e| {
            let kind = match e.node {
                Node::Dir => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (e.ino, kind, e.name.clone())
        });
        reply_readdir(reply, ino.0, self.tree.parent_of(ino.0), children, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ima::Config;

    #[test]
    fn files_hold_the_engine_pcrs_in_kernel_formats() {
        let ima = Arc::new(Ima::new(Config::default()).expect("engine"));
        let view = TpmSysfs::new(ima.clone());
        let names: Vec<&str> = view.tree.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(&names[..4], ["tpm0", "device", "pcrs", "pcr-sha1"]);
        // 24 files per bank for sha1 and sha256, plus tpm0, device, pcrs and two bank dirs.
        assert_eq!(view.tree.iter().count(), 3 + 2 * (1 + 24));
        let (_, _, sha256_10) = ima
            .pcr_values()
            .into_iter()
            .find(|(p, b, _)| *p == 10 && *b == HashAlgo::Sha256)
            .expect("PCR 10 extended by the boot aggregate");
        assert_eq!(
            view.content(Node::Pcr(HashAlgo::Sha256, 10)),
            format!("{}\n", hex::encode_upper(sha256_10.as_bytes())).into_bytes()
        );
        assert_eq!(
            view.content(Node::Pcr(HashAlgo::Sha1, 0)),
            format!("{}\n", "0".repeat(40)).into_bytes()
        );
        let pcrs = String::from_utf8(view.content(Node::Pcrs)).expect("text");
        assert_eq!(pcrs.lines().count(), 24);
        assert_eq!(
            pcrs.lines().next(),
            Some(format!("PCR-00: {}", "00 ".repeat(20)).as_str())
        );
        assert!(pcrs
            .lines()
            .nth(10)
            .is_some_and(|l| l.starts_with("PCR-10: ")));
    }
}
