//! The inode table: FUSE node ids for lower files, and the descriptor budget.
//!
//! A node is identified by the lower `(st_dev, st_ino)` and remembers the parent node and the
//! name it was last looked up under. Its `O_PATH` descriptor is opened on demand by
//! re-resolving that name under the parent's descriptor (one component at a time with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`), checked against
//! the remembered `(dev, ino)`, and kept in a bounded cache with second-chance (clock)
//! eviction. So the daemon holds at most `cache capacity + open files + unlinked-but-referenced
//! nodes` descriptors, whatever the number of inodes the kernel remembers.
//!
//! A node whose name is removed while the kernel still references it (unlink, rmdir, rename
//! over it) is pinned: its descriptor is opened before the removal and kept until `forget`.

use fuser::BackingId;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The FUSE root node id.
pub const ROOT: u64 = 1;
/// Node ids at or above this are synthesized (when the lower inode number is taken or unusable).
const SYNTHETIC_BASE: u64 = 1 << 63;

pub struct Node {
    pub dev: u64,
    pub ino: u64,
    /// Parent node and the name this node was last looked up (or created, or renamed) under.
    pub parent: u64,
    pub name: Box<[u8]>,
    /// Kernel lookup count; the node is dropped when `forget` brings it to zero.
    pub nlookup: u64,
    /// Descriptor kept outside the cache (root, or a node whose name was removed).
    pub pinned: Option<Arc<OwnedFd>>,
    /// The name was removed while the kernel still held the node (path gets " (deleted)").
    pub unlinked: bool,
    /// Passthrough backing file shared by every open of this node (the kernel requires one
    /// per inode). Kept until `forget` so that re-opening a file costs no registration.
    pub backing: Option<Arc<BackingId>>,
    /// Unique among all nodes ever made: an open remembers it, so that a release arriving
    /// after the node was forgotten and its id reused does not count against the new node.
    pub serial: u64,
    /// How the kernel reaches this file's data, and what it has cached of it.
    pub io: NodeIo,
}

/// The lower file's content version as the kernel's caches can tell it: size, mtime and ctime
/// (ctime moves on every change, and is fine-grained once read, with multigrain timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentStamp {
    pub size: i64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl ContentStamp {
    pub fn of(st: &rustix::fs::Stat) -> ContentStamp {
        ContentStamp {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// The kernel's view of one regular file's data. The kernel refuses (EIO) an open whose data
/// path conflicts with the inode's current opens: a page-cache ("cached") open while a
/// passthrough open exists, or the reverse (`fs/fuse/iomode.c`). The counts include opens
/// whose release the kernel has sent but this daemon has not handled yet, so they never fall
/// below the kernel's own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeIo {
    pub passthrough_opens: u32,
    pub cached_opens: u32,
    /// The content version of the attributes last given to the kernel (the size it cuts
    /// page-cache reads at).
    pub kernel_attrs: Option<ContentStamp>,
    /// What the kernel's page cache of the file holds.
    pub page_cache: PageCache,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageCache {
    /// Nothing: a new inode.
    #[default]
    Empty,
    /// Nothing but pages of this version (some may be missing).
    Holds(ContentStamp),
    /// Unknown (being dropped or refilled, or left by an open that may have dropped it):
    /// to be dropped before it is kept.
    Changing,
}

struct CachedFd {
    fd: Arc<OwnedFd>,
    referenced: bool,
}

/// Bounded cache of `O_PATH` descriptors with second-chance eviction.
struct FdCache {
    map: HashMap<u64, CachedFd>,
    queue: VecDeque<u64>,
    capacity: usize,
}

impl FdCache {
    fn get(&mut self, id: u64) -> Option<Arc<OwnedFd>> {
        let entry = self.map.get_mut(&id)?;
        entry.referenced = true;
        Some(entry.fd.clone())
    }

    fn insert(&mut self, id: u64, fd: Arc<OwnedFd>) {
        if self.map.contains_key(&id) {
            return;
        }
        while self.map.len() >= self.capacity {
            let Some(victim) = self.queue.pop_front() else {
                break;
            };
            match self.map.get_mut(&victim) {
                Some(e) if e.referenced => {
                    e.referenced = false;
                    self.queue.push_back(victim);
                }
                Some(_) => {
                    self.map.remove(&victim);
                }
                None => {}
            }
        }
        self.map.insert(
            id,
            CachedFd {
                fd,
                referenced: false,
            },
        );
        self.queue.push_back(id);
        // Ids removed by `remove` stay queued; drop them once they dominate.
        if self.queue.len() > 2 * self.capacity + 16 {
            let map = &self.map;
            self.queue.retain(|id| map.contains_key(id));
        }
    }

    fn remove(&mut self, id: u64) {
        self.map.remove(&id);
    }
}

pub struct Inodes {
    pub nodes: HashMap<u64, Node>,
    by_id: HashMap<(u64, u64), u64>,
    cache: FdCache,
    next_synthetic: u64,
    next_serial: u64,
}

impl Inodes {
    pub fn new(root_fd: OwnedFd, root_dev: u64, root_ino: u64, cache_capacity: usize) -> Inodes {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                dev: root_dev,
                ino: root_ino,
                parent: ROOT,
                name: Box::new([]),
                nlookup: 1,
                pinned: Some(Arc::new(root_fd)),
                unlinked: false,
                backing: None,
                serial: 0,
                io: NodeIo::default(),
            },
        );
        let mut by_id = HashMap::new();
        by_id.insert((root_dev, root_ino), ROOT);
        Inodes {
            nodes,
            by_id,
            cache: FdCache {
                map: HashMap::new(),
                queue: VecDeque::new(),
                capacity: cache_capacity.max(8),
            },
            next_synthetic: 0,
            next_serial: 0,
        }
    }

    /// A descriptor for `id` if one is open (pinned or cached).
    pub fn cached_fd(&mut self, id: u64) -> Option<Arc<OwnedFd>> {
        let node = self.nodes.get(&id)?;
        if let Some(fd) = &node.pinned {
            return Some(fd.clone());
        }
        self.cache.get(id)
    }

    pub fn cache_fd(&mut self, id: u64, fd: Arc<OwnedFd>) {
        if let Some(node) = self.nodes.get(&id) {
            if node.pinned.is_none() {
                self.cache.insert(id, fd);
            }
        }
    }

    pub fn cached_count(&self) -> usize {
        self.cache.map.len()
    }

    /// The node for lower `(dev, ino)` found under `parent/name`: an existing node gets one more
    /// lookup and the new name; otherwise a node is created.
    pub fn register(&mut self, parent: u64, name: &[u8], dev: u64, ino: u64) -> u64 {
        if let Some(&id) = self.by_id.get(&(dev, ino)) {
            if let Some(node) = self.nodes.get_mut(&id) {
                if id != ROOT {
                    node.nlookup += 1;
                    if node.parent != parent || *node.name != *name {
                        node.parent = parent;
                        node.name = name.into();
                    }
                    if node.unlinked {
                        // Reachable again under a name (a hard link): resolvable normally.
                        node.unlinked = false;
                    }
                }
                return id;
            }
        }
        let id = self.allocate_id(ino);
        self.next_serial += 1;
        self.nodes.insert(
            id,
            Node {
                dev,
                ino,
                parent,
                name: name.into(),
                nlookup: 1,
                pinned: None,
                unlinked: false,
                backing: None,
                serial: self.next_serial,
                io: NodeIo::default(),
            },
        );
        self.by_id.insert((dev, ino), id);
        id
    }

    /// Node ids equal lower inode numbers where possible, so `stat` shows the real numbers
    /// (git, tar and find compare them); otherwise synthesized ones.
    fn allocate_id(&mut self, ino: u64) -> u64 {
        if ino > ROOT && ino < SYNTHETIC_BASE && !self.nodes.contains_key(&ino) {
            return ino;
        }
        loop {
            self.next_synthetic += 1;
            let id = SYNTHETIC_BASE | self.next_synthetic;
            if !self.nodes.contains_key(&id) {
                return id;
            }
        }
    }

    /// Drop `n` kernel lookups of `id`; remove the node when none remain.
    pub fn forget(&mut self, id: u64, n: u64) {
        if id == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 {
            return;
        }
        let key = (node.dev, node.ino);
        self.nodes.remove(&id);
        if self.by_id.get(&key) == Some(&id) {
            self.by_id.remove(&key);
        }
        self.cache.remove(id);
    }

    pub fn id_of(&self, dev: u64, ino: u64) -> Option<u64> {
        self.by_id.get(&(dev, ino)).copied()
    }

    /// Pin `fd` on `id` and mark it unlinked if `gone` (its last name was removed).
    pub fn pin(&mut self, id: u64, fd: Arc<OwnedFd>, gone: bool) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.pinned = Some(fd);
            node.unlinked = gone;
            self.cache.remove(id);
        }
    }

    /// Move `id` to `parent/name` (after a rename).
    pub fn rename(&mut self, id: u64, parent: u64, name: &[u8]) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.parent = parent;
            node.name = name.into();
            node.unlinked = false;
        }
    }

    /// Path of `id` from the root as the container sees it.
    pub fn path(&self, id: u64) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        let mut deleted = false;
        // The depth bound guards against a cycle left by a concurrent external rename.
        for _ in 0..4096 {
            if cur == ROOT {
                break;
            }
            let Some(node) = self.nodes.get(&cur) else {
                break;
            };
            deleted |= node.unlinked;
            parts.push(&node.name);
            cur = node.parent;
        }
        let mut out = Vec::new();
        for part in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(part);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        if deleted {
            out.extend_from_slice(b" (deleted)");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/").unwrap())
    }

    #[test]
    fn ids_follow_lower_inodes_and_forget_drops() {
        let mut t = Inodes::new(fd(), 1, 2, 8);
        let a = t.register(ROOT, b"a", 1, 100);
        assert_eq!(a, 100);
        assert_eq!(t.register(ROOT, b"a2", 1, 100), 100);
        assert_eq!(t.nodes[&100].nlookup, 2);
        // Same inode number on another device gets a synthesized id.
        let b = t.register(ROOT, b"b", 2, 100);
        assert!(b >= SYNTHETIC_BASE);
        let c = t.register(a, b"c", 1, 101);
        assert_eq!(t.path(c), b"/a2/c".to_vec());
        t.forget(a, 1);
        assert!(t.nodes.contains_key(&a));
        t.forget(a, 1);
        assert!(!t.nodes.contains_key(&a));
        assert_eq!(t.id_of(1, 100), None);
        assert_eq!(t.path(ROOT), b"/".to_vec());
    }

    #[test]
    fn cache_is_bounded() {
        let mut t = Inodes::new(fd(), 1, 2, 8);
        let shared = Arc::new(fd());
        for i in 0..100u64 {
            let id = t.register(ROOT, format!("f{i}").as_bytes(), 1, 1000 + i);
            t.cache_fd(id, shared.clone());
            assert!(t.cached_count() <= 8);
        }
        assert!(t.cached_fd(1099).is_some());
    }

    #[test]
    fn unlinked_paths_are_marked() {
        let mut t = Inodes::new(fd(), 1, 2, 8);
        let a = t.register(ROOT, b"tmp", 1, 50);
        t.pin(a, Arc::new(fd()), true);
        assert_eq!(t.path(a), b"/tmp (deleted)".to_vec());
        t.register(ROOT, b"again", 1, 50);
        assert_eq!(t.path(a), b"/again".to_vec());
    }
}
