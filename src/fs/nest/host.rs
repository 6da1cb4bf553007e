//! The host side of nesting: the parent's `imafs/nest` control file, the registrations of
//! nested daemons and the opens they forward, run through the parent's own hooks.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::Errno;
use crate::fs::caller::{opened_for_write, Caller, LazyCaller, OpenInfo};
use crate::fs::ima_hooks::ImaHooks;
use crate::fs::overlay::OverlayStatus;

use super::{parse_caller, thread_group_of, MapEvent};

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
    /// The device numbers of the child's own overlay and of those nested in it.
    overlays: Vec<u64>,
    /// [`MapEvent`] lines not read yet, and the offset of their first byte in the stream
    /// the child reads after its configuration.
    events: Vec<u8>,
    events_base: u64,
}

/// A child that stops reading its events keeps at most this many bytes of them queued;
/// beyond, new ones are dropped (and logged).
const EVENTS_MAX: usize = 1 << 20;

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

    /// The namespace's measuring overlay, if it has one.
    pub fn overlay(&self) -> Option<&OverlayStatus> {
        self.overlay.as_ref()
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
                overlays: Vec::new(),
                events: Vec::new(),
                events_base: 0,
            },
        );
        let config = self.hooks.ima().take_child_config();
        log::info!("nest: child namespace registered (daemon pid {tgid})");
        Ok((id, config.encode()))
    }

    /// Queue `event` for the child whose overlay, or whose descendant's, is `event.dev`.
    pub fn pass_down(&self, event: &MapEvent) {
        let mut registrations = self.registrations.lock();
        let Some(reg) = registrations
            .values_mut()
            .find(|r| r.overlays.contains(&event.dev))
        else {
            return;
        };
        let line = event.encode();
        if reg.events.len() + line.len() > EVENTS_MAX {
            log::warn!(
                "nest: the child daemon (pid {}) does not read its mapping events; one dropped",
                reg.tgid
            );
            return;
        }
        reg.events.extend_from_slice(line.as_bytes());
    }

    /// Up to `size` bytes of registration `id`'s events from stream offset `offset` (what
    /// comes before it was read, and is forgotten).
    pub fn events(&self, id: u64, offset: u64, size: usize) -> Vec<u8> {
        let mut registrations = self.registrations.lock();
        let Some(reg) = registrations.get_mut(&id) else {
            return Vec::new();
        };
        if offset > reg.events_base {
            let consumed = usize::try_from(offset - reg.events_base)
                .unwrap_or(usize::MAX)
                .min(reg.events.len());
            reg.events.drain(..consumed);
            reg.events_base += consumed as u64;
        }
        if offset != reg.events_base {
            return Vec::new();
        }
        // Whole lines only, so that a reader never sees half an event.
        let mut end = reg.events.len().min(size);
        while end > 0 && reg.events[end - 1] != b'\n' {
            end -= 1;
        }
        reg.events[..end].to_vec()
    }

    /// The release of a registration's control file: the child is gone; close what it left.
    pub fn unregister(&self, id: u64) {
        let Some(reg) = self.registrations.lock().remove(&id) else {
            return;
        };
        self.hooks.child_daemons().remove(reg.tgid);
        for dev in reg.overlays {
            self.hooks.child_daemons().remove_overlay(dev);
        }
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
            ["overlay", dev, rootfs] => {
                let dev: u64 = dev.parse().map_err(|_| Errno::EINVAL)?;
                let rootfs = hex::decode(rootfs).map_err(|_| Errno::EINVAL)?;
                if !rootfs.starts_with(b"/") {
                    return Err(Errno::EINVAL);
                }
                {
                    let mut registrations = self.registrations.lock();
                    let reg = registrations.get_mut(&id).ok_or(Errno::EINVAL)?;
                    if reg.overlays.contains(&dev) {
                        return Err(Errno::EINVAL);
                    }
                    reg.overlays.push(dev);
                }
                self.hooks.child_daemons().add_overlay(dev, rootfs.clone());
                // The ancestors' listener sees this overlay's mappings too.
                if let Some(parent) = self.hooks.parent() {
                    parent.relay_overlay(dev, &rootfs);
                }
                Ok(())
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
        // The child's own open of the file went through this overlay just before (a FUSE
        // OPEN of its daemon, after any release a process here queued before): the releases
        // being handled now are the ones to wait for.
        let horizon = overlay.release_horizon();
        let releasing = || overlay.releases_before(horizon);
        let upward = self
            .hooks
            .open_as(&info, &caller, &file, None, &releasing)?;
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
        let [token, node, flags, exec, created, pid, ref caller @ ..] = f[..] else {
            return None;
        };
        let flag = |v: &str| match v {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        Some(OpenRequest {
            token: token.parse().ok()?,
            node: node.parse().ok()?,
            flags: flags.parse().ok()?,
            exec: flag(exec)?,
            created: flag(created)?,
            pid: pid.parse().ok()?,
            caller: parse_caller(caller)?,
        })
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
        let unread: Vec<&str> = "7 1 0 0 0 0 0 0 0 0 0 0 0 -".split(' ').collect();
        assert_eq!(
            OpenRequest::parse(&unread).map(|r| r.caller.comm),
            Some(String::new())
        );
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
