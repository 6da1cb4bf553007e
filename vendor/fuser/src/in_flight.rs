//! imafs patch: the RELEASE requests read from `/dev/fuse` whose handlers have not returned.
//!
//! The kernel numbers requests (their `unique`) in the order it queues them, and workers read
//! them in that order, but with several workers a request can be handled before an earlier
//! one. `close(2)` returns once its RELEASE is queued, so the caller's next OPEN can be
//! handled while that RELEASE is still in another worker. An open that must see the files
//! closed before it as closed (deciding whether a file is still open for writing) can ask
//! whether a release queued before it is still being handled. Only releases are tracked: a
//! release handler never waits for the kernel, so waiting for one cannot deadlock.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Uniques of the releases being handled, session-wide.
#[derive(Debug, Default)]
pub struct InFlight {
    uniques: Mutex<BTreeSet<u64>>,
}

impl InFlight {
    pub(crate) fn begin(&self, unique: u64) {
        if let Ok(mut u) = self.uniques.lock() {
            u.insert(unique);
        }
    }

    pub(crate) fn end(&self, unique: u64) {
        if let Ok(mut u) = self.uniques.lock() {
            u.remove(&unique);
        }
    }

    /// Whether a release the kernel queued before request `unique` is still being handled.
    /// Requests served through io_uring queues are not tracked.
    pub fn any_before(&self, unique: u64) -> bool {
        self.uniques
            .lock()
            .map(|u| u.first().is_some_and(|&first| first < unique))
            .unwrap_or(false)
    }
}
