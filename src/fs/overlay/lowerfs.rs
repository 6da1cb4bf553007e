//! Identify the lower file system of a file: statfs magic, type name from mountinfo.

use super::hooks::LowerFs;
use std::io;
use std::os::fd::BorrowedFd;

/// Describe the file system holding `fd` (any descriptor, `O_PATH` included) whose files have
/// device number `dev`.
pub fn describe(fd: BorrowedFd<'_>, dev: u64) -> io::Result<LowerFs> {
    let sfs = rustix::fs::fstatfs(fd)?;
    let major = rustix::fs::major(dev);
    let minor = rustix::fs::minor(dev);
    let name = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|text| fstype_for(&text, major, minor))
        .unwrap_or_default();
    Ok(LowerFs {
        magic: sfs.f_type as u64,
        name,
        uuid: None,
        dev,
    })
}

/// The fstype of the first mount of device `major:minor` in mountinfo text.
fn fstype_for(mountinfo: &str, major: u32, minor: u32) -> Option<String> {
    let want = format!("{major}:{minor}");
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        if fields.nth(2) != Some(want.as_str()) {
            continue;
        }
        // After the optional fields comes " - fstype source superopts".
        let rest = line.split(" - ").nth(1)?;
        return rest.split(' ').next().map(str::to_owned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                    29 1 259:2 / / rw,relatime shared:1 master:3 - ext4 /dev/nvme0n1p2 rw\n";
        assert_eq!(fstype_for(text, 259, 2).as_deref(), Some("ext4"));
        assert_eq!(fstype_for(text, 0, 21).as_deref(), Some("proc"));
        assert_eq!(fstype_for(text, 8, 1), None);
        assert_eq!(fstype_for("garbage", 8, 1), None);
    }

    #[test]
    fn describes_a_real_fs() {
        let f = std::fs::File::open("/proc/self/mountinfo").unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        let fs = describe(std::os::fd::AsFd::as_fd(&f), st.st_dev).unwrap();
        assert_eq!(fs.magic, 0x9fa0); // PROC_SUPER_MAGIC
        assert_eq!(fs.name, "proc");
    }
}
