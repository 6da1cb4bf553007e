//! Nested IMA namespaces: an imafs daemon started inside a container that imafs serves
//! becomes a child of that container's namespace (README "Namespaces").
//!
//! The parent's securityfs view has an extension file, `imafs/nest` (0600, like `policy`).
//! A nested daemon opens it read-write before it mounts anything and keeps it open for its
//! life; the open registers the daemon's process, its release unregisters it. A read gives
//! what the parent staged with `*_for_children` ([`ChildConfig::encode`]). Each write is one
//! request, answered by the write's result:
//!
//! - `open TOKEN NODE FLAGS EXEC CREATED PID UID EUID SUID GID EGID SGID CAPEFF COMM`: the
//!   child let one of its processes open the file whose inode number, seen through the
//!   parent's overlay, is NODE (the parent's FUSE node id). The parent runs its own hooks on
//!   that node, with the process's ids translated to the parent's view, and forwards to its
//!   own parent in turn; the write fails with the errno that refuses the open (EACCES from
//!   appraisal), and the child refuses it too. COMM is hex.
//! - `release TOKEN`: that open was closed.
//!
//! The parent measures none of the registered daemon's own opens of its lower files: they
//! are the daemon reading on behalf of its container, and arrive as forwarded events
//! instead. Registering is therefore a policy-administration act, allowed to whoever may
//! write the parent's `policy` (its owner, with CAP_SYS_ADMIN).
//!
//! Order: the child's own namespace first, then its ancestors, as in the user-namespace
//! series' `process_measurement`, which walks `user_ns->parent`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::engine::children::ChildConfig;
use crate::engine::Errno;
use crate::fs::ima_hooks::{opened_for_write, Caller, ImaHooks, LazyCaller, OpenInfo};
use crate::fs::overlay::OverlayStatus;

/// Where a nested daemon finds its parent's control file.
pub const CONTROL_PATH: &str = "/sys/kernel/security/imafs/nest";

/// `FUSE_SUPER_MAGIC`: the control file must be served by a FUSE daemon (ours).
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// Uid and gid that stand for ids not mapped in the parent's view (`overflowuid`).
const OVERFLOW_ID: u32 = 65534;

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
}

impl ParentLink {
    /// Register with the parent namespace when this process runs in a container that imafs
    /// serves: `Ok(None)` when there is none, the link and the staged child configuration
    /// otherwise. Call it before entering new namespaces.
    pub fn detect() -> Result<Option<(ParentLink, ChildConfig)>, String> {
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
            .map_err(|e| {
                format!(
                    "{CONTROL_PATH}: {e}: this container is served by imafs, and a nested \
                     namespace must register with it (run as the container's root, or pass \
                     --no-nest to be measured as a plain process of the container)"
                )
            })?;
        let mut staged = Vec::new();
        control
            .read_to_end(&mut staged)
            .map_err(|e| format!("{CONTROL_PATH}: read: {e}"))?;
        let config = ChildConfig::decode(&staged)
            .map_err(|e| format!("{CONTROL_PATH}: the parent's reply: {e}"))?;
        // The container's root is the parent's overlay (imafs run pivots into it; a bind
        // mount as a container's root is the same file system).
        let parent_dev = std::fs::metadata("/").map_err(|e| format!("/: {e}"))?.dev();
        let link = ParentLink {
            control,
            parent_dev,
            outer_ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            in_user_ns: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
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
        let line = format!(
            "open {token} {node} {} {} {} {} {} {} {} {} {} {} {cap:x} {}\n",
            info.flags,
            u8::from(info.exec),
            u8::from(info.created),
            info.pid,
            ids[0],
            ids[1],
            ids[2],
            ids[3],
            ids[4],
            ids[5],
            hex::encode(caller.comm.as_bytes()),
        );
        self.send(line.as_bytes())?;
        Ok(token)
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

/// The thread groups of registered child daemons (the parent side), whose own opens of
/// the parent's files are not events of the parent.
#[derive(Default)]
pub struct ChildDaemons {
    tgids: RwLock<HashMap<u32, usize>>,
}

impl ChildDaemons {
    /// Whether task `pid` (a thread id, as FUSE requests carry) belongs to a registered
    /// child daemon. Costs nothing while no child is registered.
    pub fn is_child_daemon(&self, pid: u32) -> bool {
        if self.tgids.read().is_empty() {
            return false;
        }
        let tgid = thread_group_of(pid);
        tgid.is_some_and(|t| self.tgids.read().contains_key(&t))
    }

    fn add(&self, tgid: u32) {
        *self.tgids.write().entry(tgid).or_default() += 1;
    }

    fn remove(&self, tgid: u32) {
        let mut t = self.tgids.write();
        if let Some(n) = t.get_mut(&tgid) {
            *n -= 1;
            if *n == 0 {
                t.remove(&tgid);
            }
        }
    }
}

/// `Tgid:` of `/proc/<pid>/status`.
fn thread_group_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// An open a child forwarded and has not released.
struct ForwardedOpen {
    /// The parent's read-only descriptor of the node, for the file's state at release.
    file: File,
    for_write: bool,
    /// Token of the same open forwarded to the parent's own parent.
    upward: Option<u64>,
}

struct Registration {
    tgid: u32,
    opens: HashMap<u64, ForwardedOpen>,
}

/// The parent side of nesting: registrations and the forwarded events they send.
pub struct NestHost {
    hooks: Arc<ImaHooks>,
    overlay: Option<OverlayStatus>,
    registrations: Mutex<HashMap<u64, Registration>>,
    next_registration: AtomicU64,
}

impl NestHost {
    /// `overlay`: the namespace's measuring overlay (forwarded node ids are its node ids);
    /// without one, registration is refused (ENODEV).
    pub fn new(hooks: Arc<ImaHooks>, overlay: Option<OverlayStatus>) -> NestHost {
        NestHost {
            hooks,
            overlay,
            registrations: Mutex::new(HashMap::new()),
            next_registration: AtomicU64::new(1),
        }
    }

    /// An open of the control file by task `pid`: register its thread group and hand it the
    /// staged child configuration. Returns the registration's id and the reply to read.
    pub fn register(&self, pid: u32) -> Result<(u64, Vec<u8>), Errno> {
        if self.overlay.is_none() {
            return Err(Errno(libc::ENODEV));
        }
        let tgid = thread_group_of(pid).ok_or(Errno(libc::ESRCH))?;
        let id = self.next_registration.fetch_add(1, Ordering::Relaxed);
        self.hooks.child_daemons().add(tgid);
        self.registrations.lock().insert(
            id,
            Registration {
                tgid,
                opens: HashMap::new(),
            },
        );
        let config = self.hooks.ima().take_child_config();
        log::info!("nest: child namespace registered (daemon pid {tgid})");
        Ok((id, config.encode()))
    }

    /// The release of a registration's control file: the child is gone; close what it left.
    pub fn unregister(&self, id: u64) {
        let Some(reg) = self.registrations.lock().remove(&id) else {
            return;
        };
        self.hooks.child_daemons().remove(reg.tgid);
        for (_, open) in reg.opens {
            self.close(open);
        }
        log::info!("nest: child namespace of daemon pid {} ended", reg.tgid);
    }

    /// One request written to the control file (see the module docs).
    pub fn request(&self, id: u64, data: &[u8]) -> Result<(), Errno> {
        let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        match fields.as_slice() {
            ["open", rest @ ..] => {
                let req = OpenRequest::parse(rest).ok_or_else(|| {
                    log::warn!("nest: bad request {text:?}");
                    Errno::EINVAL
                })?;
                self.forwarded_open(id, req)
            }
            ["release", token] => {
                let token: u64 = token.parse().map_err(|_| Errno::EINVAL)?;
                let open = self
                    .registrations
                    .lock()
                    .get_mut(&id)
                    .and_then(|r| r.opens.remove(&token));
                match open {
                    Some(open) => {
                        self.close(open);
                        Ok(())
                    }
                    None => Err(Errno::EINVAL),
                }
            }
            _ => {
                log::warn!("nest: bad request {text:?}");
                Err(Errno::EINVAL)
            }
        }
    }

    fn forwarded_open(&self, id: u64, req: OpenRequest) -> Result<(), Errno> {
        if self
            .registrations
            .lock()
            .get(&id)
            .is_none_or(|r| r.opens.contains_key(&req.token))
        {
            return Err(Errno::EINVAL);
        }
        let overlay = self.overlay.as_ref().ok_or(Errno(libc::ENODEV))?;
        let (file, path) = overlay
            .open_node(req.node)
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let info = OpenInfo {
            flags: req.flags,
            exec: req.exec,
            created: req.created,
            pid: req.pid,
            uid: req.caller.subject_ids[1],
            gid: req.caller.subject_ids[4],
            path: &path,
        };
        let caller = LazyCaller::known(info.pid, req.caller.clone());
        let upward = self.hooks.open_as(&info, &caller, &file, None)?;
        let open = ForwardedOpen {
            file,
            for_write: opened_for_write(req.flags),
            upward,
        };
        match self.registrations.lock().get_mut(&id) {
            Some(reg) => {
                reg.opens.insert(req.token, open);
                Ok(())
            }
            // Unregistered meanwhile: nobody will release it.
            None => {
                self.close(open);
                Ok(())
            }
        }
    }

    fn close(&self, open: ForwardedOpen) {
        if let Ok(meta) = rustix::fs::fstat(&open.file) {
            self.hooks
                .release_forwarded(&meta, open.for_write, open.upward);
        }
    }
}

/// A parsed `open` request.
struct OpenRequest {
    token: u64,
    node: u64,
    flags: i32,
    exec: bool,
    created: bool,
    pid: u32,
    caller: Caller,
}

impl OpenRequest {
    fn parse(f: &[&str]) -> Option<OpenRequest> {
        let [token, node, flags, exec, created, pid, uid, euid, suid, gid, egid, sgid, cap, comm] =
            f
        else {
            return None;
        };
        let flag = |v: &str| match v {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        let id = |v: &str| v.parse::<u32>().ok();
        let comm = String::from_utf8(hex::decode(comm).ok()?).ok()?;
        Some(OpenRequest {
            token: token.parse().ok()?,
            node: node.parse().ok()?,
            flags: flags.parse().ok()?,
            exec: flag(exec)?,
            created: flag(created)?,
            pid: pid.parse().ok()?,
            caller: Caller {
                subject_ids: [
                    id(uid)?,
                    id(euid)?,
                    id(suid)?,
                    id(gid)?,
                    id(egid)?,
                    id(sgid)?,
                ],
                cap_effective: u64::from_str_radix(cap, 16).ok()?,
                comm,
            },
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_requests_parse_strictly() {
        let ok = "7 1234 32768 1 0 42 0 0 0 0 0 0 3fffff 636174";
        let fields: Vec<&str> = ok.split(' ').collect();
        let r = OpenRequest::parse(&fields).expect("valid");
        assert_eq!(
            (r.token, r.node, r.flags, r.exec, r.created),
            (7, 1234, 32768, true, false)
        );
        assert_eq!(r.caller.comm, "cat");
        assert!(r.caller.has_cap(21));
        for bad in [
            "",
            "7 1234 32768 1 0 42 0 0 0 0 0 0 1fffff",
            "7 1234 32768 2 0 42 0 0 0 0 0 0 1fffff 636174",
            "x 1234 32768 1 0 42 0 0 0 0 0 0 1fffff 636174",
            "7 1234 32768 1 0 42 0 0 0 0 0 -1 1fffff 636174",
            "7 1234 32768 1 0 42 0 0 0 0 0 0 zz 636174",
            "7 1234 32768 1 0 42 0 0 0 0 0 0 1f 6g",
            "7 1234 32768 1 0 42 0 0 0 0 0 0 1f ff",
            "7 1234 32768 1 0 42 0 0 0 0 0 0 1f 63 extra",
        ] {
            let fields: Vec<&str> = bad.split_ascii_whitespace().collect();
            assert!(OpenRequest::parse(&fields).is_none(), "{bad:?}");
        }
    }
}
