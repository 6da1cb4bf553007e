//! The appraisal hooks: `security/integrity/ima/ima_appraise.c`
//! (`ima_appraise_measurement`, `ima_inode_setxattr` with `validate_hash_algo`,
//! `ima_inode_post_setattr`, `ima_reset_appraise_flags`). The verdict on a `security.ima`
//! value itself is `engine::appraise`.

use crate::engine::appraise::{self, AppraiseRequirements, Verdict};
use crate::engine::audit::{AuditTask, AUDIT_INTEGRITY_DATA};
use crate::engine::hash::Digest;
use crate::engine::measure::{AppraisalStatus, FileId, FileState};
use crate::engine::policy::Decision;
use crate::engine::xattr;
use crate::engine::Errno;

use super::*;

impl Ima {
    /// What the rule that asked for appraisal requires of `security.ima` (its
    /// `appraise_type=`, `appraise_flag=`, `appraise_algos=`), for a file (`new_file`: created
    /// by an open whose last writer has not closed) of `file_size` bytes.
    pub(super) fn requirements(
        &self,
        decision: &Decision,
        new_file: bool,
        file_size: u64,
    ) -> AppraiseRequirements {
        AppraiseRequirements {
            signature_required: decision.signature_required,
            sigv3_required: decision.sigv3_required,
            modsig_allowed: decision.modsig_allowed,
            appraise_algos: decision.appraise_algos,
            ima_hash: self.hash,
            new_file,
            file_size,
        }
    }

    /// `ima_appraise_measurement`: the verdict on `security.ima` for `digest`, audited on
    /// failure; fix mode repairs hashes (the file system writes `outcome.set_ima_xattr`).
    pub(super) fn appraise_file(
        &self,
        ev: &FileEvent<'_>,
        decision: &Decision,
        state: &FileState,
        digest: Digest,
        outcome: &mut FileOutcome,
    ) -> AppraisalStatus {
        let req = self.requirements(decision, state.is_new_file() || ev.created, ev.version.size);
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
}
