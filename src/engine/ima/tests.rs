//! Runtime tests with real files in temporary directories.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::engine::audit::{self, AuditRecord, AUDIT_INTEGRITY_PCR, AUDIT_INTEGRITY_STATUS};
use crate::engine::measure::{FileId, FileVersion};
use crate::engine::measurement_list::ViewKind;
use crate::engine::policy::{MAY_EXEC, MAY_READ, MAY_WRITE};

const SHA256_HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
const EXT4_SUPER_MAGIC: u64 = 0xef53;

fn root() -> Subject {
    Subject::default()
}

fn user(uid: u32) -> Subject {
    Subject {
        uid,
        euid: uid,
        suid: uid,
        gid: uid,
        egid: uid,
        sgid: uid,
        ..Subject::default()
    }
}

fn ima_with(cfg: Config) -> Ima {
    Ima::new(cfg).expect("valid config")
}

/// Default configuration, with violations limited as kernels >= 6.14 do (the default
/// follows the host's kernel release).
fn ima_tcb() -> Ima {
    ima_with(Config {
        violation_limit: ViolationLimit::Limited,
        ..Config::default()
    })
}

/// An engine whose active policy is exactly `rules` (loaded through the policy file).
fn ima_policy(rules: &str) -> Ima {
    let ima = ima_with(Config {
        builtin_policy: vec![],
        ..Config::default()
    });
    load(&ima, rules).expect("policy loads");
    ima
}

fn no_loader(_: &str) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::from_raw_os_error(libc::ENOENT))
}

fn fs_loader(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Write `text` the way `cat` does: repeated writes of what is left, each at offset 0.
fn write_all(ima: &Ima, h: &mut PolicyHandle, text: &str) -> Result<(), Errno> {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let n = ima.policy_write(h, 0, rest, &fs_loader)?;
        rest = &rest[n.min(rest.len())..];
    }
    Ok(())
}

fn load(ima: &Ima, text: &str) -> Result<(), Errno> {
    let mut h = ima.open_policy(PolicyAccess::Write, true)?;
    let r = write_all(ima, &mut h, text);
    ima.policy_release(h);
    r
}

/// A file on disk plus what the overlay would report about it.
struct TestFile {
    path: PathBuf,
    /// Path as the container sees it.
    name: String,
}

impl TestFile {
    fn new(dir: &Path, name: &str, content: &[u8]) -> TestFile {
        let path = dir.join(name.trim_start_matches('/').replace('/', "_"));
        std::fs::write(&path, content).unwrap();
        TestFile {
            path,
            name: name.to_string(),
        }
    }

    fn id(&self) -> FileId {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.path).unwrap();
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    fn version(&self) -> FileVersion {
        FileVersion::of_file(&File::open(&self.path).unwrap()).unwrap()
    }

    fn reader(&self) -> File {
        File::open(&self.path).unwrap()
    }

    fn writer(&self) -> File {
        OpenOptions::new().write(true).open(&self.path).unwrap()
    }
}

fn event<'a>(
    f: &'a TestFile,
    func: Func,
    mask: u32,
    subject: Subject,
    for_write: bool,
) -> FileEvent<'a> {
    // Tests make a few hundred events at most: leaking their tasks keeps the helper simple.
    let task: &'a KnownTask = Box::leak(Box::new(KnownTask {
        subject,
        comm: "cat".into(),
    }));
    FileEvent {
        func,
        mask,
        task,
        pid: 4242,
        id: f.id(),
        version: f.version(),
        owner: 0,
        group: 0,
        mode: 0o100644,
        fsmagic: EXT4_SUPER_MAGIC,
        fsname: "ext4",
        fs_id: "vda",
        fsuuid: None,
        path: f.name.as_bytes(),
        ima_xattr: XattrSource::Known(None),
        opened_for_write: for_write,
        created: false,
    }
}

/// Open for reading as root (FILE_CHECK, MAY_READ); returns the descriptor.
fn open_read(ima: &Ima, f: &TestFile) -> File {
    let file = f.reader();
    ima.process_file(&event(f, Func::FileCheck, MAY_READ, root(), false), &file)
        .unwrap();
    file
}

/// Open for writing (FILE_CHECK, MAY_WRITE); the engine gets a readable descriptor.
fn open_write(ima: &Ima, f: &TestFile) -> File {
    let file = f.reader();
    ima.process_file(&event(f, Func::FileCheck, MAY_WRITE, root(), true), &file)
        .unwrap();
    file
}

fn close(ima: &Ima, f: &TestFile, for_write: bool) {
    ima.file_closed(f.id(), for_write, f.version());
}

fn ascii(ima: &Ima, bank: HashAlgo) -> String {
    let idx = ima.list().bank_index(bank).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = ima.list().read(ViewKind::Ascii, idx, 0, &mut buf);
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn lines(ima: &Ima) -> Vec<String> {
    ascii(ima, HashAlgo::Sha256)
        .lines()
        .map(str::to_string)
        .collect()
}

fn records_of(ima: &Ima, kind: u16) -> Vec<AuditRecord> {
    ima.audit()
        .recent()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

// ------------------------------------------------------------------ construction

#[test]
fn boot_aggregate_is_first_entry_t2() {
    let ima = ima_tcb();
    assert_eq!(ima.list().len(), 1);
    assert_eq!(
        ascii(&ima, HashAlgo::Sha1),
        "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng \
         sha256:0000000000000000000000000000000000000000000000000000000000000000 boot_aggregate\n"
    );
    assert!(ascii(&ima, HashAlgo::Sha256)
        .starts_with("10 36f1cd67a730bc4137870c4d00dbc7430b51b1ebdaa130744297cf65339078a0 ima-ng"));
    assert_eq!(ima.violations(), 0);
}

#[test]
fn file_banks_follow_tpm_slots_plus_sha1() {
    assert_eq!(
        ima_tcb().file_banks(),
        vec![HashAlgo::Sha1, HashAlgo::Sha256]
    );
    let only256 = ima_with(Config {
        banks: vec![HashAlgo::Sha256],
        ..Config::default()
    });
    assert_eq!(only256.file_banks(), vec![HashAlgo::Sha256, HashAlgo::Sha1]);
    // No TPM: sha1 files only, ima_hash keeps an internal slot.
    let none = ima_with(Config {
        banks: vec![],
        ..Config::default()
    });
    assert_eq!(none.file_banks(), vec![HashAlgo::Sha1]);
    assert_eq!(none.list().banks(), &[HashAlgo::Sha1, HashAlgo::Sha256][..]);
    // Banks without a transform get no files.
    let odd = ima_with(Config {
        banks: vec![HashAlgo::Wp256, HashAlgo::Sha384],
        ..Config::default()
    });
    assert_eq!(odd.file_banks(), vec![HashAlgo::Sha384, HashAlgo::Sha1]);
}

#[test]
fn config_is_validated() {
    assert!(Ima::new(Config {
        hash: HashAlgo::Wp256,
        ..Config::default()
    })
    .is_err());
    assert!(Ima::new(Config {
        template: "nope".into(),
        ..Config::default()
    })
    .is_err());
    assert!(Ima::new(Config {
        builtin_policy: vec!["bogus".into()],
        ..Config::default()
    })
    .is_err());
    let fmt = ima_with(Config {
        template: "d-ng|n-ng|sig".into(),
        ..Config::default()
    });
    assert!(ascii(&fmt, HashAlgo::Sha1).contains(" d-ng|n-ng|sig sha256:"));
    // Template `ima` ignores ima_hash=sha512.
    let ima = ima_with(Config {
        template: "ima".into(),
        hash: HashAlgo::Sha512,
        ..Config::default()
    });
    assert_eq!(ima.hash_algo(), HashAlgo::Sha256);
    assert_eq!(
        ascii(&ima, HashAlgo::Sha1),
        "10 719de8e521439498e9b77f6ed41e230b9821111e ima 0000000000000000000000000000000000000000 boot_aggregate\n"
    );
}

// ------------------------------------------------------------------ measurement

#[test]
fn read_measures_sha256_of_content_t1() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    let _fd = open_read(&ima, &f);
    assert_eq!(ima.list().len(), 2);
    assert_eq!(
        ascii(&ima, HashAlgo::Sha1).lines().nth(1).unwrap(),
        format!(
            "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:{SHA256_HELLO} /tmp/hello"
        )
    );
    assert_eq!(
        lines(&ima)[1],
        format!("10 ce7d262406458b975543fb944f7352e62ef0ae01df30bb61f802d003cf87b19c ima-ng sha256:{SHA256_HELLO} /tmp/hello")
    );
}

#[test]
fn reread_of_unchanged_file_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/etc/passwd", b"root:x:0:0\n");
    for _ in 0..3 {
        open_read(&ima, &f);
        close(&ima, &f, false);
    }
    assert_eq!(ima.list().len(), 2);
    // Not root: the tcb policy does not measure this open.
    let g = TestFile::new(dir.path(), "/home/u/x", b"x");
    let file = g.reader();
    ima.process_file(
        &event(&g, Func::FileCheck, MAY_READ, user(1000), false),
        &file,
    )
    .unwrap();
    assert_eq!(ima.list().len(), 2);
}

#[test]
fn write_and_close_causes_remeasurement() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/data", b"one\n");
    open_read(&ima, &f);
    close(&ima, &f, false);
    assert_eq!(ima.list().len(), 2);

    let _w = open_write(&ima, &f);
    let mut w = f.writer();
    w.write_all(b"two\n").unwrap();
    drop(w);
    // Still open for write: the kernel keeps the old state until the last writer closes.
    close(&ima, &f, true);
    open_read(&ima, &f);
    close(&ima, &f, false);
    assert_eq!(ima.list().len(), 3);
    let sha = HashAlgo::Sha256.digest(b"two\n").unwrap().to_hex();
    assert!(lines(&ima)[2].ends_with(&format!("sha256:{sha} /tmp/data")));

    // Rewriting the original content: a new version, but the same template data as
    // entry 1, so the duplicate is suppressed (`ima_queue.c`: `ima_lookup_digest_entry`).
    open_write(&ima, &f);
    std::fs::write(&f.path, b"one\n").unwrap();
    close(&ima, &f, true);
    open_read(&ima, &f);
    assert_eq!(ima.list().len(), 3);
}

#[test]
fn outside_change_is_detected_without_writers() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/bin/tool", b"v1");
    open_read(&ima, &f);
    close(&ima, &f, false);
    // Changed in the lower tree directly (size differs, so the version differs).
    std::fs::write(&f.path, b"version 2").unwrap();
    open_read(&ima, &f);
    assert_eq!(ima.list().len(), 3);
}

#[test]
fn same_content_under_another_path_is_a_new_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let a = TestFile::new(dir.path(), "/a", b"same");
    let b = TestFile::new(dir.path(), "/b", b"same");
    open_read(&ima, &a);
    open_read(&ima, &b);
    assert_eq!(ima.list().len(), 3);
}

#[test]
fn exec_and_mmap_of_a_binary_yield_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/usr/bin/prog", b"\x7fELF....");
    let file = f.reader();
    let user = user(1000);
    ima.process_file(&event(&f, Func::FileCheck, MAY_EXEC, user, false), &file)
        .unwrap();
    assert_eq!(
        ima.list().len(),
        1,
        "FILE_CHECK MAY_EXEC by a user is not in tcb"
    );
    ima.process_file(&event(&f, Func::BprmCheck, MAY_EXEC, user, false), &file)
        .unwrap();
    ima.process_file(&event(&f, Func::MmapCheck, MAY_EXEC, user, false), &file)
        .unwrap();
    assert_eq!(ima.list().len(), 2);
    close(&ima, &f, false);
}

#[test]
fn rule_with_another_pcr_measures_again() {
    let dir = tempfile::tempdir().unwrap();
    let ima =
        ima_policy("measure func=FILE_CHECK mask=^MAY_READ\nmeasure func=BPRM_CHECK pcr=11\n");
    let f = TestFile::new(dir.path(), "/bin/sh", b"#!shell");
    let file = open_read(&ima, &f);
    ima.process_file(&event(&f, Func::BprmCheck, MAY_EXEC, root(), false), &file)
        .unwrap();
    ima.process_file(&event(&f, Func::BprmCheck, MAY_EXEC, root(), false), &file)
        .unwrap();
    let l = lines(&ima);
    assert_eq!(l.len(), 3);
    assert!(l[1].starts_with("10 "));
    assert!(l[2].starts_with("11 "));
    let pcrs: Vec<u32> = ima.pcr_values().iter().map(|v| v.0).collect();
    assert!(pcrs.contains(&10) && pcrs.contains(&11));
}

#[test]
fn rule_template_and_xattr_algorithm_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_policy("measure func=FILE_CHECK template=ima-sig\n");
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    let file = f.reader();
    // T4's signature names sha256.
    let sig = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
    let mut ev = event(&f, Func::FileCheck, MAY_READ, root(), false);
    ev.ima_xattr = XattrSource::Known(Some(&sig));
    ima.process_file(&ev, &file).unwrap();
    assert_eq!(
        ascii(&ima, HashAlgo::Sha1).lines().nth(1).unwrap(),
        format!("10 29b6d322759956bc6284612c43dc71ba8195d519 ima-sig sha256:{SHA256_HELLO} /tmp/hello 030204a1b2c3d400081011121314151617")
    );

    // A digest xattr naming sha1 makes the file hashed with sha1.
    let g = TestFile::new(dir.path(), "/tmp/other", b"hello\n");
    let sha1 = HashAlgo::Sha1.digest(b"hello\n").unwrap();
    let mut x = vec![0x04, HashAlgo::Sha1.id()];
    x.extend_from_slice(sha1.as_bytes());
    let file = g.reader();
    let mut ev = event(&g, Func::FileCheck, MAY_READ, root(), false);
    ev.ima_xattr = XattrSource::Known(Some(&x));
    ima.process_file(&ev, &file).unwrap();
    assert!(lines(&ima)[2].contains(&format!(" sha1:{} /tmp/other ", sha1.to_hex())));
}

#[test]
fn template_ima_records_sha1_t3() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        template: "ima".into(),
        ..Config::default()
    });
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    open_read(&ima, &f);
    assert_eq!(
        ascii(&ima, HashAlgo::Sha1).lines().nth(1).unwrap(),
        "10 aa3229b267c3c9f21dee2ce7746b7c3e68d10ab4 ima f572d396fae9206628714fb2ce00f72e94f2258f /tmp/hello"
    );
}

#[test]
fn hashing_failure_is_audited_and_not_measured() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/var/log/x", b"data");
    let wo = f.writer();
    ima.process_file(&event(&f, Func::FileCheck, MAY_READ, root(), false), &wo)
        .unwrap();
    assert_eq!(ima.list().len(), 1);
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].body.contains(&format!(
            "op=collect_data cause=failed comm=\"cat\" name=\"x\" dev=\"vda\" ino={} res=0 errno=0",
            f.id().ino
        )),
        "{}",
        recs[0].body
    );
}

#[test]
fn audit_rule_reports_once_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_policy("audit func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    open_read(&ima, &f);
    close(&ima, &f, false);
    open_read(&ima, &f);
    close(&ima, &f, false);
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_RULE);
    assert_eq!(recs.len(), 1);
    assert!(recs[0].body.starts_with(&format!(
        "file=\"/tmp/hello\" hash=\"sha256:{SHA256_HELLO}\" ppid=0 pid=4242 auid=4294967295 uid=0"
    )));
    assert_eq!(ima.list().len(), 1, "audit does not measure");
    open_write(&ima, &f);
    std::fs::write(&f.path, b"changed!").unwrap();
    close(&ima, &f, true);
    open_read(&ima, &f);
    assert_eq!(records_of(&ima, audit::AUDIT_INTEGRITY_RULE).len(), 2);
}

// ------------------------------------------------------------------ violations

#[test]
fn tomtou_and_pcr_replay_t5_t6() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    let _r = open_read(&ima, &f);
    // A writer opens while the measured reader is open: ToMToU.
    open_write(&ima, &f);
    assert_eq!(ima.violations(), 1);
    let sha1 = ascii(&ima, HashAlgo::Sha1);
    assert_eq!(
        sha1.lines().nth(2).unwrap(),
        "10 0000000000000000000000000000000000000000 ima-ng \
         sha256:0000000000000000000000000000000000000000000000000000000000000000 /tmp/hello"
    );
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_PCR);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        recs[0].body,
        format!(
            "pid=4242 uid=0 auid=4294967295 ses=4294967295 op=invalid_pcr cause=ToMToU \
             comm=\"cat\" name=\"/tmp/hello\" dev=\"vda\" ino={} res=1 errno=0",
            f.id().ino
        )
    );
    // T6: PCR 10 after boot_aggregate, /tmp/hello and the violation.
    let values = ima.pcr_values();
    let get = |bank| {
        values
            .iter()
            .find(|v| v.0 == 10 && v.1 == bank)
            .map(|v| v.2.to_hex())
            .unwrap()
    };
    assert_eq!(
        get(HashAlgo::Sha1),
        "652f26ba8600dec490d4f70214bc63bc5b9f034b"
    );
    assert_eq!(
        get(HashAlgo::Sha256),
        "9f1bad35a4facd01a0d47fcb55e0448ba187b439fc90946d48d338f7b95895d2"
    );
    // The list replays to the same values.
    let replayed = crate::engine::pcr::replay(ima.list());
    for (pcr, bank, value) in values {
        assert_eq!(replayed.value(pcr, bank), value);
    }
    // A second writer: limited to one ToMToU per measured reader (current kernels).
    open_write(&ima, &f);
    assert_eq!(ima.violations(), 1);
}

#[test]
fn tomtou_every_open_on_old_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        violation_limit: ViolationLimit::EveryOpen,
        ..Config::default()
    });
    let f = TestFile::new(dir.path(), "/tmp/x", b"x");
    open_read(&ima, &f);
    open_write(&ima, &f);
    open_write(&ima, &f);
    assert_eq!(ima.violations(), 2);
}

#[test]
fn no_tomtou_for_unmeasured_reader_or_closed_reader() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/x", b"x");
    let file = f.reader();
    ima.process_file(
        &event(&f, Func::FileCheck, MAY_READ, user(1000), false),
        &file,
    )
    .unwrap();
    open_write(&ima, &f);
    close(&ima, &f, true);
    close(&ima, &f, false);
    open_read(&ima, &f);
    close(&ima, &f, false);
    open_write(&ima, &f);
    assert_eq!(ima.violations(), 0);
}

#[test]
fn open_writers_violation() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/log", b"line\n");
    open_write(&ima, &f);
    open_read(&ima, &f);
    assert_eq!(ima.violations(), 1);
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_PCR);
    assert!(recs[0].body.contains("op=invalid_pcr cause=open_writers"));
    // Measured anyway, after the violation entry.
    let l = lines(&ima);
    assert_eq!(l.len(), 3);
    assert!(l[1].contains(&"0".repeat(64)));
    assert!(l[2].ends_with("/tmp/log"));
    // Limited until the last writer closes.
    open_read(&ima, &f);
    assert_eq!(ima.violations(), 1);
    close(&ima, &f, true);
    close(&ima, &f, false);
    close(&ima, &f, false);
    open_write(&ima, &f);
    open_read(&ima, &f);
    assert_eq!(ima.violations(), 2);
    // A measured executable mapping counts like a measured read (and is limited too).
    let file = f.reader();
    ima.process_file(&event(&f, Func::MmapCheck, MAY_EXEC, root(), false), &file)
        .unwrap();
    assert_eq!(ima.violations(), 2, "limited");
}

#[test]
fn no_violations_without_measure_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_policy("audit func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/tmp/x", b"x");
    open_read(&ima, &f);
    open_write(&ima, &f);
    open_read(&ima, &f);
    assert_eq!(ima.violations(), 0);
}

#[test]
fn refused_open_is_released() {
    // process_file only fails with appraisal; the release path is exercised directly.
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/x", b"x");
    open_write(&ima, &f);
    let state = ima.cache().find(f.id()).unwrap();
    assert_eq!(state.lock().writers(), 1);
    close(&ima, &f, true);
    assert_eq!(state.lock().writers(), 0);
}

// ------------------------------------------------------------------ buffers

#[test]
fn key_check_buffer_uses_ima_buf_and_dedupes() {
    let ima = ima_policy("measure func=KEY_CHECK keyrings=.ima\n");
    let cert = b"\x30\x82certificate";
    ima.measure_buffer(Func::KeyCheck, ".ima", cert, Some(".ima"), &root());
    ima.measure_buffer(Func::KeyCheck, ".ima", cert, Some(".ima"), &root());
    ima.measure_buffer(Func::KeyCheck, ".evm", cert, Some(".evm"), &root());
    let l = lines(&ima);
    assert_eq!(l.len(), 2, "{l:?}");
    let sha = HashAlgo::Sha256.digest(cert).unwrap().to_hex();
    assert!(l[1].ends_with(&format!(" ima-buf sha256:{sha} .ima {}", hex::encode(cert))));
}

// ------------------------------------------------------------------ policy file

#[test]
fn policy_open_rules() {
    let ima = ima_tcb();
    assert_eq!(
        ima.open_policy(PolicyAccess::ReadWrite, true).unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        ima.open_policy(PolicyAccess::Read, false).unwrap_err(),
        Errno::EPERM
    );
    let r = ima.open_policy(PolicyAccess::Read, true).unwrap();
    assert!(!r.is_write());
    let w = ima.open_policy(PolicyAccess::Write, false).unwrap();
    assert_eq!(
        ima.open_policy(PolicyAccess::Write, true).unwrap_err(),
        Errno::EBUSY
    );
    // Reading is allowed while a writer is busy.
    ima.open_policy(PolicyAccess::Read, true).unwrap();
    ima.policy_release(w);
    ima.policy_release(r);
    ima.open_policy(PolicyAccess::Write, true).unwrap();

    let no_read = ima_with(Config {
        read_policy: false,
        ..Config::default()
    });
    assert_eq!(
        no_read.open_policy(PolicyAccess::Read, true).unwrap_err(),
        Errno::EACCES
    );
}

#[test]
fn write_returns_line_length_plus_one() {
    let ima = ima_tcb();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let text = b"measure func=BPRM_CHECK\nmeasure func=MMAP_CHECK\n";
    assert_eq!(ima.policy_write(&mut h, 0, text, &no_loader), Ok(24));
    // Without a newline: one more than written.
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=BPRM_CHECK", &no_loader),
        Ok(24)
    );
    assert_eq!(
        ima.policy_write(&mut h, 0, b"   # comment\n", &no_loader),
        Ok(13)
    );
    assert_eq!(ima.policy_write(&mut h, 0, b"\n", &no_loader), Ok(1));
    assert_eq!(h.pending_rules().len(), 2);
    assert!(h.is_valid());
    // Each parsed rule is audited as 1807.
    let r = records_of(&ima, audit::AUDIT_INTEGRITY_POLICY_RULE);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].body, "action=measure func=BPRM_CHECK res=1");
    ima.policy_release(h);
}

#[test]
fn write_at_nonzero_offset_is_einval_and_spoils_the_session() {
    let ima = ima_tcb();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 1, b"measure func=BPRM_CHECK\n", &no_loader),
        Err(Errno::EINVAL)
    );
    assert!(!h.is_valid());
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=BPRM_CHECK\n", &no_loader),
        Ok(24)
    );
    let before = ima.policy_text();
    ima.policy_release(h);
    assert_eq!(ima.policy_text(), before);
}

#[test]
fn invalid_rule_discards_whole_session_at_release() {
    let ima = ima_tcb();
    let builtin = ima.policy_text();
    assert!(builtin.contains("measure func=BPRM_CHECK mask=MAY_EXEC \n"));
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    h.pid = 77;
    h.comm = "echo".into();
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=FILE_CHECK\n", &no_loader),
        Ok(24)
    );
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure bogus=1\n", &no_loader),
        Err(Errno::EINVAL)
    );
    // Later good lines still parse but the session stays invalid.
    assert_eq!(
        ima.policy_write(&mut h, 0, b"audit func=BPRM_CHECK\n", &no_loader),
        Ok(22)
    );
    ima.policy_release(h);
    assert_eq!(ima.policy_text(), builtin);
    let status = records_of(&ima, audit::AUDIT_INTEGRITY_STATUS);
    assert_eq!(status.len(), 2);
    assert_eq!(
        status[0].body,
        "pid=77 uid=0 auid=4294967295 ses=4294967295 op=update_policy cause=invalid-policy \
         comm=\"echo\" res=0 errno=0"
    );
    assert_eq!(
        status[1].body,
        "pid=77 uid=0 auid=4294967295 ses=4294967295 op=policy_update cause=failed \
         comm=\"echo\" res=0 errno=0"
    );
    // The writer slot is free again.
    ima.open_policy(PolicyAccess::Write, true).unwrap();
}

#[test]
fn comment_only_session_fails() {
    let ima = ima_tcb();
    let builtin = ima.policy_text();
    assert_eq!(load(&ima, "# nothing here\n\n"), Ok(()));
    assert_eq!(ima.policy_text(), builtin);
    let status = records_of(&ima, audit::AUDIT_INTEGRITY_STATUS);
    assert!(status[0].body.contains("op=policy_update cause=failed"));
    // An empty session too.
    let h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    ima.policy_release(h);
    assert_eq!(ima.policy_text(), builtin);
}

#[test]
fn first_load_replaces_builtin_second_appends() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    load(&ima, "measure func=BPRM_CHECK\n").unwrap();
    assert_eq!(ima.policy_text(), "measure func=BPRM_CHECK \n");
    let status = records_of(&ima, audit::AUDIT_INTEGRITY_STATUS);
    assert!(status[0]
        .body
        .contains("op=policy_update cause=completed comm=\"\" res=1"));
    load(&ima, "dont_measure fsmagic=0x9fa0\naudit func=FILE_CHECK\n").unwrap();
    assert_eq!(
        ima.policy_text(),
        "measure func=BPRM_CHECK \ndont_measure fsmagic=0x9fa0 \naudit func=FILE_CHECK \n"
    );
    assert_eq!(ima.policy_file_state(), PolicyFileState::Writable);
    // The new policy applies: root reads are no longer measured.
    let f = TestFile::new(dir.path(), "/etc/x", b"x");
    open_read(&ima, &f);
    assert_eq!(ima.list().len(), 1);
}

#[test]
fn read_only_and_removed_policy_file_after_first_load() {
    let ro = ima_with(Config {
        write_policy: false,
        ..Config::default()
    });
    load(&ro, "measure func=BPRM_CHECK\n").unwrap();
    assert_eq!(ro.policy_file_state(), PolicyFileState::ReadOnly);
    assert_eq!(
        ro.open_policy(PolicyAccess::Write, true).unwrap_err(),
        Errno::EBUSY
    );
    assert!(ro.open_policy(PolicyAccess::Read, true).is_ok());

    let gone = ima_with(Config {
        write_policy: false,
        read_policy: false,
        ..Config::default()
    });
    // A failed session does not remove the file.
    assert_eq!(load(&gone, "bogus\n"), Err(Errno::EINVAL));
    assert_eq!(gone.policy_file_state(), PolicyFileState::Writable);
    load(&gone, "measure func=BPRM_CHECK\n").unwrap();
    assert_eq!(gone.policy_file_state(), PolicyFileState::Removed);
    assert_eq!(
        gone.open_policy(PolicyAccess::Write, true).unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn signed_policy_required_refuses_text() {
    let ima = ima_with(Config {
        builtin_policy: vec!["secure_boot".into()],
        ..Config::default()
    });
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=BPRM_CHECK\n", &no_loader),
        Err(Errno::EACCES)
    );
    let status = records_of(&ima, audit::AUDIT_INTEGRITY_STATUS);
    assert!(
        status[0]
            .body
            .contains("op=policy_update cause=signed policy required comm=\"\" res=0"),
        "{}",
        status[0].body
    );
    ima.policy_release(h);
    // A custom policy that itself requires signed policies has the same effect later.
    let other = ima_tcb();
    load(&other, "appraise func=POLICY_CHECK\n").unwrap();
    let mut h = other.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        other.policy_write(&mut h, 0, b"measure func=BPRM_CHECK\n", &no_loader),
        Err(Errno::EACCES)
    );
}

#[test]
fn loading_by_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let path = dir.path().join("policy");
    let text = "# my policy\nmeasure func=BPRM_CHECK\n\nmeasure func=POLICY_CHECK\n";
    std::fs::write(&path, text).unwrap();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let written = format!("{}\n", path.display());
    assert_eq!(
        ima.policy_write(&mut h, 0, written.as_bytes(), &fs_loader),
        Ok(written.len())
    );
    ima.policy_release(h);
    assert_eq!(
        ima.policy_text(),
        "measure func=BPRM_CHECK \nmeasure func=POLICY_CHECK \n"
    );
    // The built-in tcb policy had POLICY_CHECK: the file was measured while loading.
    let l = lines(&ima);
    assert_eq!(l.len(), 2);
    let sha = HashAlgo::Sha256.digest(text.as_bytes()).unwrap().to_hex();
    assert!(l[1].ends_with(&format!(" ima-ng sha256:{sha} {}", path.display())));

    // Now the active policy has POLICY_CHECK too; a second identical load is a duplicate.
    load(&ima, &written).unwrap();
    assert_eq!(ima.list().len(), 2);
}

#[test]
fn loading_by_path_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let missing = format!("{}/nope\n", dir.path().display());
    assert_eq!(
        ima.policy_write(&mut h, 0, missing.as_bytes(), &fs_loader),
        Err(Errno::ENOENT)
    );
    assert!(!h.is_valid());
    ima.policy_release(h);

    // Last line without newline: size accounting leaves -1, EINVAL (rules before it parsed).
    let path = dir.path().join("p");
    std::fs::write(&path, "measure func=BPRM_CHECK\nmeasure func=MMAP_CHECK").unwrap();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, path.to_str().unwrap().as_bytes(), &fs_loader),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.pending_rules().len(), 2);
    ima.policy_release(h);

    // A bad rule stops the load with its error.
    std::fs::write(
        &path,
        "measure func=BPRM_CHECK\nnonsense\nmeasure func=MMAP_CHECK\n",
    )
    .unwrap();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, path.to_str().unwrap().as_bytes(), &fs_loader),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.pending_rules().len(), 1);
    ima.policy_release(h);
    assert!(
        ima.policy_text().contains("mask=MAY_EXEC"),
        "built-in still active"
    );
}

#[test]
fn read_handle_cannot_write() {
    let ima = ima_tcb();
    let mut h = ima.open_policy(PolicyAccess::Read, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure\n", &no_loader),
        Err(Errno(libc::EBADF))
    );
    ima.policy_release(h);
}

#[test]
fn ima_is_send_and_sync_and_concurrent_hooks_agree() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ima>();
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let files: Vec<TestFile> = (0..16)
        .map(|i| {
            TestFile::new(
                dir.path(),
                &format!("/f{i}"),
                format!("content {i}").as_bytes(),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for f in &files {
                    open_read(&ima, f);
                    close(&ima, f, false);
                }
            });
        }
    });
    assert_eq!(ima.list().len(), 17);
    let replayed = crate::engine::pcr::replay(ima.list());
    for (pcr, bank, value) in ima.pcr_values() {
        assert_eq!(replayed.value(pcr, bank), value);
    }
}

// ------------------------------------------------------------------ appraisal

fn ima_appraise(mode: AppraiseMode, rules: &str) -> Ima {
    let ima = ima_with(Config {
        builtin_policy: vec![],
        appraise: mode,
        ..Config::default()
    });
    load(&ima, rules).expect("policy loads");
    ima
}

fn hash_xattr(content: &[u8]) -> Vec<u8> {
    let d = HashAlgo::Sha256.digest(content).unwrap();
    crate::engine::xattr::encode_digest_xattr(&d)
}

/// A FILE_CHECK read as root with `xattr` as the file's security.ima.
fn read_with_xattr(ima: &Ima, f: &TestFile, xattr: Option<&[u8]>) -> Result<FileOutcome, Errno> {
    let file = f.reader();
    let mut ev = event(f, Func::FileCheck, MAY_READ, root(), false);
    ev.ima_xattr = XattrSource::Known(xattr);
    ima.process_file_with(&ev, &file)
}

#[test]
fn appraise_tcb_enforce_checks_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        builtin_policy: vec!["appraise_tcb".into()],
        appraise: AppraiseMode::Enforce,
        ..Config::default()
    });
    let f = TestFile::new(dir.path(), "/etc/shadow", b"secret\n");
    assert_eq!(read_with_xattr(&ima, &f, None), Err(Errno::EACCES));
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].body,
        format!(
            "pid=4242 uid=0 auid=4294967295 ses=4294967295 op=appraise_data cause=missing-hash \
             comm=\"cat\" name=\"/etc/shadow\" dev=\"vda\" ino={} res=0 errno=0",
            f.id().ino
        )
    );
    // The refused open was released by the engine.
    assert_eq!(ima.cache().find(f.id()).unwrap().lock().readers(), 0);
    // Cached failure: refused again without re-appraising (no new record).
    assert_eq!(read_with_xattr(&ima, &f, None), Err(Errno::EACCES));
    assert_eq!(records_of(&ima, audit::AUDIT_INTEGRITY_DATA).len(), 1);

    let good = TestFile::new(dir.path(), "/etc/hosts", b"127.0.0.1 localhost\n");
    let x = hash_xattr(b"127.0.0.1 localhost\n");
    assert_eq!(
        read_with_xattr(&ima, &good, Some(&x)),
        Ok(FileOutcome::default())
    );
    let bad = TestFile::new(dir.path(), "/etc/motd", b"hello\n");
    assert_eq!(read_with_xattr(&ima, &bad, Some(&x)), Err(Errno::EACCES));
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert!(recs[1].body.contains("op=appraise_data cause=invalid-hash"));
    // Not owned by root: `appraise fowner=0` does not apply.
    let mut ev = event(&bad, Func::FileCheck, MAY_READ, root(), false);
    ev.owner = 1000;
    ima.process_file(&ev, &bad.reader()).unwrap();
}

#[test]
fn appraise_log_mode_allows_and_audits() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Log, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/x", b"x");
    assert_eq!(read_with_xattr(&ima, &f, None), Ok(FileOutcome::default()));
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert!(recs[0].body.contains("cause=missing-hash"));
}

#[test]
fn appraise_off_ignores_appraise_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Off, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/x", b"x");
    assert_eq!(read_with_xattr(&ima, &f, None), Ok(FileOutcome::default()));
    assert!(records_of(&ima, audit::AUDIT_INTEGRITY_DATA).is_empty());
}

#[test]
fn appraise_fix_mode_repairs_hashes_but_not_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Fix, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/x", b"content");
    let out = read_with_xattr(&ima, &f, None).unwrap();
    assert_eq!(out.set_ima_xattr, Some(hash_xattr(b"content")));
    // Audited even though fixed; the next access is a cached pass.
    assert_eq!(records_of(&ima, audit::AUDIT_INTEGRITY_DATA).len(), 1);
    assert_eq!(read_with_xattr(&ima, &f, None), Ok(FileOutcome::default()));
    // A v2 signature that does not verify is never replaced.
    let g = TestFile::new(dir.path(), "/y", b"content");
    let sig = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
    let out = read_with_xattr(&ima, &g, Some(&sig)).unwrap();
    assert_eq!(out.set_ima_xattr, None);
    assert!(records_of(&ima, audit::AUDIT_INTEGRITY_DATA)[1]
        .body
        .contains("cause=invalid-signature"));
}

#[test]
fn signed_file_cannot_be_opened_for_write_in_enforce_mode() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Enforce, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/bin/signed", b"elf");
    let sig = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
    let mut ev = event(&f, Func::FileCheck, MAY_WRITE, root(), true);
    ev.ima_xattr = XattrSource::Known(Some(&sig));
    assert_eq!(ima.process_file(&ev, &f.reader()), Err(Errno::EACCES));
    assert_eq!(ima.cache().find(f.id()).unwrap().lock().writers(), 0);
    // A newly created file is exempt.
    let g = TestFile::new(dir.path(), "/bin/new", b"");
    let mut ev = event(&g, Func::FileCheck, MAY_WRITE, root(), true);
    ev.ima_xattr = XattrSource::Known(Some(&sig));
    ev.created = true;
    assert_eq!(ima.process_file(&ev, &g.reader()), Ok(()));
}

#[test]
fn appraised_file_gets_new_hash_when_last_writer_closes() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Enforce, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/etc/conf", b"old\n");
    let x = hash_xattr(b"old\n");
    let mut ev = event(&f, Func::FileCheck, MAY_WRITE | MAY_READ, root(), true);
    ev.ima_xattr = XattrSource::Known(Some(&x));
    ima.process_file(&ev, &f.reader()).unwrap();
    std::fs::write(&f.path, b"new content\n").unwrap();
    let update = ima.file_closed_with(f.id(), true, f.version(), Some(&f.reader()));
    assert_eq!(update, Some(hash_xattr(b"new content\n")));
    // Unchanged close: nothing to write.
    let x = hash_xattr(b"new content\n");
    let mut ev = event(&f, Func::FileCheck, MAY_WRITE, root(), true);
    ev.ima_xattr = XattrSource::Known(Some(&x));
    ima.process_file(&ev, &f.reader()).unwrap();
    assert_eq!(
        ima.file_closed_with(f.id(), true, f.version(), Some(&f.reader())),
        None
    );
}

#[test]
fn hash_rule_writes_hash_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Off, "hash func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/data", b"");
    let mut ev = event(&f, Func::FileCheck, MAY_WRITE, root(), true);
    ev.created = true;
    ima.process_file(&ev, &f.reader()).unwrap();
    std::fs::write(&f.path, b"written").unwrap();
    assert_eq!(
        ima.file_closed_with(f.id(), true, f.version(), Some(&f.reader())),
        Some(hash_xattr(b"written"))
    );
}

#[test]
fn xattr_change_resets_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    open_read(&ima, &f);
    ima.xattr_changed(f.id());
    open_read(&ima, &f);
    // Re-measured, but identical template data: suppressed as a duplicate.
    assert_eq!(ima.list().len(), 2);
    assert!(ima.cache().find(f.id()).unwrap().lock().measured_into(10));
}

#[test]
fn ima_xattr_writes_are_validated() {
    let ima = ima_policy("appraise func=SETXATTR_CHECK appraise_algos=sha256,sha512\n");
    let task = AuditTask::default();
    let ok = hash_xattr(b"x");
    assert_eq!(ima.check_ima_xattr_write(&ok, b"/f", &task), Ok(()));
    let sha1 = crate::engine::xattr::encode_digest_xattr(&HashAlgo::Sha1.digest(b"x").unwrap());
    assert_eq!(
        ima.check_ima_xattr_write(&sha1, b"/f", &task),
        Err(Errno::EACCES)
    );
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert!(recs[0]
        .body
        .contains("op=set_data cause=denied-hash-algorithm comm=\"\" name=\"/f\" res=0"));
    assert_eq!(
        ima.check_ima_xattr_write(&[], b"/f", &task),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ima.check_ima_xattr_write(&[0x07, 1], b"/f", &task),
        Err(Errno::EINVAL)
    );
    // Without a SETXATTR_CHECK rule: any algorithm we can compute.
    let plain = ima_tcb();
    assert_eq!(plain.check_ima_xattr_write(&sha1, b"/f", &task), Ok(()));
    assert_eq!(
        plain.check_ima_xattr_write(&[0x04, HashAlgo::Wp256.id(), 1, 2], b"/f", &task),
        Err(Errno::EACCES)
    );
}

#[test]
fn policy_file_must_be_signed_under_secure_boot_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        builtin_policy: vec!["secure_boot".into()],
        appraise: AppraiseMode::Enforce,
        ..Config::default()
    });
    let path = dir.path().join("policy");
    std::fs::write(&path, "measure func=BPRM_CHECK\n").unwrap();
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, path.to_str().unwrap().as_bytes(), &fs_loader),
        Err(Errno::EACCES)
    );
    assert!(h.pending_rules().is_empty());
    ima.policy_release(h);
    let recs = records_of(&ima, audit::AUDIT_INTEGRITY_DATA);
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].body.contains(&format!(
            "op=appraise_data cause=IMA-signature-required comm=\"\" name=\"{}\" res=0",
            path.display()
        )),
        "{}",
        recs[0].body
    );
    // A hash is not enough when the rule requires a signature.
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let content = std::fs::read(&path).unwrap();
    let x = hash_xattr(&content);
    let loader = |p: &str| {
        Ok(PolicyFile {
            content: std::fs::read(p)?,
            ima_xattr: Some(x.clone()),
        })
    };
    assert_eq!(
        ima.policy_write_file(&mut h, 0, path.to_str().unwrap().as_bytes(), &loader),
        Err(Errno::EACCES)
    );
    ima.policy_release(h);
    assert!(ima.policy_text().contains("appraise func=POLICY_CHECK"));
}

#[test]
fn policy_file_hash_appraisal_in_log_mode_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(
        AppraiseMode::Log,
        "appraise func=POLICY_CHECK\nmeasure func=POLICY_CHECK\n",
    );
    let path = dir.path().join("policy");
    std::fs::write(&path, "audit func=BPRM_CHECK\n").unwrap();
    load(&ima, &format!("{}\n", path.display())).unwrap();
    assert!(ima.policy_text().ends_with("audit func=BPRM_CHECK \n"));
    assert!(records_of(&ima, audit::AUDIT_INTEGRITY_DATA)[0]
        .body
        .contains("cause=missing-hash"));
    assert_eq!(ima.list().len(), 2, "measured");
}

#[test]
fn load_policy_text_loads_every_line_or_nothing() {
    let ima = ima_tcb();
    let builtin = ima.policy_text();
    let bad = "measure func=BPRM_CHECK\n# fine\nmeasure func=NOPE\naudit func=BPRM_CHECK\n";
    assert_eq!(
        ima.load_policy_text(bad, &no_loader),
        Err(PolicyLoadError {
            line: 3,
            errno: Errno::EINVAL
        })
    );
    assert_eq!(ima.policy_text(), builtin);
    assert_eq!(
        ima.load_policy_text("# only a comment", &no_loader),
        Err(PolicyLoadError {
            line: 0,
            errno: Errno::EINVAL
        })
    );
    let good =
        "measure func=BPRM_CHECK\n\n  # indented comment\nmeasure func=MMAP_CHECK mask=MAY_EXEC";
    assert_eq!(ima.load_policy_text(good, &no_loader), Ok(()));
    assert_eq!(
        ima.policy_text(),
        "measure func=BPRM_CHECK \nmeasure func=MMAP_CHECK mask=MAY_EXEC \n"
    );
    let busy = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.load_policy_text(good, &no_loader).unwrap_err().errno,
        Errno::EBUSY
    );
    assert!(!ima.policy_release(busy));
}

#[test]
fn saved_list_is_restored_with_pcrs_and_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_tcb();
    let f = TestFile::new(dir.path(), "/tmp/hello", b"hello\n");
    open_read(&ima, &f);
    open_write(&ima, &f); // ToMToU violation entry
    let g = TestFile::new(dir.path(), "/etc/g", b"g");
    open_read(&ima, &g);
    let idx = ima.list().bank_index(HashAlgo::Sha256).unwrap();
    let mut saved = vec![0u8; 1 << 16];
    let n = ima.list().read(ViewKind::Binary, idx, 0, &mut saved);
    saved.truncate(n);

    // A restarted daemon continues the same list.
    let again = Ima::with_saved_list(Config::default(), &saved, HashAlgo::Sha256, false).unwrap();
    assert_eq!(ascii(&again, HashAlgo::Sha1), ascii(&ima, HashAlgo::Sha1));
    assert_eq!(again.pcr_values(), ima.pcr_values());
    // Restored entries take part in duplicate suppression.
    open_read(&again, &g);
    assert_eq!(again.list().len(), ima.list().len());

    // After a "kexec" the new boot aggregate would follow the carried-over entries, but
    // without a TPM it is identical to the first one and suppressed as a duplicate, as the
    // kernel's hash table lookup does.
    let kexec = Ima::with_saved_list(Config::default(), &saved, HashAlgo::Sha256, true).unwrap();
    assert_eq!(kexec.list().len(), ima.list().len());
    // Restoring under another PCR default makes the new aggregate distinct.
    let other_pcr = Config {
        pcr: 11,
        ..Config::default()
    };
    let kexec = Ima::with_saved_list(other_pcr, &saved, HashAlgo::Sha256, true).unwrap();
    assert_eq!(kexec.list().len(), ima.list().len() + 1);
    assert!(lines(&kexec).last().unwrap().starts_with("11 "));
    assert!(lines(&kexec).last().unwrap().ends_with(" boot_aggregate"));

    // Damaged input is an error, not a panic.
    assert!(
        Ima::with_saved_list(Config::default(), &saved[..n - 3], HashAlgo::Sha256, false).is_err()
    );
    let mut bad = saved.clone();
    bad[10] ^= 0xff;
    assert!(Ima::with_saved_list(Config::default(), &bad, HashAlgo::Sha256, false).is_err());
    // Empty: a fresh start.
    let fresh = Ima::with_saved_list(Config::default(), &[], HashAlgo::Sha256, false).unwrap();
    assert_eq!(fresh.list().len(), 1);
}

#[test]
fn critical_data_policy_measures_kernel_version_at_init() {
    let ima = ima_with(Config {
        builtin_policy: vec!["tcb".into(), "critical_data".into()],
        ..Config::default()
    });
    let release = rustix::system::uname().release().to_bytes().to_vec();
    let sha = HashAlgo::Sha256.digest(&release).unwrap().to_hex();
    let l = lines(&ima);
    assert_eq!(l.len(), 2);
    assert!(l[1].ends_with(&format!(
        " ima-buf sha256:{sha} kernel_version {}",
        hex::encode(&release)
    )));
    // Not without the critical_data rules.
    assert_eq!(ima_tcb().list().len(), 1);
}

#[test]
fn attribute_change_forgets_cached_appraisal() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_appraise(AppraiseMode::Enforce, "appraise func=FILE_CHECK\n");
    let f = TestFile::new(dir.path(), "/x", b"x");
    assert_eq!(read_with_xattr(&ima, &f, None), Err(Errno::EACCES));
    // Cached failure even with a now-correct hash...
    let x = hash_xattr(b"x");
    assert_eq!(read_with_xattr(&ima, &f, Some(&x)), Err(Errno::EACCES));
    // ...until an attribute (or xattr) change makes IMA look again.
    ima.attr_changed(f.id());
    assert_eq!(
        read_with_xattr(&ima, &f, Some(&x)),
        Ok(FileOutcome::default())
    );
    assert_eq!(
        read_with_xattr(&ima, &f, None),
        Ok(FileOutcome::default()),
        "cached pass"
    );
    ima.xattr_changed(f.id());
    assert_eq!(read_with_xattr(&ima, &f, None), Err(Errno::EACCES));
}

/// The open/close sequences of LTP's `ima_violations.sh` (tests 1-8) through the engine,
/// with its expected violation counts for kernels >= 6.14 and, where it differs, before.
#[test]
fn ltp_ima_violations_sequences() {
    struct Shell<'a> {
        ima: &'a Ima,
        f: &'a TestFile,
    }
    impl Shell<'_> {
        /// `exec 3< $FILE`
        fn open_read(&self) {
            open_read(self.ima, self.f);
        }
        fn close_read(&self) {
            close(self.ima, self.f, false);
        }
        /// `exec 4> $FILE; echo 'test writing' >&4` (O_TRUNC: MAY_WRITE)
        fn open_write(&self) {
            open_write(self.ima, self.f);
            let mut w = OpenOptions::new().append(true).open(&self.f.path).unwrap();
            w.write_all(b"test writing\n").unwrap();
        }
        fn close_write(&self) {
            close(self.ima, self.f, true);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for (limit, expected) in [
        (ViolationLimit::Limited, [1, 1, 1, 1, 1, 2, 1, 2]),
        (ViolationLimit::EveryOpen, [1, 1, 1, 2, 3, 3, 2, 2]),
    ] {
        let ima = ima_with(Config {
            violation_limit: limit,
            ..Config::default()
        });
        let f = TestFile::new(dir.path(), "/tmp/test.txt", b"");
        let sh = Shell { ima: &ima, f: &f };
        let mut counts = Vec::new();
        let mut last = 0;
        let mut step = |counts: &mut Vec<u64>| {
            counts.push(ima.violations() - last);
            last = ima.violations();
        };
        // test1: open writers
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        step(&mut counts);
        // test2: ToMToU
        sh.open_read();
        sh.open_write();
        sh.close_write();
        sh.close_read();
        step(&mut counts);
        // test3: open_writers with a shared writable mapping held by another process
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        step(&mut counts);
        // test4: single open writer, two readers
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        step(&mut counts);
        // test5: multiple open writers
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        step(&mut counts);
        // test6: a new open writer causes another violation
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        sh.open_write();
        sh.open_read();
        sh.close_read();
        sh.close_write();
        step(&mut counts);
        // test7: single open reader, two writers
        sh.open_read();
        sh.open_write();
        sh.close_write();
        sh.open_write();
        sh.close_write();
        sh.close_read();
        step(&mut counts);
        // test8: a new open reader causes another violation
        sh.open_read();
        sh.open_write();
        sh.close_write();
        sh.close_read();
        sh.open_read();
        sh.open_write();
        sh.close_write();
        sh.close_read();
        step(&mut counts);
        assert_eq!(counts, expected, "{limit:?}");
        // Every violation has its audit record, which LTP greps for.
        let audited = records_of(&ima, audit::AUDIT_INTEGRITY_PCR)
            .iter()
            .filter(|r| r.body.contains("op=invalid_pcr") && r.body.contains("test.txt"))
            .count() as u64;
        assert_eq!(audited, ima.violations());
    }
}

/// Arbitrary bytes written to the policy file (rule-like lines, paths, NULs, huge lines)
/// and arbitrary policy file contents never panic, every write reports at most one page,
/// and whatever gets committed reads back as a policy that parses again.
#[test]
fn random_policy_writes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const ACTIONS: [&str; 6] = [
        "measure",
        "dont_measure",
        "audit",
        "hash",
        "appraise",
        "bogus",
    ];
    const CONDS: [&str; 12] = [
        "func=FILE_CHECK",
        "func=BPRM_CHECK",
        "mask=^MAY_READ",
        "mask=MAY_EXEC",
        "uid<1000",
        "fowner>0",
        "pcr=11",
        "template=ima-sig",
        "fsmagic=0x9fa0",
        "euid=0",
        "func=NOPE",
        "#",
    ];
    const NOISE: &[u8] = b"\0\n\t /=|\xff";
    let mut committed = 0;
    for round in 0..300 {
        let ima = ima_with(Config {
            write_policy: round % 3 != 0,
            read_policy: round % 5 != 0,
            ..Config::default()
        });
        let Ok(mut h) = ima.open_policy(PolicyAccess::Write, true) else {
            continue;
        };
        let noisy = next() % 2 == 0;
        for _ in 0..6 {
            let mut data = Vec::new();
            for _ in 0..(next() % 4 + 1) {
                data.extend_from_slice(ACTIONS[(next() % 5) as usize].as_bytes());
                for _ in 0..(next() % 3) {
                    data.push(b' ');
                    let pick = (next() % if noisy { 12 } else { 9 }) as usize;
                    data.extend_from_slice(CONDS[pick].as_bytes());
                }
                if noisy && next() % 3 == 0 {
                    data.push(NOISE[(next() % NOISE.len() as u64) as usize]);
                }
                data.push(b'\n');
            }
            if noisy && next() % 5 == 0 {
                data.resize(data.len() + (next() % 6000) as usize, b'x');
            }
            if noisy && next() % 4 == 0 {
                data.insert(0, b'/');
            }
            let content = data.clone();
            let loader = |_: &str| Ok(content.clone());
            let offset = u64::from(noisy && next() % 10 == 0);
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                match ima.policy_write(&mut h, offset, rest, &loader) {
                    Ok(n) => {
                        assert!(n <= 4096, "{n}");
                        rest = &rest[n.min(rest.len())..];
                    }
                    Err(e) => {
                        assert!([Errno::EINVAL, Errno::EACCES].contains(&e), "{e:?}");
                        break;
                    }
                }
            }
        }
        if ima.policy_release(h) {
            committed += 1;
        }
        let text = ima.policy_text();
        assert!(policy::parse_text(&text).is_ok(), "{text}");
    }
    assert!(committed > 0, "no random session was ever committed");
}

/// `ima_update_policy_flags` only ORs IMA_APPRAISE_POLICY in: once a built-in policy required
/// signed policies, a custom policy without such a rule does not lift the requirement.
#[test]
fn signed_policy_requirement_survives_the_switch_to_a_custom_policy() {
    let ima = ima_with(Config {
        builtin_policy: vec!["appraise_tcb".into()],
        appraise: AppraiseMode::Log,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy");
    std::fs::write(&file, "measure func=BPRM_CHECK\n").unwrap();
    let path = format!("{}\n", file.display());
    load(&ima, &path).unwrap();
    assert_eq!(ima.policy_text(), "measure func=BPRM_CHECK \n");
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=FILE_CHECK\n", &no_loader),
        Err(Errno::EACCES)
    );
    ima.policy_release(h);
}

/// Once a custom policy is active, a rule whose LSM label cannot be resolved is accepted
/// and never matches (here: no LSM at all), while the built-in policy is active it is refused.
#[test]
fn lsm_rules_are_refused_first_and_accepted_after_a_custom_load() {
    let ima = ima_tcb();
    assert_eq!(load(&ima, "measure obj_type=etc_t\n"), Err(Errno::EINVAL));
    load(&ima, "measure func=BPRM_CHECK\n").unwrap();
    load(&ima, "measure obj_type=etc_t\n").unwrap();
    // Hidden from the read-back, as the kernel hides rules with stale LSM labels.
    assert_eq!(ima.policy_text(), "measure func=BPRM_CHECK \n");
}

#[test]
fn inactive_namespace_records_nothing_until_activated() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        active: false,
        ..Config::default()
    });
    assert!(!ima.is_active());
    assert_eq!(ima.list().len(), 0, "no boot aggregate before activation");
    // Its policy can be set while inactive.
    load(&ima, "measure func=FILE_CHECK mask=MAY_READ\n").expect("policy loads inactive");
    let before = TestFile::new(dir.path(), "/before", b"before\n");
    open_read(&ima, &before);
    close(&ima, &before, false);
    assert_eq!(ima.list().len(), 0);
    assert_eq!(ima.violations(), 0);

    ima.activate().expect("first activation");
    assert!(ima.is_active());
    assert_eq!(
        ima.activate(),
        Err(Errno::EBUSY),
        "one-way, like ima_write_active"
    );
    let after = TestFile::new(dir.path(), "/after", b"after\n");
    open_read(&ima, &after);
    let l = lines(&ima);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[0].ends_with(" boot_aggregate"), "{l:?}");
    assert!(l[1].ends_with(" /after"), "{l:?}");
}

#[test]
fn child_config_is_staged_and_taken_once() {
    let ima = ima_tcb();
    assert!(ima.take_child_config().is_empty());
    ima.stage_child_policy("measure func=BPRM_CHECK\n".into());
    ima.stage_child_x509(b"first".to_vec());
    ima.stage_child_x509(b"second".to_vec());
    ima.stage_child_kcmd(vec![("ima_hash".into(), "sha1".into())]);
    let staged = ima.staged_child_config();
    assert_eq!(
        staged.x509,
        [b"second".to_vec()],
        "a new write replaces the certificate"
    );
    assert_eq!(ima.take_child_config(), staged);
    assert!(
        ima.take_child_config().is_empty(),
        "the next child starts afresh"
    );
}

#[test]
fn rule_cap_refuses_with_enomem_and_fails_the_session() {
    let ima = ima_with(Config {
        max_rules: Some(2),
        ..Config::default()
    });
    load(&ima, "measure func=BPRM_CHECK\nmeasure func=MMAP_CHECK\n").expect("two rules fit");
    let mut h = ima.open_policy(PolicyAccess::Write, false).expect("open");
    assert_eq!(
        ima.policy_write(&mut h, 0, b"measure func=FILE_CHECK\n", &no_loader),
        Err(Errno::ENOMEM)
    );
    assert!(!ima.policy_release(h), "the session fails as a whole");
    assert_eq!(ima.active_policy().rules().len(), 2, "nothing appended");
    let refused = records_of(&ima, AUDIT_INTEGRITY_STATUS);
    assert!(
        refused.iter().any(|r| r.body.contains("cause=-ENOMEM")),
        "{refused:?}"
    );
}

#[test]
fn list_cap_stops_recording_without_refusing_access() {
    let dir = tempfile::tempdir().unwrap();
    let ima = ima_with(Config {
        max_list_bytes: Some(1),
        ..Config::default()
    });
    // The boot aggregate came first; the list is now over its cap.
    assert_eq!(ima.list().len(), 1);
    let f = TestFile::new(dir.path(), "/etc/x", b"x\n");
    let _fd = open_read(&ima, &f);
    assert_eq!(ima.list().len(), 1, "not recorded");
    let pcr = records_of(&ima, AUDIT_INTEGRITY_PCR);
    assert!(
        pcr.iter().any(|r| r.body.contains("cause=ENOMEM")),
        "{pcr:?}"
    );
}

/// As `process_measurement`: `security.ima` is read for an action that uses it (the first
/// measurement with an `ima-ng` record takes its hash algorithm; an appraisal checks it), not
/// for an open with nothing left to do.
#[test]
fn ima_xattr_is_read_only_when_an_action_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = TestFile::new(dir.path(), "/etc/f", b"content");
    let xattr = hash_xattr(b"content");
    let reads = std::cell::Cell::new(0);
    let read = || {
        reads.set(reads.get() + 1);
        Some(xattr.clone())
    };
    let open = |ima: &Ima| {
        let lazy = LazyXattr::new(&read);
        let mut ev = event(&f, Func::FileCheck, MAY_READ, root(), false);
        ev.ima_xattr = XattrSource::Lazy(&lazy);
        let r = ima.process_file_with(&ev, &f.reader());
        ima.file_closed(f.id(), false, f.version());
        r
    };

    let measuring = ima_policy("measure func=FILE_CHECK mask=MAY_READ\n");
    open(&measuring).unwrap();
    assert_eq!(reads.get(), 1, "the first measurement reads it");
    open(&measuring).unwrap();
    open(&measuring).unwrap();
    assert_eq!(reads.get(), 1, "an already measured file: no read");

    let ima_template = ima_with(Config {
        template: "ima".into(),
        ..Config::default()
    });
    load(&ima_template, "measure func=FILE_CHECK mask=MAY_READ\n").unwrap();
    open(&ima_template).unwrap();
    assert_eq!(
        reads.get(),
        1,
        "an `ima` record uses neither the xattr nor its algorithm"
    );

    let appraising = ima_appraise(AppraiseMode::Enforce, "appraise func=FILE_CHECK\n");
    open(&appraising).unwrap();
    assert_eq!(reads.get(), 2, "an appraisal reads it");
    open(&appraising).unwrap();
    assert_eq!(reads.get(), 2, "a cached appraisal: no read");

    let not_covered = ima_policy("measure func=BPRM_CHECK\n");
    open(&not_covered).unwrap();
    assert_eq!(reads.get(), 2, "no rule applies: no read");
}
