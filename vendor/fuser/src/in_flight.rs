//! imafs patch: the RELEASE requests read from `/dev/fuse` whose handlers have not returned.
//!
//! The kernel numbers requests (their `unique`) in the order it queues them, and workers read
//! them in that order, but with several workers a request can be handled before an earlier
//! one. `close(2)` returns once its RELEASE is queued, so the caller's next OPEN can be
//! handled while that RELEASE is still in another worker. An open that must see the files
//! closed before it as closed (deciding whether a file is still open for writing) can ask
//! whether a release queued before it is still being handled. Only releases are tracked: a
//! release handler never waits for the kernel, so waiting for one cannot deadlock.
//!
//! Exactness: the `/dev/fuse` workers take turns to read, and a worker notes a release it
//! read before it passes the turn (session.rs: the event loop), so when a request is being
//! handled every request queued before it has been read and every release among them is
//! either noted here or finished. io_uring queues are read by one worker per CPU in no
//! common order, so a session that serves them cannot tell ([`InFlight::exact`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Uniques of the releases being handled, session-wide.
#[derive(Debug, Default)]
pub struct InFlight {
    uniques: Mutex<BTreeSet<u64>>,
    /// The session also serves requests from io_uring queues, which are not tracked.
    io_uring: AtomicBool,
}

impl InFlight {
    /// The session serves io_uring queues too: [`InFlight::exact`] is false from now on.
    pub(crate) fn serving_io_uring(&self) {
        self.io_uring.store(true, Ordering::SeqCst);
    }

    /// Whether [`InFlight::any_before`] answers for every release queued before a request
    /// (no io_uring queue is served).
    pub fn exact(&self) -> bool {
        !self.io_uring.load(Ordering::SeqCst)
    }

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

    /// The latest release being handled now, if any: a horizon for a wait that is not tied
    /// to one request ([`InFlight::any_before`] of it plus one).
    pub fn latest(&self) -> Option<u64> {
        self.uniques.lock().ok().and_then(|u| u.last().copied())
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
