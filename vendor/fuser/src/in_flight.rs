//! imafs patch: which requests queued before a given one may still be unhandled.
//!
//! The kernel numbers requests (their `unique`, in steps of two: dev.c `fuse_get_unique`) in
//! the order it queues them, in the caller's context, before the caller's system call
//! returns. `close(2)` returns once its RELEASE is numbered and queued, so the caller's next
//! OPEN has a higher number, but with several workers the OPEN can be handled while that
//! RELEASE is still unread or in another worker. An open that must see the files closed
//! before it as closed (deciding whether a file is still open for writing) asks
//! [`InFlight::any_before`]. Only releases are waited for: a release handler never waits for
//! the kernel, so waiting for one cannot deadlock.
//!
//! * `/dev/fuse`: the workers take turns to read, and a worker notes a release it read
//!   before it passes the turn (session.rs: the event loop), so when a request is being
//!   handled every request queued before it has been read and every release among them is
//!   either noted here or finished.
//! * io_uring (dev_uring.c): each CPU has its own queue, served by its own worker, so a
//!   request numbered earlier may still sit in another CPU's queue or ring when a later one
//!   is handled. Every request read from a ring or `/dev/fuse` is noted here, and the
//!   numbers read so far are kept as a watermark (every number up to it read) plus the ones
//!   read above it. A number below a request's own that has not been read yet may be a
//!   release: [`InFlight::any_before`] says so until it is read. A number can be taken and
//!   never sent (a request the kernel ended while still queued, e.g. its caller was
//!   killed: dev.c `fuse_remove_pending_req`); such a gap is never a release (releases
//!   have no caller to be killed) and is skipped once nothing has filled it for
//!   [`GAP_SKIP`].

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `FUSE_REQ_ID_STEP`: request numbers go up by two (the low bit marks interrupts).
const STEP: u64 = 2;
/// How long a number below the watermark may stay unread before it is taken for one the
/// kernel never sent.
pub const GAP_SKIP: Duration = Duration::from_secs(1);

/// Releases being handled, and (io_uring) which request numbers have been read.
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<State>,
    /// The session also serves requests from io_uring queues.
    io_uring: AtomicBool,
    /// A request has been read from an io_uring queue.
    ring_served: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Uniques of the releases being handled.
    releases: BTreeSet<u64>,
    /// Every request numbered up to this one has been read (io_uring sessions; `None`
    /// until the first is noted).
    read_to: Option<u64>,
    /// Requests read above `read_to`: a gap lies between.
    read_above: BTreeSet<u64>,
    /// Since when the lowest gap has been open.
    gap_since: Option<Instant>,
}

impl State {
    fn read(&mut self, unique: u64) {
        let Some(to) = self.read_to else {
            self.read_to = Some(unique);
            return;
        };
        if unique <= to {
            return;
        }
        if unique == to + STEP {
            self.read_to = Some(unique);
            self.close_gaps(false);
        } else {
            if self.read_above.is_empty() {
                self.gap_since = Some(Instant::now());
            }
            self.read_above.insert(unique);
        }
    }

    /// Move the watermark over the numbers read above it; with `skip`, over the lowest gap.
    fn close_gaps(&mut self, mut skip: bool) {
        let Some(mut to) = self.read_to else {
            return;
        };
        let before = to;
        while let Some(&next) = self.read_above.first() {
            if next != to + STEP && !skip {
                break;
            }
            skip = false;
            to = next;
            self.read_above.pop_first();
        }
        self.read_to = Some(to);
        if self.read_above.is_empty() {
            self.gap_since = None;
        } else if to != before {
            self.gap_since = Some(Instant::now());
        }
    }

    /// Whether a request numbered below `unique` has not been read yet.
    fn unread_before(&mut self, unique: u64) -> bool {
        let Some(to) = self.read_to else {
            return false;
        };
        if to + STEP >= unique {
            return false;
        }
        if self.gap_since.is_some_and(|t| t.elapsed() >= GAP_SKIP) {
            self.close_gaps(true);
            return self.read_to.is_some_and(|to| to + STEP < unique);
        }
        true
    }
}

impl InFlight {
    /// The session serves io_uring queues too: from now on every request read is noted.
    pub(crate) fn serving_io_uring(&self) {
        self.io_uring.store(true, Ordering::SeqCst);
    }

    /// Whether requests have come through io_uring queues (the kernel serves this session
    /// over io_uring, not `/dev/fuse`).
    pub fn ring_served(&self) -> bool {
        self.ring_served.load(Ordering::Relaxed)
    }

    /// A request was read (from a ring when `from_ring`, else `/dev/fuse`): noted before it
    /// is handled, and for `/dev/fuse` before the worker passes its turn to read.
    pub(crate) fn received(&self, unique: u64, release: bool, from_ring: bool) {
        // Written once: the workers of every CPU read it without contending for the line.
        if from_ring && !self.ring_served.load(Ordering::Relaxed) {
            self.ring_served.store(true, Ordering::Relaxed);
        }
        let ring = self.io_uring.load(Ordering::Relaxed);
        // Interrupts carry their request's number with the low bit set.
        let numbered = unique & 1 == 0 && unique != 0;
        if !release && !(ring && numbered) {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            if release {
                s.releases.insert(unique);
            }
            if ring && numbered {
                s.read(unique);
            }
        }
    }

    /// The release `unique` has been handled.
    pub(crate) fn end(&self, unique: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.releases.remove(&unique);
        }
    }

    /// The latest release being handled now, if any: a horizon for a wait that is not tied
    /// to one request ([`InFlight::any_before`] of it plus one).
    pub fn latest(&self) -> Option<u64> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.releases.last().copied())
    }

    /// Whether a release the kernel queued before request `unique` may still be unhandled:
    /// one being handled, or (io_uring) a request numbered before it not read yet.
    pub fn any_before(&self, unique: u64) -> bool {
        let ring = self.io_uring.load(Ordering::Relaxed);
        self.state
            .lock()
            .map(|mut s| {
                s.releases.first().is_some_and(|&first| first < unique)
                    || (ring && s.unread_before(unique))
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> InFlight {
        let f = InFlight::default();
        f.serving_io_uring();
        f
    }

    #[test]
    fn an_unread_earlier_request_counts_until_read() {
        let f = ring();
        f.received(10, false, true);
        f.received(14, false, true);
        assert!(f.any_before(16), "12 is unread");
        assert!(!f.any_before(12));
        f.received(12, true, true);
        assert!(f.any_before(16), "12 is a release being handled");
        f.end(12);
        assert!(!f.any_before(16));
    }

    #[test]
    fn dev_fuse_sessions_wait_for_releases_only() {
        let f = InFlight::default();
        f.received(10, false, false);
        f.received(14, false, false);
        assert!(!f.any_before(16));
        f.received(18, true, false);
        assert!(f.any_before(20));
        assert!(!f.any_before(18));
    }

    #[test]
    fn interrupts_are_not_numbers() {
        let f = ring();
        f.received(10, false, true);
        f.received(13, false, true);
        f.received(12, false, true);
        assert!(!f.any_before(14));
    }

    #[test]
    fn a_gap_nothing_fills_is_skipped() {
        let f = ring();
        f.received(10, false, true);
        f.received(14, false, true);
        f.received(16, false, true);
        assert!(f.any_before(18));
        if let Ok(mut s) = f.state.lock() {
            s.gap_since = Some(Instant::now() - GAP_SKIP);
        }
        assert!(!f.any_before(18), "12 was never sent");
        f.received(18, false, true);
        f.received(20, false, true);
        assert!(!f.any_before(22));
        assert!(f.state.lock().is_ok_and(|s| s.read_above.is_empty()));
    }
}
