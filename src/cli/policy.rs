//! `imafs policy ...`: check a policy as the kernel would parse it, print built-ins.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::engine::policy::{self, ParseContext, Policy};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Parse a policy as the kernel would and print its read-back text
    /// (or `line N: reason` on stderr and exit 1).
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Policy file in kernel syntax; `-` or nothing reads stdin.
    pub file: Option<String>,
    /// Print a built-in policy instead (names as in ima_policy=: tcb, ima_tcb,
    /// appraise_tcb, secure_boot, critical_data, fail_securely).
    #[arg(long, value_name = "NAME[,NAME]", conflicts_with = "file")]
    pub builtin: Option<String>,
    /// Parse as a later load (a custom policy is already active): LSM conditions are then
    /// accepted, never match and are left out of the read-back.
    #[arg(long)]
    pub after_load: bool,
    /// Print the type 1807 audit record body of every rule line instead of the read-back.
    #[arg(long)]
    pub audit: bool,
}

pub fn main(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check(args) => check(&args),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("{msg}");
    ExitCode::FAILURE
}

fn emit(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("imafs: write: {e}")),
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    if let Some(names) = &args.builtin {
        return match policy::builtin(&[names.as_str()]) {
            Ok(b) => emit(&Policy::new(b.rules).to_string()),
            Err(e) => fail(&format!("imafs: {e}")),
        };
    }
    let mut bytes = Vec::new();
    let read = match args.file.as_deref() {
        None | Some("-") => std::io::stdin().read_to_end(&mut bytes).map(|_| ()),
        Some(path) => std::fs::read(path).map(|b| bytes = b),
    };
    if let Err(e) = read {
        return fail(&format!(
            "imafs: {}: {e}",
            args.file.as_deref().unwrap_or("-")
        ));
    }
    let ctx = ParseContext {
        custom_policy_active: args.after_load,
    };
    let mut rules = Vec::new();
    let mut audit = String::new();
    for (idx, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            return fail(&format!("line {}: not valid UTF-8", idx + 1));
        };
        let parsed = policy::parse_line_in(line, ctx);
        if let Some(a) = &parsed.audit {
            audit.push_str(a);
            audit.push('\n');
        }
        match parsed.result {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(e) => {
                if args.audit {
                    let _ = std::io::stdout().write_all(audit.as_bytes());
                }
                return fail(&format!("line {}: {}", idx + 1, e.reason));
            }
        }
    }
    if args.audit {
        emit(&audit)
    } else {
        emit(&Policy::new(rules).to_string())
    }
}
