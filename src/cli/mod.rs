//! The `imafs` command line (clap). Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

pub mod demo;
pub mod demo_rootfs;
pub mod engine_args;
pub mod overlay_mount;
pub mod policy;
pub mod run;
pub mod serve;
pub mod status;
pub mod verify;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "imafs",
    version,
    about = "Per-container Linux IMA in user space"
)]
pub struct Cli {
    /// env_logger filter (error, warn, info, debug, trace); RUST_LOG works too.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// IMA policy tools (`imafs policy check [FILE|-]`).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Serve the bare passthrough overlay of a directory (tests and benchmarks).
    #[command(hide = true)]
    OverlayMount(overlay_mount::OverlayMountArgs),
    /// Run CMD in a new IMA namespace: the measuring overlay of --rootfs as /, the securityfs
    /// view at /sys/kernel/security; works without root. Exits with CMD's status.
    Run(run::RunArgs),
    /// Build a small rootfs, run a script in it under a bundled policy, and print what was
    /// measured.
    Demo(demo::DemoArgs),
    /// Long-running daemon for one container: the securityfs view at --securityfs (and the
    /// measuring overlay of --rootfs at --mount); clean unmount on SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
    /// Check a measurement list: replay it to PCRs, compare with the reported PCR values,
    /// check every file against an allowlist or a reference tree; exit 1 if anything failed.
    #[command(
        after_help = "Exit status: 0 everything matched; 1 a check failed (changed or unknown \
                      file, violation, edited line, PCR mismatch); 2 an input could not be read \
                      or parsed."
    )]
    Verify(verify::VerifyArgs),
    /// A readable summary of a running namespace's securityfs (or a kernel's).
    Status(status::StatusArgs),
    /// Internal: lazily unmount DIR once stdin reaches EOF (the serving daemon died).
    #[command(hide = true)]
    UnmountWatchdog { dir: std::path::PathBuf },
}

/// Set up logging from `--log-level` or `RUST_LOG` (default: warn).
pub fn init_logging(level: Option<&str>) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if let Some(level) = level {
        builder.parse_filters(level);
    }
    // A second init (tests) is harmless.
    let _ = builder.try_init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    match cli.command {
        Command::Policy(cmd) => policy::main(cmd),
        Command::Run(args) => run::main(args),
        Command::Demo(args) => demo::main(args),
        Command::OverlayMount(args) => overlay_mount::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Verify(args) => verify::main(args),
        Command::Status(args) => status::main(args),
        Command::UnmountWatchdog { dir } => match crate::fs::session::watchdog_main(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
    }
}
