//! A list brought back: a saved binary list as `security/integrity/ima/ima_kexec.c`
//! (`ima_restore_measurement_list`) restores one after kexec, and the journal of a daemon
//! restarted with `--state` (records, violations, policy loads and keys, in order).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::hash::{Digest, HashAlgo};
use crate::engine::journal::Entry;
use crate::engine::keys::KeyError;
use crate::engine::measurement_list::Record;
use crate::engine::policy::{self, PolicyError};
use crate::engine::template::{TemplateDesc, TemplateError};

use super::*;

/// Why a journal's entries cannot be replayed ([`Ima::with_backing`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The journal was started with other engine options (`written`) than this daemon's
    /// (`running`).
    #[error(
        "written with `{written}`, this daemon runs with `{running}`: start it with the \
         same options, or give it another state directory"
    )]
    ConfigMismatch { written: String, running: String },
    #[error("does not start with its configuration entry")]
    NoConfig,
    #[error("entry {entry}: a second configuration")]
    SecondConfig { entry: usize },
    /// A record's template is neither built in nor a valid format string.
    #[error("entry {entry}: template {template:?}: {source}")]
    Template {
        entry: usize,
        template: String,
        #[source]
        source: TemplateError,
    },
    #[error("entry {entry}: data does not match template {template}")]
    DataMismatch { entry: usize, template: String },
    #[error("entry {entry}: policy: {source}")]
    Policy {
        entry: usize,
        #[source]
        source: PolicyReplayError,
    },
    #[error("entry {entry}: key: {source}")]
    Key {
        entry: usize,
        #[source]
        source: KeyError,
    },
}

/// Why a journaled policy load cannot be committed again.
#[derive(Debug, thiserror::Error)]
pub enum PolicyReplayError {
    /// A rule line the parser refuses now (`line` as journaled).
    #[error("{line:?}: {source}")]
    Rule {
        line: String,
        #[source]
        source: PolicyError,
    },
    #[error("no rule")]
    NoRule,
}

impl Ima {
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
    ) -> Result<Ima, ImaError> {
        let ima = Ima::build(cfg)?;
        let records =
            crate::engine::measurement_list::parse_binary_list(saved, bank, &ima.list_banks)?;
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
    pub fn with_backing(mut cfg: Config, backing: Backing) -> Result<Ima, ImaError> {
        let Backing {
            journal,
            replay,
            tpm,
        } = backing;
        if let Some(tpm) = &tpm {
            let banks = tpm.banks();
            if banks.is_empty() {
                return Err(ImaError::NoTpmBank {
                    spec: tpm.spec().to_string(),
                });
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
            .map(|j| j.path().to_path_buf())
            .unwrap_or_default();
        let had_config = !replay.is_empty();
        if had_config {
            ima.replay(replay, &fingerprint)
                .map_err(|source| ImaError::Replay {
                    journal: where_.clone(),
                    source,
                })?;
        }
        {
            let mut store = ima.store.lock();
            store.journal = journal;
            store.tpm = tpm;
        }
        if !had_config {
            ima.journal(&Entry::Config(fingerprint))
                .map_err(|source| ImaError::JournalConfig {
                    journal: where_,
                    source,
                })?;
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
    pub(super) fn replay(&self, entries: Vec<Entry>, fingerprint: &str) -> Result<(), ReplayError> {
        let mut entries = entries.into_iter().enumerate();
        match entries.next() {
            Some((_, Entry::Config(c))) if c == fingerprint => {}
            Some((_, Entry::Config(c))) => {
                return Err(ReplayError::ConfigMismatch {
                    written: c,
                    running: fingerprint.to_string(),
                })
            }
            _ => return Err(ReplayError::NoConfig),
        }
        let mut templates: HashMap<String, Arc<TemplateDesc>> = HashMap::new();
        for (i, entry) in entries {
            match entry {
                Entry::Config(_) => return Err(ReplayError::SecondConfig { entry: i }),
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
                                .map_err(|source| ReplayError::Template {
                                    entry: i,
                                    template: template.clone(),
                                    source,
                                })?;
                            templates.insert(template.clone(), Arc::clone(&t));
                            t
                        }
                    };
                    let fields = t.split_fields(&data);
                    let encoded: usize = fields.iter().map(|(_, d)| 4 + d.len()).sum();
                    if fields.len() != t.fields().len() || encoded != data.len() {
                        return Err(ReplayError::DataMismatch { entry: i, template });
                    }
                    let record = Record::from_data(pcr, t, data, violation, &self.list_banks);
                    self.restore_record(record);
                }
                Entry::Violation => {
                    self.violations.fetch_add(1, Ordering::Relaxed);
                }
                Entry::Policy(text) => {
                    self.replay_policy(&text)
                        .map_err(|source| ReplayError::Policy { entry: i, source })?;
                }
                Entry::Key(der) => {
                    self.keys
                        .write()
                        .add_der(&der)
                        .map_err(|source| ReplayError::Key { entry: i, source })?;
                }
            }
        }
        Ok(())
    }

    /// Commit a journaled policy load again, parsed in the same context as the first time.
    fn replay_policy(&self, text: &str) -> Result<(), PolicyReplayError> {
        let mut st = self.policy.write();
        let ctx = policy::ParseContext {
            custom_policy_active: st.custom_loaded,
        };
        let mut rules = Vec::new();
        for line in text.lines() {
            match policy::parse_line_in(line, ctx).result {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(source) => {
                    return Err(PolicyReplayError::Rule {
                        line: line.to_string(),
                        source,
                    })
                }
            }
        }
        if rules.is_empty() {
            return Err(PolicyReplayError::NoRule);
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
}
