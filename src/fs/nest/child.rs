//! The child side of nesting: a nested daemon registers with its parent namespace through
//! the parent's control file and forwards its container's opens and releases to it (the
//! protocol is in the parent module's docs). The hooks use it; it uses no hook.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::engine::children::{ChildConfig, ChildConfigError};
use crate::engine::Errno;
use crate::fs::caller::{Caller, OpenInfo};

use super::CONTROL_PATH;

/// `FUSE_SUPER_MAGIC`: the control file must be served by a FUSE daemon (ours).
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// How long a child waits before it looks for new mapping events again.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Uid and gid that stand for ids not mapped in the parent's view (`overflowuid`).
const OVERFLOW_ID: u32 = 65534;

/// Why a nested daemon cannot register with its parent namespace ([`ParentLink::detect`]).
#[derive(Debug, thiserror::Error)]
pub enum NestError {
    /// The parent's control file exists (this container is served by imafs) but cannot be
    /// opened: not the container's root, typically.
    #[error(
        "{CONTROL_PATH}: {0}: this container is served by imafs, and a nested namespace \
         must register with it"
    )]
    Register(#[source] std::io::Error),
    #[error("{CONTROL_PATH}: read: {0}")]
    Read(#[source] std::io::Error),
    /// The parent answered with something that is not a child configuration.
    #[error("{CONTROL_PATH}: the parent's reply: {0}")]
    Reply(#[source] ChildConfigError),
    /// The container's root cannot be stat'ed.
    #[error("/: {0}")]
    Root(#[source] std::io::Error),
}

/// A nested daemon's registration with its parent namespace (the child side).
pub struct ParentLink {
    control: File,
    /// `st_dev` of the parent's overlay: only files on it are the parent's to see.
    parent_dev: u64,
    /// This daemon's effective ids in the parent's view, taken before any user namespace.
    outer_ids: (u32, u32),
    /// The daemon entered a new user namespace: only its root maps to `outer_ids`.
    in_user_ns: AtomicBool,
    next_token: AtomicU64,
    /// The directory this daemon's overlay shows, once announced.
    rootfs: std::sync::OnceLock<Vec<u8>>,
    /// This daemon's own overlay, once announced.
    own_dev: std::sync::OnceLock<u64>,
    /// Where the stream of mapping events starts on the control file (after the
    /// configuration).
    events_offset: u64,
}

impl ParentLink {
    /// Register with the parent namespace when this process runs in a container that imafs
    /// serves: `Ok(None)` when there is none, the link and the staged child configuration
    /// otherwise. Call it before entering new namespaces.
    pub fn detect() -> Result<Option<(ParentLink, ChildConfig)>, NestError> {
        let Ok(fs) = rustix::fs::statfs(CONTROL_PATH) else {
            return Ok(None);
        };
        if fs.f_type as u64 != FUSE_SUPER_MAGIC {
            return Ok(None);
        }
        let mut control = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(CONTROL_PATH)
            .map_err(NestError::Register)?;
        let mut staged = Vec::new();
        control.read_to_end(&mut staged).map_err(NestError::Read)?;
        let events_offset = staged.len() as u64;
        let config = ChildConfig::decode(&staged).map_err(NestError::Reply)?;
        // The container's root is the parent's overlay (imafs run pivots into it; a bind
        // mount as a container's root is the same file system).
        let parent_dev = std::fs::metadata("/").map_err(NestError::Root)?.dev();
        let link = ParentLink {
            control,
            parent_dev,
            outer_ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            in_user_ns: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            rootfs: std::sync::OnceLock::new(),
            own_dev: std::sync::OnceLock::new(),
            events_offset,
        };
        log::info!("nest: registered with the parent namespace (overlay device {parent_dev:#x})");
        Ok(Some((link, config)))
    }

    /// The daemon now runs in a new user namespace whose root is the caller.
    pub fn entered_user_ns(&self) {
        self.in_user_ns.store(true, Ordering::SeqCst);
    }

    /// Whether a lower file on device `dev` is seen by the parent (lives on its overlay).
    pub fn covers(&self, dev: u64) -> bool {
        dev == self.parent_dev
    }

    /// An id of this daemon's user namespace as the parent sees it.
    fn outer(&self, id: u32, outer: u32) -> u32 {
        if !self.in_user_ns.load(Ordering::SeqCst) {
            id
        } else if id == 0 {
            outer
        } else {
            OVERFLOW_ID
        }
    }

    /// Forward an open of the parent's node `node` (see the module docs). The returned token
    /// names it in [`ParentLink::forward_release`].
    pub fn forward_open(
        &self,
        node: u64,
        info: &OpenInfo<'_>,
        caller: &Caller,
    ) -> Result<u64, Errno> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (ouid, ogid) = self.outer_ids;
        let [uid, euid, suid, gid, egid, sgid] = caller.subject_ids;
        let ids = [
            self.outer(uid, ouid),
            self.outer(euid, ouid),
            self.outer(suid, ouid),
            self.outer(gid, ogid),
            self.outer(egid, ogid),
            self.outer(sgid, ogid),
        ];
        // Capabilities held in a user namespace are none in its parent.
        let cap = if self.in_user_ns.load(Ordering::SeqCst) {
            0
        } else {
            caller.cap_effective
        };
        let outer = Caller {
            subject_ids: ids,
            cap_effective: cap,
            comm: caller.comm.clone(),
        };
        let line = format!(
            "open {token} {node} {} {} {} {} {}\n",
            info.flags,
            u8::from(info.exec),
            u8::from(info.created),
            info.pid,
            super::caller_fields(&outer),
        );
        self.send(line.as_bytes())?;
        Ok(token)
    }

    /// Tell the parent the device number of this daemon's own overlay and the directory it
    /// shows (a path of the parent's container): execs of its files reach the parent as this
    /// daemon's forwarded opens, so the parent's seccomp listener leaves them alone, and a
    /// mapping of one is the parent's file under that directory.
    pub fn announce_overlay(&self, dev: u64, rootfs: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        let rootfs = rootfs.as_os_str().as_bytes().to_vec();
        let _ = self.rootfs.set(rootfs.clone());
        let _ = self.own_dev.set(dev);
        self.send_overlay(dev, &rootfs);
    }

    /// This daemon's own overlay, once announced.
    pub fn own_overlay(&self) -> Option<u64> {
        self.own_dev.get().copied()
    }

    /// `caller` as the parent saw it, as this daemon's user namespace sees it (the inverse
    /// of what [`ParentLink::forward_open`] does).
    pub fn inner_caller(&self, caller: &Caller) -> Caller {
        let (ouid, ogid) = self.outer_ids;
        let inner = |id: u32, outer: u32| {
            if !self.in_user_ns.load(Ordering::SeqCst) {
                id
            } else if id == outer {
                0
            } else {
                OVERFLOW_ID
            }
        };
        let [uid, euid, suid, gid, egid, sgid] = caller.subject_ids;
        Caller {
            subject_ids: [
                inner(uid, ouid),
                inner(euid, ouid),
                inner(suid, ouid),
                inner(gid, ogid),
                inner(egid, ogid),
                inner(sgid, ogid),
            ],
            cap_effective: caller.cap_effective,
            comm: caller.comm.clone(),
        }
    }

    /// Read the parent's mapping events for this namespace, on a thread of their own, for
    /// the daemon's life: each complete line is handed to `on_event`.
    pub fn follow_events(
        self: &std::sync::Arc<Self>,
        on_event: impl Fn(super::MapEvent) + Send + 'static,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let link = self.clone();
        std::thread::Builder::new()
            .name("imafs-nest-events".into())
            .spawn(move || {
                let mut offset = link.events_offset;
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match link.control.read_at(&mut buf, offset) {
                        Ok(0) => std::thread::sleep(EVENTS_POLL),
                        Ok(n) => {
                            offset += n as u64;
                            let text = String::from_utf8_lossy(&buf[..n]);
                            for line in text.lines() {
                                match super::MapEvent::parse(line) {
                                    Some(ev) => on_event(ev),
                                    None => log::warn!("nest: bad event {line:?}"),
                                }
                            }
                        }
                        Err(e) => {
                            log::warn!("nest: reading events from the parent: {e}");
                            return;
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// Pass on a nested namespace's announcement (its overlay `dev` shows `rootfs` of this
    /// namespace's container): for the parent, it shows that directory of this daemon's
    /// rootfs.
    pub fn relay_overlay(&self, dev: u64, rootfs: &[u8]) {
        let Some(own) = self.rootfs.get() else {
            return;
        };
        let mut joined = own.clone();
        while joined.last() == Some(&b'/') {
            joined.pop();
        }
        joined.extend_from_slice(rootfs);
        self.send_overlay(dev, &joined);
    }

    fn send_overlay(&self, dev: u64, rootfs: &[u8]) {
        let line = format!("overlay {dev} {}\n", hex::encode(rootfs));
        if let Err(e) = self.send(line.as_bytes()) {
            log::warn!("nest: announcing an overlay to the parent: {e}");
        }
    }

    pub fn forward_release(&self, token: u64) {
        if let Err(e) = self.send(format!("release {token}\n").as_bytes()) {
            log::warn!("nest: release {token} to the parent: {e}");
        }
    }

    fn send(&self, request: &[u8]) -> Result<(), Errno> {
        match (&self.control).write(request) {
            Ok(n) if n == request.len() => Ok(()),
            Ok(_) => Err(Errno::EIO),
            Err(e) => Err(Errno(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }
}
