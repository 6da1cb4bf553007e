//! `imafs overlay-mount` (hidden): serve the bare overlay of a directory, without IMA.
//! Used by the overlay tests and benchmarks.

use crate::fs::overlay::{Overlay, OverlayOptions, DEFAULT_IDLE_POLL};
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
    pub transport: TransportArgs,
    /// FUSE worker threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Descriptor cache capacity.
    #[arg(long)]
    pub fd_cache: Option<usize>,
}

/// How the overlay's FUSE requests reach the daemon (`serve`, `run`, `overlay-mount`).
#[derive(Args, Debug, Clone, Copy)]
pub struct TransportArgs {
    /// How long an idle overlay worker polls for the next request before it sleeps, at most,
    /// in microseconds (adaptive: it grows during bursts of requests and falls to nothing
    /// when they stop). A sleeping worker costs a wake-up per request, which dominates
    /// small requests on virtual machines. 0 never polls.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = DEFAULT_IDLE_POLL.as_micros() as u64)]
    pub idle_poll_us: u64,
    /// Serve the overlay through FUSE over io_uring when the kernel offers it (Linux 6.14+,
    /// `echo 1 > /sys/module/fuse/parameters/enable_uring` as root): a worker per CPU
    /// answers the requests made on its CPU. Otherwise, or when the kernel refuses, requests
    /// go through `/dev/fuse` as usual.
    #[arg(long)]
    pub io_uring: bool,
}

impl Default for TransportArgs {
    fn default() -> Self {
        TransportArgs {
            idle_poll_us: DEFAULT_IDLE_POLL.as_micros() as u64,
            io_uring: false,
        }
    }
}

impl TransportArgs {
    /// `options` with these settings.
    pub fn apply(&self, options: OverlayOptions) -> OverlayOptions {
        OverlayOptions {
            idle_poll: Duration::from_micros(self.idle_poll_us),
            io_uring: self.io_uring,
            ..options
        }
    }
}

pub fn run(args: OverlayMountArgs) -> ExitCode {
    let mut options = OverlayOptions {
        passthrough: !args.no_passthrough,
        fd_cache: args.fd_cache,
        ..args.transport.apply(OverlayOptions::default())
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
