//! The IMA state of one namespace: active policy, measurement list, PCR banks, violation
//! counter, per-file cache, IMA keyring and audit sink, and the hook entry points that tie
//! them together the way security/integrity/ima/ima_main.c, ima_api.c, ima_queue.c,
//! ima_fs.c, ima_appraise.c and ima_init.c do (IMA-SPEC 2, 4, 5, 8).
//!
//! How a file system drives it:
//!
//! - Every open of a regular file is a FILE_CHECK [`Ima::process_file`] (or
//!   [`Ima::process_file_with`], whose [`FileOutcome`] may ask for a `security.ima` write in
//!   fix mode). It registers the open as a reader or writer; release it exactly once with
//!   [`Ima::file_closed`] / [`Ima::file_closed_with`] (the latter returns the hash to store
//!   when the last writer closes a changed file under an appraise or `hash` rule). A
//!   refused open (`Err`) is already released. Exec and mmap hooks (BPRM_CHECK,
//!   MMAP_CHECK, ...) on an open file register nothing.
//! - `security.ima` set or removed: [`Ima::check_ima_xattr_write`] first (EINVAL/EACCES),
//!   then [`Ima::xattr_changed`]; chmod/chown: [`Ima::attr_changed`].
//! - The `policy` file: [`Ima::open_policy`], [`Ima::policy_write`] (or
//!   [`Ima::policy_write_file`] to pass the policy file's `security.ima`) per write(2),
//!   [`Ima::policy_release`] at close, [`Ima::policy_text`] for reads. Whole texts:
//!   [`Ima::load_policy_text`].
//! - List files: [`Ima::list`], [`Ima::file_banks`], [`Ima::violations`].
//!
//! Locking: the list and the PCR banks change under one lock (list order = extend order);
//! each file's state has its own lock, held while the file is hashed, so different files
//! are processed in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::appraise::{self, AppraiseRequirements, Verdict};
use super::audit::{
    self, AuditInode, AuditSink, AuditTask, AUDIT_INTEGRITY_DATA, AUDIT_INTEGRITY_PCR,
    AUDIT_INTEGRITY_POLICY_RULE, AUDIT_INTEGRITY_RULE, AUDIT_INTEGRITY_STATUS,
};
use super::children::ChildConfig;
use super::hash::{Digest, HashAlgo};
use super::journal::{Entry, Journal};
use super::keys::{KeyError, KeyId, Keyring};
use super::log::{MeasurementList, Record, ViewKind};
use super::measure::{
    AppraisalStatus, AppraiseClass, FileId, FileState, FileVersion, MeasureCache, ViolationLimit,
};
use super::pcr::PcrBanks;
use super::policy::{
    self, Actions, Decision, Func, MatchInput, Object, Policy, Rule, Subject, MAY_READ, MAY_WRITE,
};
use super::template::{EventData, TemplateDesc};
use super::tpm::Tpm;
use super::xattr;
use super::Errno;

/// `ima_appraise=` (IMA-SPEC 8.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppraiseMode {
    #[default]
    Off,
    Enforce,
    Fix,
    Log,
}

/// Boot-time configuration of one IMA instance (the kernel's command line and Kconfig).
#[derive(Clone, Debug)]
pub struct Config {
    /// `ima_hash=`: file hash algorithm when `security.ima` names none.
    pub hash: HashAlgo,
    /// `ima_template=` name, or an `ima_template_fmt=` format string (`d-ng|n-ng|sig`).
    pub template: String,
    /// The emulated TPM's allocated PCR banks, in TPM order.
    pub banks: Vec<HashAlgo>,
    /// `CONFIG_IMA_MEASURE_PCR_IDX`.
    pub pcr: u32,
    /// `ima_policy=` names (`tcb`, `appraise_tcb`, `secure_boot`, `critical_data`,
    /// `fail_securely`).
    pub builtin_policy: Vec<String>,
    /// `CONFIG_IMA_READ_POLICY`.
    pub read_policy: bool,
    /// `CONFIG_IMA_WRITE_POLICY`.
    pub write_policy: bool,
    /// `ima_appraise=`.
    pub appraise: AppraiseMode,
    /// Where audit records are appended (besides the log).
    pub audit_file: Option<PathBuf>,
    /// `integrity_audit=1`: informational audit records too.
    pub integrity_audit: bool,
    /// How ToMToU / open_writers violations are limited (default: as the running kernel).
    pub violation_limit: ViolationLimit,
    /// The namespace works from the start (a kernel). `false`: the user-namespace series'
    /// behaviour, inactive until `1` is written to `active` ([`Ima::activate`]).
    pub active: bool,
    /// Most policy rules this namespace may hold (custom rules in force plus those of the
    /// write session); beyond it a rule is refused with ENOMEM, as when the kernel cannot
    /// allocate one. `None`: no limit.
    pub max_rules: Option<usize>,
    /// Most bytes of measurement list (its binary sha1 view); beyond it new records are
    /// refused with ENOMEM as when `ima_add_template_entry` cannot allocate (audited,
    /// the file is not marked measured, access is not refused). `None`: no limit.
    pub max_list_bytes: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hash: HashAlgo::Sha256,
            template: "ima-ng".to_string(),
            banks: vec![HashAlgo::Sha1, HashAlgo::Sha256],
            pcr: 10,
            builtin_policy: vec!["tcb".to_string()],
            read_policy: true,
            write_policy: true,
            appraise: AppraiseMode::Off,
            audit_file: None,
            integrity_audit: false,
            violation_limit: ViolationLimit::for_running_kernel(),
            active: true,
            max_rules: None,
            max_list_bytes: None,
        }
    }
}

/// Whether the `policy` file exists and can be written (IMA-SPEC 2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyFileState {
    /// Mode 0600 (0200 without READ_POLICY).
    Writable,
    /// Mode 0400: loaded once, WRITE_POLICY off, READ_POLICY on.
    ReadOnly,
    /// Gone from the directory: loaded once, neither WRITE_POLICY nor READ_POLICY.
    Removed,
}

/// How the `policy` file is opened (O_RDONLY, O_WRONLY, O_RDWR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAccess {
    Read,
    Write,
    ReadWrite,
}

/// An open `policy` file. A write session collects rules until [`Ima::policy_release`].
#[derive(Debug)]
pub struct PolicyHandle {
    write: bool,
    /// Rules parsed in this session (the kernel's `ima_temp_rules`).
    rules: Vec<Rule>,
    /// No write in this session failed (the kernel's `valid_policy`).
    valid: bool,
    /// The accepted rule lines, as written (what the journal keeps of a committed load).
    lines: Vec<String>,
    /// The writing process, for audit records (set by the file system after open).
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
}

impl PolicyHandle {
    /// Whether this is a write session.
    pub fn is_write(&self) -> bool {
        self.write
    }

    /// Whether every write so far succeeded.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Rules collected so far.
    pub fn pending_rules(&self) -> &[Rule] {
        &self.rules
    }

    fn task(&self) -> AuditTask<'_> {
        AuditTask {
            pid: self.pid,
            uid: self.uid,
            euid: self.uid,
            suid: self.uid,
            fsuid: self.uid,
            comm: self.comm.as_bytes(),
            ..AuditTask::default()
        }
    }
}

/// The task behind a file event. Its credentials and comm cost a `/proc` read to find out,
/// so the engine asks for them only when a rule tests the subject or a record names the task.
pub trait EventTask: std::fmt::Debug {
    fn subject(&self) -> Subject;
    fn comm(&self) -> &str;
}

/// A task whose details are known already.
#[derive(Clone, Debug, Default)]
pub struct KnownTask {
    pub subject: Subject,
    pub comm: String,
}

impl EventTask for KnownTask {
    fn subject(&self) -> Subject {
        self.subject
    }
    fn comm(&self) -> &str {
        &self.comm
    }
}

/// One file hook event: an open (FILE_CHECK), exec (BPRM_CHECK, CREDS_CHECK), mmap
/// (MMAP_CHECK, MMAP_CHECK_REQPROT) or a kernel read (MODULE_CHECK, FIRMWARE_CHECK, ...).
#[derive(Clone, Copy, Debug)]
pub struct FileEvent<'a> {
    pub func: Func,
    /// MAY_* bits as in IMA-SPEC 4.3.
    pub mask: u32,
    /// The task making the access (`pid` is its id as the audit records print it).
    pub task: &'a dyn EventTask,
    pub pid: u32,
    pub id: FileId,
    /// Version of the content at this access.
    pub version: FileVersion,
    pub owner: u32,
    pub group: u32,
    /// st_mode (type and permission bits).
    pub mode: u32,
    pub fsmagic: u64,
    /// The file system type (`ext4`): what `fsname=` matches.
    pub fsname: &'a str,
    /// The superblock's `s_id` (`vda`, or the type for a file system without a block
    /// device): what audit records print after `dev=`.
    pub fs_id: &'a str,
    pub fsuuid: Option<[u8; 16]>,
    /// Path as the container sees it (the event name).
    pub path: &'a [u8],
    /// The file's `security.ima`, if any (read when first needed).
    pub ima_xattr: XattrSource<'a>,
    /// The file (description) was opened for write (FMODE_WRITE).
    pub opened_for_write: bool,
    /// This open created the file (O_CREAT made it).
    pub created: bool,
}

/// Where a [`FileEvent`]'s `security.ima` comes from: given, or read on first use.
/// `process_measurement` reads it only for an action that uses it, so an open with nothing
/// left to do (a file already measured) costs no `getxattr`.
#[derive(Clone, Copy)]
pub enum XattrSource<'a> {
    Known(Option<&'a [u8]>),
    Lazy(&'a LazyXattr<'a>),
}

impl std::fmt::Debug for XattrSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XattrSource::Known(v) => f.debug_tuple("Known").field(v).finish(),
            XattrSource::Lazy(l) => f.debug_tuple("Lazy").field(&l.value.get()).finish(),
        }
    }
}

impl<'a> XattrSource<'a> {
    pub fn get(&self) -> Option<&'a [u8]> {
        match *self {
            XattrSource::Known(v) => v,
            XattrSource::Lazy(l) => l.get(),
        }
    }
}

/// A `security.ima` value read by `read` the first time it is asked for.
pub struct LazyXattr<'a> {
    read: &'a dyn Fn() -> Option<Vec<u8>>,
    value: std::cell::OnceCell<Option<Vec<u8>>>,
}

impl<'a> LazyXattr<'a> {
    pub fn new(read: &'a dyn Fn() -> Option<Vec<u8>>) -> LazyXattr<'a> {
        LazyXattr {
            read,
            value: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> Option<&[u8]> {
        self.value.get_or_init(|| (self.read)()).as_deref()
    }
}

impl FileEvent<'_> {
    fn task(&self) -> AuditTask<'_> {
        let s = self.task.subject();
        AuditTask {
            pid: self.pid,
            uid: s.uid,
            gid: s.gid,
            euid: s.euid,
            suid: s.suid,
            fsuid: s.euid,
            egid: s.egid,
            sgid: s.sgid,
            fsgid: s.egid,
            comm: self.task.comm().as_bytes(),
            ..AuditTask::default()
        }
    }

    fn inode(&self) -> AuditInode<'_> {
        AuditInode {
            dev: self.fs_id,
            ino: self.id.ino,
        }
    }

    /// The last path component (what the kernel's dentry name snapshot gives).
    fn file_name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) if i + 1 < self.path.len() => &self.path[i + 1..],
            _ => self.path,
        }
    }
}

/// Which policy is active and the state of the `policy` file.
struct PolicyState {
    active: Arc<Policy>,
    /// The first custom policy was loaded (the built-in list no longer applies).
    custom_loaded: bool,
    /// A write session is open (IMA_FS_BUSY).
    busy: bool,
    file: PolicyFileState,
    /// `fail_securely` from `ima_policy=`.
    fail_securely: bool,
    /// `ima_appraise & IMA_APPRAISE_POLICY`: set by any `appraise func=POLICY_CHECK` rule of a
    /// policy that was ever active and never cleared (`ima_update_policy_flags` only ORs).
    signed_policy_required: bool,
}

/// The list and the PCR banks change together under one lock so that the order of entries
/// is the order of extends (`ima_extend_list_mutex`).
struct Store {
    pcrs: PcrBanks,
    /// `--state`: every change is journaled here before it becomes visible.
    journal: Option<Journal>,
    /// `--tpm`: extends go to this TPM too.
    tpm: Option<Tpm>,
}

/// What backs one namespace's state beyond memory: a journal (`--state`) with the entries
/// recovered from it, and a TPM (`--tpm`).
#[derive(Debug, Default)]
pub struct Backing {
    pub journal: Option<Journal>,
    /// The journal's entries at open, replayed before anything new is recorded.
    pub replay: Vec<Entry>,
    pub tpm: Option<Tpm>,
}

/// The kernel's default hash when `ima_hash=` is ignored (template `ima`).
const COMPILED_DEFAULT_HASH: HashAlgo = HashAlgo::Sha256;

/// The IMA state of one namespace.
pub struct Ima {
    cfg: Config,
    /// `ima_hash` actually in force.
    hash: HashAlgo,
    default_template: Arc<TemplateDesc>,
    buf_template: Arc<TemplateDesc>,
    /// Templates named by rules, resolved once.
    rule_templates: Mutex<HashMap<String, Arc<TemplateDesc>>>,
    /// Banks that get list files (TPM banks plus the extra sha1 slot).
    file_banks: Vec<HashAlgo>,
    /// All algorithm slots: file banks plus `ima_hash` when not among them.
    list_banks: Vec<HashAlgo>,
    /// Index of `ima_hash` in `list_banks` (duplicate lookups use that bank).
    hash_slot: usize,
    policy: RwLock<PolicyState>,
    list: MeasurementList,
    store: Mutex<Store>,
    violations: AtomicU64,
    cache: MeasureCache,
    audit: AuditSink,
    keys: RwLock<Keyring>,
    /// Keys added before the first custom policy, measured when it is loaded.
    queued_keys: Mutex<Vec<Vec<u8>>>,
    /// See [`Config::active`]; set once by [`Ima::activate`].
    active: AtomicBool,
    /// Serialises activations (the boot aggregate is appended once).
    activation: Mutex<()>,
    /// What `*_for_children` staged for the next child namespace.
    child_config: Mutex<ChildConfig>,
}

/// A policy file read for a `/path` write to the policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFile {
    pub content: Vec<u8>,
    /// Its `security.ima`, if any.
    pub ima_xattr: Option<Vec<u8>>,
}

/// Why [`Ima::load_policy_text`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyLoadError {
    /// 1-based line of the first rejected rule; 0 when no line is to blame (the policy
    /// file is busy or gone, or the text held no rule).
    pub line: usize,
    pub errno: Errno,
}

impl std::fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "policy not loaded: {}", self.errno)
        } else {
            write!(f, "policy line {}: {}", self.line, self.errno)
        }
    }
}

impl std::error::Error for PolicyLoadError {}

/// Name of the IMA keyring (no trusted-keyring chain, so the `_ima` form).
pub const KEYRING_NAME: &str = "_ima";

/// What a hook asks the file system to do to the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOutcome {
    /// Write this value to `security.ima` (fix mode repaired a missing or wrong hash).
    pub set_ima_xattr: Option<Vec<u8>>,
}

/// The appraisal cache slot of a hook (`get_subaction` / `ima_get_cache_status`).
fn appraise_class(func: Func) -> AppraiseClass {
    match func {
        Func::MmapCheck | Func::MmapCheckReqprot => AppraiseClass::Mmap,
        Func::BprmCheck => AppraiseClass::Bprm,
        Func::CredsCheck => AppraiseClass::Creds,
        Func::ModuleCheck
        | Func::FirmwareCheck
        | Func::KexecKernelCheck
        | Func::KexecInitramfsCheck
        | Func::PolicyCheck => AppraiseClass::Read,
        _ => AppraiseClass::File,
    }
}

/// The `d` field (template `ima`) holds only sha1 or md5 digests: other digests need a
/// second hash of the content.
fn needs_legacy_digest(template: &TemplateDesc, digest: &Digest) -> bool {
    template.fields().contains(&super::template::Field::D)
        && !matches!(digest.algo(), HashAlgo::Sha1 | HashAlgo::Md5)
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Ima {
    /// Validate `cfg`, build the built-in policy and append the boot aggregate.
    pub fn new(cfg: Config) -> Result<Ima, String> {
        Ima::with_backing(cfg, Backing::default())
    }

    /// `ima_init` measures the kernel release as critical data (label `kernel_info`,
    /// event `kernel_version`) when the boot policy asks (`ima_policy=critical_data`).
    fn measure_kernel_version(&self) {
        let uname = rustix::system::uname();
        let release = uname.release().to_bytes();
        self.measure_buffer(
            Func::CriticalData,
            "kernel_version",
            release,
            Some("kernel_info"),
            &Subject::default(),
        );
    }

    /// Like [`Ima::new`], but first restore a saved binary measurement list (`saved`, the
    /// content of `binary_runtime_measurements_<bank>`), re-extending the PCRs with it, as
    /// `ima_restore_measurement_list` does after kexec. The new boot aggregate follows the
    /// restored entries when `append_boot_aggregate` (a kexec); `false` continues the list
    /// as it was (benchmarks load large lists this way). A daemon that must survive
    /// restarts uses [`Ima::with_backing`] with a journal instead.
    pub fn with_saved_list(
        cfg: Config,
        saved: &[u8],
        bank: HashAlgo,
        append_boot_aggregate: bool,
    ) -> Result<Ima, String> {
        let ima = Ima::build(cfg)?;
        let records = super::log::parse_binary_list(saved, bank, &ima.list_banks)?;
        for record in records {
            ima.restore_record(record);
        }
        if !ima.list.is_empty() {
            // A restored list was made by an active namespace.
            ima.active.store(true, Ordering::SeqCst);
        }
        if ima.is_active() && (append_boot_aggregate || ima.list.is_empty()) {
            ima.start_fresh()?;
        }
        Ok(ima)
    }

    /// [`Ima::new`] backed by a journal and/or a TPM (see [`Backing`]).
    ///
    /// With a TPM, its allocated banks (those the engine can compute) replace
    /// `cfg.banks`. With a journal, its entries are replayed first: the records come back
    /// byte for byte and re-extend the emulated PCRs (not the TPM, which kept its values
    /// across the daemon's restart, as across a kexec), the violation counter and every
    /// committed policy load are restored, and no new boot aggregate is added. The journal
    /// must have been written with the same hash, template, banks, PCR and built-in
    /// policy. A fresh journal gets its configuration entry, then the boot aggregate.
    pub fn with_backing(mut cfg: Config, backing: Backing) -> Result<Ima, String> {
        let Backing {
            journal,
            replay,
            tpm,
        } = backing;
        if let Some(tpm) = &tpm {
            let banks = tpm.banks();
            if banks.is_empty() {
                return Err(format!(
                    "TPM {}: no allocated PCR bank of a known algorithm",
                    tpm.spec()
                ));
            }
            if banks != cfg.banks {
                log::info!(
                    "TPM {}: PCR banks {:?} (replacing {:?})",
                    tpm.spec(),
                    banks,
                    cfg.banks
                );
            }
            cfg.banks = banks;
        }
        let ima = Ima::build(cfg)?;
        let fingerprint = ima.state_fingerprint();
        let where_ = journal
            .as_ref()
            .map(|j| j.path().display().to_string())
            .unwrap_or_default();
        let had_config = !replay.is_empty();
        if had_config {
            ima.replay(replay, &fingerprint)
                .map_err(|e| format!("journal {where_}: {e}"))?;
        }
        {
            let mut store = ima.store.lock();
            store.journal = journal;
            store.tpm = tpm;
        }
        if !had_config {
            ima.journal(&Entry::Config(fingerprint))
                .map_err(|e| format!("journal {where_}: {e}"))?;
        }
        if ima.list.is_empty() {
            // An inactive namespace gets its boot aggregate when it is activated.
            if ima.is_active() {
                ima.start_fresh()?;
            }
        } else {
            // A journal with records was made by an active namespace.
            ima.active.store(true, Ordering::SeqCst);
            ima.check_tpm_pcrs();
        }
        Ok(ima)
    }

    /// Whether the namespace measures, appraises and audits (see [`Config::active`]).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// A write of `1` to `active` (the user-namespace series' `ima_write_active`): the
    /// namespace starts working, beginning its list with the boot aggregate. One-way:
    /// EBUSY once active. EIO (and still inactive) when the boot aggregate cannot be
    /// journaled.
    pub fn activate(&self) -> Result<(), Errno> {
        let _one_at_a_time = self.activation.lock();
        if self.is_active() {
            return Err(Errno::EBUSY);
        }
        if self.list.is_empty() {
            self.add_boot_aggregate().map_err(|e| {
                log::error!("ima: activation: boot_aggregate cannot be journaled: {e}");
                Errno::EIO
            })?;
        }
        self.active.store(true, Ordering::SeqCst);
        self.measure_kernel_version();
        log::info!("ima: namespace activated");
        Ok(())
    }

    /// Stage the next child's initial policy (`policy_for_children`), replacing any.
    pub fn stage_child_policy(&self, text: String) {
        self.child_config.lock().policy = Some(text);
    }

    /// Stage the next child's certificate (`x509_for_children`), replacing any.
    pub fn stage_child_x509(&self, cert: Vec<u8>) {
        self.child_config.lock().x509 = vec![cert];
    }

    /// Stage the next child's options (`kcmd_for_children`), replacing earlier ones as a
    /// new write does in Huawei's series; `kcmd` comes from
    /// [`super::children::parse_kcmd`].
    pub fn stage_child_kcmd(&self, kcmd: Vec<(String, String)>) {
        self.child_config.lock().kcmd = kcmd;
    }

    /// Hand what was staged to the next child and clear it (each child namespace starts
    /// with the configuration staged before it was created).
    pub fn take_child_config(&self) -> ChildConfig {
        std::mem::take(&mut *self.child_config.lock())
    }

    /// What is staged now (not consumed).
    pub fn staged_child_config(&self) -> ChildConfig {
        self.child_config.lock().clone()
    }

    /// The boot aggregate (and the kernel version as critical data) of a fresh list.
    fn start_fresh(&self) -> Result<(), String> {
        self.add_boot_aggregate()
            .map_err(|e| format!("boot_aggregate cannot be journaled: {e}"))?;
        self.measure_kernel_version();
        Ok(())
    }

    /// The options a journal must be replayed with (its first entry).
    fn state_fingerprint(&self) -> String {
        let banks: Vec<String> = self.list_banks.iter().map(|b| b.to_string()).collect();
        format!(
            "hash={} template={} banks={} pcr={} ima_policy={}",
            self.hash,
            self.default_template.display_name(),
            banks.join(","),
            self.cfg.pcr,
            self.cfg.builtin_policy.join("|"),
        )
    }

    /// Append a record restored from a saved list or a journal and re-extend the emulated
    /// PCRs with it (neither journaled nor sent to the TPM).
    fn restore_record(&self, record: Record) {
        let mut store = self.store.lock();
        let extend: Vec<Digest> = (0..self.list_banks.len())
            .map(|i| record.extend_value(i))
            .collect();
        let pcr = record.pcr();
        self.list.append(record);
        store.pcrs.extend(pcr, &extend);
    }

    /// Apply a journal's entries (see [`Ima::with_backing`]).
    fn replay(&self, entries: Vec<Entry>, fingerprint: &str) -> Result<(), String> {
        let mut entries = entries.into_iter().enumerate();
        match entries.next() {
            Some((_, Entry::Config(c))) if c == fingerprint => {}
            Some((_, Entry::Config(c))) => {
                return Err(format!(
                    "written with `{c}`, this daemon runs with `{fingerprint}`: start it \
                     with the same options, or give it another state directory"
                ))
            }
            _ => return Err("does not start with its configuration entry".to_string()),
        }
        let mut templates: HashMap<String, Arc<TemplateDesc>> = HashMap::new();
        for (i, entry) in entries {
            match entry {
                Entry::Config(_) => return Err(format!("entry {i}: a second configuration")),
                Entry::Record {
                    pcr,
                    violation,
                    template,
                    data,
                } => {
                    let t = match templates.get(&template) {
                        Some(t) => Arc::clone(t),
                        None => {
                            let t = TemplateDesc::builtin(&template)
                                .map_or_else(|| TemplateDesc::from_fmt(&template), Ok)
                                .map(Arc::new)
                                .map_err(|e| format!("entry {i}: template {template:?}: {e}"))?;
                            templates.insert(template.clone(), Arc::clone(&t));
                            t
                        }
                    };
                    let fields = t.split_fields(&data);
                    let encoded: usize = fields.iter().map(|(_, d)| 4 + d.len()).sum();
                    if fields.len() != t.fields().len() || encoded != data.len() {
                        return Err(format!(
                            "entry {i}: data does not match template {template}"
                        ));
                    }
                    let record = Record::from_data(pcr, t, data, violation, &self.list_banks);
                    self.restore_record(record);
                }
                Entry::Violation => {
                    self.violations.fetch_add(1, Ordering::Relaxed);
                }
                Entry::Policy(text) => {
                    let first_load = !self.policy.read().custom_loaded;
                    self.replay_policy(&text)
                        .map_err(|e| format!("entry {i}: policy: {e}"))?;
                    if first_load {
                        // Measured at that load; their records are in the journal.
                        self.queued_keys.lock().clear();
                    }
                }
                Entry::Key(der) => {
                    self.keys
                        .write()
                        .add_der(&der)
                        .map_err(|e| format!("entry {i}: key: {e}"))?;
                    if !self.policy.read().custom_loaded {
                        self.queued_keys.lock().push(der);
                    }
                }
            }
        }
        Ok(())
    }

    /// Commit a journaled policy load again, parsed in the same context as the first time.
    fn replay_policy(&self, text: &str) -> Result<(), String> {
        let mut st = self.policy.write();
        let ctx = policy::ParseContext {
            custom_policy_active: st.custom_loaded,
        };
        let mut rules = Vec::new();
        for line in text.lines() {
            match policy::parse_line_in(line, ctx).result {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(e) => return Err(format!("{line:?}: {}", e.reason)),
            }
        }
        if rules.is_empty() {
            return Err("no rule".to_string());
        }
        self.commit_rules(&mut st, rules);
        Ok(())
    }

    /// After a restart with a TPM: its PCRs should still hold what the restored list
    /// replays to; if not (the TPM was reset, or someone else extended them), say so.
    fn check_tpm_pcrs(&self) {
        let mut store = self.store.lock();
        let Store { pcrs, tpm, .. } = &mut *store;
        let Some(tpm) = tpm.as_mut() else {
            return;
        };
        for pcr in pcrs.used() {
            for bank in tpm.banks() {
                let want = pcrs.value(pcr, bank);
                match tpm.pcr_read(pcr, bank) {
                    Ok(have) if have == want => {}
                    Ok(have) => log::warn!(
                        "TPM {}: PCR {pcr} {bank} is {}, the restored list replays to {}: \
                         the TPM was reset or extended by someone else since the journal \
                         was written; a verifier will find the list does not match it",
                        tpm.spec(),
                        have.to_hex(),
                        want.to_hex()
                    ),
                    Err(e) => log::warn!("TPM {}: PCR {pcr} {bank}: {e}", tpm.spec()),
                }
            }
        }
    }

    /// Whether a custom policy has been loaded (the built-in rules no longer apply).
    pub fn custom_policy_loaded(&self) -> bool {
        self.policy.read().custom_loaded
    }

    /// Whether a TPM backs the PCRs (`--tpm`).
    pub fn has_tpm(&self) -> bool {
        self.store.lock().tpm.is_some()
    }

    fn build(cfg: Config) -> Result<Ima, String> {
        if !cfg.hash.is_supported() {
            return Err(format!("ima_hash: {} is not available", cfg.hash));
        }
        let default_template = match TemplateDesc::builtin(&cfg.template) {
            Some(t) => t,
            None => TemplateDesc::from_fmt(&cfg.template)
                .map_err(|e| format!("template {:?}: {e}", cfg.template))?,
        };
        // With the `ima` template only sha1 and md5 are honoured for ima_hash (hash_setup).
        let hash = if default_template.name() == "ima"
            && !matches!(cfg.hash, HashAlgo::Sha1 | HashAlgo::Md5)
        {
            COMPILED_DEFAULT_HASH
        } else {
            cfg.hash
        };
        let buf_template =
            TemplateDesc::builtin("ima-buf").ok_or_else(|| "no ima-buf template".to_string())?;

        let mut file_banks: Vec<HashAlgo> = Vec::new();
        for &b in &cfg.banks {
            // Newer kernels skip TPM banks without a crypto transform (IMA-SPEC 1.2, 5).
            if b.is_supported() && !file_banks.contains(&b) {
                file_banks.push(b);
            }
        }
        if !file_banks.contains(&HashAlgo::Sha1) {
            file_banks.push(HashAlgo::Sha1);
        }
        let mut list_banks = file_banks.clone();
        if !list_banks.contains(&hash) {
            list_banks.push(hash);
        }
        let hash_slot = list_banks
            .iter()
            .position(|&b| b == hash)
            .ok_or_else(|| "ima_hash bank missing".to_string())?;

        let names: Vec<&str> = cfg.builtin_policy.iter().map(String::as_str).collect();
        let builtin = policy::builtin(&names)?;

        let audit =
            AuditSink::new(cfg.audit_file.as_deref()).map_err(|e| format!("audit file: {e}"))?;
        audit.set_info_enabled(cfg.integrity_audit);

        Ok(Ima {
            hash,
            default_template: Arc::new(default_template),
            buf_template: Arc::new(buf_template),
            rule_templates: Mutex::new(HashMap::new()),
            list: MeasurementList::new(&list_banks),
            store: Mutex::new(Store {
                pcrs: PcrBanks::new(&list_banks),
                journal: None,
                tpm: None,
            }),
            file_banks,
            list_banks,
            hash_slot,
            policy: RwLock::new(PolicyState {
                signed_policy_required: Policy::new(builtin.rules.clone()).requires_signed_policy(),
                active: Arc::new(Policy::new(builtin.rules)),
                custom_loaded: false,
                busy: false,
                file: PolicyFileState::Writable,
                fail_securely: builtin.fail_securely,
            }),
            violations: AtomicU64::new(0),
            cache: MeasureCache::default(),
            audit,
            keys: RwLock::new(Keyring::new()),
            queued_keys: Mutex::new(Vec::new()),
            active: AtomicBool::new(cfg.active),
            activation: Mutex::new(()),
            child_config: Mutex::new(ChildConfig::default()),
            cfg,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The `ima_hash` algorithm in force.
    pub fn hash_algo(&self) -> HashAlgo {
        self.hash
    }

    /// The default template (`ima_template=` / `ima_template_fmt=`).
    pub fn default_template(&self) -> &Arc<TemplateDesc> {
        &self.default_template
    }

    pub fn list(&self) -> &MeasurementList {
        &self.list
    }

    /// Banks with `ascii_/binary_runtime_measurements_<alg>` files, in creation order.
    pub fn file_banks(&self) -> Vec<HashAlgo> {
        self.file_banks.clone()
    }

    /// The `violations` counter.
    pub fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    /// Every PCR IMA extended, for every bank: (pcr, bank, value).
    pub fn pcr_values(&self) -> Vec<(u32, HashAlgo, Digest)> {
        let store = self.store.lock();
        let mut out = Vec::new();
        for pcr in store.pcrs.used() {
            for &bank in &self.list_banks {
                out.push((pcr, bank, store.pcrs.value(pcr, bank)));
            }
        }
        out
    }

    /// Read-back text of the active policy (IMA-SPEC 2.7).
    pub fn policy_text(&self) -> String {
        self.policy.read().active.to_string()
    }

    /// The active policy.
    pub fn active_policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().active)
    }

    /// Whether `fail_securely` was given in `ima_policy=`.
    pub fn fail_securely(&self) -> bool {
        self.policy.read().fail_securely
    }

    pub fn policy_file_state(&self) -> PolicyFileState {
        self.policy.read().file
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// The per-file cache (for diagnostics and tests).
    pub fn cache(&self) -> &MeasureCache {
        &self.cache
    }

    // ---------------------------------------------------------------- policy file (2.2-2.5)

    /// `ima_open_policy`.
    pub fn open_policy(
        &self,
        access: PolicyAccess,
        caller_has_cap_sys_admin: bool,
    ) -> Result<PolicyHandle, Errno> {
        let mut st = self.policy.write();
        if st.file == PolicyFileState::Removed {
            return Err(Errno::ENOENT);
        }
        let write = match access {
            PolicyAccess::Write => true,
            PolicyAccess::Read | PolicyAccess::ReadWrite => {
                if !self.cfg.read_policy || access == PolicyAccess::ReadWrite {
                    return Err(Errno::EACCES);
                }
                if !caller_has_cap_sys_admin {
                    return Err(Errno::EPERM);
                }
                false
            }
        };
        if write {
            if st.busy {
                return Err(Errno::EBUSY);
            }
            st.busy = true;
        }
        Ok(PolicyHandle {
            write,
            rules: Vec::new(),
            lines: Vec::new(),
            valid: true,
            pid: 0,
            uid: 0,
            comm: String::new(),
        })
    }

    /// `ima_write_policy`: one write(2) on the policy file at `offset`. Returns the number
    /// of bytes the kernel reports consumed (IMA-SPEC 2.3 quirks included). `loader` reads
    /// the file named by a `/path` write (seen without `security.ima`: use
    /// [`Ima::policy_write_file`] when signed policies must verify).
    pub fn policy_write(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<usize, Errno> {
        self.policy_write_file(h, offset, data, &|path| {
            loader(path).map(|content| PolicyFile {
                content,
                ima_xattr: None,
            })
        })
    }

    /// [`Ima::policy_write`] with a loader that also returns the policy file's
    /// `security.ima`, so `appraise func=POLICY_CHECK` rules can verify its signature.
    pub fn policy_write_file(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        if !h.write {
            return Err(Errno(libc::EBADF));
        }
        let result = self.policy_write_inner(h, offset, data, loader);
        if result.is_err() {
            h.valid = false;
        }
        result
    }

    fn policy_write_inner(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        // No partial writes.
        if offset != 0 {
            return Err(Errno::EINVAL);
        }
        // PAGE_SIZE - 1 bytes at most, then treated as a NUL-terminated string.
        let data = &data[..data.len().min(4095)];
        let data = match data.iter().position(|&b| b == 0) {
            Some(n) => &data[..n],
            None => data,
        };
        if data.first() == Some(&b'/') {
            return self.load_policy_file(h, data, loader);
        }
        if self.policy.read().signed_policy_required {
            log::error!("signed policy file (specified as an absolute pathname) required");
            self.audit.integrity(
                AUDIT_INTEGRITY_STATUS,
                &|| h.task(),
                "policy_update",
                "signed policy required",
                None,
                None,
                1,
                false,
            );
            return Err(Errno::EACCES);
        }
        let line = match data.iter().position(|&b| b == b'\n') {
            Some(n) => &data[..n],
            None => data,
        };
        self.parse_add_rule(h, line)
    }

    /// `ima_parse_add_rule` for one line (without its newline): returns `len + 1`.
    fn parse_add_rule(&self, h: &mut PolicyHandle, line: &[u8]) -> Result<usize, Errno> {
        let len = line.len() + 1;
        let text = String::from_utf8_lossy(line);
        let trimmed = text.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(len);
        }
        // Unresolvable LSM labels are accepted (never matching) once a custom policy is active.
        let ctx = policy::ParseContext {
            custom_policy_active: self.policy.read().custom_loaded,
        };
        let parsed = policy::parse_line_in(trimmed, ctx);
        if let Some(body) = &parsed.audit {
            self.audit.emit(AUDIT_INTEGRITY_POLICY_RULE, body);
        }
        match parsed.result {
            Ok(Some(rule)) => {
                if let Some(max) = self.cfg.max_rules {
                    let st = self.policy.read();
                    let in_force = if st.custom_loaded {
                        st.active.rules().len()
                    } else {
                        0
                    };
                    drop(st);
                    if in_force + h.rules.len() >= max {
                        log::warn!("ima: policy rule refused: the namespace holds {max} rules");
                        self.audit.integrity(
                            AUDIT_INTEGRITY_STATUS,
                            &|| h.task(),
                            "update_policy",
                            "-ENOMEM",
                            None,
                            None,
                            -libc::ENOMEM,
                            false,
                        );
                        h.valid = false;
                        return Err(Errno::ENOMEM);
                    }
                }
                h.rules.push(rule);
                h.lines.push(trimmed.to_string());
                Ok(len)
            }
            Ok(None) => Ok(len),
            Err(e) => {
                log::debug!("policy rule rejected: {}", e.reason);
                self.audit.integrity(
                    AUDIT_INTEGRITY_STATUS,
                    &|| h.task(),
                    "update_policy",
                    "invalid-policy",
                    None,
                    None,
                    -e.errno.0,
                    false,
                );
                Err(e.errno)
            }
        }
    }

    /// `ima_read_policy`: a write starting with `/` names a policy file to load.
    fn load_policy_file(
        &self,
        h: &mut PolicyHandle,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        let written = data.len();
        let path_bytes = match data.iter().position(|&b| b == b'\n') {
            Some(n) => &data[..n],
            None => data,
        };
        let path = String::from_utf8_lossy(path_bytes).into_owned();
        let file = loader(&path).map_err(|e| {
            log::error!("Unable to open file: {path} ({})", -errno_of(&e).0);
            errno_of(&e)
        })?;
        // The kernel measures and appraises the file as it reads it (READING_POLICY).
        let subject = Subject {
            uid: h.uid,
            euid: h.uid,
            suid: h.uid,
            ..Subject::default()
        };
        self.process_read_buffer(
            Func::PolicyCheck,
            path.as_bytes(),
            &file,
            &subject,
            &h.task(),
        )
        .inspect_err(|e| log::error!("Unable to open file: {path} ({})", -e.0))?;
        let content = file.content;

        // Every line's `len + 1` is subtracted from the size; anything left is EINVAL.
        let mut remaining = content.len() as i64;
        let mut rest: &[u8] = &content;
        while remaining > 0 {
            let (line, next, last) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => (&rest[..n], &rest[n + 1..], false),
                None => (rest, &rest[rest.len()..], true),
            };
            // A NUL inside a line ends the string the kernel sees.
            let line = match line.iter().position(|&b| b == 0) {
                Some(n) => &line[..n],
                None => line,
            };
            let n = self.parse_add_rule(h, line)?;
            remaining -= n as i64;
            rest = next;
            if last {
                break;
            }
        }
        if remaining != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(written)
    }

    /// `ima_release_policy`: commit or discard a write session. Returns whether a write
    /// session's rules were committed (close(2) itself always succeeds).
    pub fn policy_release(&self, h: PolicyHandle) -> bool {
        if !h.write {
            return false;
        }
        let mut valid = h.valid;
        // ima_check_policy: a session that collected no rule fails.
        if valid && h.rules.is_empty() {
            valid = false;
        }
        // Journaled before it is committed; one write session at a time (busy), so journal
        // order is commit order. A load that cannot be journaled fails.
        if valid {
            if let Err(errno) = self.journal(&Entry::Policy(h.lines.join("\n"))) {
                log::error!("ima: policy update cannot be journaled: {errno}");
                valid = false;
            }
        }
        let cause = if valid { "completed" } else { "failed" };
        log::info!("ima: policy update {cause}");
        self.audit.integrity(
            AUDIT_INTEGRITY_STATUS,
            &|| h.task(),
            "policy_update",
            cause,
            None,
            None,
            i32::from(!valid),
            false,
        );
        let mut st = self.policy.write();
        if !valid {
            st.busy = false;
            return false;
        }
        let first_load = self.commit_rules(&mut st, h.rules);
        drop(st);
        if first_load {
            // ima_process_queued_keys.
            let queued = std::mem::take(&mut *self.queued_keys.lock());
            let subject = Subject::default();
            for der in queued {
                self.measure_buffer(
                    Func::KeyCheck,
                    KEYRING_NAME,
                    &der,
                    Some(KEYRING_NAME),
                    &subject,
                );
            }
        }
        true
    }

    /// `ima_update_policy`: the first load replaces the built-in rules, later ones append.
    /// Returns whether this was the first custom policy.
    fn commit_rules(&self, st: &mut PolicyState, rules: Vec<Rule>) -> bool {
        let mut next = if st.custom_loaded {
            (*st.active).clone()
        } else {
            Policy::new(Vec::new())
        };
        next.extend(rules);
        st.signed_policy_required |= next.requires_signed_policy();
        st.active = Arc::new(next);
        let first_load = !st.custom_loaded;
        st.custom_loaded = true;
        match (self.cfg.write_policy, self.cfg.read_policy) {
            (true, _) => st.busy = false,
            // The busy flag stays set: later write opens get EBUSY.
            (false, true) => {
                st.busy = true;
                st.file = PolicyFileState::ReadOnly;
            }
            (false, false) => st.file = PolicyFileState::Removed,
        }
        first_load
    }

    /// Load a whole policy text the way `cat FILE > .../ima/policy` does: one write
    /// session, each write(2) at offset 0 with what the previous one left, committed at
    /// close. Lines starting with `/` load that file through `loader`. On failure nothing is
    /// committed and the error names the first rejected line (1-based; 0 when the session
    /// could not be opened or held no rule).
    pub fn load_policy_text(
        &self,
        text: &str,
        loader: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<(), PolicyLoadError> {
        let mut h = self
            .open_policy(PolicyAccess::Write, true)
            .map_err(|errno| PolicyLoadError { line: 0, errno })?;
        let mut rest = text.as_bytes();
        let mut line = 1;
        let mut first_error = None;
        while !rest.is_empty() {
            match self.policy_write(&mut h, 0, rest, loader) {
                Ok(n) => rest = &rest[n.min(rest.len())..],
                Err(errno) => {
                    first_error.get_or_insert(PolicyLoadError { line, errno });
                    // Skip the bad line as a writer that keeps going would.
                    let n = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                    rest = &rest[n..];
                }
            }
            line += 1;
        }
        let committed = self.policy_release(h);
        match first_error {
            Some(e) => Err(e),
            None if !committed => Err(PolicyLoadError {
                line: 0,
                errno: Errno::EINVAL,
            }),
            None => Ok(()),
        }
    }

    // ---------------------------------------------------------------- measurement

    /// The action kinds worth asking the policy about (`ima_policy_flag`).
    fn wanted_actions(&self, policy: &Policy) -> Actions {
        let mut wanted = policy.actions_used();
        if self.cfg.appraise == AppraiseMode::Off {
            wanted.remove(Actions::APPRAISE);
        }
        wanted
    }

    fn template_named(&self, name: Option<&str>, default: &Arc<TemplateDesc>) -> Arc<TemplateDesc> {
        let Some(name) = name else {
            return Arc::clone(default);
        };
        let mut cache = self.rule_templates.lock();
        if let Some(t) = cache.get(name) {
            return Arc::clone(t);
        }
        let t = match TemplateDesc::builtin(name) {
            Some(t) => Arc::new(t),
            // The parser only accepts known templates; fall back rather than fail a hook.
            None => Arc::clone(default),
        };
        cache.insert(name.to_string(), Arc::clone(&t));
        t
    }

    /// Append `record` and extend the PCRs, unless a record with the same template digest
    /// already exists in that PCR (`ima_add_template_entry`; violations are never
    /// suppressed). Returns whether it was added; `Err` when it could not be journaled
    /// (`--state`): then it is not in the list either, and the measurement failed.
    fn add_entry<'t>(
        &self,
        record: Record,
        violation: bool,
        op: &str,
        task: &dyn Fn() -> AuditTask<'t>,
        name: &[u8],
        inode: Option<AuditInode<'_>>,
    ) -> Result<bool, Errno> {
        let mut tpm_error = None;
        let outcome = {
            let mut store = self.store.lock();
            let pcr = record.pcr();
            let digest = record.digest(self.hash_slot);
            if !violation && self.list.contains_digest(pcr, self.hash_slot, &digest) {
                Ok(false)
            } else if self
                .cfg
                .max_list_bytes
                .is_some_and(|max| self.list.view_len(ViewKind::Binary, 0) >= max)
            {
                Err(Errno::ENOMEM)
            } else if let Err(errno) = store
                .journal
                .as_mut()
                .map_or(Ok(()), |j| j.append_record(&record))
            {
                Err(errno)
            } else {
                let extend: Vec<Digest> = (0..self.list_banks.len())
                    .map(|i| record.extend_value(i))
                    .collect();
                self.list.append(record);
                store.pcrs.extend(pcr, &extend);
                // ima_pcr_extend: a TPM failure is logged and audited; the entry stays and
                // the emulated banks stay authoritative.
                if let Some(tpm) = store.tpm.as_mut() {
                    if let Err(e) = tpm.pcr_extend(pcr, &extend) {
                        log::error!("Error Communicating to TPM chip, result: {e}");
                        tpm_error = Some(e.code());
                    }
                }
                Ok(true)
            }
        };
        let tpm_cause;
        let (cause, result, info) = match (&outcome, tpm_error) {
            (Ok(true), None) => ("hash_added", 0, true),
            (Ok(true), Some(code)) => {
                tpm_cause = format!("TPM_error({code})");
                (tpm_cause.as_str(), 0, false)
            }
            (Ok(false), _) => ("hash_exists", -libc::EEXIST, true),
            (Err(errno), _) if *errno == Errno::ENOMEM => {
                log::error!(
                    "ima: measurement of {:?} not recorded: the list is at its limit",
                    String::from_utf8_lossy(name)
                );
                ("ENOMEM", -errno.0, false)
            }
            (Err(errno), _) => {
                log::error!(
                    "ima: measurement of {:?} not recorded: journal: {errno}",
                    String::from_utf8_lossy(name)
                );
                ("journal_error", -errno.0, false)
            }
        };
        self.audit.integrity(
            AUDIT_INTEGRITY_PCR,
            task,
            op,
            cause,
            Some(name),
            inode,
            result,
            info,
        );
        outcome
    }

    /// Journal `entry` (no-op without `--state`), under the lock that orders the list.
    fn journal(&self, entry: &Entry) -> Result<(), Errno> {
        match self.store.lock().journal.as_mut() {
            Some(j) => j.append(entry),
            None => Ok(()),
        }
    }

    /// `ima_add_boot_aggregate` (IMA-SPEC 5.5): without a TPM a zero digest of `ima_hash`;
    /// with one, `ima_calc_boot_aggregate` over its PCRs 0-7 (0-9 for a non-sha1 bank).
    fn add_boot_aggregate(&self) -> Result<bool, Errno> {
        let ev = {
            let mut store = self.store.lock();
            match store.tpm.as_mut() {
                None => super::pcr::boot_aggregate_event(self.hash),
                Some(tpm) => {
                    let aggregate = tpm.boot_aggregate(self.hash).unwrap_or_else(|e| {
                        log::error!("ima: boot aggregate: {e}");
                        None
                    });
                    // The `ima` template's `d` gets the sha1 aggregate when the TPM has sha1.
                    let sha1 = if tpm.banks().contains(&HashAlgo::Sha1) {
                        tpm.aggregate_of(HashAlgo::Sha1).ok()
                    } else {
                        None
                    };
                    match aggregate {
                        Some(a) => super::pcr::boot_aggregate_event_tpm(self.hash, a, sha1),
                        None => super::pcr::boot_aggregate_event(self.hash),
                    }
                }
            }
        };
        let name = ev.name;
        let record = Record::new(
            self.cfg.pcr,
            Arc::clone(&self.default_template),
            &ev,
            &self.list_banks,
        );
        let task = AuditTask {
            comm: b"swapper/0",
            ..AuditTask::default()
        };
        self.add_entry(
            record,
            false,
            "add_boot_aggregate",
            &|| task.clone(),
            name,
            None,
        )
    }

    /// `ima_add_violation`: count it, append a zero entry (default template and PCR) that
    /// extends with 0xff, and audit `invalid_pcr`.
    fn add_violation(&self, ev: &FileEvent<'_>, cause: &str) {
        // Counted only once journaled (nothing is visible that a restart would lose).
        match self.journal(&Entry::Violation) {
            Ok(()) => {
                self.violations.fetch_add(1, Ordering::Relaxed);
            }
            Err(errno) => log::error!("ima: violation not counted: journal: {errno}"),
        }
        let data = EventData {
            violation: true,
            hash_algo: self.hash,
            name: ev.path,
            iuid: Some(ev.owner),
            igid: Some(ev.group),
            imode: Some((ev.mode & 0xffff) as u16),
            ..EventData::default()
        };
        let record = Record::new(
            self.cfg.pcr,
            Arc::clone(&self.default_template),
            &data,
            &self.list_banks,
        );
        let _ = self.add_entry(
            record,
            true,
            "add_template_measure",
            &|| ev.task(),
            ev.path,
            Some(ev.inode()),
        );
        self.audit.integrity(
            AUDIT_INTEGRITY_PCR,
            &|| ev.task(),
            "invalid_pcr",
            cause,
            Some(ev.path),
            Some(ev.inode()),
            0,
            false,
        );
    }

    /// Hook entry point (`process_measurement`). For FILE_CHECK the event is also the open
    /// of `ev.id` (reader or writer): call [`Ima::file_closed`] once when that open is
    /// released. If this returns `Err`, the open was refused and is already released.
    ///
    /// `file` must be readable (the file system opens its own read-only descriptor when the
    /// caller's is write-only); it is read with `pread` only.
    pub fn process_file(&self, ev: &FileEvent<'_>, file: &File) -> Result<(), Errno> {
        self.process_file_with(ev, file).map(|_| ())
    }

    /// [`Ima::process_file`], also returning what the file system must do to the file
    /// (appraisal in fix mode rewrites `security.ima`).
    pub fn process_file_with(&self, ev: &FileEvent<'_>, file: &File) -> Result<FileOutcome, Errno> {
        let mut outcome = FileOutcome::default();
        if !self.is_active() {
            // Nothing of its own yet; ancestors still see the access.
            return Ok(outcome);
        }
        let result = self.process_file_inner(ev, file, &mut outcome);
        if result.is_err() && ev.func == Func::FileCheck {
            self.file_closed(ev.id, ev.opened_for_write, ev.version);
        }
        result.map(|()| outcome)
    }

    fn process_file_inner(
        &self,
        ev: &FileEvent<'_>,
        file: &File,
        outcome: &mut FileOutcome,
    ) -> Result<(), Errno> {
        let is_open = ev.func == Func::FileCheck;
        // The open counts as a reader or writer whatever the policy says (i_readcount /
        // i_writecount are kept by the VFS, not by IMA).
        let state_arc = if is_open {
            let s = self.cache.get(ev.id);
            s.lock().open(ev.opened_for_write, ev.created);
            Some(s)
        } else {
            None
        };

        let policy = self.active_policy();
        let wanted = self.wanted_actions(&policy);
        if wanted.is_empty() {
            return Ok(());
        }
        let object = Object {
            uid: ev.owner,
            gid: ev.group,
            fsmagic: ev.fsmagic,
            fsname: ev.fsname,
            fs_subtype: "",
            fsuuid: ev.fsuuid,
        };
        let subject = if policy.tests_subject() {
            ev.task.subject()
        } else {
            Subject::default()
        };
        let input = MatchInput {
            func: ev.func,
            mask: ev.mask,
            subject: &subject,
            object: Some(&object),
            keyring: None,
            label: None,
        };
        let decision = policy.evaluate(&input, wanted);
        let action = decision.actions;
        let violation_check = matches!(
            ev.func,
            Func::FileCheck | Func::MmapCheck | Func::MmapCheckReqprot
        ) && wanted.contains(Actions::MEASURE)
            && (action.contains(Actions::MEASURE) || ev.opened_for_write);
        if action.is_empty() && !violation_check {
            return Ok(());
        }

        let state_arc = match state_arc {
            Some(s) => s,
            None => {
                // A writer-side check needs no state for a file IMA never looked at.
                if action.is_empty() && self.cache.find(ev.id).is_none() {
                    return Ok(());
                }
                self.cache.get(ev.id)
            }
        };
        let mut state = state_arc.lock();

        if violation_check {
            let v = state.violation_check(
                ev.opened_for_write,
                action.contains(Actions::MEASURE),
                self.cfg.violation_limit,
            );
            if v.tomtou {
                self.add_violation(ev, "ToMToU");
            }
            if v.open_writers {
                self.add_violation(ev, "open_writers");
            }
        }
        if action.is_empty() {
            return Ok(());
        }
        state.revalidate(&ev.version);
        let result = self.act_on_file(ev, file, &decision, &mut state, outcome);

        // `out_locked` / `out` of process_measurement.
        if action.contains(Actions::APPRAISE) {
            let writes_signed = || {
                ev.mask & MAY_WRITE != 0
                    && !state.is_new_file()
                    && ev.ima_xattr.get().is_some_and(xattr::is_signature)
            };
            let denied = result.is_err() || writes_signed();
            if denied && self.cfg.appraise == AppraiseMode::Enforce {
                return Err(Errno::EACCES);
            }
            if ev.opened_for_write {
                state.request_xattr_update();
            }
        }
        Ok(())
    }

    /// The part of `process_measurement` after the violation check, under the file's lock.
    /// `Err` means appraisal failed (or could not be done) for an appraised access.
    fn act_on_file(
        &self,
        ev: &FileEvent<'_>,
        file: &File,
        decision: &Decision,
        state: &mut FileState,
        outcome: &mut FileOutcome,
    ) -> Result<(), ()> {
        let pcr = decision.pcr.unwrap_or(self.cfg.pcr);
        let template = self.template_named(decision.template.as_deref(), &self.default_template);
        let measure = decision.actions.contains(Actions::MEASURE) && !state.measured_into(pcr);
        let audit = decision.actions.contains(Actions::AUDIT) && !state.audited();
        let must_appraise = decision.actions.contains(Actions::APPRAISE);
        let class = appraise_class(ev.func);
        let cached = if must_appraise {
            state.appraisal(class)
        } else {
            None
        };
        let appraise = must_appraise && cached.is_none();
        let hash_rule = decision.actions.contains(Actions::HASH);
        if appraise || hash_rule {
            let signed = ev.ima_xattr.get().is_some_and(xattr::is_signature);
            state.set_digsig(signed);
            // HASH: `security.ima` gets the file's hash when the last writer closes (unless
            // the file is signed); nothing is computed now.
            if hash_rule && !state.hashed() && !signed {
                state.set_hashed();
            }
        }
        if !measure && !audit && !appraise {
            // Nothing to do: return the cached appraisal status.
            return match cached {
                Some(AppraisalStatus::Fail(_)) => Err(()),
                _ => Ok(()),
            };
        }

        let xattr = if must_appraise || template.name() != "ima" {
            ev.ima_xattr.get()
        } else {
            None
        };
        let algo = xattr.and_then(xattr::hash_algo_of).unwrap_or(self.hash);
        let digest = match state.digest(file, algo, &ev.version) {
            Ok(d) => d,
            Err(e) => {
                let errno = errno_of(&e);
                self.audit.integrity(
                    AUDIT_INTEGRITY_DATA,
                    &|| ev.task(),
                    "collect_data",
                    appraise::CAUSE_COLLECT_FAILED,
                    Some(ev.file_name()),
                    Some(ev.inode()),
                    -errno.0,
                    false,
                );
                return if must_appraise { Err(()) } else { Ok(()) };
            }
        };

        if measure {
            let legacy = if needs_legacy_digest(&template, &digest) {
                let alt = if self.hash == HashAlgo::Md5 {
                    HashAlgo::Md5
                } else {
                    HashAlgo::Sha1
                };
                state.digest(file, alt, &ev.version).ok()
            } else {
                None
            };
            let data = EventData {
                digest: Some(digest),
                hash_algo: self.hash,
                sha1_or_md5_digest: legacy,
                name: ev.path,
                ima_xattr: xattr,
                iuid: Some(ev.owner),
                igid: Some(ev.group),
                imode: Some((ev.mode & 0xffff) as u16),
                ..EventData::default()
            };
            let record = Record::new(pcr, template, &data, &self.list_banks);
            let stored = self.add_entry(
                record,
                false,
                "add_template_measure",
                &|| ev.task(),
                ev.path,
                Some(ev.inode()),
            );
            // Set also when the entry was a duplicate (-EEXIST); a failed store is retried
            // at the next access (ima_store_measurement).
            if stored.is_ok() {
                state.set_measured(pcr);
            }
        }

        let mut result = match cached {
            Some(AppraisalStatus::Fail(_)) => Err(()),
            _ => Ok(()),
        };
        if appraise {
            let status = self.appraise_file(ev, decision, state, digest, outcome);
            state.set_appraisal(class, status);
            if status != AppraisalStatus::Pass {
                result = Err(());
            }
        }

        if audit {
            let body = audit::audit_rule_message(&ev.task(), ev.path, &digest);
            self.audit.emit(AUDIT_INTEGRITY_RULE, &body);
            state.set_audited();
        }
        result
    }

    /// `ima_appraise_measurement`: the verdict on `security.ima` for `digest`, audited on
    /// failure; fix mode repairs hashes (the file system writes `outcome.set_ima_xattr`).
    fn appraise_file(
        &self,
        ev: &FileEvent<'_>,
        decision: &Decision,
        state: &FileState,
        digest: Digest,
        outcome: &mut FileOutcome,
    ) -> AppraisalStatus {
        let req = AppraiseRequirements {
            signature_required: decision.signature_required,
            sigv3_required: decision.sigv3_required,
            modsig_allowed: decision.modsig_allowed,
            appraise_algos: decision.appraise_algos,
            ima_hash: self.hash,
            new_file: state.is_new_file() || ev.created,
            file_size: ev.version.size,
        };
        let keys = self.keys.read();
        let verdict = appraise::appraise(
            ev.ima_xattr.get(),
            |algo| (algo == digest.algo()).then_some(digest),
            &req,
            &keys,
        );
        drop(keys);
        match verdict {
            Verdict::Pass { .. } => AppraisalStatus::Pass,
            Verdict::Fail { cause, fixable } => {
                let fixed = fixable && self.cfg.appraise == AppraiseMode::Fix;
                if fixed {
                    outcome.set_ima_xattr = Some(xattr::encode_digest_xattr(&digest));
                }
                self.audit.integrity(
                    AUDIT_INTEGRITY_DATA,
                    &|| ev.task(),
                    verdict.op().unwrap_or("appraise_data"),
                    cause,
                    Some(ev.path),
                    Some(ev.inode()),
                    -libc::EINVAL,
                    false,
                );
                if fixed {
                    AppraisalStatus::Pass
                } else {
                    AppraisalStatus::Fail(cause)
                }
            }
        }
    }

    /// Release of one open registered by a FILE_CHECK [`Ima::process_file`]
    /// (`ima_file_free`): the last writer's close of a changed or new file resets its state.
    pub fn file_closed(&self, id: FileId, opened_for_write: bool, version_now: FileVersion) {
        let _ = self.file_closed_with(id, opened_for_write, version_now, None);
    }

    /// [`Ima::file_closed`] with the file at hand: when the last writer closes a changed
    /// file that an appraise or `hash` rule covers (`ima_update_xattr`), returns the
    /// `security.ima` value the file system must write (the new content's `ima_hash`).
    pub fn file_closed_with(
        &self,
        id: FileId,
        opened_for_write: bool,
        version_now: FileVersion,
        file: Option<&File>,
    ) -> Option<Vec<u8>> {
        let state = self.cache.find(id)?;
        let mut state = state.lock();
        let out = state.close(opened_for_write, &version_now);
        if !out.update_xattr {
            return None;
        }
        let digest = state.digest(file?, self.hash, &version_now).ok()?;
        Some(xattr::encode_digest_xattr(&digest))
    }

    /// `security.ima` of a file was set or removed (`ima_inode_setxattr` /
    /// `ima_inode_removexattr`): its appraisal and measurement state is reset.
    pub fn xattr_changed(&self, id: FileId) {
        if let Some(state) = self.cache.find(id) {
            state.lock().xattr_changed();
        }
    }

    /// A file's mode or owner changed (`ima_inode_post_setattr`): its appraisal results are
    /// forgotten so the next access is appraised again.
    pub fn attr_changed(&self, id: FileId) {
        if let Some(state) = self.cache.find(id) {
            state.lock().attr_changed();
        }
    }

    /// `validate_hash_algo` for a write of `security.ima` by `path`: EINVAL for an empty or
    /// unknown-type value, EACCES (audited `set_data`) for an algorithm the policy's
    /// SETXATTR_CHECK rule does not allow, or, without such a rule, one we cannot compute.
    pub fn check_ima_xattr_write(
        &self,
        value: &[u8],
        path: &[u8],
        task: &AuditTask<'_>,
    ) -> Result<(), Errno> {
        if !self.is_active() {
            return Ok(());
        }
        // IMA_XATTR_LAST: types 0x01..=0x06 are known.
        if value.is_empty() || value[0] >= 0x07 {
            return Err(Errno::EINVAL);
        }
        let algo = xattr::hash_algo_of(value).unwrap_or(self.hash);
        let cause = match self.active_policy().setxattr_allowed_algos() {
            Some(mask) if mask != 0 => {
                if mask & (1u64 << algo.id()) != 0 {
                    return Ok(());
                }
                "denied-hash-algorithm"
            }
            _ => {
                if algo == self.hash || algo.is_supported() {
                    return Ok(());
                }
                "unavailable-hash-algorithm"
            }
        };
        self.audit.integrity(
            AUDIT_INTEGRITY_DATA,
            &|| task.clone(),
            "set_data",
            cause,
            Some(path),
            None,
            -libc::EACCES,
            false,
        );
        Err(Errno::EACCES)
    }

    // ---------------------------------------------------------------- keys

    /// The IMA keyring (`_ima`) used for appraisal.
    pub fn keyring(&self) -> parking_lot::RwLockReadGuard<'_, Keyring> {
        self.keys.read()
    }

    /// Add certificates (DER or PEM bytes) to the IMA keyring. Each added key is measured
    /// as KEY_CHECK (event name `_ima`, buffer = DER) when the policy asks; keys added
    /// before the first custom policy is loaded are measured at that load, as the kernel
    /// does with queued early-boot keys.
    pub fn add_keys(&self, bytes: &[u8], subject: &Subject) -> Result<Vec<KeyId>, KeyError> {
        let ids = {
            let mut keys = self.keys.write();
            // Parsed aside first: each new certificate is journaled before it is usable.
            let mut parsed = Keyring::new();
            parsed.add_bytes(bytes)?;
            for key in parsed.keys() {
                if !keys.keys().iter().any(|k| k.der() == key.der()) {
                    self.journal(&Entry::Key(key.der().to_vec()))
                        .map_err(KeyError::Journal)?;
                    keys.add_der(key.der())?;
                }
            }
            keys.add_bytes(bytes)?
        };
        let ders: Vec<Vec<u8>> = {
            let keys = self.keys.read();
            ids.iter()
                .filter_map(|id| keys.find(*id).map(|k| k.der().to_vec()))
                .collect()
        };
        let queue = !self.policy.read().custom_loaded;
        if queue {
            self.queued_keys.lock().extend(ders);
        } else {
            for der in ders {
                self.measure_buffer(
                    Func::KeyCheck,
                    KEYRING_NAME,
                    &der,
                    Some(KEYRING_NAME),
                    subject,
                );
            }
        }
        Ok(ids)
    }

    /// A file the "kernel" reads whole (the policy file of a `/path` write; READING_POLICY
    /// in `ima_post_read_file`): measured like a file (default or rule template), then
    /// appraised against its `security.ima`. `Err(EACCES)` when enforced appraisal fails.
    fn process_read_buffer(
        &self,
        func: Func,
        name: &[u8],
        file: &PolicyFile,
        subject: &Subject,
        task: &AuditTask<'_>,
    ) -> Result<(), Errno> {
        let policy = self.active_policy();
        let wanted = self.wanted_actions(&policy) & (Actions::MEASURE | Actions::APPRAISE);
        if wanted.is_empty() {
            return Ok(());
        }
        let input = MatchInput {
            func,
            mask: MAY_READ,
            subject,
            object: None,
            keyring: None,
            label: None,
        };
        let decision = policy.evaluate(&input, wanted);
        let measure = decision.actions.contains(Actions::MEASURE);
        let must_appraise = decision.actions.contains(Actions::APPRAISE);
        if !measure && !must_appraise {
            return Ok(());
        }
        let template = self.template_named(decision.template.as_deref(), &self.default_template);
        let xattr = file.ima_xattr.as_deref();
        let algo = if must_appraise || template.name() != "ima" {
            xattr.and_then(xattr::hash_algo_of)
        } else {
            None
        }
        .unwrap_or(self.hash);
        let digest = algo.digest(&file.content);
        if measure {
            if let Some(digest) = digest {
                let legacy = if needs_legacy_digest(&template, &digest) {
                    HashAlgo::Sha1.digest(&file.content)
                } else {
                    None
                };
                let data = EventData {
                    digest: Some(digest),
                    hash_algo: self.hash,
                    sha1_or_md5_digest: legacy,
                    name,
                    ima_xattr: xattr,
                    ..EventData::default()
                };
                let pcr = decision.pcr.unwrap_or(self.cfg.pcr);
                let record = Record::new(pcr, template, &data, &self.list_banks);
                let _ = self.add_entry(
                    record,
                    false,
                    "add_template_measure",
                    &|| task.clone(),
                    name,
                    None,
                );
            }
        }
        if !must_appraise {
            return Ok(());
        }
        let req = AppraiseRequirements {
            signature_required: decision.signature_required,
            sigv3_required: decision.sigv3_required,
            modsig_allowed: decision.modsig_allowed,
            appraise_algos: decision.appraise_algos,
            ima_hash: self.hash,
            new_file: false,
            file_size: file.content.len() as u64,
        };
        let verdict = {
            let keys = self.keys.read();
            appraise::appraise(
                xattr,
                |a| (a == algo).then_some(digest).flatten(),
                &req,
                &keys,
            )
        };
        let Verdict::Fail { cause, .. } = verdict else {
            return Ok(());
        };
        // Fix mode cannot repair a file it only received the bytes of.
        self.audit.integrity(
            AUDIT_INTEGRITY_DATA,
            &|| task.clone(),
            verdict.op().unwrap_or("appraise_data"),
            cause,
            Some(name),
            None,
            -libc::EINVAL,
            false,
        );
        if self.cfg.appraise == AppraiseMode::Enforce {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    }

    /// `process_buffer_measurement` for KEY_CHECK, KEXEC_CMDLINE and CRITICAL_DATA: the
    /// buffer's digest under event name `name`, template `ima-buf` unless the rule names one.
    pub fn measure_buffer(
        &self,
        func: Func,
        name: &str,
        buf: &[u8],
        keyring_or_label: Option<&str>,
        subject: &Subject,
    ) {
        if !self.is_active() {
            return;
        }
        let policy = self.active_policy();
        let wanted = self.wanted_actions(&policy);
        if !wanted.contains(Actions::MEASURE) {
            return;
        }
        let input = MatchInput {
            func,
            mask: 0,
            subject,
            object: None,
            keyring: if func == Func::KeyCheck {
                keyring_or_label
            } else {
                None
            },
            label: if func == Func::CriticalData {
                keyring_or_label
            } else {
                None
            },
        };
        let decision = policy.evaluate(&input, Actions::MEASURE);
        if !decision.actions.contains(Actions::MEASURE) {
            return;
        }
        let Some(digest) = self.hash.digest(buf) else {
            return;
        };
        let template = self.template_named(decision.template.as_deref(), &self.buf_template);
        let data = EventData {
            digest: Some(digest),
            hash_algo: self.hash,
            name: name.as_bytes(),
            buf: Some(buf),
            ..EventData::default()
        };
        let pcr = decision.pcr.unwrap_or(self.cfg.pcr);
        let record = Record::new(pcr, template, &data, &self.list_banks);
        let task = AuditTask {
            uid: subject.uid,
            euid: subject.euid,
            ..AuditTask::default()
        };
        let _ = self.add_entry(
            record,
            false,
            "add_template_measure",
            &|| task.clone(),
            name.as_bytes(),
            None,
        );
    }
}

#[cfg(test)]
mod tests;
