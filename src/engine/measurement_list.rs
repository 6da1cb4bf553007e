//! The measurement list (security/integrity/ima/ima_queue.c: ima_add_template_entry):
//! append-only, every record stored once, rendered on demand as the ASCII and binary views
//! of every bank (ima_fs.c: ima_ascii_measurements_show, ima_measurements_show).
//!
//! Storage: one byte arena holding, per record, its bank digests (none for violations)
//! followed by its template data, and one 32-byte [`Meta`] per record. Every view's byte
//! offsets are derived from two bank-independent cumulative sums (ASCII and binary length
//! without the digest) plus `records * digest size`, so a read at any offset is a binary
//! search followed by rendering only the records it returns.
//!
//! Concurrency: one `parking_lot::RwLock`. Appends hold it for a memcpy; readers hold it
//! while rendering at most [`READ_SLICE`] bytes, then let appends in, so neither side waits
//! long. A record becomes visible to readers only once fully appended.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::engine::hash::{Digest, HashAlgo};
use crate::engine::template::{push_hex, EventData, TemplateDesc, TemplateError};

/// A measurement-list entry before (or outside) the list: what `ima_template_entry` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pcr: u32,
    template: Arc<TemplateDesc>,
    data: Vec<u8>,
    /// Template digest per bank as displayed (zeros for violations).
    digests: Vec<Digest>,
    violation: bool,
}

impl Record {
    /// Encode `ev` with `template` and compute the template digest of every bank.
    /// Violations (`ev.violation`) get zero digests and extend PCRs with 0xff.
    pub fn new(
        pcr: u32,
        template: Arc<TemplateDesc>,
        ev: &EventData<'_>,
        banks: &[HashAlgo],
    ) -> Record {
        let data = template.encode(ev);
        Record::from_data(pcr, template, data, ev.violation, banks)
    }

    /// A violation entry (ima_api.c: ima_add_violation) for `name` with `template` (the
    /// default template) and the default PCR: zero digest fields labelled `ima_hash`, zero
    /// template digests.
    /// Use [`Record::new`] with `violation: true` when the template needs more of the file
    /// (e.g. `sig` falling back to an EVM portable signature).
    pub fn violation(
        pcr: u32,
        template: Arc<TemplateDesc>,
        name: &[u8],
        ima_hash: HashAlgo,
        banks: &[HashAlgo],
    ) -> Record {
        let ev = EventData {
            violation: true,
            hash_algo: ima_hash,
            name,
            ..Default::default()
        };
        Record::new(pcr, template, &ev, banks)
    }

    /// A record from already-encoded template data (e.g. restored from a saved binary list).
    pub fn from_data(
        pcr: u32,
        template: Arc<TemplateDesc>,
        data: Vec<u8>,
        violation: bool,
        banks: &[HashAlgo],
    ) -> Record {
        let digests = banks
            .iter()
            .map(|&b| {
                if violation {
                    Digest::zero(b)
                } else {
                    template.digest(&data, b)
                }
            })
            .collect();
        Record {
            pcr,
            template,
            data,
            digests,
            violation,
        }
    }

    pub fn pcr(&self) -> u32 {
        self.pcr
    }

    /// Template digest of bank index `bank` as displayed (zeros for violations).
    /// Panics if `bank` is not an index of the banks the record was built with.
    pub fn digest(&self, bank: usize) -> Digest {
        self.digests[bank]
    }

    /// What the PCR of bank `bank` is extended with: the digest, or 0xff.. for violations.
    pub fn extend_value(&self, bank: usize) -> Digest {
        let d = self.digests[bank];
        if self.violation {
            Digest::ones(d.algo())
        } else {
            d
        }
    }

    /// All extend values, in bank order (what [`PcrBanks::extend`] takes).
    ///
    /// [`PcrBanks::extend`]: crate::engine::pcr::PcrBanks::extend
    pub fn extend_values(&self) -> Vec<Digest> {
        (0..self.digests.len())
            .map(|b| self.extend_value(b))
            .collect()
    }

    pub fn is_violation(&self) -> bool {
        self.violation
    }

    pub fn template_data(&self) -> &[u8] {
        &self.data
    }

    pub fn template(&self) -> &TemplateDesc {
        &self.template
    }

    pub fn template_arc(&self) -> &Arc<TemplateDesc> {
        &self.template
    }

    /// The banks the digests were computed for.
    pub fn banks(&self) -> Vec<HashAlgo> {
        self.digests.iter().map(|d| d.algo()).collect()
    }

    /// Length of the ASCII line without the digest hex (bank-independent part).
    fn ascii_base_len(&self) -> u64 {
        let pcr = pcr_width(self.pcr);
        (pcr + 1
            + 1
            + self.template.display_name().len()
            + self.template.ascii_fields_len(&self.data)
            + 1) as u64
    }

    /// Length of the binary record without the digest (bank-independent part).
    fn binary_base_len(&self) -> u64 {
        (4 + 4 + self.template.display_name().len() + self.template.binary_data_len(&self.data))
            as u64
    }
}

/// Characters `%2d` prints for a PCR index.
fn pcr_width(pcr: u32) -> usize {
    let digits = (pcr as i32).to_string().len();
    digits.max(2)
}

/// Which rendering of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewKind {
    Ascii,
    Binary,
}

/// Per-record bookkeeping in the list (32 bytes).
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// Start of the record's bytes (digests, then template data) in the arena.
    data_off: u64,
    /// Cumulative bank-independent ASCII / binary length up to and including this record.
    ascii_end: u64,
    binary_end: u64,
    pcr: u32,
    template: u16,
    violation: bool,
}

/// Fingerprint index for duplicate suppression (ima_queue.c: ima_lookup_digest_entry) of
/// one bank: 8 bytes and a control byte per record; the stored record is compared on every
/// hit, so fingerprint collisions cost a look at the overflow set, never a wrong answer.
#[derive(Default)]
struct DedupIndex {
    /// Fingerprint of (pcr, digest) -> first record index with it.
    first: HashMap<u32, u32, BuildHasherDefault<FingerprintHasher>>,
    /// Entries whose fingerprint collided with a different (pcr, digest), or whose index
    /// does not fit the table.
    overflow: HashSet<(u32, Vec<u8>)>,
}

fn fingerprint(pcr: u32, digest: &[u8]) -> u32 {
    let mut head = [0u8; 4];
    let n = digest.len().min(4);
    head[..n].copy_from_slice(&digest[..n]);
    u32::from_le_bytes(head) ^ pcr.wrapping_mul(0x9e37_79b9)
}

/// The fingerprint already is digest bytes: spread it over 64 bits instead of SipHashing.
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

struct Inner {
    metas: Vec<Meta>,
    arena: Vec<u8>,
    templates: Vec<Arc<TemplateDesc>>,
}

impl Inner {
    fn template_id(&mut self, t: &Arc<TemplateDesc>) -> u16 {
        if let Some(i) = self
            .templates
            .iter()
            .position(|x| Arc::ptr_eq(x, t) || **x == **t)
        {
            return i as u16;
        }
        self.templates.push(t.clone());
        (self.templates.len() - 1) as u16
    }

    /// The record's bytes: digests (unless violation) then template data.
    fn bytes(&self, i: usize) -> &[u8] {
        let start = self.metas[i].data_off as usize;
        let end = self
            .metas
            .get(i + 1)
            .map_or(self.arena.len(), |m| m.data_off as usize);
        &self.arena[start..end]
    }
}

/// Bytes a reader renders per lock hold.
const READ_SLICE: usize = 16 * 1024;

/// The measurement list. `Send + Sync`; append from one place (the caller serialises
/// "append + PCR extend"), read from anywhere.
pub struct MeasurementList {
    banks: Vec<HashAlgo>,
    /// Arena offset of each bank's digest inside a non-violation record.
    digest_offsets: Vec<usize>,
    digests_len: usize,
    inner: RwLock<Inner>,
    /// Built lazily per bank on the first `contains_digest` for that bank.
    dedup: Mutex<Vec<Option<DedupIndex>>>,
}

/// A borrowed view of one stored record.
pub struct RecordRef<'a> {
    pub index: u64,
    pub pcr: u32,
    pub template: &'a Arc<TemplateDesc>,
    pub template_data: &'a [u8],
    pub violation: bool,
    banks: &'a [HashAlgo],
    digest_bytes: &'a [u8],
    digest_offsets: &'a [usize],
}

impl RecordRef<'_> {
    /// Template digest of bank index `bank` as displayed (zeros for violations).
    pub fn digest(&self, bank: usize) -> Digest {
        let algo = self.banks[bank];
        if self.violation {
            return Digest::zero(algo);
        }
        let off = self.digest_offsets[bank];
        Digest::from_bytes(algo, &self.digest_bytes[off..off + algo.digest_size()])
            .unwrap_or(Digest::zero(algo))
    }

    /// PCR extend value of bank index `bank` (0xff.. for violations).
    pub fn extend_value(&self, bank: usize) -> Digest {
        if self.violation {
            Digest::ones(self.banks[bank])
        } else {
            self.digest(bank)
        }
    }

    pub fn to_record(&self) -> Record {
        Record {
            pcr: self.pcr,
            template: self.template.clone(),
            data: self.template_data.to_vec(),
            digests: (0..self.banks.len()).map(|b| self.digest(b)).collect(),
            violation: self.violation,
        }
    }
}

impl MeasurementList {
    /// An empty list whose views are the given banks, in order (e.g. `[Sha1, Sha256]`).
    pub fn new(banks: &[HashAlgo]) -> Self {
        let mut digest_offsets = Vec::with_capacity(banks.len());
        let mut off = 0;
        for b in banks {
            digest_offsets.push(off);
            off += b.digest_size();
        }
        MeasurementList {
            banks: banks.to_vec(),
            digest_offsets,
            digests_len: off,
            inner: RwLock::new(Inner {
                metas: Vec::new(),
                arena: Vec::new(),
                templates: Vec::new(),
            }),
            dedup: Mutex::new(banks.iter().map(|_| None).collect()),
        }
    }

    pub fn banks(&self) -> &[HashAlgo] {
        &self.banks
    }

    /// Index of bank `algo` in this list, if it has one.
    pub fn bank_index(&self, algo: HashAlgo) -> Option<usize> {
        self.banks.iter().position(|&b| b == algo)
    }

    /// Append `rec` (built for this list's banks) and return its index.
    pub fn append(&self, rec: Record) -> u64 {
        let ascii_base = rec.ascii_base_len();
        let binary_base = rec.binary_base_len();
        let index;
        {
            let mut inner = self.inner.write();
            let template = inner.template_id(&rec.template);
            let (ascii_prev, binary_prev) = inner
                .metas
                .last()
                .map_or((0, 0), |m| (m.ascii_end, m.binary_end));
            let data_off = inner.arena.len() as u64;
            if !rec.violation {
                for (b, d) in rec.digests.iter().enumerate().take(self.banks.len()) {
                    // A record built for other banks is stored with zero-padded digests.
                    let want = self.banks[b].digest_size();
                    let bytes = d.as_bytes();
                    inner
                        .arena
                        .extend_from_slice(&bytes[..bytes.len().min(want)]);
                    inner
                        .arena
                        .resize(data_off as usize + self.digest_offsets[b] + want, 0);
                }
                inner.arena.resize(data_off as usize + self.digests_len, 0);
            }
            inner.arena.extend_from_slice(&rec.data);
            index = inner.metas.len() as u64;
            inner.metas.push(Meta {
                data_off,
                ascii_end: ascii_prev + ascii_base,
                binary_end: binary_prev + binary_base,
                pcr: rec.pcr,
                template,
                violation: rec.violation,
            });
        }
        let mut dedup = self.dedup.lock();
        for (b, slot) in dedup.iter_mut().enumerate() {
            if let Some(idx) = slot {
                let d = if rec.violation {
                    Digest::zero(self.banks[b])
                } else {
                    rec.digests
                        .get(b)
                        .copied()
                        .unwrap_or(Digest::zero(self.banks[b]))
                };
                self.dedup_insert(idx, index, rec.pcr, b, d.as_bytes());
            }
        }
        index
    }

    fn dedup_insert(&self, idx: &mut DedupIndex, index: u64, pcr: u32, bank: usize, digest: &[u8]) {
        let fp = fingerprint(pcr, digest);
        match idx.first.get(&fp) {
            None => match u32::try_from(index) {
                Ok(i) => {
                    idx.first.insert(fp, i);
                }
                Err(_) => {
                    idx.overflow.insert((pcr, digest.to_vec()));
                }
            },
            Some(&other) => {
                let same = self
                    .with_record(u64::from(other), |r| {
                        r.pcr == pcr && r.digest(bank).as_bytes() == digest
                    })
                    .unwrap_or(false);
                if !same {
                    idx.overflow.insert((pcr, digest.to_vec()));
                }
            }
        }
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.inner.read().metas.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a record with template digest `digest` (of bank index `bank`) was already
    /// appended for `pcr`: the kernel's `ima_lookup_digest_entry` (ima_queue.c).
    pub fn contains_digest(&self, pcr: u32, bank: usize, digest: &Digest) -> bool {
        if bank >= self.banks.len() {
            return false;
        }
        let mut dedup = self.dedup.lock();
        if dedup[bank].is_none() {
            let mut idx = DedupIndex::default();
            let n = self.len();
            let mut start = 0;
            while start < n {
                let end = (start + 4096).min(n);
                let mut batch = Vec::with_capacity((end - start) as usize);
                self.for_each(start, end, |r| batch.push((r.index, r.pcr, r.digest(bank))));
                for (i, p, d) in batch {
                    self.dedup_insert(&mut idx, i, p, bank, d.as_bytes());
                }
                start = end;
            }
            dedup[bank] = Some(idx);
        }
        let Some(idx) = dedup[bank].as_ref() else {
            return false;
        };
        let bytes = digest.as_bytes();
        if let Some(&i) = idx.first.get(&fingerprint(pcr, bytes)) {
            if self
                .with_record(u64::from(i), |r| {
                    r.pcr == pcr && r.digest(bank).as_bytes() == bytes
                })
                .unwrap_or(false)
            {
                return true;
            }
        }
        !idx.overflow.is_empty() && idx.overflow.contains(&(pcr, bytes.to_vec()))
    }

    /// Call `f` with record `index` while holding the read lock.
    pub fn with_record<T>(&self, index: u64, f: impl FnOnce(RecordRef<'_>) -> T) -> Option<T> {
        let inner = self.inner.read();
        let i = usize::try_from(index).ok()?;
        let meta = inner.metas.get(i)?;
        Some(f(self.record_ref(&inner, i, meta)))
    }

    /// Call `f` for records `start..end` (clamped to the list), in order, under one read
    /// lock; callers iterating a long list should go in batches.
    pub fn for_each(&self, start: u64, end: u64, mut f: impl FnMut(RecordRef<'_>)) {
        let inner = self.inner.read();
        let end = (end.min(inner.metas.len() as u64)) as usize;
        for i in (start as usize)..end {
            let meta = &inner.metas[i];
            f(self.record_ref(&inner, i, meta));
        }
    }

    fn record_ref<'a>(&'a self, inner: &'a Inner, i: usize, meta: &Meta) -> RecordRef<'a> {
        let bytes = inner.bytes(i);
        let (digest_bytes, template_data) = if meta.violation {
            (&bytes[..0], bytes)
        } else {
            bytes.split_at(self.digests_len.min(bytes.len()))
        };
        RecordRef {
            index: i as u64,
            pcr: meta.pcr,
            template: &inner.templates[usize::from(meta.template)],
            template_data,
            violation: meta.violation,
            banks: &self.banks,
            digest_bytes,
            digest_offsets: &self.digest_offsets,
        }
    }

    /// A copy of record `index`.
    pub fn record(&self, index: u64) -> Option<Record> {
        self.with_record(index, |r| r.to_record())
    }

    /// Total size in bytes of a view (what a reader gets reading from 0 to EOF now).
    pub fn view_len(&self, kind: ViewKind, bank: usize) -> u64 {
        let Some(algo) = self.banks.get(bank) else {
            return 0;
        };
        let inner = self.inner.read();
        let n = inner.metas.len();
        if n == 0 {
            return 0;
        }
        view_end(&inner.metas[n - 1], n - 1, kind, *algo)
    }

    /// Read view (`kind`, bank index `bank`) at byte `offset` into `buf`; returns the
    /// number of bytes read, 0 at EOF (or for an unknown bank).
    pub fn read(&self, kind: ViewKind, bank: usize, offset: u64, buf: &mut [u8]) -> usize {
        let Some(&algo) = self.banks.get(bank) else {
            return 0;
        };
        let mut scratch = Vec::with_capacity(READ_SLICE + 512);
        let mut filled = 0;
        // Next record to render and the byte offset inside it; found once, then advanced.
        let mut pos: Option<(usize, u64)> = None;
        while filled < buf.len() {
            let inner = self.inner.read();
            let n = inner.metas.len();
            let (mut i, mut skip) = match pos {
                Some(p) => p,
                None => {
                    // First record whose end lies beyond `offset`.
                    let i = first_ending_after(&inner.metas, kind, algo, offset);
                    if i >= n {
                        return filled;
                    }
                    let start = if i == 0 {
                        0
                    } else {
                        view_end(&inner.metas[i - 1], i - 1, kind, algo)
                    };
                    (i, offset - start)
                }
            };
            // Render whole records into `scratch` until this slice is covered, then copy
            // once; remember where the last record started in case it is cut.
            let want = (buf.len() - filled).min(READ_SLICE);
            scratch.clear();
            let mut last_start = 0;
            while i < n && scratch.len() < skip as usize + want {
                last_start = scratch.len();
                self.render(&inner, i, kind, bank, &mut scratch);
                i += 1;
            }
            let from = (skip as usize).min(scratch.len());
            let k = (scratch.len() - from).min(want);
            buf[filled..filled + k].copy_from_slice(&scratch[from..from + k]);
            filled += k;
            if from + k < scratch.len() {
                // The last rendered record was cut: resume inside it.
                i -= 1;
                skip = (from + k - last_start) as u64;
            } else {
                skip = 0;
            }
            drop(inner);
            if i >= n && skip == 0 {
                // Caught up with the snapshot: anything appended since is picked up by
                // the next call (keeps one read consistent with one snapshot length).
                break;
            }
            pos = Some((i, skip));
        }
        filled
    }

    /// Append record `i` rendered in view (`kind`, `bank`) to `out`.
    fn render(&self, inner: &Inner, i: usize, kind: ViewKind, bank: usize, out: &mut Vec<u8>) {
        let meta = &inner.metas[i];
        let r = self.record_ref(inner, i, meta);
        let algo = self.banks[bank];
        let name = r.template.display_name();
        match kind {
            ViewKind::Ascii => {
                // "%2d" of the (int) PCR index.
                let pcr = meta.pcr as i32;
                match pcr {
                    0..=9 => out.extend_from_slice(&[b' ', b'0' + pcr as u8]),
                    10..=99 => {
                        out.extend_from_slice(&[b'0' + (pcr / 10) as u8, b'0' + (pcr % 10) as u8])
                    }
                    _ => out.extend_from_slice(pcr.to_string().as_bytes()),
                }
                out.push(b' ');
                if r.violation {
                    out.resize(out.len() + 2 * algo.digest_size(), b'0');
                } else {
                    let off = self.digest_offsets[bank];
                    push_hex(out, &r.digest_bytes[off..off + algo.digest_size()]);
                }
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                r.template.render_ascii_fields(r.template_data, out);
                out.push(b'\n');
            }
            ViewKind::Binary => {
                out.extend_from_slice(&meta.pcr.to_le_bytes());
                if r.violation {
                    out.resize(out.len() + algo.digest_size(), 0);
                } else {
                    let off = self.digest_offsets[bank];
                    out.extend_from_slice(&r.digest_bytes[off..off + algo.digest_size()]);
                }
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                r.template.render_binary_data(r.template_data, out);
            }
        }
    }
}

/// Why a binary measurement list cannot be restored ([`parse_binary_list`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BinaryListError {
    /// The bytes end inside a record; `what` names the part that is cut.
    #[error("truncated record: {what}")]
    Truncated { what: &'static str },
    #[error("template name is not UTF-8")]
    TemplateNameNotUtf8(#[source] std::str::Utf8Error),
    /// Neither a built-in template nor a valid format string.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A record of template `ima` whose name holds a NUL (it would not render back the same).
    #[error("ima template name contains a NUL byte")]
    NulInImaName,
    #[error("template data does not match template {template}")]
    DataMismatch { template: String },
    /// The stored template digest is not the one of the record's template data.
    #[error("template digest mismatch in record {record}")]
    DigestMismatch { record: usize },
}

/// Parse a binary measurement list (layout of ima_fs.c: ima_measurements_show) whose
/// records carry `file_bank` template digests (e.g. a saved
/// `binary_runtime_measurements_sha256`) back into records for `banks`, as
/// `ima_restore_measurement_list` does after kexec: templates are looked up by name (or
/// parsed as a format string), an all-zero stored digest marks a violation, and every other
/// record's digests are recomputed and must equal the stored one.
pub fn parse_binary_list(
    mut bytes: &[u8],
    file_bank: HashAlgo,
    banks: &[HashAlgo],
) -> Result<Vec<Record>, BinaryListError> {
    fn take<'a>(
        bytes: &mut &'a [u8],
        n: usize,
        what: &'static str,
    ) -> Result<&'a [u8], BinaryListError> {
        if bytes.len() < n {
            return Err(BinaryListError::Truncated { what });
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn le32(bytes: &mut &[u8], what: &'static str) -> Result<u32, BinaryListError> {
        let b = take(bytes, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    let mut templates: Vec<Arc<TemplateDesc>> = Vec::new();
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let pcr = le32(&mut bytes, "pcr")?;
        let stored = take(&mut bytes, file_bank.digest_size(), "digest")?;
        let name_len = le32(&mut bytes, "template name length")? as usize;
        let name = std::str::from_utf8(take(&mut bytes, name_len, "template name")?)
            .map_err(BinaryListError::TemplateNameNotUtf8)?;
        let template = match templates.iter().find(|t| t.display_name() == name) {
            Some(t) => t.clone(),
            None => {
                let t = match TemplateDesc::builtin(name) {
                    Some(t) => t,
                    None => TemplateDesc::from_fmt(name)?,
                };
                let t = Arc::new(t);
                templates.push(t.clone());
                t
            }
        };
        let data = if template.is_ima() {
            // d raw (20 bytes), then le32(strlen) + name without NUL.
            let d = take(&mut bytes, 20, "ima digest")?;
            let len = le32(&mut bytes, "ima name length")? as usize;
            let n = take(&mut bytes, len, "ima name")?;
            // A d_path never holds a NUL; the list would not render back the same.
            if n.contains(&0) {
                return Err(BinaryListError::NulInImaName);
            }
            let mut data = Vec::with_capacity(4 + 20 + 4 + len + 1);
            data.extend_from_slice(&20u32.to_le_bytes());
            data.extend_from_slice(d);
            data.extend_from_slice(&(len as u32 + 1).to_le_bytes());
            data.extend_from_slice(n);
            data.push(0);
            data
        } else {
            let len = le32(&mut bytes, "template data length")? as usize;
            take(&mut bytes, len, "template data")?.to_vec()
        };
        let fields = template.split_fields(&data);
        let encoded: usize = fields.iter().map(|(_, d)| 4 + d.len()).sum();
        if fields.len() != template.fields().len() || encoded != data.len() {
            return Err(BinaryListError::DataMismatch {
                template: name.to_string(),
            });
        }
        let violation = stored.iter().all(|&b| b == 0);
        if !violation && template.digest(&data, file_bank).as_bytes() != stored {
            return Err(BinaryListError::DigestMismatch {
                record: records.len(),
            });
        }
        records.push(Record::from_data(pcr, template, data, violation, banks));
    }
    Ok(records)
}

/// End offset (exclusive) of record `i` in view (`kind`, `algo`).
fn view_end(meta: &Meta, i: usize, kind: ViewKind, algo: HashAlgo) -> u64 {
    let count = i as u64 + 1;
    match kind {
        ViewKind::Ascii => meta.ascii_end + count * 2 * algo.digest_size() as u64,
        ViewKind::Binary => meta.binary_end + count * algo.digest_size() as u64,
    }
}

/// Index of the first record whose end in view (`kind`, `algo`) lies beyond `offset`
/// (`metas.len()` if none): a binary search, view ends being increasing.
fn first_ending_after(metas: &[Meta], kind: ViewKind, algo: HashAlgo, offset: u64) -> usize {
    let (mut lo, mut hi) = (0, metas.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if view_end(&metas[mid], mid, kind, algo) <= offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];
    const FILE_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    fn ima_ng() -> Arc<TemplateDesc> {
        Arc::new(TemplateDesc::builtin("ima-ng").unwrap())
    }

    fn t1() -> Record {
        let ev = EventData {
            digest: HashAlgo::Sha256.digest(b"hello\n"),
            name: b"/tmp/hello",
            ..Default::default()
        };
        Record::new(10, ima_ng(), &ev, &BANKS)
    }

    fn t2() -> Record {
        let ev = EventData {
            digest: Some(Digest::zero(HashAlgo::Sha256)),
            name: b"boot_aggregate",
            ..Default::default()
        };
        Record::new(10, ima_ng(), &ev, &BANKS)
    }

    fn t5() -> Record {
        Record::violation(10, ima_ng(), b"/tmp/hello", HashAlgo::Sha256, &BANKS)
    }

    fn read_all(list: &MeasurementList, kind: ViewKind, bank: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = list.read(kind, bank, out.len() as u64, &mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn t_list() -> MeasurementList {
        let list = MeasurementList::new(&BANKS);
        list.append(t2());
        list.append(t1());
        list.append(t5());
        list
    }

    #[test]
    fn ascii_views_match_t1_t2_t5() {
        let list = t_list();
        let zeros64 = "0".repeat(64);
        let sha1 = String::from_utf8(read_all(&list, ViewKind::Ascii, 0)).unwrap();
        assert_eq!(
            sha1,
            format!(
                "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:{zeros64} boot_aggregate\n\
                 10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:{FILE_SHA256} /tmp/hello\n\
                 10 0000000000000000000000000000000000000000 ima-ng sha256:{zeros64} /tmp/hello\n"
            )
        );
        let sha256 = String::from_utf8(read_all(&list, ViewKind::Ascii, 1)).unwrap();
        assert_eq!(
            sha256,
            format!(
                "10 36f1cd67a730bc4137870c4d00dbc7430b51b1ebdaa130744297cf65339078a0 ima-ng sha256:{zeros64} boot_aggregate\n\
                 10 ce7d262406458b975543fb944f7352e62ef0ae01df30bb61f802d003cf87b19c ima-ng sha256:{FILE_SHA256} /tmp/hello\n\
                 10 {zeros64} ima-ng sha256:{zeros64} /tmp/hello\n"
            )
        );
        assert_eq!(list.view_len(ViewKind::Ascii, 0), sha1.len() as u64);
        assert_eq!(list.view_len(ViewKind::Ascii, 1), sha256.len() as u64);
    }

    #[test]
    fn binary_views_match_t1_t2_t5() {
        let list = t_list();
        let z32 = "00".repeat(32);
        let z20 = "00".repeat(20);
        let expect = format!(
            "0a000000 0adefe762c149c7cec19da62f0da1297fcfbffff 06000000 696d612d6e67 3f000000 28000000 7368613235363a00 {z32} 0f000000 626f6f745f61676772656761746500\
             0a000000 7e12b5b354a90b6491f97e4075c8bc0428ad74bb 06000000 696d612d6e67 3b000000 28000000 7368613235363a00 {FILE_SHA256} 0b000000 2f746d702f68656c6c6f00\
             0a000000 {z20} 06000000 696d612d6e67 3b000000 28000000 7368613235363a00 {z32} 0b000000 2f746d702f68656c6c6f00"
        )
        .replace(' ', "");
        let bin = read_all(&list, ViewKind::Binary, 0);
        assert_eq!(bin.len(), 101 + 97 + 97);
        assert_eq!(hex::encode(&bin), expect);
        let bin256 = read_all(&list, ViewKind::Binary, 1);
        assert_eq!(bin256.len(), 113 + 109 + 109);
        assert_eq!(
            hex::encode(&bin256[113..113 + 109]),
            format!(
                "0a000000ce7d262406458b975543fb944f7352e62ef0ae01df30bb61f802d003cf87b19c06000000696d612d6e673b000000280000007368613235363a00{FILE_SHA256}0b0000002f746d702f68656c6c6f00"
            )
        );
    }

    #[test]
    fn t3_and_t4_lines_and_records() {
        let list = MeasurementList::new(&BANKS);
        let ima = Arc::new(TemplateDesc::builtin("ima").unwrap());
        let hello = EventData {
            digest: HashAlgo::Sha256.digest(b"hello\n"),
            sha1_or_md5_digest: HashAlgo::Sha1.digest(b"hello\n"),
            name: b"/tmp/hello",
            ..Default::default()
        };
        list.append(Record::new(10, ima, &hello, &BANKS));
        let sig = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
        let signed = EventData {
            ima_xattr: Some(&sig),
            ..hello
        };
        let ima_sig = Arc::new(TemplateDesc::builtin("ima-sig").unwrap());
        list.append(Record::new(10, ima_sig.clone(), &signed, &BANKS));
        list.append(Record::new(10, ima_sig, &hello, &BANKS));
        let ascii = String::from_utf8(read_all(&list, ViewKind::Ascii, 0)).unwrap();
        assert_eq!(
            ascii,
            format!(
                "10 aa3229b267c3c9f21dee2ce7746b7c3e68d10ab4 ima f572d396fae9206628714fb2ce00f72e94f2258f /tmp/hello\n\
                 10 29b6d322759956bc6284612c43dc71ba8195d519 ima-sig sha256:{FILE_SHA256} /tmp/hello 030204a1b2c3d400081011121314151617\n\
                 10 3acbcb32ffd125dfdd93220a6efe00d36f7ffe7b ima-sig sha256:{FILE_SHA256} /tmp/hello \n"
            )
        );
        let bin = read_all(&list, ViewKind::Binary, 0);
        assert_eq!(
            hex::encode(&bin[..65]),
            "0a000000aa3229b267c3c9f21dee2ce7746b7c3e68d10ab403000000696d61\
             f572d396fae9206628714fb2ce00f72e94f2258f0a0000002f746d702f68656c6c6f"
        );
        let sha256 = String::from_utf8(read_all(&list, ViewKind::Ascii, 1)).unwrap();
        assert!(sha256.starts_with(
            "10 44a2f423ee580e063552cb98bf20bab41f5801a1c97aaf0a10c84b762ba81189 ima "
        ));
        assert!(sha256.contains(
            "\n10 ca6ef2cb11db83f53683a3be734d185d744a1524cd606bd79de1a4db6ee8e3b8 ima-sig "
        ));
        assert!(sha256.contains(
            "\n10 e566d02f288b6fb0a2cd671f8adc93dbdb59a18e5c4b3e877844ac1893456a15 ima-sig "
        ));
    }

    #[test]
    fn record_accessors_and_violation_values() {
        let list = t_list();
        assert_eq!(list.len(), 3);
        let r = list.record(2).unwrap();
        assert!(r.is_violation());
        assert_eq!(r.digest(0), Digest::zero(HashAlgo::Sha1));
        assert_eq!(r.extend_value(1), Digest::ones(HashAlgo::Sha256));
        assert_eq!(r, t5());
        let r = list.record(1).unwrap();
        assert_eq!(r, t1());
        assert_eq!(
            r.extend_value(0).to_hex(),
            "7e12b5b354a90b6491f97e4075c8bc0428ad74bb"
        );
        assert_eq!(r.template().name(), "ima-ng");
        assert_eq!(r.template_data().len(), 59);
        assert!(list.record(3).is_none());
    }

    #[test]
    fn reads_at_every_offset_equal_slices() {
        let list = MeasurementList::new(&BANKS);
        let sig = TemplateDesc::builtin("ima-sig").unwrap();
        let ima = TemplateDesc::builtin("ima").unwrap();
        let custom = TemplateDesc::from_fmt("n-ng|d-ng|iuid").unwrap();
        let templates = [ima_ng(), Arc::new(sig), Arc::new(ima), Arc::new(custom)];
        for i in 0..40u32 {
            let name = format!("/file {i}");
            let ev = EventData {
                digest: HashAlgo::Sha1.digest(name.as_bytes()),
                name: name.as_bytes(),
                violation: i % 7 == 3,
                iuid: Some(i * 1000),
                ..Default::default()
            };
            let t = templates[i as usize % templates.len()].clone();
            list.append(Record::new(
                if i % 5 == 0 { 8 } else { 10 + i % 3 },
                t,
                &ev,
                &BANKS,
            ));
        }
        for kind in [ViewKind::Ascii, ViewKind::Binary] {
            for bank in 0..2 {
                let full = read_all(&list, kind, bank);
                assert_eq!(full.len() as u64, list.view_len(kind, bank));
                for off in 0..=full.len() {
                    for size in [1usize, 7, 100] {
                        let mut buf = vec![0u8; size];
                        let n = list.read(kind, bank, off as u64, &mut buf);
                        let want = &full[off..(off + size).min(full.len())];
                        assert_eq!(
                            &buf[..n],
                            want,
                            "{kind:?} bank {bank} off {off} size {size}"
                        );
                    }
                }
                // One big read returns everything.
                let mut big = vec![0u8; full.len() + 10];
                assert_eq!(list.read(kind, bank, 0, &mut big), full.len());
                assert_eq!(&big[..full.len()], &full[..]);
            }
        }
        let ascii = String::from_utf8(read_all(&list, ViewKind::Ascii, 0)).unwrap();
        assert!(ascii.starts_with(" 8 "), "{ascii}");
        let sha1_7 = HashAlgo::Sha1.digest(b"/file 7").unwrap().to_hex();
        assert!(ascii.contains(&format!(" n-ng|d-ng|iuid /file_7 sha1:{sha1_7} 7000\n")));
        // A violation: zero digest labelled with ima_hash, zero template digest.
        let zeros = "0".repeat(64);
        assert!(ascii.contains(&format!(
            "10 {} n-ng|d-ng|iuid /file_3 sha256:{zeros} 3000\n",
            &zeros[..40]
        )));
        assert!(list.read(ViewKind::Ascii, 2, 0, &mut [0u8; 10]) == 0);
    }

    #[test]
    fn binary_lists_parse_back_into_the_same_records() {
        let list = MeasurementList::new(&BANKS);
        let ima = Arc::new(TemplateDesc::builtin("ima").unwrap());
        let sig = Arc::new(TemplateDesc::builtin("ima-sig").unwrap());
        let custom = Arc::new(TemplateDesc::from_fmt("d-ng|n-ng|imode").unwrap());
        let ev = EventData {
            digest: HashAlgo::Sha1.digest(b"x"),
            name: b"/x y",
            imode: Some(0o644),
            ..Default::default()
        };
        for t in [ima_ng(), ima, sig, custom] {
            list.append(Record::new(11, t, &ev, &BANKS));
        }
        list.append(t2());
        list.append(t5());
        for bank in 0..2 {
            let bin = read_all(&list, ViewKind::Binary, bank);
            let parsed = parse_binary_list(&bin, BANKS[bank], &BANKS).unwrap();
            assert_eq!(parsed.len(), 6);
            for (i, r) in parsed.iter().enumerate() {
                assert_eq!(Some(r), list.record(i as u64).as_ref(), "record {i}");
            }
            // Truncations and a flipped byte are errors, not panics.
            for cut in [1, 5, bin.len() / 2, bin.len() - 1] {
                assert!(parse_binary_list(&bin[..cut], BANKS[bank], &BANKS).is_err());
            }
            let mut bad = bin.clone();
            bad[4 + BANKS[bank].digest_size() + 4 + 8] ^= 1;
            assert!(parse_binary_list(&bad, BANKS[bank], &BANKS).is_err());
        }
    }

    #[test]
    fn mutated_binary_lists_never_panic() {
        let list = t_list();
        let ima = Arc::new(TemplateDesc::builtin("ima").unwrap());
        list.append(Record::new(
            10,
            ima,
            &EventData {
                name: b"/i",
                ..Default::default()
            },
            &BANKS,
        ));
        let bin = read_all(&list, ViewKind::Binary, 0);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..5000 {
            let mut m = bin.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % m.len() as u64) as usize;
                m[at] = next() as u8;
            }
            let cut = (next() % (m.len() as u64 + 1)) as usize;
            if parse_binary_list(&m[..cut], HashAlgo::Sha1, &BANKS).is_ok() {
                accepted += 1;
            }
        }
        // Only mutations that leave every record consistent can be accepted.
        assert!(accepted < 5000);
        assert_eq!(
            parse_binary_list(&bin, HashAlgo::Sha1, &BANKS)
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn offsets_stay_valid_after_appends() {
        let list = t_list();
        let before = read_all(&list, ViewKind::Ascii, 1);
        list.append(t1());
        let after = read_all(&list, ViewKind::Ascii, 1);
        assert_eq!(&after[..before.len()], &before[..]);
        let mut buf = vec![0u8; 1000];
        let n = list.read(ViewKind::Ascii, 1, before.len() as u64, &mut buf);
        assert_eq!(&buf[..n], &after[before.len()..]);
    }

    #[test]
    fn duplicate_lookup_is_per_pcr_and_bank() {
        let list = t_list();
        let r = t1();
        assert!(list.contains_digest(10, 1, &r.digest(1)));
        assert!(list.contains_digest(10, 0, &r.digest(0)));
        assert!(!list.contains_digest(11, 1, &r.digest(1)));
        let other = HashAlgo::Sha256.digest(b"nope").unwrap();
        assert!(!list.contains_digest(10, 1, &other));
        // Maintained after the index is built.
        let ev = EventData {
            digest: HashAlgo::Sha256.digest(b"x"),
            name: b"/x",
            ..Default::default()
        };
        let x = Record::new(11, ima_ng(), &ev, &BANKS);
        assert!(!list.contains_digest(11, 1, &x.digest(1)));
        list.append(x.clone());
        assert!(list.contains_digest(11, 1, &x.digest(1)));
        assert!(!list.contains_digest(10, 1, &x.digest(1)));
        assert!(!list.contains_digest(10, 5, &x.digest(1)));
    }

    #[test]
    fn fingerprint_collisions_are_resolved_exactly() {
        // Digests sharing their first 4 bytes share a fingerprint.
        let list = MeasurementList::new(&BANKS);
        let a = Record::new(
            10,
            ima_ng(),
            &EventData {
                name: b"/a",
                ..Default::default()
            },
            &BANKS,
        );
        let forge = |last: u8| {
            let mut bytes = [0u8; 20];
            bytes[..4].copy_from_slice(&a.digest(0).as_bytes()[..4]);
            bytes[19] = last;
            Digest::from_bytes(HashAlgo::Sha1, &bytes).unwrap()
        };
        let mut b = Record::new(
            10,
            ima_ng(),
            &EventData {
                name: b"/b",
                ..Default::default()
            },
            &BANKS,
        );
        b.digests[0] = forge(1);
        assert!(!list.contains_digest(10, 0, &a.digest(0)));
        list.append(a.clone());
        list.append(b.clone());
        assert!(list.contains_digest(10, 0, &a.digest(0)));
        assert!(list.contains_digest(10, 0, &forge(1)));
        assert!(!list.contains_digest(10, 0, &forge(2)));
        assert!(!list.contains_digest(11, 0, &forge(1)));
        // Built lazily after the appends, the index gives the same answers.
        let list2 = MeasurementList::new(&BANKS);
        list2.append(a.clone());
        list2.append(b);
        assert!(list2.contains_digest(10, 0, &forge(1)));
        assert!(!list2.contains_digest(10, 0, &forge(2)));
        assert_eq!(list2.dedup.lock()[0].as_ref().unwrap().overflow.len(), 1);
    }

    #[test]
    fn concurrent_append_and_read_never_see_partial_records() {
        let list = Arc::new(MeasurementList::new(&BANKS));
        let writer = {
            let list = list.clone();
            std::thread::spawn(move || {
                for i in 0..3000u32 {
                    let name = format!("/bin/prog{i}");
                    let ev = EventData {
                        digest: HashAlgo::Sha256.digest(name.as_bytes()),
                        name: name.as_bytes(),
                        ..Default::default()
                    };
                    list.append(Record::new(10, ima_ng(), &ev, &BANKS));
                }
            })
        };
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 3000];
        let mut last_lines = 0;
        loop {
            let done = writer.is_finished();
            let n = list.read(ViewKind::Ascii, 0, seen.len() as u64, &mut buf);
            seen.extend_from_slice(&buf[..n]);
            if n == 0 && done {
                break;
            }
            // Every complete line read so far is a well-formed ima-ng line.
            let text = std::str::from_utf8(&seen).unwrap();
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for l in &lines[last_lines..lines.len().saturating_sub(1)] {
                assert_eq!(l.split(' ').count(), 5, "{l:?}");
            }
            last_lines = lines.len().saturating_sub(1);
        }
        writer.join().unwrap();
        let text = String::from_utf8(seen).unwrap();
        assert_eq!(text.lines().count(), 3000);
        assert!(text.ends_with(" /bin/prog2999\n"));
        assert_eq!(text.as_bytes(), &read_all(&list, ViewKind::Ascii, 0)[..]);
    }
}
