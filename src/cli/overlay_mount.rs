//! `imafs overlay-mount` (hidden): serve the bare overlay of a directory, without IMA.
//! Used by the overlay tests and benchmarks.

use crate::fs::overlay::{
    Overlay, OverlayOptions, DEFAULT_CACHE_TIMEOUT, DEFAULT_IDLE_POLL, DEFAULT_PAGE_CACHE_MAX,
};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct OverlayMountArgs {
    /// Lower directory to serve.
    #[arg(long)]
    pub lower: PathBuf,
    /// Mount point.
    #[arg(long)]
    pub mount: PathBuf,
    /// Serve file data through the daemon instead of kernel passthrough.
    #[arg(long)]
    pub no_passthrough: bool,
    #[command(flatten)]
    pub tuning: OverlayTuning,
    /// FUSE worker threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Descriptor cache capacity.
    #[arg(long)]
    pub fd_cache: Option<usize>,
}

/// How the overlay is served: what the kernel caches, and how its requests reach the daemon
/// (`serve`, `run`, `overlay-mount`).
#[derive(Args, Debug, Clone, Copy)]
pub struct OverlayTuning {
    /// How long the kernel may cache names and attributes, in seconds. Every open is checked,
    /// measured and appraised whatever this is, and reads what was measured; it only bounds
    /// how long a change made to the rootfs behind the daemon's back (not through the mount)
    /// stays unseen by `stat` and path lookups. Use 1 for a rootfs the host keeps changing.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_CACHE_TIMEOUT.as_secs_f64())]
    pub cache_timeout: f64,
    /// Read-only opens of files up to this many bytes are served from the kernel's page
    /// cache, filled by the daemon, instead of kernel passthrough: a warm small file then
    /// costs two requests (open, release) instead of three. 0 passes every open through.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PAGE_CACHE_MAX)]
    pub page_cache_max: u64,
    /// How long an idle overlay worker polls for the next request before it sleeps, at most,
    /// in microseconds (adaptive: it grows during bursts of requests and falls to nothing
    /// when they stop). A sleeping worker costs a wake-up per request, which dominates
    /// small requests on virtual machines. 0 never polls.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = DEFAULT_IDLE_POLL.as_micros() as u64)]
    pub idle_poll_us: u64,
    /// Accepted for compatibility: FUSE over io_uring is the default where the kernel offers
    /// it (see --no-io-uring).
    #[arg(long, hide = true)]
    pub io_uring: bool,
    /// Serve every request through `/dev/fuse`. By default the overlay uses FUSE over
    /// io_uring where the kernel offers it (Linux 6.14+ with
    /// `/sys/module/fuse/parameters/enable_uring` set to Y by root): a worker per CPU,
    /// pinned, answers the requests made on its CPU, which saves a cross-CPU wake-up per
    /// request; elsewhere, or when the kernel or a seccomp profile refuses io_uring,
    /// requests go through `/dev/fuse`. Costs a thread and four ring entries per possible
    /// CPU.
    #[arg(long, conflicts_with = "io_uring")]
    pub no_io_uring: bool,
}

impl Default for OverlayTuning {
    fn default() -> Self {
        OverlayTuning {
            cache_timeout: DEFAULT_CACHE_TIMEOUT.as_secs_f64(),
            page_cache_max: DEFAULT_PAGE_CACHE_MAX,
            idle_poll_us: DEFAULT_IDLE_POLL.as_micros() as u64,
            io_uring: false,
            no_io_uring: false,
        }
    }
}

impl OverlayTuning {
    /// `options` with these settings.
    pub fn apply(&self, options: OverlayOptions) -> OverlayOptions {
        // Clap accepts any float: keep what the kernel can be told (no negative, no NaN).
        let ttl = Duration::try_from_secs_f64(self.cache_timeout.clamp(0.0, 1e9))
            .unwrap_or(DEFAULT_CACHE_TIMEOUT);
        OverlayOptions {
            attr_ttl: ttl,
            entry_ttl: ttl,
            page_cache_max: self.page_cache_max,
            idle_poll: Duration::from_micros(self.idle_poll_us),
            io_uring: !self.no_io_uring,
            ..options
        }
    }
}

pub fn main(args: OverlayMountArgs) -> ExitCode {
    let mut options = OverlayOptions {
        passthrough: !args.no_passthrough,
        fd_cache: args.fd_cache,
        ..args.tuning.apply(OverlayOptions::default())
    };
    if let Some(t) = args.threads {
        options.threads = t;
    }
    let overlay = match Overlay::new(&args.lower, options) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("imafs: {}: {e}", args.lower.display());
            return ExitCode::FAILURE;
        }
    };
    match overlay.serve(&args.mount) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imafs: serving {}: {e}", args.mount.display());
            ExitCode::FAILURE
        }
    }
}
