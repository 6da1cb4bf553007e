//! Policy conditions on the lower file system, through a real mount: `fsname=` matches the
//! file system type (`ext4`, as `sb->s_type->name`), not the block device (`vda`, the
//! superblock's `s_id`, which only audit records print), and `fsmagic=` the statfs magic.
mod common;

use common::daemon::serve;
use std::process::Command;

/// `findmnt`/`stat -f` of the lower directory: (type, magic in hex).
fn lower_fs(dir: &std::path::Path) -> (String, String) {
    let out = |cmd: &mut Command| {
        let o = cmd.output().expect("run");
        assert!(o.status.success(), "{cmd:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let fstype = out(Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "-T"])
        .arg(dir));
    let magic = out(Command::new("stat").args(["-f", "-c", "%t"]).arg(dir));
    (fstype, magic)
}

#[test]
fn fsname_and_fsmagic_match_the_lower_file_system() {
    let test = "fsname_and_fsmagic_match_the_lower_file_system";
    if !common::is_root() || !common::fuse_available() || !common::have_tool("findmnt") {
        common::skip(test, "needs root, /dev/fuse and findmnt");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("rootfs")).expect("mkdir");
    std::fs::write(d.join("rootfs/file"), b"measured?\n").expect("write");
    let (fstype, magic) = lower_fs(&d.join("rootfs"));
    let cases = [
        (format!("measure func=FILE_CHECK fsname={fstype}"), true),
        (format!("measure func=FILE_CHECK fsname={fstype}x"), false),
        (format!("measure func=FILE_CHECK fsmagic=0x{magic}"), true),
        ("measure func=FILE_CHECK fsmagic=0x1".to_owned(), false),
    ];
    for (rule, measured) in cases {
        std::fs::write(d.join("policy"), format!("{rule}\n")).expect("policy");
        let policy = d.join("policy");
        let daemon = serve(d, &["--policy", policy.to_str().expect("utf-8")], true)
            .unwrap_or_else(|e| panic!("serve with `{rule}`: {e}"));
        let mnt = daemon.mnt.clone().expect("overlay");
        assert_eq!(
            std::fs::read(mnt.join("file")).expect("read"),
            b"measured?\n"
        );
        let list = String::from_utf8(daemon.read("ascii_runtime_measurements")).expect("ascii");
        assert_eq!(
            list.lines().any(|l| l.ends_with(" /file")),
            measured,
            "`{rule}` on a {fstype} lower directory:\n{list}"
        );
        daemon.stop();
    }
}
