//! The IMA keyring and the measurement of keys: `security/integrity/ima/ima_asymmetric_keys.c`
//! (`ima_post_key_create_or_update`).
//!
//! No key is queued. A kernel queues the keys loaded during early boot, before IMA can
//! have a custom policy, and measures them when the first one is loaded
//! (`ima_queue_keys.c`: `ima_process_queued_keys`). That queue is the host's: the
//! user-namespace IMA series (2021-2023, not in mainline) kept it in `init_ima_ns` ("Using
//! &init_ima_ns for all calls from functions related to key queues", its v7 changelog). A
//! namespace's "boot" is its start: the keys it is started with are measured once its
//! initial policy is in place ([`Ima::measure_keyring`]); after that, a key is measured when
//! it is added, by the policy in force then, and a key added before a key-measuring policy
//! is not measured at that policy's load.

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
    /// as KEY_CHECK (event name `_ima`, buffer = DER) when the policy in force asks (see the
    /// module docs: no queue).
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
        self.measure_keys(&ders, subject);
        Ok(ids)
    }

    /// KEY_CHECK of each certificate (DER) of the `_ima` keyring (`ima_post_key_create_or_update`).
    fn measure_keys(&self, ders: &[Vec<u8>], subject: &Subject) {
        for der in ders {
            self.measure_buffer(
                Func::KeyCheck,
                KEYRING_NAME,
                der,
                Some(KEYRING_NAME),
                subject,
            );
        }
    }

    /// Measure every key of the keyring as KEY_CHECK under the policy in force: the keys a
    /// namespace is started with (`--keys`, `x509_for_children`), once its initial policy is
    /// in place, as a kernel measures its early-boot keys at its first policy load. A key
    /// measured before is a duplicate and adds nothing.
    pub fn measure_keyring(&self) {
        let ders: Vec<Vec<u8>> = self
            .keys
            .read()
            .keys()
            .iter()
            .map(|k| k.der().to_vec())
            .collect();
        self.measure_keys(&ders, &Subject::default());
    }
}
