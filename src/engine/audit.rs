//! Kernel-format integrity audit records (`AUDIT_INTEGRITY_*`, include/uapi/linux/audit.h)
//! and the sink they go to.
//!
//! Record bodies are byte-for-byte what the kernel passes to the audit subsystem
//! (security/integrity/integrity_audit.c `integrity_audit_message`, ima_api.c
//! `ima_audit_measurement` + kernel/audit.c `audit_log_task_info`, ima_policy.c for 1807).
//! The sink writes them as auditd does in `audit.log`:
//! `type=<NAME> msg=audit(<sec>.<ms>:<serial>): <body>`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::hash::Digest;

/// `AUDIT_INTEGRITY_DATA`: data integrity verification (appraisal, hashing errors).
pub const AUDIT_INTEGRITY_DATA: u16 = 1800;
/// `AUDIT_INTEGRITY_METADATA`: metadata integrity verification (EVM).
pub const AUDIT_INTEGRITY_METADATA: u16 = 1801;
/// `AUDIT_INTEGRITY_STATUS`: integrity enable status (policy updates).
pub const AUDIT_INTEGRITY_STATUS: u16 = 1802;
/// `AUDIT_INTEGRITY_HASH`: integrity HMAC hash.
pub const AUDIT_INTEGRITY_HASH: u16 = 1803;
/// `AUDIT_INTEGRITY_PCR`: PCR invalidation (violations) and measurement storage.
pub const AUDIT_INTEGRITY_PCR: u16 = 1804;
/// `AUDIT_INTEGRITY_RULE`: records produced by `audit` policy rules.
pub const AUDIT_INTEGRITY_RULE: u16 = 1805;
/// `AUDIT_INTEGRITY_EVM_XATTR`.
pub const AUDIT_INTEGRITY_EVM_XATTR: u16 = 1806;
/// `AUDIT_INTEGRITY_POLICY_RULE`: one record per parsed policy rule.
pub const AUDIT_INTEGRITY_POLICY_RULE: u16 = 1807;

/// `AUDIT_UID_UNSET` / unset session id: what an unset loginuid/ses prints as.
pub const AUDIT_UNSET: u32 = u32::MAX;

/// The name auditd prints for a record type (`audit_msg_type_to_name`), or
/// `UNKNOWN[n]` as auditd does for numbers it does not know.
pub fn type_name(kind: u16) -> String {
    let name = match kind {
        AUDIT_INTEGRITY_DATA => "INTEGRITY_DATA",
        AUDIT_INTEGRITY_METADATA => "INTEGRITY_METADATA",
        AUDIT_INTEGRITY_STATUS => "INTEGRITY_STATUS",
        AUDIT_INTEGRITY_HASH => "INTEGRITY_HASH",
        AUDIT_INTEGRITY_PCR => "INTEGRITY_PCR",
        AUDIT_INTEGRITY_RULE => "INTEGRITY_RULE",
        AUDIT_INTEGRITY_EVM_XATTR => "INTEGRITY_EVM_XATTR",
        AUDIT_INTEGRITY_POLICY_RULE => "INTEGRITY_POLICY_RULE",
        other => return format!("UNKNOWN[{other}]"),
    };
    name.to_string()
}

/// `audit_string_contains_control`: a quote, a space, a control character or any byte
/// outside printable ASCII forces hex encoding.
fn needs_hex(value: &[u8]) -> bool {
    value
        .iter()
        .any(|&b| b == b'"' || !(0x21..=0x7e).contains(&b))
}

/// `audit_log_untrustedstring`: `"value"` when safe, else uppercase hex without quotes.
pub fn untrusted(value: &[u8]) -> String {
    if needs_hex(value) {
        hex::encode_upper(value)
    } else {
        // Safe bytes are printable ASCII, so this conversion is lossless.
        format!("\"{}\"", String::from_utf8_lossy(value))
    }
}

/// The task (process) an audit record is about: the fields the kernel takes from `current`.
#[derive(Clone, Debug)]
pub struct AuditTask<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    /// Login uid; [`AUDIT_UNSET`] when not set.
    pub auid: u32,
    /// Session id; [`AUDIT_UNSET`] when not set.
    pub ses: u32,
    /// Controlling tty name (`pts0`), `None` prints `(none)`.
    pub tty: Option<&'a str>,
    /// Task command name (at most 15 bytes in the kernel; truncated here the same way).
    pub comm: &'a [u8],
    /// Executable path; `None` prints `exe=(null)` as for a task without mm.
    pub exe: Option<&'a [u8]>,
    /// LSM task label, printed as ` subj=<label>` when present.
    pub subj: Option<&'a str>,
}

impl Default for AuditTask<'_> {
    fn default() -> Self {
        AuditTask {
            pid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            euid: 0,
            suid: 0,
            fsuid: 0,
            egid: 0,
            sgid: 0,
            fsgid: 0,
            auid: AUDIT_UNSET,
            ses: AUDIT_UNSET,
            tty: None,
            comm: b"",
            exe: None,
            subj: None,
        }
    }
}

/// `TASK_COMM_LEN - 1`: the kernel keeps at most 15 bytes of a command name.
const COMM_MAX: usize = 15;

fn comm_of(task: &AuditTask<'_>) -> String {
    let comm = &task.comm[..task.comm.len().min(COMM_MAX)];
    untrusted(comm)
}

/// The inode part of a generic record: ` dev=<s_id> ino=<n>`.
#[derive(Clone, Copy, Debug)]
pub struct AuditInode<'a> {
    /// Superblock id (`sb->s_id`, e.g. `sda1`, `fuse`, `tmpfs`).
    pub dev: &'a str,
    pub ino: u64,
}

/// Body of a generic integrity record (types 1800, 1801, 1802, 1804), as
/// `integrity_audit_message` formats it:
/// `pid= uid= auid= ses=[ subj=] op= cause= comm=[ name=][ dev= ino=] res= errno=`.
///
/// `result` is the kernel's internal result (0 = success, so `res=1`); `errno` is printed
/// as given (current kernels always print it, 0 for records without an error number).
pub fn integrity_message(
    task: &AuditTask<'_>,
    op: &str,
    cause: &str,
    name: Option<&[u8]>,
    inode: Option<AuditInode<'_>>,
    result: i32,
    errno: i32,
) -> String {
    let mut s = format!(
        "pid={} uid={} auid={} ses={}",
        task.pid, task.uid, task.auid, task.ses
    );
    if let Some(subj) = task.subj {
        s.push_str(" subj=");
        s.push_str(subj);
    }
    s.push_str(&format!(" op={op} cause={cause} comm={}", comm_of(task)));
    if let Some(name) = name {
        s.push_str(" name=");
        s.push_str(&untrusted(name));
    }
    if let Some(inode) = inode {
        s.push_str(" dev=");
        s.push_str(&untrusted(inode.dev.as_bytes()));
        s.push_str(&format!(" ino={}", inode.ino));
    }
    s.push_str(&format!(" res={} errno={}", i32::from(result == 0), errno));
    s
}

/// `audit_log_task_info`: the task block appended to a 1805 record.
fn task_info(task: &AuditTask<'_>) -> String {
    let mut s = format!(
        " ppid={} pid={} auid={} uid={} gid={} euid={} suid={} fsuid={} egid={} sgid={} fsgid={} tty={} ses={}",
        task.ppid,
        task.pid,
        task.auid,
        task.uid,
        task.gid,
        task.euid,
        task.suid,
        task.fsuid,
        task.egid,
        task.sgid,
        task.fsgid,
        task.tty.unwrap_or("(none)"),
        task.ses
    );
    s.push_str(" comm=");
    s.push_str(&comm_of(task));
    s.push_str(" exe=");
    match task.exe {
        Some(exe) => s.push_str(&untrusted(exe)),
        None => s.push_str("(null)"),
    }
    if let Some(subj) = task.subj {
        s.push_str(" subj=");
        s.push_str(subj);
    }
    s
}

/// Body of the record an `audit` policy rule produces (type 1805, `ima_audit_measurement`):
/// `file=<untrusted> hash="<alg>:<hex>"` followed by the task block.
pub fn audit_rule_message(task: &AuditTask<'_>, file: &[u8], digest: &Digest) -> String {
    format!(
        "file={} hash=\"{}:{}\"{}",
        untrusted(file),
        digest.algo().name(),
        digest.to_hex(),
        task_info(task)
    )
}

/// One record as written to the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub kind: u16,
    pub serial: u64,
    pub body: String,
}

/// How many records [`AuditSink::recent`] keeps in memory.
const RECENT_CAPACITY: usize = 1024;

/// Where audit records go: always the `log` crate (info level, target `audit`), plus an
/// optional file in auditd's `audit.log` line format, plus a small in-memory ring so tests
/// and diagnostics can look at what was emitted.
pub struct AuditSink {
    file: Mutex<Option<File>>,
    path: Option<PathBuf>,
    serial: AtomicU64,
    info_enabled: AtomicBool,
    recent: Mutex<VecDeque<AuditRecord>>,
}

impl AuditSink {
    /// A sink appending to `path` (created if missing) when given.
    pub fn new(path: Option<&Path>) -> std::io::Result<AuditSink> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(AuditSink {
            file: Mutex::new(file),
            path: path.map(Path::to_path_buf),
            serial: AtomicU64::new(0),
            info_enabled: AtomicBool::new(false),
            recent: Mutex::new(VecDeque::new()),
        })
    }

    /// The file records are appended to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `integrity_audit=1`: also emit informational records (e.g. `hash_added`).
    pub fn set_info_enabled(&self, on: bool) {
        self.info_enabled.store(on, Ordering::Relaxed);
    }

    pub fn info_enabled(&self) -> bool {
        self.info_enabled.load(Ordering::Relaxed)
    }

    /// Emit one record of type `kind` with `body`.
    pub fn emit(&self, kind: u16, body: &str) {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "type={} msg=audit({}.{:03}:{}): {}",
            type_name(kind),
            now.as_secs(),
            now.subsec_millis(),
            serial,
            body
        );
        log::info!(target: "audit", "{line}");
        if let Some(f) = self.file.lock().as_mut() {
            // One write(2) per record, newline included, to a file opened O_APPEND: daemons
            // sharing one audit file never split each other's records.
            let record = format!("{line}\n");
            if let Err(e) = f.write_all(record.as_bytes()) {
                log::warn!("audit file write failed: {e}");
            }
        }
        let mut recent = self.recent.lock();
        if recent.len() == RECENT_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(AuditRecord {
            kind,
            serial,
            body: body.to_string(),
        });
    }

    /// A generic integrity record (`integrity_audit_message`); `info` records are dropped
    /// unless informational auditing is on, as in the kernel.
    #[allow(clippy::too_many_arguments)]
    ///
    /// `task` is asked for only when the record is emitted: finding out a task's ids and
    /// comm is a `/proc` read, not worth doing for a record that is filtered out.
    pub fn integrity<'t>(
        &self,
        kind: u16,
        task: &dyn Fn() -> AuditTask<'t>,
        op: &str,
        cause: &str,
        name: Option<&[u8]>,
        inode: Option<AuditInode<'_>>,
        result: i32,
        info: bool,
    ) {
        if info && !self.info_enabled() {
            return;
        }
        let body = integrity_message(&task(), op, cause, name, inode, result, 0);
        self.emit(kind, &body);
    }

    /// The most recent records (oldest first), at most a fixed number.
    pub fn recent(&self) -> Vec<AuditRecord> {
        self.recent.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::hash::HashAlgo;

    fn task() -> AuditTask<'static> {
        AuditTask {
            pid: 1234,
            ppid: 1,
            comm: b"cat",
            ..AuditTask::default()
        }
    }

    #[test]
    fn untrusted_strings_are_quoted_or_uppercase_hex() {
        assert_eq!(untrusted(b"cat"), "\"cat\"");
        assert_eq!(untrusted(b"/tmp/hello"), "\"/tmp/hello\"");
        // Space, quote, control and non-ASCII bytes force hex.
        assert_eq!(untrusted(b"a b"), "612062");
        assert_eq!(untrusted(b"a\"b"), "612262");
        assert_eq!(untrusted(b"x\n"), "780A");
        assert_eq!(untrusted("é".as_bytes()), "C3A9");
        assert_eq!(untrusted(b"~"), "\"~\"");
        assert_eq!(untrusted(b""), "\"\"");
    }

    #[test]
    fn violation_record_has_kernel_field_order() {
        let body = integrity_message(
            &task(),
            "invalid_pcr",
            "ToMToU",
            Some(b"/tmp/hello"),
            None,
            0,
            0,
        );
        assert_eq!(
            body,
            "pid=1234 uid=0 auid=4294967295 ses=4294967295 op=invalid_pcr cause=ToMToU \
             comm=\"cat\" name=\"/tmp/hello\" res=1 errno=0"
        );
    }

    #[test]
    fn record_with_inode_subject_and_failure() {
        let t = AuditTask {
            subj: Some("unconfined"),
            comm: b"my prog",
            uid: 1000,
            auid: 1000,
            ses: 3,
            ..task()
        };
        let body = integrity_message(
            &t,
            "appraise_data",
            "invalid-hash",
            Some(b"/bin/a b"),
            Some(AuditInode {
                dev: "sda1",
                ino: 42,
            }),
            -13,
            -13,
        );
        assert_eq!(
            body,
            "pid=1234 uid=1000 auid=1000 ses=3 subj=unconfined op=appraise_data \
             cause=invalid-hash comm=6D792070726F67 name=2F62696E2F612062 dev=\"sda1\" \
             ino=42 res=0 errno=-13"
        );
    }

    #[test]
    fn comm_is_truncated_to_fifteen_bytes() {
        let t = AuditTask {
            comm: b"abcdefghijklmnopqrstuvwxyz",
            ..task()
        };
        let body = integrity_message(&t, "policy_update", "completed", None, None, 0, 0);
        assert!(body.contains("comm=\"abcdefghijklmno\" res=1"), "{body}");
    }

    #[test]
    fn audit_rule_record_layout() {
        let d = HashAlgo::Sha256.digest(b"hello\n").unwrap();
        let t = AuditTask {
            exe: Some(b"/usr/bin/cat"),
            ..task()
        };
        let body = audit_rule_message(&t, b"/tmp/hello", &d);
        assert_eq!(
            body,
            "file=\"/tmp/hello\" hash=\"sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\" \
             ppid=1 pid=1234 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 \
             tty=(none) ses=4294967295 comm=\"cat\" exe=\"/usr/bin/cat\""
        );
    }

    #[test]
    fn sink_writes_auditd_lines_with_increasing_serials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = AuditSink::new(Some(&path)).unwrap();
        sink.integrity(
            AUDIT_INTEGRITY_STATUS,
            &task,
            "policy_update",
            "completed",
            None,
            None,
            0,
            false,
        );
        // Informational records are dropped unless enabled.
        sink.integrity(
            AUDIT_INTEGRITY_PCR,
            &task,
            "add_template_measure",
            "hash_added",
            Some(b"/x"),
            None,
            0,
            true,
        );
        sink.emit(AUDIT_INTEGRITY_POLICY_RULE, "action=measure res=1");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("type=INTEGRITY_STATUS msg=audit("));
        assert!(lines[0].ends_with(
            ":1): pid=1234 uid=0 auid=4294967295 ses=4294967295 op=policy_update \
             cause=completed comm=\"cat\" res=1 errno=0"
        ));
        let stamp = &lines[0]["type=INTEGRITY_STATUS msg=audit(".len()..];
        let (secs, rest) = stamp.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(rest.find(':'), Some(3));
        assert!(lines[1].starts_with("type=INTEGRITY_POLICY_RULE msg=audit("));
        assert!(lines[1].ends_with(":2): action=measure res=1"));
        let recent = sink.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[1].kind, AUDIT_INTEGRITY_POLICY_RULE);

        sink.set_info_enabled(true);
        sink.integrity(
            AUDIT_INTEGRITY_PCR,
            &task,
            "add_template_measure",
            "hash_added",
            Some(b"/x"),
            None,
            0,
            true,
        );
        assert_eq!(sink.recent().len(), 3);
        assert_eq!(type_name(1399), "UNKNOWN[1399]");
    }
}
