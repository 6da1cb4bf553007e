//! Identify the lower file system of a file the way IMA names a superblock: `statfs` magic,
//! the type name (`fsname=`), the `s_id` (audit records' `dev=`) and the UUID (`fsuuid=`).

use super::events::LowerFs;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// Per-device cache of [`describe`] (mountinfo and UUID lookups are not per-open work).
#[derive(Debug, Default)]
pub struct LowerFsCache {
    by_dev: Mutex<HashMap<u64, Arc<LowerFs>>>,
}

impl LowerFsCache {
    /// The file system holding `fd`, whose files have device number `dev`; an unknown one
    /// (magic 0, no names) when it cannot be described.
    pub fn get(&self, fd: BorrowedFd<'_>, dev: u64) -> Arc<LowerFs> {
        self.get_seen_by(fd, dev, "self")
    }

    /// [`LowerFsCache::get`] for a file of a mount that task `task` (a pid, or `self`) sees
    /// in its mount namespace (a container's own tmpfs, which the daemon's has not).
    pub fn get_seen_by(&self, fd: BorrowedFd<'_>, dev: u64, task: &str) -> Arc<LowerFs> {
        if let Some(fs) = self.by_dev.lock().get(&dev) {
            return fs.clone();
        }
        let fs = Arc::new(describe_seen_by(fd, dev, task).unwrap_or(LowerFs {
            magic: 0,
            name: String::new(),
            s_id: String::new(),
            uuid: None,
            dev,
        }));
        self.by_dev.lock().insert(dev, fs.clone());
        fs
    }
}

/// Describe the file system holding `fd`, whose files have device number `dev`. Any
/// descriptor works; the UUID ioctl needs one that is not `O_PATH`, without which the UUID
/// comes from `/dev/disk/by-uuid` when the file system sits on a block device.
pub fn describe(fd: BorrowedFd<'_>, dev: u64) -> io::Result<LowerFs> {
    describe_seen_by(fd, dev, "self")
}

/// [`describe`] with the mount table of task `task` (a pid, or `self`).
fn describe_seen_by(fd: BorrowedFd<'_>, dev: u64, task: &str) -> io::Result<LowerFs> {
    let magic = rustix::fs::fstatfs(fd)?.f_type as u64;
    let mountinfo = std::fs::read_to_string(format!("/proc/{task}/mountinfo")).unwrap_or_default();
    let mount = mount_of(&mountinfo, dev);
    let (name, s_id, device) = match mount {
        Some(m) => (m.fstype.clone(), m.s_id(), m.device()),
        None => (String::new(), String::new(), None),
    };
    let uuid = crate::sys::fsuuid::fs_uuid(fd)
        .ok()
        .flatten()
        .or_else(|| device.as_deref().and_then(uuid_of_device));
    Ok(LowerFs {
        magic,
        name,
        s_id,
        uuid,
        dev,
    })
}

/// The mountinfo fields of one mount that name its superblock.
#[derive(Debug, PartialEq, Eq)]
struct MountSource {
    fstype: String,
    source: String,
}

impl MountSource {
    /// The block device behind the mount (`/dev/...` source), if any.
    fn device(&self) -> Option<String> {
        self.source
            .starts_with("/dev/")
            .then(|| self.source.clone())
    }

    /// The kernel's `s_id`: a block device's kernel name (`vda`, `dm-0` for a
    /// `/dev/mapper/...` link), else the file system type.
    fn s_id(&self) -> String {
        match self.device() {
            Some(dev) => {
                let target = std::fs::canonicalize(&dev).unwrap_or_else(|_| dev.clone().into());
                let base = target.file_name().map(|n| n.to_string_lossy().into_owned());
                base.unwrap_or(dev)
            }
            None => self.fstype.clone(),
        }
    }
}

/// The first mount of device `dev` in mountinfo text.
fn mount_of(mountinfo: &str, dev: u64) -> Option<MountSource> {
    let want = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    let line = mountinfo
        .lines()
        .find(|line| line.split(' ').nth(2) == Some(want.as_str()))?;
    // After the optional fields comes " - fstype source superopts".
    let mut rest = line.split(" - ").nth(1)?.split(' ');
    Some(MountSource {
        fstype: rest.next()?.to_owned(),
        source: rest.next().unwrap_or("").to_owned(),
    })
}

/// The UUID of a block device from `/dev/disk/by-uuid` (what udev derives from the
/// superblock, equal to the kernel's `s_uuid` for ext4, xfs and btrfs), for kernels before
/// FS_IOC_GETFSUUID (6.5) and descriptors it does not work on.
fn uuid_of_device(device: &str) -> Option<[u8; 16]> {
    let target = std::fs::canonicalize(device).ok()?;
    for entry in std::fs::read_dir("/dev/disk/by-uuid").ok()? {
        let entry = entry.ok()?;
        if std::fs::canonicalize(entry.path()).ok()? == target {
            return parse_uuid(&entry.file_name().to_string_lossy());
        }
    }
    None
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` to 16 bytes.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(&hex, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_s_id_come_from_mountinfo() {
        let mountinfo = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
            25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw\n\
            40 1 8:1 / /data rw - xfs /dev/mapper/no-such-vg rw\n\
            22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n";
        let vda = mount_of(mountinfo, rustix::fs::makedev(254, 0)).unwrap();
        assert_eq!(vda.fstype, "ext4");
        assert_eq!(vda.device().as_deref(), Some("/dev/vda"));
        let shm = mount_of(mountinfo, rustix::fs::makedev(0, 23)).unwrap();
        assert_eq!((shm.fstype.as_str(), shm.s_id()), ("tmpfs", "tmpfs".into()));
        assert_eq!(shm.device(), None);
        // A device link that does not resolve here keeps its own name.
        let mapper = mount_of(mountinfo, rustix::fs::makedev(8, 1)).unwrap();
        assert_eq!(
            (mapper.fstype.as_str(), mapper.s_id()),
            ("xfs", "no-such-vg".into())
        );
        assert_eq!(mount_of(mountinfo, rustix::fs::makedev(9, 9)), None);
        assert_eq!(mount_of("garbage", rustix::fs::makedev(8, 1)), None);
    }

    #[test]
    fn uuid_text_parses() {
        assert_eq!(
            parse_uuid("0123abcd-0000-1111-2222-333344445555"),
            Some([
                0x01, 0x23, 0xab, 0xcd, 0, 0, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55,
                0x55
            ])
        );
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }

    #[test]
    fn describes_a_real_fs() {
        let f = std::fs::File::open("/proc/self/mountinfo").unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        let fs = describe(std::os::fd::AsFd::as_fd(&f), st.st_dev).unwrap();
        assert_eq!(fs.magic, 0x9fa0); // PROC_SUPER_MAGIC
        assert_eq!(fs.name, "proc");
        assert_eq!(fs.s_id, "proc");
    }
}
