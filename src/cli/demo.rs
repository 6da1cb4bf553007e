//! `imafs demo`: the README's main job. Builds a small rootfs from host files (no network),
//! runs a short script in it under `imafs run` with the bundled policy, and prints what was
//! measured: the list as read inside the container, the count, violations and PCR values.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::demo_rootfs;
use super::run::{load_policy, run_container, start_filesystems, RunOptions};
use crate::engine::ima::{Config, Ima};

/// The bundled policy (kernel syntax).
pub const POLICY: &str = include_str!("../../fixtures/demo/policy");
/// The script run inside the container.
pub const SCRIPT: &str = include_str!("../../fixtures/demo/script.sh");

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the built rootfs (its path is printed) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

pub fn main(args: DemoArgs) -> ExitCode {
    match demo(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("imafs demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: &DemoArgs) -> Result<i32, String> {
    let started = Instant::now();
    let base = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("imafs-demo-")
        .tempdir_in(&base)
        .map_err(|e| format!("temp dir in {}: {e}", base.display()))?;
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
    let how = demo_rootfs::build(&rootfs).map_err(|e| format!("building the rootfs: {e}"))?;
    let built = started.elapsed();
    println!(
        "imafs demo: rootfs in {} ({how}), built in {} ms",
        rootfs.display(),
        built.as_millis()
    );
    println!("imafs demo: policy:");
    for line in POLICY
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        println!("    {line}");
    }

    let cfg = Config {
        builtin_policy: Vec::new(),
        ..Config::default()
    };
    let ima = Arc::new(Ima::new(cfg).map_err(|e| format!("engine: {e}"))?);
    load_policy(&ima, POLICY)?;
    let uid = rustix::process::getuid().as_raw();
    println!(
        "imafs demo: running the demo script in `imafs run` as uid {uid}{}",
        if uid == 0 {
            " (mount namespace only)"
        } else {
            " (user namespace, mapped to root inside)"
        }
    );
    println!();
    let opts = RunOptions {
        tpm_view: true,
        ..RunOptions::new(
            rootfs.clone(),
            vec!["sh".into(), "-c".into(), SCRIPT.into()],
        )
    };
    let run_started = Instant::now();
    let engine = ima.clone();
    let status = run_container(&opts, move |mounts| start_filesystems(engine, mounts))
        .map_err(|e| format!("imafs run: {e}"))?;
    let ran = run_started.elapsed();

    println!();
    println!(
        "imafs demo: the script exited with {status}; runtime_measurements_count {}, violations {}",
        ima.list().len(),
        ima.violations()
    );
    println!("imafs demo: the daemon's PCR banks (no TPM; `integrity/ima/pcrs` shows the same):");
    for (pcr, algo, digest) in ima.pcr_values() {
        println!("    PCR-{pcr} {algo} {}", hex::encode(digest.as_bytes()));
    }
    if let Some(report) = replay_with_evmctl(&ima, &rootfs.join("tmp/binary_runtime_measurements"))
    {
        println!("imafs demo: {report}");
    }
    println!(
        "imafs demo: timings: rootfs {} ms, container run {} ms, total {} ms",
        built.as_millis(),
        ran.as_millis(),
        started.elapsed().as_millis()
    );
    if args.keep {
        let kept = dir.keep();
        println!("imafs demo: kept {}", kept.display());
    }
    Ok(status)
}

/// Replay the binary list the script saved (the legacy sha1 file) with `evmctl
/// ima_measurement` against the PCR values the daemon holds, as a verifier would against a
/// TPM quote. `None` when evmctl is not installed or the list was not saved.
fn replay_with_evmctl(ima: &Ima, binary_list: &Path) -> Option<String> {
    if !binary_list.is_file() {
        return None;
    }
    let dir = binary_list.parent()?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "ima_measurement".into(),
        // evmctl replays violations with 0xff (as the kernel extends) only when asked to.
        "--ignore-violations".into(),
    ];
    for (pcr, algo, digest) in ima.pcr_values() {
        // evmctl's --pcrs file: lines `PCR-NN <hex>` from PCR 0 upwards.
        let zero = "0".repeat(digest.as_bytes().len() * 2);
        let mut text = String::new();
        for n in 0..pcr {
            text.push_str(&format!("PCR-{n:02} {zero}\n"));
        }
        text.push_str(&format!(
            "PCR-{pcr:02} {}\n",
            hex::encode(digest.as_bytes())
        ));
        let file = dir.join(format!("pcrs-{algo}"));
        std::fs::write(&file, text).ok()?;
        args.push("--pcrs".into());
        args.push(format!("{algo},{}", file.display()).into());
    }
    args.push(binary_list.into());
    let out = Command::new("evmctl").args(&args).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap_or("").trim().to_owned();
    Some(format!(
        "evmctl ima_measurement --ignore-violations on binary_runtime_measurements: {last} (exit {})",
        out.status.code().unwrap_or(-1)
    ))
}
