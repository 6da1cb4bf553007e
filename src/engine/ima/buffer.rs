//! Buffers and whole-file reads: `security/integrity/ima/ima_main.c`
//! (`process_buffer_measurement` for KEY_CHECK, KEXEC_CMDLINE and CRITICAL_DATA;
//! `ima_post_read_file` for a file the kernel reads whole, such as a policy file).

use crate::engine::appraise::{self, Verdict};
use crate::engine::audit::{AuditTask, AUDIT_INTEGRITY_DATA};
use crate::engine::hash::HashAlgo;
use crate::engine::policy::{Actions, Func, MatchInput, Subject, MAY_READ};
use crate::engine::template::EventData;
use crate::engine::xattr;
use crate::engine::Errno;

use super::*;

impl Ima {
    /// A file the "kernel" reads whole (the policy file of a `/path` write; READING_POLICY
    /// in `ima_post_read_file`): measured like a file (default or rule template), then
    /// appraised against its `security.ima`. `Err(EACCES)` when enforced appraisal fails.
    pub(super) fn process_read_buffer(
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
                let _ = self.store_template(pcr, template, &data, &|| task.clone(), None);
            }
        }
        if !must_appraise {
            return Ok(());
        }
        let req = self.requirements(&decision, false, file.content.len() as u64);
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
        let task = AuditTask {
            uid: subject.uid,
            euid: subject.euid,
            ..AuditTask::default()
        };
        let _ = self.store_template(pcr, template, &data, &|| task.clone(), None);
    }
}
