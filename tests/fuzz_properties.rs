//! The fuzz targets' properties (`fuzz/props.rs`) on every `cargo test`: each target's seeds
//! plus a few thousand seeded mutations of them (bit flips, truncations, insertions,
//! splices). A failure prints the input as hex, ready to be added to the fuzz corpus.
mod common;

#[path = "../fuzz/props.rs"]
mod props;

use std::process::Command;

use imafs::engine::children::ChildConfig;
use imafs::engine::hash::HashAlgo;
use imafs::engine::ima::{Config, Ima};
use imafs::engine::measurement_list::ViewKind;
use imafs::engine::xattr;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, 0x7f, 0x80, b'\n', b' '][rng.below(6)];
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

fn exercise(name: &str, seeds: &[Vec<u8>], rounds: usize, property: fn(&[u8])) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut inputs: Vec<Vec<u8>> = seeds.to_vec();
    inputs.extend((0..rounds).map(|_| mutate(&mut rng, seeds)));
    for input in inputs {
        let outcome = std::panic::catch_unwind(|| property(&input));
        assert!(
            outcome.is_ok(),
            "{name}: property broken for input {}",
            hex::encode(&input)
        );
    }
}

#[test]
fn ima_xattr_parser() {
    let sha256 = HashAlgo::Sha256.digest(b"x").expect("sha256");
    let sha1 = HashAlgo::Sha1.digest(b"x").expect("sha1");
    let mut legacy = vec![1u8];
    legacy.extend_from_slice(sha1.as_bytes());
    let seeds = vec![
        xattr::encode_digest_xattr(&sha256),
        legacy,
        xattr::encode_signature_xattr(false, HashAlgo::Sha256, 0x1234_5678, &[7u8; 256])
            .expect("v2"),
        xattr::encode_signature_xattr(true, HashAlgo::Sha512, 1, &[9u8; 72]).expect("v3"),
    ];
    exercise("ima_xattr", &seeds, 20_000, props::ima_xattr);
}

/// DER and PEM certificates made by openssl (RSA and P-256), when it is installed.
fn certificates() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut out = Vec::new();
    for (name, key) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let pem = dir.path().join(format!("{name}.pem"));
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req", "-x509", "-new", "-nodes", "-days", "1", "-subj", "/CN=fuzz",
        ]);
        if key == "ec" {
            cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        } else {
            cmd.args(["-newkey", key]);
        }
        cmd.arg("-keyout")
            .arg(dir.path().join(format!("{name}.key")))
            .arg("-out")
            .arg(&pem)
            .args(["-addext", "subjectKeyIdentifier=hash"]);
        let ok = cmd.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            continue;
        }
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&pem)
            .output()
            .expect("openssl x509");
        out.push(std::fs::read(&pem).expect("pem"));
        out.push(der.stdout);
    }
    out
}

#[test]
fn certificate_loading() {
    let mut seeds = certificates();
    if seeds.is_empty() {
        common::skip(
            "certificate_loading",
            "openssl missing: no certificates to mutate",
        );
        return;
    }
    // Every certificate must load as it is.
    for s in &seeds {
        let mut ring = imafs::engine::keys::Keyring::new();
        assert!(ring.add_bytes(s).is_ok(), "seed does not load");
    }
    seeds.push(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec());
    exercise("x509", &seeds, 3_000, props::x509);
}

fn engine_list() -> Vec<u8> {
    let ima = Ima::new(Config::default()).expect("engine");
    let bank = ima.list().bank_index(HashAlgo::Sha1).expect("sha1 bank");
    let mut buf = vec![0u8; 1 << 16];
    let n = ima.list().read(ViewKind::Binary, bank, 0, &mut buf);
    buf.truncate(n);
    buf
}

#[test]
fn binary_list_decoding() {
    let list = engine_list();
    assert!(!list.is_empty());
    // The engine's own list is accepted and renders back.
    props::binary_list(&list);
    let mut two = list.clone();
    two.extend_from_slice(&list);
    exercise("binary_list", &[list, two], 5_000, props::binary_list);
}

#[test]
fn child_config_decoding() {
    let cfg = ChildConfig {
        policy: Some("measure func=BPRM_CHECK\n".into()),
        x509: vec![vec![0x30, 0x82, 0x01]],
        kcmd: vec![("ima_hash".into(), "sha1".into())],
    };
    exercise(
        "child_config",
        &[cfg.encode(), ChildConfig::default().encode()],
        5_000,
        props::child_config,
    );
}

#[test]
fn exec_format_probing() {
    let mut seeds = vec![b"#!/bin/sh\necho\n".to_vec()];
    for program in ["/bin/sh", "/usr/bin/true", "/bin/busybox"] {
        if let Ok(data) = std::fs::read(program) {
            // The headers and the start of the program headers are what the parser reads.
            seeds.push(data[..data.len().min(4096)].to_vec());
        }
    }
    exercise("exec_format", &seeds, 20_000, props::exec_format);
}
