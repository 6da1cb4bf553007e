//! `mount-helper exec --root DIR [--securityfs DIR] -- CMD...`: run CMD with DIR as `/` in new
//! namespaces (user + mount for an unprivileged caller, mount only for root), with `/proc`,
//! `/dev`, `/sys` and optionally DIR at `/sys/kernel/security`. Exits with CMD's status.
// Input from a container, a policy writer or a file never panics the daemon: no unwrap,
// expect or panic outside tests (errors are returned and logged with context).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// `unsafe` lives only in the library's `sys` module.
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mount_helper::{ExecOptions, UserNamespace};

#[derive(Parser, Debug)]
#[command(
    name = "mount-helper",
    version,
    about = "Namespace and mount plumbing for imafs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run CMD with DIR as its root in new namespaces.
    Exec {
        /// Directory that becomes `/`.
        #[arg(long)]
        root: PathBuf,
        /// Directory shown at /sys/kernel/security (e.g. an `imafs serve --securityfs` mount).
        #[arg(long)]
        securityfs: Option<PathBuf>,
        /// Create a user namespace: auto (only when not root), always, never.
        #[arg(long, value_enum, default_value_t = UserNs::Auto)]
        userns: UserNs,
        /// Keep the host's pid namespace (and bind its /proc).
        #[arg(long)]
        no_pid_ns: bool,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<OsString>,
    },
    /// OCI runtime hook (Podman, CRI-O): `precreate` starts `imafs serve` for a container
    /// annotated `io.imafs.enable=true`, `poststop` stops it (see contrib/oci-hooks.d).
    OciHook {
        #[arg(value_enum)]
        stage: HookStage,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum HookStage {
    Precreate,
    Prestart,
    Poststop,
    /// (internal) started by `prestart`.
    #[value(hide = true)]
    Watch,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum UserNs {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::OciHook { stage } => {
            let done = match stage {
                HookStage::Precreate => mount_helper::oci::precreate(),
                HookStage::Prestart => mount_helper::oci::prestart(),
                HookStage::Poststop => mount_helper::oci::poststop(),
                HookStage::Watch => mount_helper::oci::watch(),
            };
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mount-helper: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Exec {
            root,
            securityfs,
            userns,
            no_pid_ns,
            command,
        } => {
            let opts = ExecOptions {
                root,
                securityfs,
                user_ns: match userns {
                    UserNs::Auto => UserNamespace::Auto,
                    UserNs::Always => UserNamespace::Always,
                    UserNs::Never => UserNamespace::Never,
                },
                new_pid_ns: !no_pid_ns,
                command,
            };
            match mount_helper::exec(&opts) {
                Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("mount-helper: {e}");
                    ExitCode::from(mount_helper::container::EXIT_SETUP_FAILED as u8)
                }
            }
        }
    }
}
