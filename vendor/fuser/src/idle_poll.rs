//! Adaptive polling of `/dev/fuse` by an idle worker (imafs patch, see IMAFS-PATCH.md).
//!
//! A worker sleeping in `read(2)` must be woken for the next request: an inter-processor
//! interrupt and, on a virtual machine whose idle vCPU halts, an exit to the hypervisor.
//! That wake-up is paid twice per synchronous request (the daemon's, then the caller's) and
//! dominates small requests there. A worker that has just answered a request polls the
//! device for a short window first, as the kernel's haltpoll governor does for an idle CPU:
//! the window grows while requests arrive in bursts (a wait that a longer window would have
//! caught) and shrinks to nothing while they do not, so a quiet daemon does not spin.
//!
//! The workers of a session take turns to read: only the one whose turn it is waits on the
//! device (polling, then in `read(2)`); the others wait for the turn, which passes as soon
//! as a request is read and the worker has noted what it is (`InFlight`: so that requests
//! are known in the order the kernel queued them). A worker asleep in `read(2)` beside a
//! polling one would also be woken by the kernel for every request, only to find it taken.

use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use parking_lot::Condvar;
use parking_lot::Mutex;

/// Whose turn it is to read from the device.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    taken: Mutex<bool>,
    passed: Condvar,
}

impl Turns {
    fn take(&self) {
        let mut taken = self.taken.lock();
        while *taken {
            self.passed.wait(&mut taken);
        }
        *taken = true;
    }

    fn pass(&self) {
        *self.taken.lock() = false;
        self.passed.notify_one();
    }
}

/// The first non-zero window (the haltpoll governor's `guest_halt_poll_grow_start` is 50 µs;
/// a FUSE round trip is shorter).
const GROW_START: Duration = Duration::from_micros(10);

/// Per-worker polling state.
#[derive(Debug)]
pub(crate) struct IdlePoll {
    /// The configured maximum window; zero disables polling.
    max: Duration,
    /// The current window.
    window: Duration,
    /// The session's turns to read (used when polling is on).
    turns: Arc<Turns>,
    /// When this worker became idle (answered its last request).
    idle_since: Option<Instant>,
}

impl IdlePoll {
    pub(crate) fn new(max: Duration, turns: Arc<Turns>) -> IdlePoll {
        IdlePoll {
            max,
            window: Duration::ZERO,
            turns,
            idle_since: None,
        }
    }

    /// Before reading the next request: wait for this worker's turn, then poll `fd` for up
    /// to the current window (none when polling is off), returning early when a request is
    /// ready. The caller then reads (blocking if none came) and calls
    /// [`IdlePoll::after_read`] whatever it got.
    pub(crate) fn before_read(&mut self, fd: BorrowedFd<'_>) {
        self.turns.take();
        let idle_since = Instant::now();
        self.idle_since = Some(idle_since);
        if self.max.is_zero() {
            return;
        }
        while idle_since.elapsed() < self.window {
            if readable(fd) {
                break;
            }
            // Give way at once to anything runnable here: the poller often shares a CPU
            // with the caller it is about to answer (measured: spinning without yielding
            // made small-file reads slower than not polling at all).
            std::thread::yield_now();
        }
    }

    /// After a read returned: pass the turn and adapt the window to how long this worker
    /// waited for a request.
    pub(crate) fn after_read(&mut self) {
        let Some(since) = self.idle_since.take() else {
            return;
        };
        self.turns.pass();
        self.window = next_window(self.window, since.elapsed(), self.max);
    }
}

/// The haltpoll rule: keep a window that caught the request; grow one that a longer window
/// (up to `max`) would have caught; shrink one that was too short for a wait beyond `max`.
pub(crate) fn next_window(window: Duration, idle: Duration, max: Duration) -> Duration {
    if max.is_zero() || idle <= window {
        window.min(max)
    } else if idle <= max {
        (window * 2).max(GROW_START).min(max)
    } else {
        let half = window / 2;
        if half < GROW_START { Duration::ZERO } else { half }
    }
}

/// Whether a read of `fd` would not block (a request is queued, or the device is gone).
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call; timeout 0 never sleeps.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn window_grows_in_bursts_and_shrinks_when_quiet() {
        let max = 200 * US;
        // Bursts: each wait fits under the maximum, the window doubles up to it.
        let mut w = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..6 {
            w = next_window(w, 150 * US, max);
            seen.push(w.as_micros());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 200]);
        // A request the window caught keeps it.
        assert_eq!(next_window(w, 5 * US, max), w);
        // Long idle periods halve it down to nothing.
        let mut seen = Vec::new();
        for _ in 0..6 {
            w = next_window(w, Duration::from_millis(5), max);
            seen.push(w.as_micros());
        }
        assert_eq!(seen, [100, 50, 25, 12, 0, 0]);
        // Disabled: always zero.
        assert_eq!(next_window(Duration::ZERO, US, Duration::ZERO), Duration::ZERO);
    }
}
