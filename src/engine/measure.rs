//! File hashing and the per-file state IMA keeps in the kernel's `ima_iint_cache`:
//! which PCRs a file version was measured into, whether it was audited, its digests, and
//! the open reader/writer counts behind ToMToU / open_writers violations
//! (security/integrity/ima/ima_main.c: ima_rdwr_violation_check, ima_check_last_writer).
//!
//! Files are identified by [`FileId`] (device, inode) and each state belongs to one
//! [`FileVersion`]; a changed version resets the state as the kernel does when the last
//! writer closes a changed file or when the lower file of a stacked file system changed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::hash::{Digest, HashAlgo};

/// Identity of a file: device and inode number of the file being measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What identifies one version of a file's content. The change cookie (`STATX_CHANGE_COOKIE`
/// / i_version) is authoritative when both sides have it; otherwise size, mtime and ctime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileVersion {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub change_cookie: Option<u64>,
}

impl FileVersion {
    /// Whether `other` is a different version of the content than `self`.
    pub fn differs_from(&self, other: &FileVersion) -> bool {
        match (self.change_cookie, other.change_cookie) {
            (Some(a), Some(b)) => a != b,
            _ => {
                self.size != other.size
                    || self.mtime_ns != other.mtime_ns
                    || self.ctime_ns != other.ctime_ns
            }
        }
    }

    /// The version of an open file, from `fstat` (no change cookie: std does not expose statx's).
    pub fn of_file(file: &File) -> io::Result<FileVersion> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata()?;
        Ok(FileVersion {
            size: m.size(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
            change_cookie: None,
        })
    }
}

/// Read size for hashing: large enough that syscall overhead is negligible next to sha256
/// (see `bench/`), small enough to stay in L2 cache.
pub const HASH_BUFFER_SIZE: usize = 256 * 1024;

thread_local! {
    static HASH_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hash the whole content of `file` (from offset 0, with `pread`, so the file position of a
/// shared descriptor is left alone) with each of `algos`, reading the file once.
pub fn hash_file_multi(file: &File, algos: &[HashAlgo]) -> io::Result<Vec<Digest>> {
    let mut hashers = Vec::with_capacity(algos.len());
    for &algo in algos {
        let h = algo.hasher().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("hash algorithm {algo} is not available"),
            )
        })?;
        hashers.push(h);
    }
    HASH_BUFFER.with(|cell| {
        // A re-entrant call (never expected) falls back to a private buffer.
        let mut own;
        let mut guard = cell.try_borrow_mut();
        let buf: &mut Vec<u8> = match guard.as_mut() {
            Ok(b) => b,
            Err(_) => {
                own = Vec::new();
                &mut own
            }
        };
        if buf.len() != HASH_BUFFER_SIZE {
            buf.resize(HASH_BUFFER_SIZE, 0);
        }
        let mut offset = 0u64;
        loop {
            let n = match file.read_at(buf, offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for h in &mut hashers {
                h.update(&buf[..n]);
            }
            offset += n as u64;
        }
        Ok(())
    })?;
    Ok(hashers.into_iter().map(|h| h.finalize()).collect())
}

/// Hash the whole content of `file` with `algo`.
pub fn hash_file(file: &File, algo: HashAlgo) -> io::Result<Digest> {
    let mut v = hash_file_multi(file, &[algo])?;
    v.pop()
        .ok_or_else(|| io::Error::other("no digest produced"))
}

/// Which violations an access produces (ima_main.c: ima_rdwr_violation_check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    pub tomtou: bool,
    pub open_writers: bool,
}

/// How violations are limited. Kernels from 6.14 (patches "ima: limit the number of
/// open-writers / ToMToU integrity violations") report open_writers once until the last
/// writer closes and ToMToU once per measured reader; older kernels reported one per
/// qualifying open. LTP's `ima_violations.sh` picks its expectations by `uname -r` (6.14),
/// and a container shares the host's kernel release, so the default follows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViolationLimit {
    /// Kernels 6.14 and later.
    #[default]
    Limited,
    /// One violation per qualifying open, as kernels before 6.14.
    EveryOpen,
}

impl ViolationLimit {
    /// The behaviour of the kernel with release string `release` (`6.8.0-45-generic`);
    /// unparsable releases get the current behaviour.
    pub fn for_release(release: &str) -> ViolationLimit {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) if (major, minor) < (6, 14) => ViolationLimit::EveryOpen,
            _ => ViolationLimit::Limited,
        }
    }

    /// The behaviour of the running kernel.
    pub fn for_running_kernel() -> ViolationLimit {
        let uname = rustix::system::uname();
        ViolationLimit::for_release(&uname.release().to_string_lossy())
    }
}

/// Hook classes whose appraisal results are cached separately (IMA_FILE_APPRAISED,
/// IMA_MMAP_APPRAISED, IMA_BPRM_APPRAISED, IMA_READ_APPRAISED, IMA_CREDS_APPRAISED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppraiseClass {
    File = 0,
    Mmap = 1,
    Bprm = 2,
    Read = 3,
    Creds = 4,
}

/// A cached appraisal result (`ima_file_status` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppraisalStatus {
    Pass,
    /// Failed with this audit cause.
    Fail(&'static str),
}

/// Per-file IMA state for one file version (the kernel's `ima_iint_cache`).
#[derive(Debug, Default)]
pub struct FileState {
    /// The version the digests and done-flags below belong to (set when hashed).
    version: Option<FileVersion>,
    /// Bit n set: this version was measured into PCR n.
    measured_pcrs: u64,
    /// An `audit` rule already reported this version (IMA_AUDITED).
    audited: bool,
    /// Digests of this version, one per algorithm computed (IMA_COLLECTED).
    digests: Vec<Digest>,
    /// Opens for reading only (the kernel's `i_readcount`).
    readers: u32,
    /// Opens for writing, O_RDWR included (the kernel's `i_writecount`).
    writers: u32,
    /// A reader whose access had to be measured opened the file (IMA_MAY_EMIT_TOMTOU,
    /// IMA_MUST_MEASURE on older kernels).
    may_emit_tomtou: bool,
    /// An open_writers violation was reported since the last writer closed.
    emitted_open_writers: bool,
    /// Created by an open with O_CREAT: reset on last close even if the version matches.
    new_file: bool,
    /// Appraisal results of this version per hook class.
    appraisal: [Option<AppraisalStatus>; 5],
    /// The last appraisal result of any class (`ima_file_status`).
    last_status: Option<AppraisalStatus>,
    /// `security.ima` must be rewritten when the last writer closes a changed file
    /// (IMA_UPDATE_XATTR).
    update_xattr: bool,
    /// A `hash` rule applied to this version (IMA_HASH / IMA_HASHED).
    hashed: bool,
    /// `security.ima` holds a signature (IMA_DIGSIG): never overwritten with a hash.
    digsig: bool,
}

/// What a close decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseOutcome {
    /// The per-version state was reset (last writer of a changed or new file).
    pub reset: bool,
    /// `security.ima` should be rewritten with the new content's hash (IMA_UPDATE_XATTR was
    /// set and the file changed), provided the last appraisal passed or a `hash` rule applies.
    pub update_xattr: bool,
}

impl FileState {
    pub fn readers(&self) -> u32 {
        self.readers
    }

    pub fn writers(&self) -> u32 {
        self.writers
    }

    pub fn has_open_handles(&self) -> bool {
        self.readers > 0 || self.writers > 0
    }

    /// Forget everything that belongs to the content version (IMA_DONE_MASK, measured_pcrs).
    fn reset_done(&mut self) {
        self.version = None;
        self.measured_pcrs = 0;
        self.audited = false;
        self.digests.clear();
        self.appraisal = [None; 5];
        self.hashed = false;
    }

    /// Forget appraisal and measurement state after `security.ima` changed
    /// (`ima_reset_appraise_flags`): the next access re-appraises and re-measures.
    pub fn xattr_changed(&mut self) {
        self.measured_pcrs = 0;
        self.appraisal = [None; 5];
        self.last_status = None;
        self.hashed = false;
    }

    /// An operation made through us changed only the file's metadata, not its content (a
    /// rename, link, chmod, chown or utimes moves its ctime or mtime): the kernel keeps
    /// everything it knows of the inode, so the version this state was computed for moves
    /// along, from `before` to `after`. A state whose version is not `before` (the file
    /// changed behind our back first) keeps it, and is revalidated at the next access.
    pub fn metadata_changed(&mut self, before: &FileVersion, after: &FileVersion) {
        if self.version.is_some_and(|v| !v.differs_from(before)) {
            self.version = Some(*after);
        }
    }

    /// Forget appraisal results after an attribute change (chmod/chown: IMA_CHANGE_ATTR);
    /// measurements stay.
    pub fn attr_changed(&mut self) {
        self.appraisal = [None; 5];
    }

    /// Whether the file was created by an open that has not been closed by its last writer.
    pub fn is_new_file(&self) -> bool {
        self.new_file
    }

    /// The cached appraisal result of `class` for this version.
    pub fn appraisal(&self, class: AppraiseClass) -> Option<AppraisalStatus> {
        self.appraisal[class as usize]
    }

    pub fn set_appraisal(&mut self, class: AppraiseClass, status: AppraisalStatus) {
        self.appraisal[class as usize] = Some(status);
        self.last_status = Some(status);
    }

    /// Ask for `security.ima` to be rewritten when the last writer closes.
    pub fn request_xattr_update(&mut self) {
        self.update_xattr = true;
    }

    /// A `hash` rule applied (IMA_HASH): the hash is written on close whatever appraisal said.
    pub fn set_hashed(&mut self) {
        self.hashed = true;
        self.update_xattr = true;
    }

    pub fn hashed(&self) -> bool {
        self.hashed
    }

    /// Record whether `security.ima` is a signature, as last seen.
    pub fn set_digsig(&mut self, signed: bool) {
        self.digsig = signed;
    }

    /// Register an open of the file (before the violation check, as the kernel counts the
    /// opening file in `i_readcount`/`i_writecount` before IMA's hook runs).
    pub fn open(&mut self, for_write: bool, created: bool) {
        if for_write {
            self.writers = self.writers.saturating_add(1);
        } else {
            self.readers = self.readers.saturating_add(1);
        }
        if created {
            self.new_file = true;
        }
    }

    /// Bring the state up to date with the version seen at an access: when nobody writes
    /// through us and the content version moved (the lower file changed behind our back),
    /// the state is stale, as for overlayfs' real-inode check in `process_measurement`.
    pub fn revalidate(&mut self, now: &FileVersion) {
        if self.writers == 0 {
            if let Some(v) = self.version {
                if v.differs_from(now) {
                    self.reset_done();
                }
            }
        }
    }

    /// `ima_rdwr_violation_check` for an access by a file opened for write (`for_write`) or
    /// not, where `must_measure` says whether the policy asks to measure this access. The
    /// accessing open itself must already be registered with [`FileState::open`].
    pub fn violation_check(
        &mut self,
        for_write: bool,
        must_measure: bool,
        limit: ViolationLimit,
    ) -> Violations {
        let mut v = Violations::default();
        if for_write {
            if self.readers > 0 {
                v.tomtou = match limit {
                    ViolationLimit::Limited => std::mem::take(&mut self.may_emit_tomtou),
                    ViolationLimit::EveryOpen => self.may_emit_tomtou,
                };
            }
        } else {
            if must_measure {
                self.may_emit_tomtou = true;
            }
            if self.writers > 0 && must_measure {
                v.open_writers = match limit {
                    ViolationLimit::Limited => {
                        !std::mem::replace(&mut self.emitted_open_writers, true)
                    }
                    ViolationLimit::EveryOpen => true,
                };
            }
        }
        v
    }

    /// A close of one open (`ima_file_free` / `ima_check_last_writer`): when the last writer
    /// closes, the open_writers limit is cleared and, if the file was created or its version
    /// changed since it was hashed, all per-version state is reset so the next access
    /// re-measures.
    pub fn close(&mut self, was_writer: bool, now: &FileVersion) -> CloseOutcome {
        let mut out = CloseOutcome::default();
        if !was_writer {
            self.readers = self.readers.saturating_sub(1);
            return out;
        }
        if self.writers <= 1 {
            self.emitted_open_writers = false;
            let update = std::mem::take(&mut self.update_xattr);
            let changed = match self.version {
                Some(v) => v.differs_from(now),
                // Never hashed: nothing to keep (the kernel's version 0 never matches).
                None => true,
            };
            if self.new_file || changed {
                let may_update = !self.digsig
                    && (self.hashed || self.last_status == Some(AppraisalStatus::Pass));
                self.reset_done();
                self.new_file = false;
                out.reset = true;
                out.update_xattr = update && may_update;
            }
        }
        self.writers = self.writers.saturating_sub(1);
        out
    }

    /// Whether this version was already measured into `pcr`.
    pub fn measured_into(&self, pcr: u32) -> bool {
        pcr < 64 && self.measured_pcrs & (1u64 << pcr) != 0
    }

    /// Record a measurement into `pcr` (also when the entry was a suppressed duplicate).
    pub fn set_measured(&mut self, pcr: u32) {
        if pcr < 64 {
            self.measured_pcrs |= 1u64 << pcr;
        }
    }

    pub fn measured_pcrs(&self) -> u64 {
        self.measured_pcrs
    }

    pub fn audited(&self) -> bool {
        self.audited
    }

    pub fn set_audited(&mut self) {
        self.audited = true;
    }

    /// The cached digest of this version for `algo`, if computed.
    pub fn cached_digest(&self, algo: HashAlgo) -> Option<Digest> {
        self.digests.iter().find(|d| d.algo() == algo).copied()
    }

    /// The digest of `file` (whose version is `version`) with `algo`, hashed at most once
    /// per version (IMA_COLLECTED).
    pub fn digest(
        &mut self,
        file: &File,
        algo: HashAlgo,
        version: &FileVersion,
    ) -> io::Result<Digest> {
        if self.version.is_some_and(|v| v.differs_from(version)) && self.writers == 0 {
            self.reset_done();
        }
        if let Some(d) = self.cached_digest(algo) {
            return Ok(d);
        }
        let d = hash_file(file, algo)?;
        if self.version.is_none() {
            self.version = Some(*version);
        }
        self.digests.push(d);
        Ok(d)
    }
}

struct Slot {
    state: Arc<Mutex<FileState>>,
    last_used: u64,
}

/// All per-file states, bounded: states of files with no open handle are evicted, least
/// recently used first, once more than `capacity` files are tracked. An evicted file is
/// simply hashed again on its next access, like a kernel inode dropped from the cache (its
/// re-measurement is then suppressed as a duplicate of the list entry).
pub struct MeasureCache {
    slots: Mutex<CacheSlots>,
    capacity: usize,
}

struct CacheSlots {
    map: HashMap<FileId, Slot>,
    clock: u64,
    /// Size at which the next eviction runs; above `capacity` while most states are busy,
    /// so a process holding very many files open does not make every open scan the map.
    evict_at: usize,
}

/// Default number of tracked files.
pub const DEFAULT_CACHE_CAPACITY: usize = 64 * 1024;

impl Default for MeasureCache {
    fn default() -> Self {
        MeasureCache::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl MeasureCache {
    pub fn new(capacity: usize) -> MeasureCache {
        MeasureCache {
            slots: Mutex::new(CacheSlots {
                map: HashMap::new(),
                clock: 0,
                evict_at: capacity.max(1),
            }),
            capacity: capacity.max(1),
        }
    }

    /// The state of `id`, created if missing. Lock it for the duration of one hook (the
    /// kernel's `iint->mutex`); other files proceed in parallel.
    pub fn get(&self, id: FileId) -> Arc<Mutex<FileState>> {
        let mut slots = self.slots.lock();
        slots.clock += 1;
        let clock = slots.clock;
        if let Some(slot) = slots.map.get_mut(&id) {
            slot.last_used = clock;
            return Arc::clone(&slot.state);
        }
        if slots.map.len() >= slots.evict_at {
            Self::evict(&mut slots.map, self.capacity - self.capacity / 8);
            slots.evict_at = self.capacity.max(slots.map.len() + self.capacity / 8);
        }
        let state = Arc::new(Mutex::new(FileState::default()));
        slots.map.insert(
            id,
            Slot {
                state: Arc::clone(&state),
                last_used: clock,
            },
        );
        state
    }

    /// The state of `id` if tracked (no creation).
    pub fn find(&self, id: FileId) -> Option<Arc<Mutex<FileState>>> {
        self.slots.lock().map.get(&id).map(|s| Arc::clone(&s.state))
    }

    /// Number of tracked files.
    pub fn len(&self) -> usize {
        self.slots.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop idle states (no open handle, not in use by a hook) until at most `target` remain.
    fn evict(map: &mut HashMap<FileId, Slot>, target: usize) {
        let mut idle: Vec<(u64, FileId)> = map
            .iter()
            .filter(|(_, slot)| {
                Arc::strong_count(&slot.state) == 1
                    && slot
                        .state
                        .try_lock()
                        .is_some_and(|st| !st.has_open_handles())
            })
            .map(|(id, slot)| (slot.last_used, *id))
            .collect();
        idle.sort_unstable();
        let excess = map.len().saturating_sub(target);
        for (_, id) in idle.into_iter().take(excess) {
            map.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn v(size: u64, mtime: i64) -> FileVersion {
        FileVersion {
            size,
            mtime_ns: mtime,
            ctime_ns: mtime,
            change_cookie: None,
        }
    }

    #[test]
    fn hashes_files_of_many_sizes_like_one_shot_digest() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0usize,
            1,
            6,
            4095,
            HASH_BUFFER_SIZE,
            HASH_BUFFER_SIZE + 1,
            3 * HASH_BUFFER_SIZE + 17,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            let f = File::open(&path).unwrap();
            let got =
                hash_file_multi(&f, &[HashAlgo::Sha256, HashAlgo::Sha1, HashAlgo::Sha512]).unwrap();
            assert_eq!(
                got[0],
                HashAlgo::Sha256.digest(&data).unwrap(),
                "size {size}"
            );
            assert_eq!(got[1], HashAlgo::Sha1.digest(&data).unwrap(), "size {size}");
            assert_eq!(
                got[2],
                HashAlgo::Sha512.digest(&data).unwrap(),
                "size {size}"
            );
        }
    }

    #[test]
    fn hash_of_hello_matches_spec_vector_and_leaves_file_position() {
        use std::io::{Read, Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello");
        std::fs::write(&path, b"hello\n").unwrap();
        let mut f = File::open(&path).unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        let d = hash_file(&f, HashAlgo::Sha256).unwrap();
        assert_eq!(
            d.to_hex(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "llo\n");
    }

    #[test]
    fn unsupported_algorithm_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"x").unwrap();
        let f = File::open(&path).unwrap();
        let e = hash_file(&f, HashAlgo::Wp256).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn write_only_descriptor_fails_to_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(hash_file(&f, HashAlgo::Sha256).is_err());
    }

    #[test]
    fn version_comparison_prefers_change_cookie() {
        let a = FileVersion {
            change_cookie: Some(7),
            ..v(1, 1)
        };
        let b = FileVersion {
            change_cookie: Some(7),
            ..v(2, 2)
        };
        assert!(!a.differs_from(&b));
        let c = FileVersion {
            change_cookie: Some(8),
            ..v(1, 1)
        };
        assert!(a.differs_from(&c));
        assert!(v(1, 1).differs_from(&v(1, 2)));
        assert!(v(1, 1).differs_from(&v(2, 1)));
        assert!(!v(1, 1).differs_from(&v(1, 1)));
        let d = FileVersion {
            change_cookie: Some(9),
            ..v(1, 1)
        };
        assert!(
            !d.differs_from(&v(1, 1)),
            "one side without cookie falls back to times"
        );
    }

    #[test]
    fn version_of_file_tracks_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let before = FileVersion::of_file(&File::open(&path).unwrap()).unwrap();
        assert_eq!(before.size, 3);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"two").unwrap();
        let after = FileVersion::of_file(&f).unwrap();
        assert!(before.differs_from(&after));
    }

    #[test]
    fn digest_is_cached_per_version_and_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        let f = File::open(&path).unwrap();
        let ver = v(6, 100);
        let mut st = FileState::default();
        let d1 = st.digest(&f, HashAlgo::Sha256, &ver).unwrap();
        // Change the content without telling the state: the same version keeps the cache.
        std::fs::write(&path, b"other\n").unwrap();
        let d2 = st.digest(&f, HashAlgo::Sha256, &ver).unwrap();
        assert_eq!(d1, d2);
        let s1 = st.digest(&f, HashAlgo::Sha1, &ver).unwrap();
        assert_eq!(s1, HashAlgo::Sha1.digest(b"other\n").unwrap());
        // A new version, nobody writing: recomputed.
        let d3 = st.digest(&f, HashAlgo::Sha256, &v(6, 200)).unwrap();
        assert_eq!(d3, HashAlgo::Sha256.digest(b"other\n").unwrap());
    }

    #[test]
    fn tomtou_needs_a_measured_reader_and_is_limited() {
        let mut st = FileState::default();
        // A reader that is not measured does not arm ToMToU.
        st.open(false, false);
        assert_eq!(
            st.violation_check(false, false, ViolationLimit::Limited),
            Violations::default()
        );
        st.open(true, false);
        assert!(
            !st.violation_check(true, false, ViolationLimit::Limited)
                .tomtou
        );
        st.close(true, &v(0, 0));
        // A measured reader arms it; the first writer fires it once.
        st.open(false, false);
        st.violation_check(false, true, ViolationLimit::Limited);
        st.open(true, false);
        assert!(
            st.violation_check(true, false, ViolationLimit::Limited)
                .tomtou
        );
        st.open(true, false);
        assert!(
            !st.violation_check(true, false, ViolationLimit::Limited)
                .tomtou
        );
        // Old kernels: every writer open while a measured reader is around.
        assert!(
            !st.violation_check(true, false, ViolationLimit::EveryOpen)
                .tomtou
        );
        st.violation_check(false, true, ViolationLimit::EveryOpen);
        assert!(
            st.violation_check(true, false, ViolationLimit::EveryOpen)
                .tomtou
        );
        assert!(
            st.violation_check(true, false, ViolationLimit::EveryOpen)
                .tomtou
        );
    }

    #[test]
    fn violation_limit_follows_kernel_release() {
        assert_eq!(
            ViolationLimit::for_release("6.8.0-45-generic"),
            ViolationLimit::EveryOpen
        );
        assert_eq!(
            ViolationLimit::for_release("5.15.0"),
            ViolationLimit::EveryOpen
        );
        assert_eq!(
            ViolationLimit::for_release("6.13.12-200.fc41.x86_64"),
            ViolationLimit::EveryOpen
        );
        assert_eq!(
            ViolationLimit::for_release("6.14.0"),
            ViolationLimit::Limited
        );
        assert_eq!(
            ViolationLimit::for_release("6.18.44-fc-v595"),
            ViolationLimit::Limited
        );
        assert_eq!(ViolationLimit::for_release("7.0"), ViolationLimit::Limited);
        assert_eq!(
            ViolationLimit::for_release("weird"),
            ViolationLimit::Limited
        );
        assert_eq!(ViolationLimit::for_release(""), ViolationLimit::Limited);
    }

    #[test]
    fn tomtou_needs_an_open_reader() {
        let mut st = FileState::default();
        st.open(false, false);
        st.violation_check(false, true, ViolationLimit::Limited);
        st.close(false, &v(0, 0));
        st.open(true, false);
        assert!(
            !st.violation_check(true, false, ViolationLimit::Limited)
                .tomtou
        );
    }

    #[test]
    fn open_writers_fires_once_until_last_writer_closes() {
        let mut st = FileState::default();
        st.open(true, false);
        st.open(true, false);
        st.open(false, false);
        assert!(
            !st.violation_check(false, false, ViolationLimit::Limited)
                .open_writers,
            "unmeasured reader"
        );
        assert!(
            st.violation_check(false, true, ViolationLimit::Limited)
                .open_writers
        );
        assert!(
            !st.violation_check(false, true, ViolationLimit::Limited)
                .open_writers
        );
        assert!(
            st.violation_check(false, true, ViolationLimit::EveryOpen)
                .open_writers
        );
        st.close(true, &v(0, 0));
        assert!(
            !st.violation_check(false, true, ViolationLimit::Limited)
                .open_writers,
            "one writer left"
        );
        st.close(true, &v(0, 0));
        st.open(true, false);
        assert!(
            st.violation_check(false, true, ViolationLimit::Limited)
                .open_writers,
            "reset after last writer"
        );
    }

    #[test]
    fn last_writer_close_resets_only_on_change_or_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"a").unwrap();
        let f = File::open(&path).unwrap();
        let ver = v(1, 1);
        let mut st = FileState::default();
        st.digest(&f, HashAlgo::Sha256, &ver).unwrap();
        st.set_measured(10);
        st.set_audited();
        st.open(true, false);
        assert!(!st.close(true, &ver).reset, "unchanged");
        assert!(st.measured_into(10) && st.audited());
        st.open(true, false);
        st.open(true, false);
        assert!(!st.close(true, &v(2, 2)).reset, "not the last writer");
        assert!(st.close(true, &v(2, 2)).reset);
        assert!(!st.measured_into(10) && !st.audited());
        assert!(st.cached_digest(HashAlgo::Sha256).is_none());
        // A created file resets even with the same version.
        st.digest(&f, HashAlgo::Sha256, &ver).unwrap();
        st.set_measured(10);
        st.open(true, true);
        assert!(st.close(true, &ver).reset);
        assert!(!st.measured_into(10));
    }

    #[test]
    fn revalidate_resets_on_outside_change_without_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"a").unwrap();
        let f = File::open(&path).unwrap();
        let mut st = FileState::default();
        st.digest(&f, HashAlgo::Sha256, &v(1, 1)).unwrap();
        st.set_measured(10);
        st.revalidate(&v(1, 1));
        assert!(st.measured_into(10));
        st.open(true, false);
        st.revalidate(&v(1, 5));
        assert!(
            st.measured_into(10),
            "writer open: kernel waits for the last close"
        );
        st.close(true, &v(1, 1));
        st.revalidate(&v(1, 5));
        assert!(!st.measured_into(10));
        st.set_measured(40);
        assert!(st.measured_into(40));
        st.set_measured(70);
        assert!(!st.measured_into(70), "PCRs beyond 63 are never cached");
    }

    #[test]
    fn cache_evicts_idle_files_only() {
        let cache = MeasureCache::new(8);
        let busy = cache.get(FileId { dev: 1, ino: 0 });
        busy.lock().open(false, false);
        drop(busy);
        let held = cache.get(FileId { dev: 1, ino: 1 });
        for ino in 2..40 {
            cache.get(FileId { dev: 1, ino });
            assert!(cache.len() <= 8, "len {}", cache.len());
        }
        assert!(
            cache.find(FileId { dev: 1, ino: 0 }).is_some(),
            "open file kept"
        );
        assert!(
            cache.find(FileId { dev: 1, ino: 1 }).is_some(),
            "in-use state kept"
        );
        assert!(
            cache.find(FileId { dev: 1, ino: 2 }).is_none(),
            "oldest idle evicted"
        );
        assert!(cache.find(FileId { dev: 1, ino: 39 }).is_some());
        drop(held);
        // All states busy: the map grows past the cap, evicting only every capacity/8 + 1.
        let busy: Vec<_> = (100..130)
            .map(|ino| {
                let s = cache.get(FileId { dev: 2, ino });
                s.lock().open(true, false);
                s
            })
            .collect();
        assert!(cache.len() >= 30);
        drop(busy);
        for ino in 200..260 {
            cache.get(FileId { dev: 3, ino });
        }
        assert!(
            cache.len() <= 40,
            "idle states evicted again: {}",
            cache.len()
        );
        // The same id returns the same state while tracked.
        let a = cache.get(FileId { dev: 1, ino: 0 });
        assert_eq!(a.lock().readers(), 1);
    }
}
