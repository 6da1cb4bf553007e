//! Where an open, exec or mapping is decided: `security/integrity/ima/ima_main.c`
//! (`process_measurement`, `ima_rdwr_violation_check`, `ima_file_free`, `ima_check_last_writer`)
//! and `ima_api.c` (`ima_get_action`, `ima_collect_measurement`, `ima_store_measurement`).

use std::fs::File;

use crate::engine::appraise::{self};
use crate::engine::audit::{self, AUDIT_INTEGRITY_DATA, AUDIT_INTEGRITY_RULE};
use crate::engine::hash::HashAlgo;
use crate::engine::measure::{AppraisalStatus, AppraiseClass, FileId, FileState, FileVersion};
use crate::engine::policy::{Actions, Decision, Func, MatchInput, Subject, MAY_EXEC, MAY_WRITE};
use crate::engine::template::EventData;
use crate::engine::xattr;
use crate::engine::Errno;

use super::*;

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

impl Ima {
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
        let object = ev.object();
        let subject = if policy.tests_subject_for(ev.func) {
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
    /// `Err(EACCES)` means appraisal failed (or could not be done) for an appraised access.
    fn act_on_file(
        &self,
        ev: &FileEvent<'_>,
        file: &File,
        decision: &Decision,
        state: &mut FileState,
        outcome: &mut FileOutcome,
    ) -> Result<(), Errno> {
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
                Some(AppraisalStatus::Fail(_)) => Err(Errno::EACCES),
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
                return if must_appraise {
                    Err(Errno::EACCES)
                } else {
                    Ok(())
                };
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
            let stored = self.store_template(pcr, template, &data, &|| ev.task(), Some(ev.inode()));
            // Set also when the entry was a duplicate (-EEXIST); a failed store is retried
            // at the next access (ima_store_measurement).
            if stored.is_ok() {
                state.set_measured(pcr);
            }
        }

        let mut result = match cached {
            Some(AppraisalStatus::Fail(_)) => Err(Errno::EACCES),
            _ => Ok(()),
        };
        if appraise {
            let status = self.appraise_file(ev, decision, state, digest, outcome);
            state.set_appraisal(class, status);
            if status != AppraisalStatus::Pass {
                result = Err(Errno::EACCES);
            }
        }

        if audit {
            let body = audit::audit_rule_message(&ev.task(), ev.path, &digest);
            self.audit.emit(AUDIT_INTEGRITY_RULE, &body);
            state.set_audited();
        }
        result
    }

    /// `ima_file_mprotect`: a file mapping being made executable (`ev.func` is ignored).
    /// Only while the policy appraises, and only when MMAP_CHECK or MMAP_CHECK_REQPROT would
    /// measure or appraise the file: an audit record (`failed-mprotect`), and EPERM when it
    /// would appraise. Nothing is measured: the kernel cannot, the mapping being made already.
    pub fn file_mprotect(&self, ev: &FileEvent<'_>) -> Result<(), Errno> {
        let action = self.appraising_actions(ev, &[Func::MmapCheck, Func::MmapCheckReqprot]);
        if !action.intersects(Actions::MEASURE | Actions::APPRAISE) {
            return Ok(());
        }
        let result = if action.contains(Actions::APPRAISE) {
            Err(Errno::EPERM)
        } else {
            Ok(())
        };
        self.audit.integrity(
            AUDIT_INTEGRITY_DATA,
            &|| ev.task(),
            "collect_data",
            "failed-mprotect",
            Some(ev.path),
            Some(ev.inode()),
            result.map_or_else(|e| -e.0, |()| 0),
            false,
        );
        result
    }

    /// `mmap_violation_check` (ima_main.c): an executable mapping (`ev.func` MMAP_CHECK or
    /// MMAP_CHECK_REQPROT) of a file an appraise rule covers, while the file is mapped
    /// writable and shared somewhere (`writably_mapped`, asked only then): an audit record
    /// (`mmapped_writers`, -ETXTBSY), and EACCES when appraisal enforces. Call it after the
    /// hook itself passed.
    pub fn mmap_violation_check(
        &self,
        ev: &FileEvent<'_>,
        writably_mapped: &dyn Fn() -> bool,
    ) -> Result<(), Errno> {
        let action = self.appraising_actions(ev, &[ev.func]);
        if !action.contains(Actions::APPRAISE) || !writably_mapped() {
            return Ok(());
        }
        self.audit.integrity(
            AUDIT_INTEGRITY_DATA,
            &|| ev.task(),
            "mmap_file",
            "mmapped_writers",
            Some(ev.path),
            Some(ev.inode()),
            -libc::ETXTBSY,
            false,
        );
        if self.cfg.appraise == AppraiseMode::Enforce {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    }

    /// What the policy does for `ev`'s file under any of `funcs` (mask MAY_EXEC), when it
    /// appraises at all (`ima_policy_flag & IMA_APPRAISE`); nothing otherwise.
    fn appraising_actions(&self, ev: &FileEvent<'_>, funcs: &[Func]) -> Actions {
        if !self.is_active() {
            return Actions::empty();
        }
        let policy = self.active_policy();
        let wanted = self.wanted_actions(&policy);
        if !wanted.contains(Actions::APPRAISE) {
            return Actions::empty();
        }
        let object = ev.object();
        let subject = if funcs.iter().any(|f| policy.tests_subject_for(*f)) {
            ev.task.subject()
        } else {
            Subject::default()
        };
        let mut action = Actions::empty();
        for &func in funcs {
            let input = MatchInput {
                func,
                mask: MAY_EXEC,
                subject: &subject,
                object: Some(&object),
                keyring: None,
                label: None,
            };
            action |= policy.evaluate(&input, wanted).actions;
        }
        action
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

    /// Only a file's metadata changed through the file system (rename, link, chmod, chown):
    /// what is known of the inode stays valid, as on a kernel, where the measured and audited
    /// flags live in the inode's integrity data whatever its names and ctime (see
    /// [`crate::engine::measure::FileState::metadata_changed`]).
    pub fn metadata_changed(&self, id: FileId, before: &FileVersion, after: &FileVersion) {
        if let Some(state) = self.cache.find(id) {
            state.lock().metadata_changed(before, after);
        }
    }
}
