//! Where a record is appended: `security/integrity/ima/ima_queue.c`
//! (`ima_add_template_entry`, `ima_lookup_digest_entry`, `ima_pcr_extend`) and
//! `ima_api.c` (`ima_add_violation`), with the journal (`--state`) written first.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::audit::{AuditInode, AuditTask, AUDIT_INTEGRITY_PCR};
use crate::engine::hash::Digest;
use crate::engine::journal::Entry;
use crate::engine::measurement_list::{Record, ViewKind};
use crate::engine::template::EventData;
use crate::engine::Errno;

use super::*;

impl Ima {
    /// Append `record` and extend the PCRs, unless a record with the same template digest
    /// already exists in that PCR (`ima_add_template_entry`; violations are never
    /// suppressed). Returns whether it was added; `Err` when it could not be journaled
    /// (`--state`): then it is not in the list either, and the measurement failed.
    pub(super) fn add_entry<'t>(
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

    /// `ima_store_template` (`ima_api.c`): the record of `data` under `template`, appended
    /// to PCR `pcr`'s part of the list (see [`Ima::add_entry`]).
    pub(super) fn store_template<'t>(
        &self,
        pcr: u32,
        template: Arc<TemplateDesc>,
        data: &EventData<'_>,
        task: &dyn Fn() -> AuditTask<'t>,
        inode: Option<AuditInode<'_>>,
    ) -> Result<bool, Errno> {
        let record = Record::new(pcr, template, data, &self.list_banks);
        self.add_entry(
            record,
            false,
            "add_template_measure",
            task,
            data.name,
            inode,
        )
    }

    /// Journal `entry` (no-op without `--state`), under the lock that orders the list.
    pub(super) fn journal(&self, entry: &Entry) -> Result<(), Errno> {
        match self.store.lock().journal.as_mut() {
            Some(j) => j.append(entry),
            None => Ok(()),
        }
    }

    /// `ima_add_violation`: count it, append a zero entry (default template and PCR) that
    /// extends with 0xff, and audit `invalid_pcr`.
    pub(super) fn add_violation(&self, ev: &FileEvent<'_>, cause: &str) {
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
}
