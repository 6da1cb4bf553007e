//! Cost of one file hook in `engine::ima::Ima::process_file` (+ `file_closed`), on small
//! real files: first access (hash + measure), repeated access (cached), and an access the
//! policy does not measure. Run via `bench/runtime-events.sh`.
//!
//! Usage: runtime_events [FILES] [SIZE_BYTES]

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use imafs::engine::ima::{Config, FileEvent, Ima, KnownTask, XattrSource};
use imafs::engine::measure::{FileId, FileVersion};
use imafs::engine::policy::{Func, Subject, MAY_READ};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4096);
    let dir = std::env::temp_dir().join(format!("imafs-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let path = dir.join(format!("f{i}"));
        let mut data = vec![0u8; size];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(&path, &data)?;
        let file = File::open(&path)?;
        let m = file.metadata()?;
        let id = FileId {
            dev: m.dev(),
            ino: m.ino(),
        };
        let version = FileVersion::of_file(&file)?;
        files.push((format!("/data/f{i}"), file, id, version));
    }
    let ima = Ima::new(Config::default())?;
    let pass = |label: &str, uid: u32| -> Result<(), Box<dyn std::error::Error>> {
        let task = KnownTask {
            subject: Subject {
                uid,
                euid: uid,
                ..Subject::default()
            },
            comm: "bench".into(),
        };
        let t = Instant::now();
        for (name, file, id, version) in &files {
            let ev = FileEvent {
                func: Func::FileCheck,
                mask: MAY_READ,
                task: &task,
                pid: 1,
                id: *id,
                version: *version,
                owner: 0,
                group: 0,
                mode: 0o100644,
                fsmagic: 0xef53,
                fsname: "ext4",
                fs_id: "vda",
                fsuuid: None,
                path: name.as_bytes(),
                ima_xattr: XattrSource::Known(None),
                opened_for_write: false,
                created: false,
            };
            ima.process_file(&ev, file)?;
            ima.file_closed(*id, false, *version);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<34} {:>9.0} events/s  ({:.2} us each)",
            files.len() as f64 / secs,
            secs * 1e6 / files.len() as f64
        );
        Ok(())
    };
    println!("{count} files of {size} bytes, policy tcb, banks sha1+sha256");
    pass("first open as root (hash+measure)", 0)?;
    pass("re-open as root (cached)", 0)?;
    pass("open as uid 1000 (not measured)", 1000)?;
    println!("list entries: {}", ima.list().len());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
