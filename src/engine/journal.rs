//! The persistent state of one namespace (`--state DIR`): an append-only journal of
//! everything that changes what a restarted daemon must show again (list records, violation
//! counter bumps, committed policy loads), written before the change becomes visible, as
//! the kernel adds a record before it returns from the hook.
//!
//! File `DIR/journal`:
//!
//! ```text
//! header  "IMAFSJNL" | version u32 le (1) | reserved u32 (0)                 16 bytes
//! entry   "IMJE" | len u32 le | crc32c u32 le | payload (len bytes)
//!         crc32c covers the 4 len bytes and the payload
//! payload kind u8, then
//!   1 config     UTF-8 text: the engine options the journal was started with
//!   2 record     pcr u32 le | flags u8 (1 = violation) | name_len u16 le | template name
//!                | data_len u32 le | template data (binary-list encoding, as
//!                  ima_fs.c: ima_measurements_show writes it)
//!   3 violation  (empty): the `violations` counter was bumped
//!   4 policy     UTF-8 text: the rule lines of one committed policy write session
//!   5 key        DER certificate added to the IMA keyring
//! ```
//!
//! A record's template digests are recomputed from its template data for every bank at
//! replay, so the list and the PCRs come back byte for byte.
//!
//! Durability: each entry is one write(2) on an `O_APPEND` descriptor, made before the
//! record enters the list; once written it survives a crash of the daemon (kill -9). With
//! `sync` (`--state-sync`) every entry is also fdatasync'ed before it becomes visible,
//! which makes it survive power loss. A failed or short write is undone (the file is
//! truncated back to the last whole entry) and reported; if even that fails, the journal
//! refuses every later append, so nothing is ever visible without being journaled.
//!
//! Recovery at open: the entries are checked in order. A bad entry (short, wrong magic,
//! wrong checksum, unknown kind) with no valid entry after it is a torn tail: reported in
//! [`Recovery::torn`] and cut (the file is truncated). A bad entry followed by a valid one
//! is corruption in the middle: opening fails, naming the offset, the intact prefix and the
//! operator's options.
//!
//! Locking: `DIR/lock` is held with `flock(LOCK_EX)` for the journal's life, so two daemons
//! cannot share a state directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::measurement_list::Record;
use super::Errno;

/// First bytes of a journal file.
pub const MAGIC: &[u8; 8] = b"IMAFSJNL";
/// Format version written and understood.
pub const VERSION: u32 = 1;
/// Header length: magic, version, reserved.
pub const HEADER_LEN: usize = 16;
/// First bytes of every entry (lets recovery tell a torn tail from a corrupt middle).
pub const ENTRY_MAGIC: &[u8; 4] = b"IMJE";
/// Entry head: magic, length, checksum.
pub const ENTRY_HEAD_LEN: usize = 12;
/// Largest payload accepted (a template-data field is at most a few MiB).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Name of the journal file in the state directory.
pub const JOURNAL_FILE: &str = "journal";
/// Name of the lock file in the state directory.
pub const LOCK_FILE: &str = "lock";

const KIND_CONFIG: u8 = 1;
const KIND_RECORD: u8 = 2;
const KIND_VIOLATION: u8 = 3;
const KIND_POLICY: u8 = 4;
const KIND_KEY: u8 = 5;

/// One journal entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The engine options the journal belongs to (first entry).
    Config(String),
    /// A list record: enough to rebuild it byte for byte.
    Record {
        pcr: u32,
        violation: bool,
        /// Template name as the binary list shows it (a name or an `ima_template_fmt=`).
        template: String,
        data: Vec<u8>,
    },
    /// The `violations` counter was incremented.
    Violation,
    /// Rule lines of one committed policy write session.
    Policy(String),
    /// A certificate (DER) added to the IMA keyring.
    Key(Vec<u8>),
}

impl Entry {
    /// The payload of an entry (kind byte first).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Entry::Config(text) => text_payload(KIND_CONFIG, text),
            Entry::Record {
                pcr,
                violation,
                template,
                data,
            } => record_payload(*pcr, *violation, template, data),
            Entry::Violation => vec![KIND_VIOLATION],
            Entry::Policy(text) => text_payload(KIND_POLICY, text),
            Entry::Key(der) => {
                let mut p = Vec::with_capacity(1 + der.len());
                p.push(KIND_KEY);
                p.extend_from_slice(der);
                p
            }
        }
    }

    /// Decode a payload; `Err` names what is wrong.
    pub fn decode(payload: &[u8]) -> Result<Entry, EntryError> {
        let (&kind, body) = payload.split_first().ok_or(EntryError::Empty)?;
        let text = |body: &[u8]| String::from_utf8(body.to_vec()).map_err(EntryError::TextNotUtf8);
        match kind {
            KIND_CONFIG => Ok(Entry::Config(text(body)?)),
            KIND_POLICY => Ok(Entry::Policy(text(body)?)),
            KIND_VIOLATION if body.is_empty() => Ok(Entry::Violation),
            KIND_VIOLATION => Err(EntryError::ViolationWithBody),
            KIND_RECORD => decode_record(body),
            KIND_KEY => Ok(Entry::Key(body.to_vec())),
            other => Err(EntryError::UnknownKind { kind: other }),
        }
    }
}

/// What is wrong with the bytes of one entry (or of a partial header): why
/// [`Entry::decode`] refuses a payload, and the reason of a [`TornTail`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("empty entry")]
    Empty,
    #[error("text is not UTF-8")]
    TextNotUtf8(#[source] std::string::FromUtf8Error),
    #[error("violation entry with a body")]
    ViolationWithBody,
    #[error("unknown entry kind {kind}")]
    UnknownKind { kind: u8 },
    /// A record entry ends inside `what`.
    #[error("record entry: truncated {what}")]
    RecordTruncated { what: &'static str },
    #[error("record entry: unknown flags {flags:#x}")]
    RecordFlags { flags: u8 },
    #[error("record entry: template name is not UTF-8")]
    RecordTemplateNotUtf8(#[source] std::string::FromUtf8Error),
    #[error("record entry: {bytes} trailing bytes")]
    RecordTrailing { bytes: usize },
    /// Fewer than [`ENTRY_HEAD_LEN`] bytes left.
    #[error("short entry head ({have} of 12 bytes)")]
    ShortHead { have: usize },
    #[error("bad entry magic")]
    BadMagic,
    /// A length above [`MAX_PAYLOAD`].
    #[error("entry length {len} too large")]
    TooLarge { len: usize },
    #[error("short entry ({have} of {len} payload bytes)")]
    ShortPayload { have: usize, len: usize },
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    /// A file shorter than the header (the daemon died while creating it).
    #[error("partial header ({have} of {HEADER_LEN} bytes)")]
    PartialHeader { have: usize },
}

/// Why [`scan`] refuses a journal file's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("not an imafs journal (bad header)")]
    BadHeader,
    #[error("not an imafs journal (bad magic)")]
    BadMagic,
    #[error("journal format version {version}, this imafs reads version {VERSION}")]
    Version { version: u32 },
    /// A bad entry at `offset` with a valid one after it at `next`: corruption in the
    /// middle, not a torn tail. The `intact` entries before `offset` are whole.
    #[error(
        "corrupt entry at offset {offset} ({reason}) followed by a valid entry at offset \
         {next}: this is not a torn tail. The {intact} entries in bytes 0..{offset} are \
         intact. Options: keep them and drop everything after (truncate the journal to \
         {offset} bytes), or move the state directory away and start from an empty state"
    )]
    Corrupt {
        offset: usize,
        #[source]
        reason: EntryError,
        next: usize,
        intact: usize,
    },
}

/// Why [`Journal::open`] fails.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A system call on the state directory, its lock or its journal file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds the directory's lock (`holder`: the pid it wrote, if any).
    #[error(
        "state directory {} is in use by another imafs daemon{}: {source}",
        .dir.display(),
        .holder.as_ref().map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked {
        dir: PathBuf,
        holder: Option<String>,
        #[source]
        source: std::io::Error,
    },
    /// The journal file is not one this daemon can continue.
    #[error("{}: {source}", .path.display())]
    Scan {
        path: PathBuf,
        #[source]
        source: ScanError,
    },
}

fn text_payload(kind: u8, text: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + text.len());
    p.push(kind);
    p.extend_from_slice(text.as_bytes());
    p
}

fn record_payload(pcr: u32, violation: bool, template: &str, data: &[u8]) -> Vec<u8> {
    let name = template.as_bytes();
    let mut p = Vec::with_capacity(1 + 4 + 1 + 2 + name.len() + 4 + data.len());
    p.push(KIND_RECORD);
    p.extend_from_slice(&pcr.to_le_bytes());
    p.push(u8::from(violation));
    // Template names are short; longer ones are cut to what u16 holds (never produced).
    let name = &name[..name.len().min(u16::MAX as usize)];
    p.extend_from_slice(&(name.len() as u16).to_le_bytes());
    p.extend_from_slice(name);
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p
}

fn decode_record(body: &[u8]) -> Result<Entry, EntryError> {
    let mut rest = body;
    let mut take = |n: usize, what: &'static str| -> Result<&[u8], EntryError> {
        if rest.len() < n {
            return Err(EntryError::RecordTruncated { what });
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let pcr = take(4, "pcr")?;
    let pcr = u32::from_le_bytes([pcr[0], pcr[1], pcr[2], pcr[3]]);
    let violation = match take(1, "flags")?[0] {
        0 => false,
        1 => true,
        flags => return Err(EntryError::RecordFlags { flags }),
    };
    let n = take(2, "name length")?;
    let n = u16::from_le_bytes([n[0], n[1]]) as usize;
    let template = String::from_utf8(take(n, "template name")?.to_vec())
        .map_err(EntryError::RecordTemplateNotUtf8)?;
    let n = take(4, "data length")?;
    let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
    let data = take(n, "template data")?.to_vec();
    if !rest.is_empty() {
        return Err(EntryError::RecordTrailing { bytes: rest.len() });
    }
    Ok(Entry::Record {
        pcr,
        violation,
        template,
        data,
    })
}

/// CRC-32C (Castagnoli, reflected, as iSCSI and ext4 use), from the `crc32c` crate (SSE4.2
/// `crc32` instruction where the CPU has it).
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The checksum stored in an entry's head: CRC-32C over its 4 length bytes, then its payload.
fn entry_crc(len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// The bytes of one entry as written: head and payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = entry_crc(&len, payload);
    let mut out = Vec::with_capacity(ENTRY_HEAD_LEN + payload.len());
    out.extend_from_slice(ENTRY_MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The file header.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// The entry starting at `at`, if it is whole and valid: (entry, its total length).
fn entry_at(bytes: &[u8], at: usize) -> Result<(Entry, usize), EntryError> {
    let rest = &bytes[at..];
    if rest.len() < ENTRY_HEAD_LEN {
        return Err(EntryError::ShortHead { have: rest.len() });
    }
    if &rest[..4] != ENTRY_MAGIC {
        return Err(EntryError::BadMagic);
    }
    let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(EntryError::TooLarge { len });
    }
    if rest.len() - ENTRY_HEAD_LEN < len {
        return Err(EntryError::ShortPayload {
            have: rest.len() - ENTRY_HEAD_LEN,
            len,
        });
    }
    let stored = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    let payload = &rest[ENTRY_HEAD_LEN..ENTRY_HEAD_LEN + len];
    let crc = entry_crc(&rest[4..8], payload);
    if crc != stored {
        return Err(EntryError::Checksum {
            stored,
            computed: crc,
        });
    }
    let entry = Entry::decode(payload)?;
    Ok((entry, ENTRY_HEAD_LEN + len))
}

/// A torn tail found (and cut) when the journal was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first byte cut (the end of the last whole entry).
    pub offset: u64,
    /// Bytes cut.
    pub bytes: u64,
    /// What was wrong with the entry at `offset`.
    pub reason: EntryError,
}

/// The outcome of reading a journal's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Length of the intact prefix (header and whole entries).
    pub valid_len: u64,
    /// A bad tail after `valid_len`, to be cut.
    pub torn: Option<TornTail>,
}

/// Read a journal file's bytes. An empty file (or a partial header: the daemon died while
/// creating it) yields no entries and a torn tail for the partial header. `Err` for
/// another file's header, an unknown version, or corruption followed by valid entries.
pub fn scan(bytes: &[u8]) -> Result<Scan, ScanError> {
    if bytes.len() < HEADER_LEN {
        let header = header();
        if bytes != &header[..bytes.len()] {
            return Err(ScanError::BadHeader);
        }
        return Ok(Scan {
            entries: Vec::new(),
            valid_len: 0,
            torn: (!bytes.is_empty()).then_some(TornTail {
                offset: 0,
                bytes: bytes.len() as u64,
                reason: EntryError::PartialHeader { have: bytes.len() },
            }),
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(ScanError::BadMagic);
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(ScanError::Version { version });
    }
    let mut entries = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match entry_at(bytes, at) {
            Ok((entry, n)) => {
                entries.push(entry);
                at += n;
            }
            Err(reason) => {
                if let Some(next) = next_valid_entry(bytes, at + 1) {
                    return Err(ScanError::Corrupt {
                        offset: at,
                        reason,
                        next,
                        intact: entries.len(),
                    });
                }
                return Ok(Scan {
                    entries,
                    valid_len: at as u64,
                    torn: Some(TornTail {
                        offset: at as u64,
                        bytes: (bytes.len() - at) as u64,
                        reason,
                    }),
                });
            }
        }
    }
    Ok(Scan {
        entries,
        valid_len: at as u64,
        torn: None,
    })
}

/// Offset of the first valid entry at or after `from` (searching for the entry magic).
fn next_valid_entry(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + ENTRY_HEAD_LEN <= bytes.len() {
        let pos = bytes[at..].windows(4).position(|w| w == ENTRY_MAGIC)?;
        let cand = at + pos;
        if entry_at(bytes, cand).is_ok() {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

/// What [`Journal::open`] found.
#[derive(Debug)]
pub struct Recovery {
    /// Every intact entry, in order.
    pub entries: Vec<Entry>,
    /// The torn tail that was cut, if any.
    pub torn: Option<TornTail>,
    /// The journal file.
    pub path: PathBuf,
}

/// An open journal (and the state directory's lock).
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes of whole entries (where the next one starts).
    len: u64,
    sync: bool,
    /// Set when a failed append could not be undone: no later append is accepted.
    broken: Option<Errno>,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("sync", &self.sync)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Journal {
    /// Lock `dir` (created if missing), read its journal (created if missing), cut a torn
    /// tail. `sync`: fdatasync every entry (`--state-sync`).
    pub fn open(dir: &Path, sync: bool) -> Result<(Journal, Recovery), JournalError> {
        let what = |source: std::io::Error, p: &Path| JournalError::Io {
            path: p.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| what(e, dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| what(e, &lock_path))?;
        if let Err(e) =
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::Locked {
                dir: dir.to_path_buf(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
                source: std::io::Error::from(e),
            });
        }
        // The pid is informational (for the message above); the flock is what excludes.
        let _ = lock.set_len(0);
        let _ = lock.write_all(format!("{}\n", std::process::id()).as_bytes());

        let path = dir.join(JOURNAL_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| what(e, &path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| what(e, &path))?;
        let scan = scan(&bytes).map_err(|source| JournalError::Scan {
            path: path.clone(),
            source,
        })?;
        drop(bytes);
        if scan.torn.is_some() {
            file.set_len(scan.valid_len).map_err(|e| what(e, &path))?;
            file.sync_data().map_err(|e| what(e, &path))?;
        }
        let mut len = scan.valid_len;
        if len == 0 {
            file.write_all(&header()).map_err(|e| what(e, &path))?;
            len = HEADER_LEN as u64;
            file.sync_all().map_err(|e| what(e, &path))?;
        }
        if created {
            // The new directory entry must survive too.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        file.seek(SeekFrom::End(0)).map_err(|e| what(e, &path))?;
        let recovery = Recovery {
            entries: scan.entries,
            torn: scan.torn,
            path: path.clone(),
        };
        Ok((
            Journal {
                file,
                path,
                len,
                sync,
                broken: None,
                _lock: lock,
            },
            recovery,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole entries written (header included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no entry was ever written.
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN as u64
    }

    /// Whether every entry is fdatasync'ed.
    pub fn syncs(&self) -> bool {
        self.sync
    }

    /// Append `entry`; when this returns `Ok` the entry is in the file (and on the disk
    /// with `sync`). On `Err` nothing of it stays in the file.
    pub fn append(&mut self, entry: &Entry) -> Result<(), Errno> {
        self.append_payload(&entry.encode())
    }

    /// Append the record entry of `record` (without copying its data twice).
    pub fn append_record(&mut self, record: &Record) -> Result<(), Errno> {
        self.append_payload(&record_payload(
            record.pcr(),
            record.is_violation(),
            record.template().display_name(),
            record.template_data(),
        ))
    }

    fn append_payload(&mut self, payload: &[u8]) -> Result<(), Errno> {
        if let Some(errno) = self.broken {
            return Err(errno);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Errno(libc::EFBIG));
        }
        let bytes = frame(payload);
        let written = self.file.write_all(&bytes).and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let errno = Errno(e.raw_os_error().unwrap_or(libc::EIO));
                log::error!(
                    "journal {}: append of {} bytes at offset {} failed: {e}",
                    self.path.display(),
                    bytes.len(),
                    self.len
                );
                // Undo a short write so the file still ends with a whole entry.
                if let Err(e2) = self.file.set_len(self.len) {
                    log::error!(
                        "journal {}: cannot cut the failed append back to {} bytes ({e2}): \
                         refusing every later append",
                        self.path.display(),
                        self.len
                    );
                    self.broken = Some(errno);
                }
                Err(errno)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::hash::HashAlgo;

    fn sample_entries() -> Vec<Entry> {
        vec![
            Entry::Config("hash=sha256 template=ima-ng".into()),
            Entry::Record {
                pcr: 10,
                violation: false,
                template: "ima-ng".into(),
                data: (0..60u8).collect(),
            },
            Entry::Violation,
            Entry::Record {
                pcr: 11,
                violation: true,
                template: "d-ng|n-ng|sig".into(),
                data: vec![0; 7],
            },
            Entry::Policy("measure func=FILE_CHECK\ndont_measure fsmagic=0x9fa0".into()),
            Entry::Key(vec![0x30, 0x82, 0x01, 0x0a]),
        ]
    }

    fn file_of(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = header().to_vec();
        let mut ends = Vec::new();
        for e in entries {
            bytes.extend_from_slice(&frame(&e.encode()));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 B.4 and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0..32u8).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn crc32c_check_value_and_frame_checksum_are_pinned() {
        // The standard CRC-32C check value: a wrong polynomial, reflection or final xor fails.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        // The on-disk entry checksum, pinned as bytes (written by the table implementation the
        // journal used before the crc32c crate), so the file format cannot drift.
        let framed = frame(&[
            2, 10, 0, 0, 0, 1, 3, 0, b'i', b'm', b'a', 2, 0, 0, 0, 0xaa, 0xbb,
        ]);
        assert_eq!(&framed[..12], b"IMJE\x11\0\0\0\xfe\xd7\x44\xe2");
    }

    #[test]
    fn entry_bytes_are_exact() {
        let payload = Entry::Record {
            pcr: 10,
            violation: true,
            template: "ima".into(),
            data: vec![0xaa, 0xbb],
        }
        .encode();
        assert_eq!(
            payload,
            [2, 10, 0, 0, 0, 1, 3, 0, b'i', b'm', b'a', 2, 0, 0, 0, 0xaa, 0xbb]
        );
        let framed = frame(&payload);
        assert_eq!(&framed[..4], b"IMJE");
        assert_eq!(&framed[4..8], &17u32.to_le_bytes());
        let mut covered = 17u32.to_le_bytes().to_vec();
        covered.extend_from_slice(&payload);
        assert_eq!(&framed[8..12], &crc32c(&covered).to_le_bytes());
        assert_eq!(&framed[12..], &payload[..]);
        assert_eq!(&header(), b"IMAFSJNL\x01\0\0\0\0\0\0\0");
        assert_eq!(Entry::Violation.encode(), [3]);
    }

    #[test]
    fn round_trip() {
        let entries = sample_entries();
        let (bytes, _) = file_of(&entries);
        let s = scan(&bytes).unwrap();
        assert_eq!(s.entries, entries);
        assert_eq!(s.valid_len, bytes.len() as u64);
        assert_eq!(s.torn, None);
        for e in &entries {
            assert_eq!(&Entry::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn torn_tail_at_every_byte_offset_is_cut_to_the_last_whole_entry() {
        let entries = sample_entries();
        let (bytes, ends) = file_of(&entries);
        for cut in 0..bytes.len() {
            let s = scan(&bytes[..cut]).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.entries, entries[..whole], "cut {cut}");
            let valid = if cut < HEADER_LEN {
                0
            } else {
                ends[..whole].last().copied().unwrap_or(HEADER_LEN)
            };
            assert_eq!(s.valid_len, valid as u64, "cut {cut}");
            match &s.torn {
                None => assert_eq!(valid, cut, "cut {cut}"),
                Some(t) => {
                    assert_eq!(t.offset, valid as u64, "cut {cut}");
                    assert_eq!(t.bytes, (cut - valid) as u64, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_entry_is_a_torn_tail() {
        let entries = sample_entries();
        let (bytes, ends) = file_of(&entries);
        let last_start = ends[ends.len() - 2];
        for i in last_start..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let s = scan(&b).unwrap_or_else(|e| panic!("flip {i}: {e}"));
            assert_eq!(s.entries, entries[..entries.len() - 1], "flip {i}");
            let t = s.torn.expect("torn");
            assert_eq!(t.offset, last_start as u64);
            assert_eq!(t.bytes, (bytes.len() - last_start) as u64);
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_refused_with_the_intact_prefix() {
        let entries = sample_entries();
        let (bytes, ends) = file_of(&entries);
        // Every byte of the second entry.
        for i in ends[0]..ends[1] {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let err = scan(&b).expect_err("middle corruption").to_string();
            assert!(
                err.contains(&format!("corrupt entry at offset {}", ends[0])),
                "{err}"
            );
            assert!(err.contains("1 entries in bytes"), "{err}");
            assert!(
                err.contains(&format!("truncate the journal to {} bytes", ends[0])),
                "{err}"
            );
        }
    }

    #[test]
    fn foreign_files_and_versions_are_refused() {
        assert!(scan(b"not a journal at all").is_err());
        assert!(scan(b"IMAF").is_ok());
        assert!(scan(b"XMAF").is_err());
        let mut h = header();
        h[8] = 2;
        assert!(scan(&h).unwrap_err().to_string().contains("version 2"));
        let mut b = header().to_vec();
        b.extend_from_slice(&frame(&[9, 1, 2]));
        let s = scan(&b).unwrap();
        assert!(s
            .torn
            .unwrap()
            .reason
            .to_string()
            .contains("unknown entry kind 9"));
    }

    use crate::engine::ima::{Backing, Config, Ima, PolicyAccess, PolicyFileState};
    use crate::engine::measurement_list::ViewKind;
    use crate::engine::policy::{Func, Subject};

    fn engine(dir: &Path, cfg: &Config) -> Ima {
        let (journal, recovery) = Journal::open(dir, false).unwrap();
        Ima::with_backing(
            cfg.clone(),
            Backing {
                journal: Some(journal),
                replay: recovery.entries,
                tpm: None,
            },
        )
        .unwrap()
    }

    /// Every view of every bank, the PCRs, violations, policy text and file state.
    fn everything(ima: &Ima) -> (Vec<Vec<u8>>, String, u64, String, PolicyFileState) {
        let list = ima.list();
        let mut views = Vec::new();
        for bank in 0..list.banks().len() {
            for kind in [ViewKind::Ascii, ViewKind::Binary] {
                let mut buf = vec![0u8; list.view_len(kind, bank) as usize];
                let n = list.read(kind, bank, 0, &mut buf);
                assert_eq!(n, buf.len());
                views.push(buf);
            }
        }
        let pcrs = format!("{:?}", ima.pcr_values());
        (
            views,
            pcrs,
            ima.violations(),
            ima.policy_text(),
            ima.policy_file_state(),
        )
    }

    fn no_files(_: &str) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::from_raw_os_error(libc::ENOENT))
    }

    #[test]
    fn engine_state_replays_byte_for_byte_for_every_template() {
        for template in ["ima", "ima-ng", "ima-sig", "d-ng|n-ng|buf"] {
            let dir = std::env::temp_dir().join(format!(
                "imafs-journal-replay-{}-{}",
                std::process::id(),
                template.replace('|', "_")
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let cfg = Config {
                template: template.to_string(),
                builtin_policy: vec!["critical_data".to_string()],
                banks: vec![HashAlgo::Sha256, HashAlgo::Sha384],
                write_policy: false,
                ..Config::default()
            };
            let subject = Subject::default();
            let before = {
                let ima = engine(&dir, &cfg);
                ima.measure_buffer(Func::CriticalData, "one", b"1", Some("l"), &subject);
                ima.load_policy_text(
                    "measure func=CRITICAL_DATA pcr=11\nmeasure func=KEY_CHECK\n",
                    &no_files,
                )
                .unwrap();
                ima.measure_buffer(Func::CriticalData, "two", b"2", Some("l"), &subject);
                ima.measure_buffer(Func::CriticalData, "two", b"2", Some("l"), &subject);
                // boot_aggregate, kernel_version, one, two (the repeat is a duplicate).
                assert_eq!(ima.list().len(), 4, "{template}");
                assert!(ima.pcr_values().iter().any(|(pcr, _, _)| *pcr == 11));
                everything(&ima)
            };
            let ima = engine(&dir, &cfg);
            let after = everything(&ima);
            assert!(
                before == after,
                "{template}: state changed across the replay"
            );
            assert!(ima.custom_policy_loaded());
            // The duplicate of a replayed record is still a duplicate.
            let n = ima.list().len();
            ima.measure_buffer(Func::CriticalData, "two", b"2", Some("l"), &subject);
            assert_eq!(ima.list().len(), n, "{template}");
            // Single policy write (no CONFIG_IMA_WRITE_POLICY): still read-only and busy.
            assert_eq!(ima.policy_file_state(), PolicyFileState::ReadOnly);
            assert!(ima.open_policy(PolicyAccess::Write, true).is_err());
            drop(ima);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_failed_append_that_cannot_be_undone_refuses_every_later_one() {
        let dir = std::env::temp_dir().join(format!("imafs-journal-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, _) = Journal::open(&dir, false).unwrap();
        j.append(&Entry::Violation).unwrap();
        let len = j.len();
        let good = std::mem::replace(
            &mut j.file,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        // ENOSPC, and /dev/full cannot be truncated back: the journal is poisoned.
        assert_eq!(j.append(&Entry::Violation), Err(Errno::ENOSPC));
        assert_eq!(j.len(), len);
        j.file = good;
        assert_eq!(j.append(&Entry::Violation), Err(Errno::ENOSPC));
        drop(j);
        // Nothing of the failed appends is in the file.
        let (_j, rec) = Journal::open(&dir, false).unwrap();
        assert_eq!(rec.entries, [Entry::Violation]);
        assert!(rec.torn.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn open_appends_recovers_and_locks() {
        let dir = std::env::temp_dir().join(format!("imafs-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let entries = sample_entries();
        {
            let (mut j, rec) = Journal::open(&dir, false).unwrap();
            assert!(rec.entries.is_empty() && rec.torn.is_none());
            assert!(j.is_empty());
            for e in &entries {
                j.append(e).unwrap();
            }
            // A second open of the same directory is refused while this one lives.
            let err = Journal::open(&dir, false).unwrap_err().to_string();
            assert!(err.contains("in use by another imafs daemon"), "{err}");
            assert!(
                err.contains(&format!("pid {}", std::process::id())),
                "{err}"
            );
        }
        let path = dir.join(JOURNAL_FILE);
        let full = std::fs::read(&path).unwrap();
        // Tear the last entry.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (mut j, rec) = Journal::open(&dir, true).unwrap();
        assert_eq!(rec.entries, entries[..entries.len() - 1]);
        let torn = rec.torn.unwrap();
        assert_eq!(torn.bytes + torn.offset, full.len() as u64 - 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), torn.offset);
        j.append(&Entry::Violation).unwrap();
        drop(j);
        let (_j, rec) = Journal::open(&dir, false).unwrap();
        assert_eq!(rec.entries.last(), Some(&Entry::Violation));
        assert_eq!(rec.entries.len(), entries.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
