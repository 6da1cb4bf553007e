//! Verification cost of `engine::appraise` for RSA-2048 and P-256/P-384 signatures and for a
//! plain hash, with keys made by `openssl` and signatures by `evmctl ima_sign --sigfile`.
//!
//! `cargo run --release --example bench_appraise [iterations]` prints µs p50/p99 per appraisal
//! (file digest precomputed, so this is the signature/hash check alone).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use imafs::engine::appraise::{appraise, AppraiseRequirements};
use imafs::engine::hash::HashAlgo;
use imafs::engine::keys::Keyring;
use imafs::engine::xattr::encode_digest_xattr;

fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Make a key + self-signed cert, sign `file` with evmctl; returns (cert path, xattr value).
fn signed(
    dir: &Path,
    name: &str,
    newkey: &[&str],
    file: &Path,
) -> Result<(std::path::PathBuf, Vec<u8>), String> {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN=bench {name}"),
        ])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))?;
    let both = dir.join(format!("{name}.pem"));
    let mut bytes = std::fs::read(&key).map_err(|e| e.to_string())?;
    bytes.extend(std::fs::read(&cert).map_err(|e| e.to_string())?);
    std::fs::write(&both, bytes).map_err(|e| e.to_string())?;
    sh(Command::new("evmctl")
        .args(["ima_sign", "--sigfile", "-a", "sha256", "--key"])
        .arg(&both)
        .arg(file))?;
    let mut sig = file.as_os_str().to_owned();
    sig.push(".sig");
    let value = std::fs::read(&sig).map_err(|e| e.to_string())?;
    std::fs::remove_file(&sig).map_err(|e| e.to_string())?;
    Ok((cert, value))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), String> {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("payload");
    let content = vec![0x5au8; 4096];
    std::fs::write(&file, &content).map_err(|e| e.to_string())?;
    let digest = HashAlgo::Sha256.digest(&content).ok_or("sha256")?;

    let cases: [(&str, &[&str]); 3] = [
        ("rsa2048", &["-newkey", "rsa:2048"]),
        (
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
    ];
    let mut ring = Keyring::new();
    let mut values = Vec::new();
    for (name, newkey) in cases {
        let (cert, value) = signed(dir.path(), name, newkey, &file)?;
        ring.load_path(&cert).map_err(|e| e.to_string())?;
        values.push((name, value));
    }
    values.push(("hash-sha256", encode_digest_xattr(&digest)));

    let req = AppraiseRequirements::default();
    println!("appraise() over a precomputed sha256 digest, {iterations} iterations each");
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "xattr", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, value) in &values {
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let verdict = appraise(Some(value), |_| Some(digest), &req, &ring);
            let us = start.elapsed().as_secs_f64() * 1e6;
            if !verdict.is_pass() {
                return Err(format!("{name}: unexpected {verdict:?}"));
            }
            samples.push(us);
        }
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<12} {:>10.1} {:>10.1} {:>10.1}",
            name,
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            mean
        );
    }
    Ok(())
}
