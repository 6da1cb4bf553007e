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
//! - `overlay DEV ROOTFS`: the device number of the child's own overlay and the directory of
//!   the parent's container it shows (hex): the parent's seccomp listener leaves execs of its
//!   files to the child, which forwards them, and takes a mapping of one as a mapping of the
//!   parent's file under ROOTFS. A child passes on its own children's announcements (with
//!   their directories under its ROOTFS), so every ancestor knows every overlay below it.
//!
//! A COMM the child could not read is `-`.
//!
//! **Events down.** A task has one seccomp listener among its filters, so the outermost
//! namespace's daemon answers every nested container's executable mappings. It records them,
//! and queues each one for the child whose overlay (or whose descendant's) holds the file.
//! The child reads its control file past the configuration, as `tail -f` reads a log
//! ([`MapEvent`] lines, one per mapping); a read with nothing new returns no bytes, and the
//! child reads again a moment later. It records the mapping in its own namespace and queues
//! it in turn for its own child when the file is that child's. These records come after the
//! call was answered: a nested namespace's appraisal of a mapping is not enforced.
//!
//! The parent measures none of the registered daemon's own opens of its lower files: they
//! are the daemon reading on behalf of its container, and arrive as forwarded events
//! instead. Registering is therefore a policy-administration act, allowed to whoever may
//! write the parent's `policy` (its owner, with CAP_SYS_ADMIN).
//!
//! Order: the child's own namespace first, then its ancestors, as in the user-namespace
//! series' `process_measurement`, which walks `user_ns->parent`.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::fs::caller::Caller;

pub mod child;
pub mod host;

pub use child::ParentLink;
pub use host::NestHost;

/// Where a nested daemon finds its parent's control file.
pub const CONTROL_PATH: &str = "/sys/kernel/security/imafs/nest";

/// The thread groups of registered child daemons (the parent side), whose own opens of
/// the parent's files are not events of the parent.
#[derive(Default)]
pub struct ChildDaemons {
    tgids: RwLock<HashMap<u32, usize>>,
    /// Device numbers of their own overlays, and the directory (of this namespace's
    /// container) each shows.
    overlays: RwLock<HashMap<u64, (usize, Vec<u8>)>>,
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

    /// Whether `dev` is the overlay of a registered child daemon (whose execs and opens of
    /// this namespace's files arrive forwarded).
    pub fn is_child_overlay(&self, dev: u64) -> bool {
        self.overlays.read().contains_key(&dev)
    }

    /// The directory of this namespace's container that the child overlay `dev` shows.
    pub fn child_overlay_root(&self, dev: u64) -> Option<Vec<u8>> {
        self.overlays.read().get(&dev).map(|(_, root)| root.clone())
    }

    pub(super) fn add_overlay(&self, dev: u64, rootfs: Vec<u8>) {
        self.overlays.write().entry(dev).or_insert((0, rootfs)).0 += 1;
    }

    pub(super) fn remove_overlay(&self, dev: u64) {
        let mut o = self.overlays.write();
        if let Some((n, _)) = o.get_mut(&dev) {
            *n -= 1;
            if *n == 0 {
                o.remove(&dev);
            }
        }
    }

    pub(super) fn add(&self, tgid: u32) {
        *self.tgids.write().entry(tgid).or_default() += 1;
    }

    pub(super) fn remove(&self, tgid: u32) {
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

/// A task's credentials in a request or event: `UID EUID SUID GID EGID SGID CAPEFF COMM`,
/// CAPEFF in hex, COMM in hex (`-` for none: a task the sender could not read).
fn caller_fields(caller: &Caller) -> String {
    let [uid, euid, suid, gid, egid, sgid] = caller.subject_ids;
    let comm = if caller.comm.is_empty() {
        "-".to_owned()
    } else {
        hex::encode(caller.comm.as_bytes())
    };
    format!(
        "{uid} {euid} {suid} {gid} {egid} {sgid} {:x} {comm}",
        caller.cap_effective
    )
}

/// [`caller_fields`] back: exactly eight fields.
fn parse_caller(f: &[&str]) -> Option<Caller> {
    let [uid, euid, suid, gid, egid, sgid, cap, comm] = f else {
        return None;
    };
    let id = |v: &str| v.parse::<u32>().ok();
    Some(Caller {
        subject_ids: [
            id(uid)?,
            id(euid)?,
            id(suid)?,
            id(gid)?,
            id(egid)?,
            id(sgid)?,
        ],
        cap_effective: u64::from_str_radix(cap, 16).ok()?,
        comm: match *comm {
            "-" => String::new(),
            c => String::from_utf8(hex::decode(c).ok()?).ok()?,
        },
    })
}

/// An executable mapping in a nested container, passed down to the namespaces below the one
/// that answered it: `map DEV PATH NSPIDS UID EUID SUID GID EGID SGID CAPEFF COMM WRITE`, with
/// PATH and COMM in hex and NSPIDS the task's pids from the sender's pid namespace inward,
/// comma-separated (`/proc/<pid>/status`: `NSpid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEvent {
    /// The overlay holding the file (as announced), and the file's path in the container
    /// that overlay is the root of.
    pub dev: u64,
    pub path: Vec<u8>,
    pub nspids: Vec<u32>,
    pub caller: Caller,
    pub for_write: bool,
}

impl MapEvent {
    pub fn encode(&self) -> String {
        let pids: Vec<String> = self.nspids.iter().map(u32::to_string).collect();
        format!(
            "map {} {} {} {} {}\n",
            self.dev,
            hex::encode(&self.path),
            pids.join(","),
            caller_fields(&self.caller),
            u8::from(self.for_write)
        )
    }

    pub fn parse(line: &str) -> Option<MapEvent> {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let ["map", dev, path, pids, ref caller @ .., write] = f[..] else {
            return None;
        };
        Some(MapEvent {
            dev: dev.parse().ok()?,
            path: hex::decode(path).ok().filter(|p| p.starts_with(b"/"))?,
            nspids: pids
                .split(',')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?,
            caller: parse_caller(caller)?,
            for_write: match write {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_events_round_trip_and_parse_strictly() {
        let ev = MapEvent {
            dev: 0x2f,
            path: b"/usr/lib/libx.so".to_vec(),
            nspids: vec![4321, 12, 3],
            caller: Caller {
                subject_ids: [1000, 1000, 1000, 1000, 1000, 1000],
                cap_effective: 0,
                comm: "ls".into(),
            },
            for_write: false,
        };
        assert_eq!(MapEvent::parse(&ev.encode()), Some(ev));
        for bad in [
            "",
            "map 1",
            "map x 2f 1 0 0 0 0 0 0 0 - 0",
            "map 1 6162 1 0 0 0 0 0 0 0 - 0",
        ] {
            assert!(MapEvent::parse(bad).is_none(), "{bad:?}");
        }
    }
}
