//! The IMA keyring and the measurement of keys: `security/integrity/ima/ima_asymmetric_keys.c`
//! (`ima_post_key_create_or_update`) and `ima_queue_keys.c` (keys queued until a policy is
//! loaded, `ima_process_queued_keys`).

use crate::engine::journal::Entry;
use crate::engine::keys::{KeyError, KeyId, Keyring};
use crate::engine::policy::{Func, Subject};

use super::*;

/// Name of the IMA keyring (no trusted-keyring chain, so the `_ima` form).
pub const KEYRING_NAME: &str = "_ima";

impl Ima {
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

    /// `ima_process_queued_keys`: the keys added before the first custom policy, measured
    /// once it is loaded.
    pub(super) fn process_queued_keys(&self) {
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
}
