//! The IMA state of one namespace, as `security/integrity/ima/ima_init.c` (`ima_init`,
//! `ima_add_boot_aggregate`) sets it up: configuration (the kernel's command line and
//! Kconfig), the active policy, the measurement list and PCR banks, the violation counter,
//! the per-file cache, the keyring and the audit sink. Each kernel concern is a file below:
//!
//! | file | kernel file | what |
//! |---|---|---|
//! | `process.rs` | `ima_main.c`: `process_measurement`, `ima_file_free`; `ima_api.c`: `ima_collect_measurement`, `ima_store_measurement` | where an open, exec or mapping is decided |
//! | `queue.rs` | `ima_queue.c`: `ima_add_template_entry`, `ima_pcr_extend`; `ima_api.c`: `ima_add_violation` | where a record is appended |
//! | `policy_file.rs` | `ima_fs.c`: `ima_open_policy`, `ima_write_policy`, `ima_release_policy`; `ima_policy.c`: `ima_parse_add_rule`, `ima_update_policy` | where the policy is written |
//! | `appraisal.rs` | `ima_appraise.c`: `ima_appraise_measurement`, `ima_inode_setxattr`, `ima_inode_post_setattr` | the appraisal hooks |
//! | `buffer.rs` | `ima_main.c`: `process_buffer_measurement`, `ima_post_read_file` | buffers and whole-file reads |
//! | `keys.rs` | `ima_asymmetric_keys.c`, `ima_queue_keys.c` | the keyring and key measurement |
//! | `restore.rs` | `ima_kexec.c`: `ima_restore_measurement_list` | a saved list or a journal brought back |
//! | `event.rs` | `ima.h`: `struct ima_event_data` | what a file hook is told |
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
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::audit::{AuditSink, AuditTask};
use super::children::ChildConfig;
use super::hash::{Digest, HashAlgo};
use super::journal::{Entry, Journal};
use super::keys::Keyring;
use super::measure::{MeasureCache, ViolationLimit};
use super::measurement_list::{BinaryListError, MeasurementList, Record};
use super::pcr::PcrBanks;
use super::policy::{self, Actions, BuiltinPolicyError, Func, Policy, Subject};
use super::template::{TemplateDesc, TemplateError};
use super::tpm::Tpm;
use super::Errno;

mod appraisal;
mod buffer;
mod event;
mod keys;
mod policy_file;
mod process;
mod queue;
mod restore;

pub use event::{EventTask, FileEvent, FileOutcome, KnownTask, LazyXattr, XattrSource};
pub use keys::KEYRING_NAME;
pub use policy_file::{PolicyAccess, PolicyFile, PolicyFileState, PolicyHandle, PolicyLoadError};
pub use restore::{PolicyReplayError, ReplayError};

/// Why an engine cannot be built ([`Ima::new`], [`Ima::with_backing`],
/// [`Ima::with_saved_list`]).
#[derive(Debug, thiserror::Error)]
pub enum ImaError {
    /// `ima_hash=` names an algorithm this build cannot compute.
    #[error("ima_hash: {hash} is not available")]
    HashUnavailable { hash: HashAlgo },
    /// `ima_template=` is neither a built-in template nor a valid format string.
    #[error("template {template:?}: {source}")]
    Template {
        template: String,
        #[source]
        source: TemplateError,
    },
    /// The built-in `ima-buf` template is missing (a bug in the template table).
    #[error("no ima-buf template")]
    NoBufTemplate,
    /// `ima_hash` has no slot among the list banks (a bug).
    #[error("ima_hash bank missing")]
    HashBankMissing,
    /// `ima_policy=` names an unknown policy.
    #[error(transparent)]
    BuiltinPolicy(#[from] BuiltinPolicyError),
    /// The audit file cannot be opened.
    #[error("audit file: {0}")]
    AuditFile(#[source] std::io::Error),
    /// The boot aggregate of a fresh list cannot be journaled.
    #[error("boot_aggregate cannot be journaled: {0}")]
    BootAggregate(#[source] Errno),
    /// The saved binary list cannot be restored.
    #[error(transparent)]
    SavedList(#[from] BinaryListError),
    /// The TPM has no allocated PCR bank of an algorithm the engine can compute.
    #[error("TPM {spec}: no allocated PCR bank of a known algorithm")]
    NoTpmBank { spec: String },
    /// The journal's entries cannot be replayed.
    #[error("journal {}: {source}", .journal.display())]
    Replay {
        journal: PathBuf,
        #[source]
        source: ReplayError,
    },
    /// A fresh journal's configuration entry cannot be written.
    #[error("journal {}: {source}", .journal.display())]
    JournalConfig {
        journal: PathBuf,
        #[source]
        source: Errno,
    },
}

/// `ima_appraise=` (`ima_appraise.c`: `ima_appraise_parse_cmdline`).
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
    /// See [`Config::active`]; set once by [`Ima::activate`].
    active: AtomicBool,
    /// Serialises activations (the boot aggregate is appended once).
    activation: Mutex<()>,
    /// What `*_for_children` staged for the next child namespace.
    child_config: Mutex<ChildConfig>,
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
    pub fn new(cfg: Config) -> Result<Ima, ImaError> {
        Ima::with_backing(cfg, Backing::default())
    }

    fn build(cfg: Config) -> Result<Ima, ImaError> {
        if !cfg.hash.is_supported() {
            return Err(ImaError::HashUnavailable { hash: cfg.hash });
        }
        let default_template = match TemplateDesc::builtin(&cfg.template) {
            Some(t) => t,
            None => TemplateDesc::from_fmt(&cfg.template).map_err(|source| ImaError::Template {
                template: cfg.template.clone(),
                source,
            })?,
        };
        // With the `ima` template only sha1 and md5 are honoured for ima_hash (hash_setup).
        let hash = if default_template.name() == "ima"
            && !matches!(cfg.hash, HashAlgo::Sha1 | HashAlgo::Md5)
        {
            COMPILED_DEFAULT_HASH
        } else {
            cfg.hash
        };
        let buf_template = TemplateDesc::builtin("ima-buf").ok_or(ImaError::NoBufTemplate)?;

        let mut file_banks: Vec<HashAlgo> = Vec::new();
        for &b in &cfg.banks {
            // A TPM bank of an algorithm the engine cannot compute gets no list files here
            // (`ima_fs.c`: `create_securityfs_measurement_lists` names such a bank's files
            // `_tpm_alg_<id>`; not modelled).
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
            .ok_or(ImaError::HashBankMissing)?;

        let names: Vec<&str> = cfg.builtin_policy.iter().map(String::as_str).collect();
        let builtin = policy::builtin(&names)?;

        let audit = AuditSink::new(cfg.audit_file.as_deref()).map_err(ImaError::AuditFile)?;
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
            active: AtomicBool::new(cfg.active),
            activation: Mutex::new(()),
            child_config: Mutex::new(ChildConfig::default()),
            cfg,
        })
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

    /// The boot aggregate (and the kernel version as critical data) of a fresh list.
    fn start_fresh(&self) -> Result<(), ImaError> {
        self.add_boot_aggregate().map_err(ImaError::BootAggregate)?;
        self.measure_kernel_version();
        Ok(())
    }

    /// `ima_init.c`: `ima_add_boot_aggregate`: without a TPM a zero digest of `ima_hash`;
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

    /// Whether a custom policy has been loaded (the built-in rules no longer apply).
    pub fn custom_policy_loaded(&self) -> bool {
        self.policy.read().custom_loaded
    }

    /// Whether a TPM backs the PCRs (`--tpm`).
    pub fn has_tpm(&self) -> bool {
        self.store.lock().tpm.is_some()
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

    /// Read-back text of the active policy (`ima_policy.c`: `ima_policy_show`).
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

    /// The action kinds worth asking the policy about (`ima_policy_flag`).
    /// Whether the policy in force appraises (the kernel's `ima_policy_flag & IMA_APPRAISE`).
    pub fn appraises(&self) -> bool {
        self.is_active()
            && self
                .wanted_actions(&self.active_policy())
                .contains(Actions::APPRAISE)
    }

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
}

#[cfg(test)]
mod tests;
