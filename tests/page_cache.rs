//! Small files served from the kernel's page cache (issue 5): what a container reads is the
//! file as it is now, and as it was measured, whoever changed it and however the file's other
//! opens reach its data.
mod common;

use common::can_mount_as_root as can_mount;
use common::daemon::serve;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The sha256 digests the ascii list records for `path`, in order.
fn measured(list: &[u8], path: &str) -> Vec<String> {
    String::from_utf8_lossy(list)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            (f.len() == 5 && f[4] == path).then(|| f[3].trim_start_matches("sha256:").to_owned())
        })
        .collect()
}

/// The versions a host writes into the rootfs behind the mount: longer, shorter, the same
/// size, and the same size with the previous mtime put back (as `cp -p` or `tar x` leave it:
/// only the change time tells these two apart).
const VERSIONS: [&[u8]; 5] = [
    b"first version\n",
    b"second, a longer version of the file\n",
    b"3\n",
    b"4\n",
    b"5\n",
];

fn changes_behind_the_mount(test: &str, extra: &[&str]) {
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("rootfs/etc")).unwrap();
    let policy = d.join("policy");
    fs::write(&policy, "measure func=FILE_CHECK mask=MAY_READ\n").unwrap();
    let lower = d.join("rootfs/etc/f");
    fs::write(&lower, VERSIONS[0]).unwrap();
    let mut args = vec!["--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    let daemon = serve(d, &args, true).expect("serve");
    let seen = daemon.mnt.as_ref().unwrap().join("etc/f");
    for (i, version) in VERSIONS.iter().enumerate() {
        if i > 0 {
            let mtime = fs::metadata(&lower).unwrap().modified().unwrap();
            fs::write(&lower, version).unwrap();
            if i == VERSIONS.len() - 1 {
                fs::File::options()
                    .write(true)
                    .open(&lower)
                    .unwrap()
                    .set_modified(mtime)
                    .unwrap();
            }
        }
        // Twice: the second read is the warm one, from whatever the kernel kept.
        for _ in 0..2 {
            assert_eq!(
                String::from_utf8_lossy(&fs::read(&seen).unwrap()),
                String::from_utf8_lossy(version),
                "version {i} read through the mount"
            );
        }
        assert_eq!(
            fs::metadata(&seen).unwrap().len(),
            version.len() as u64,
            "version {i}: size through the mount after an open"
        );
        let digests = measured(&daemon.read("ascii_runtime_measurements_sha256"), "/etc/f");
        assert_eq!(
            digests.last().map(String::as_str),
            Some(sha256_hex(version).as_str()),
            "version {i}: the newest measurement is of the data read ({digests:?})"
        );
        assert_eq!(digests.len(), i + 1, "one measurement per version");
    }
}

#[test]
fn small_files_read_what_was_measured_after_changes_behind_the_mount() {
    changes_behind_the_mount(
        "small_files_read_what_was_measured_after_changes_behind_the_mount",
        &[],
    );
}

#[test]
fn small_files_read_what_was_measured_after_changes_behind_the_mount_without_passthrough() {
    changes_behind_the_mount(
        "small_files_read_what_was_measured_after_changes_behind_the_mount_without_passthrough",
        &["--no-passthrough"],
    );
}

/// The kernel refuses (EIO) an open whose data path conflicts with the file's other opens
/// (`fs/fuse/iomode.c`): a write open of a small file that is open for reading (page cache),
/// and a read open of a file that is open for writing (passthrough), must both work and
/// see each other's writes.
#[test]
fn opens_of_one_file_through_page_cache_and_passthrough_do_not_conflict() {
    let test = "opens_of_one_file_through_page_cache_and_passthrough_do_not_conflict";
    if !can_mount(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("rootfs")).unwrap();
    fs::write(d.join("rootfs/f"), b"abcdef").unwrap();
    fs::write(d.join("rootfs/big"), vec![b'b'; 1 << 20]).unwrap();
    let daemon = serve(d, &[], true).expect("serve");
    let mnt = daemon.mnt.clone().unwrap();
    let read_at = |f: &fs::File, n: usize| {
        let mut buf = vec![0u8; n];
        let got = f.read_at(&mut buf, 0).unwrap();
        buf.truncate(got);
        String::from_utf8(buf).unwrap()
    };
    let open_rw = |p: &Path| fs::OpenOptions::new().read(true).write(true).open(p);

    // A reader first (page cache), then a writer.
    let reader = fs::File::open(mnt.join("f")).unwrap();
    assert_eq!(read_at(&reader, 64), "abcdef");
    let writer = open_rw(&mnt.join("f")).expect("write open while a page-cache reader is open");
    writer.write_all_at(b"XY", 0).unwrap();
    assert_eq!(read_at(&reader, 64), "XYcdef", "the reader sees the write");
    drop((reader, writer));

    // A writer first (passthrough), then a reader.
    let writer = open_rw(&mnt.join("f")).unwrap();
    let reader = fs::File::open(mnt.join("f")).expect("read open while a writer is open");
    writer.write_all_at(b"Z", 0).unwrap();
    assert_eq!(read_at(&reader, 64), "ZYcdef", "the reader sees the write");
    drop((reader, writer));

    // Alone again: a read open goes back to the page cache and reads the latest data.
    assert_eq!(fs::read_to_string(mnt.join("f")).unwrap(), "ZYcdef");
    assert_eq!(fs::read(d.join("rootfs/f")).unwrap(), b"ZYcdef");

    // A large file is passed through; a second reader and a writer join it.
    let big = fs::File::open(mnt.join("big")).unwrap();
    let big2 = fs::File::open(mnt.join("big")).unwrap();
    let bigw = open_rw(&mnt.join("big")).unwrap();
    bigw.write_all_at(b"W", 0).unwrap();
    assert_eq!(read_at(&big, 2), "Wb");
    assert_eq!(read_at(&big2, 2), "Wb");
    drop((big, big2, bigw));
    assert!(!daemon.stderr().contains("panicked"), "{}", daemon.stderr());
}

/// Files around the page and request sizes and the page-cache limit read intact through the
/// mount the first time (the daemon fills the page cache) and the second (from the cache),
/// with `read`, `pread` at odd offsets and `mmap`.
#[test]
fn small_files_of_every_size_read_intact_cold_and_warm() {
    let test = "small_files_of_every_size_read_intact_cold_and_warm";
    if !can_mount(test) {
        return;
    }
    let sizes: [usize; 10] = [
        0,
        1,
        4095,
        4096,
        4097,
        65_537,
        131_072,
        200_000,
        256 * 1024,
        256 * 1024 + 1,
    ];
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("rootfs")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let contents: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        })
        .collect();
    for (n, data) in sizes.iter().zip(&contents) {
        fs::write(d.join(format!("rootfs/f{n}")), data).unwrap();
    }
    for extra in [&[][..], &["--no-passthrough"][..]] {
        let daemon = serve(d, extra, true).expect("serve");
        let mnt = daemon.mnt.clone().unwrap();
        for round in ["cold", "warm"] {
            for (n, data) in sizes.iter().zip(&contents) {
                let path = mnt.join(format!("f{n}"));
                let what = format!("{n} bytes, {round}, {extra:?}");
                assert!(fs::read(&path).unwrap() == *data, "read: {what}");
                let f = fs::File::open(&path).unwrap();
                let off = n / 3 + 1;
                let mut buf = vec![0u8; 5000];
                let got = f.read_at(&mut buf, off as u64).unwrap();
                let want = &data[off.min(*n)..(off + 5000).min(*n)];
                assert!(&buf[..got] == want, "pread at {off}: {what}");
                if *n > 0 {
                    // Page faults of a shared read-only mapping, served from the page cache.
                    let out = std::process::Command::new("python3")
                        .arg("-c")
                        .arg(
                            "import mmap,sys,hashlib;f=open(sys.argv[1],'rb');\
                             m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ);\
                             print(hashlib.sha256(m[:]).hexdigest())",
                        )
                        .arg(&path)
                        .output()
                        .unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&out.stdout).trim(),
                        sha256_hex(data),
                        "mmap: {what}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        daemon.stop();
    }
}
