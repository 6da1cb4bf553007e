//! The directory tree of a virtual file system whose names are fixed when it is made (the
//! securityfs view of `integrity/ima`, the TPM's sysfs view): inode numbers, parents and
//! names, looked up, opened and listed the same way for both, as `fs/libfs.c` does for
//! securityfs (`simple_lookup`, `dcache_dir_open`, `dcache_readdir`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{FileHandle, FileType, FopenFlags, INodeNo, ReplyDirectory, ReplyLseek, ReplyOpen};

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

/// One name of the tree: its inode, its directory and what it is (`N`, the file system's own
/// node kinds).
#[derive(Clone, Debug)]
pub struct TreeEntry<N> {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    pub node: N,
}

/// Every name below the root, in creation order.
#[derive(Debug)]
pub struct StaticTree<N> {
    entries: Vec<TreeEntry<N>>,
}

impl<N> StaticTree<N> {
    pub fn new(entries: Vec<TreeEntry<N>>) -> StaticTree<N> {
        StaticTree { entries }
    }

    /// Every entry, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &TreeEntry<N>> {
        self.entries.iter()
    }

    /// The entry of inode `ino` (none for the root, which has no name).
    pub fn entry(&self, ino: u64) -> Option<&TreeEntry<N>> {
        self.entries.iter().find(|e| e.ino == ino)
    }

    /// The entry called `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Option<&TreeEntry<N>> {
        self.entries
            .iter()
            .find(|e| e.parent == parent && e.name.as_bytes() == name.as_bytes())
    }

    /// The entries of directory `ino`, in creation order.
    pub fn children(&self, ino: u64) -> impl DoubleEndedIterator<Item = &TreeEntry<N>> {
        self.entries.iter().filter(move |e| e.parent == ino)
    }

    /// The directory holding `ino` (the root is its own parent).
    pub fn parent_of(&self, ino: u64) -> u64 {
        self.entry(ino).map_or(ROOT, |e| e.parent)
    }
}

/// Answer OPENDIR of an inode that is a directory (`Some(true)`), another file
/// (`Some(false)`: ENOTDIR) or nothing (`None`: ENOENT).
pub fn reply_opendir(is_dir: Option<bool>, reply: ReplyOpen) {
    match is_dir {
        Some(true) => reply.opened(FileHandle(0), FopenFlags::empty()),
        Some(false) => reply.error(fuser::Errno::ENOTDIR),
        None => reply.error(fuser::Errno::ENOENT),
    }
}

/// Answer READDIR of directory `ino` in `parent`: `.`, `..`, then `children` (inode, type,
/// name), from entry `offset` on, as many as the reply holds.
pub fn reply_readdir(
    mut reply: ReplyDirectory,
    ino: u64,
    parent: u64,
    children: impl IntoIterator<Item = (u64, FileType, String)>,
    offset: u64,
) {
    let dots = [
        (ino, FileType::Directory, ".".to_string()),
        (parent, FileType::Directory, "..".to_string()),
    ];
    for (i, (child, kind, name)) in dots
        .into_iter()
        .chain(children)
        .enumerate()
        .skip(offset as usize)
    {
        if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
            break;
        }
    }
    reply.ok();
}

/// Answer LSEEK, which the kernel sends only for SEEK_DATA and SEEK_HOLE (it moves the
/// position itself for the others): the generated files are seq_files, whose `seq_lseek`
/// (fs/seq_file.c) knows neither and returns EINVAL, as `grep`'s probe for holes expects.
pub fn reply_seq_lseek(reply: ReplyLseek) {
    reply.error(fuser::Errno::EINVAL);
}
