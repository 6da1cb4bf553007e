//! `imafs status`: a readable summary of a running IMA namespace (or a kernel's IMA).

use std::path::PathBuf;
use std::process::ExitCode;

/// `imafs status` arguments.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The securityfs mount to describe.
    #[arg(long, value_name = "DIR", default_value = "/sys/kernel/security")]
    pub securityfs: PathBuf,
}

pub fn main(_args: StatusArgs) -> ExitCode {
    ExitCode::SUCCESS
}
