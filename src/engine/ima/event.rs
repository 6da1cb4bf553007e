//! What a file hook is told about an access: the hook, the mask, the task, the inode and its
//! file system, the path and `security.ima` (the arguments `security/integrity/ima/ima_main.c`
//! passes to `process_measurement`, and `struct ima_event_data` of `ima.h`).

use crate::engine::audit::{AuditInode, AuditTask};
use crate::engine::measure::{FileId, FileVersion};
use crate::engine::policy::{Func, Object, Subject};

/// The task behind a file event. Its credentials and comm cost a `/proc` read to find out,
/// so the engine asks for them only when a rule tests the subject or a record names the task.
pub trait EventTask: std::fmt::Debug {
    fn subject(&self) -> Subject;
    fn comm(&self) -> &str;
}

/// A task whose details are known already.
#[derive(Clone, Debug, Default)]
pub struct KnownTask {
    pub subject: Subject,
    pub comm: String,
}

impl EventTask for KnownTask {
    fn subject(&self) -> Subject {
        self.subject
    }
    fn comm(&self) -> &str {
        &self.comm
    }
}

/// One file hook event: an open (FILE_CHECK), exec (BPRM_CHECK, CREDS_CHECK), mmap
/// (MMAP_CHECK, MMAP_CHECK_REQPROT) or a kernel read (MODULE_CHECK, FIRMWARE_CHECK, ...).
#[derive(Clone, Copy, Debug)]
pub struct FileEvent<'a> {
    pub func: Func,
    /// MAY_* bits, as `ima_main.c`: `ima_file_check` passes them.
    pub mask: u32,
    /// The task making the access (`pid` is its id as the audit records print it).
    pub task: &'a dyn EventTask,
    pub pid: u32,
    pub id: FileId,
    /// Version of the content at this access.
    pub version: FileVersion,
    pub owner: u32,
    pub group: u32,
    /// st_mode (type and permission bits).
    pub mode: u32,
    pub fsmagic: u64,
    /// The file system type (`ext4`): what `fsname=` matches.
    pub fsname: &'a str,
    /// The superblock's `s_id` (`vda`, or the type for a file system without a block
    /// device): what audit records print after `dev=`.
    pub fs_id: &'a str,
    pub fsuuid: Option<[u8; 16]>,
    /// Path as the container sees it (the event name).
    pub path: &'a [u8],
    /// The file's `security.ima`, if any (read when first needed).
    pub ima_xattr: XattrSource<'a>,
    /// The file (description) was opened for write (FMODE_WRITE).
    pub opened_for_write: bool,
    /// This open created the file (O_CREAT made it).
    pub created: bool,
}

impl FileEvent<'_> {
    pub(super) fn task(&self) -> AuditTask<'_> {
        let s = self.task.subject();
        AuditTask {
            pid: self.pid,
            uid: s.uid,
            gid: s.gid,
            euid: s.euid,
            suid: s.suid,
            fsuid: s.euid,
            egid: s.egid,
            sgid: s.sgid,
            fsgid: s.egid,
            comm: self.task.comm().as_bytes(),
            ..AuditTask::default()
        }
    }

    pub(super) fn inode(&self) -> AuditInode<'_> {
        AuditInode {
            dev: self.fs_id,
            ino: self.id.ino,
        }
    }

    /// The file's attributes that rules test (`ima_match_rules`' inode conditions).
    pub(super) fn object(&self) -> Object<'_> {
        Object {
            uid: self.owner,
            gid: self.group,
            fsmagic: self.fsmagic,
            fsname: self.fsname,
            fs_subtype: "",
            fsuuid: self.fsuuid,
        }
    }

    /// The last path component (what the kernel's dentry name snapshot gives).
    pub(super) fn file_name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) if i + 1 < self.path.len() => &self.path[i + 1..],
            _ => self.path,
        }
    }
}

/// Where a [`FileEvent`]'s `security.ima` comes from: given, or read on first use.
/// `process_measurement` reads it only for an action that uses it, so an open with nothing
/// left to do (a file already measured) costs no `getxattr`.
#[derive(Clone, Copy)]
pub enum XattrSource<'a> {
    Known(Option<&'a [u8]>),
    Lazy(&'a LazyXattr<'a>),
}

impl std::fmt::Debug for XattrSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XattrSource::Known(v) => f.debug_tuple("Known").field(v).finish(),
            XattrSource::Lazy(l) => f.debug_tuple("Lazy").field(&l.value.get()).finish(),
        }
    }
}

impl<'a> XattrSource<'a> {
    pub fn get(&self) -> Option<&'a [u8]> {
        match *self {
            XattrSource::Known(v) => v,
            XattrSource::Lazy(l) => l.get(),
        }
    }
}

/// A `security.ima` value read by `read` the first time it is asked for.
pub struct LazyXattr<'a> {
    read: &'a dyn Fn() -> Option<Vec<u8>>,
    value: std::cell::OnceCell<Option<Vec<u8>>>,
}

impl<'a> LazyXattr<'a> {
    pub fn new(read: &'a dyn Fn() -> Option<Vec<u8>>) -> LazyXattr<'a> {
        LazyXattr {
            read,
            value: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> Option<&[u8]> {
        self.value.get_or_init(|| (self.read)()).as_deref()
    }
}

/// What a hook asks the file system to do to the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOutcome {
    /// Write this value to `security.ima` (fix mode repaired a missing or wrong hash).
    pub set_ima_xattr: Option<Vec<u8>>,
}
