//! Hashing throughput of `engine::measure::hash_file_multi` over a real file, for several
//! algorithms, read buffer sizes being fixed by the engine. Run via `bench/hash-throughput.sh`.
//!
//! Usage: hash_throughput FILE [ROUNDS]

use std::fs::File;
use std::time::Instant;

use imafs::engine::hash::HashAlgo;
use imafs::engine::measure::{hash_file_multi, HASH_BUFFER_SIZE};

/// Nanoseconds this thread spent on a CPU (`/proc/thread-self/schedstat`, first field): the
/// machine is shared, so wall-clock rates understate what one free core does.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: hash_throughput FILE [ROUNDS]")?;
    let rounds: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let file = File::open(&path)?;
    let size = file.metadata()?.len() as f64;
    println!(
        "file {path}: {:.0} MiB, read buffer {} KiB, best of {rounds}",
        size / (1 << 20) as f64,
        HASH_BUFFER_SIZE / 1024
    );
    for algos in [
        &[HashAlgo::Sha256][..],
        &[HashAlgo::Sha1],
        &[HashAlgo::Sha384],
        &[HashAlgo::Sha512],
        &[HashAlgo::Sm3],
        &[HashAlgo::Sha256, HashAlgo::Sha1],
    ] {
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            let c = cpu_ns();
            hash_file_multi(&file, algos)?;
            best_cpu = best_cpu.min((cpu_ns() - c) as f64 / 1e9);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let names: Vec<&str> = algos.iter().map(|a| a.name()).collect();
        let gib = size / (1u64 << 30) as f64;
        println!(
            "{:<14} {:6.2} GiB/s wall, {:6.2} GiB/s per CPU-second",
            names.join("+"),
            gib / best,
            gib / best_cpu
        );
    }
    // The same pread + sha256 loop with other buffer sizes.
    for kib in [64usize, 256, 1024] {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; kib << 10];
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            let mut h = HashAlgo::Sha256.hasher().ok_or("no sha256")?;
            let mut off = 0u64;
            loop {
                let n = file.read_at(&mut buf, off)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                off += n as u64;
            }
            std::hint::black_box(h.finalize());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "sha256, {kib:4} KiB reads: {:.2} GiB/s",
            size / best / (1u64 << 30) as f64
        );
    }
    // Reference points in memory (no I/O): this crate's sha256 and ring's.
    let data = vec![0x5au8; 64 << 20];
    let mut best_own = f64::MAX;
    let mut best_ring = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(HashAlgo::Sha256.digest(&data));
        best_own = best_own.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &data));
        best_ring = best_ring.min(t.elapsed().as_secs_f64());
    }
    let gib = data.len() as f64 / (1u64 << 30) as f64;
    println!(
        "in-memory sha256: {:.2} GiB/s, ring sha256: {:.2} GiB/s",
        gib / best_own,
        gib / best_ring
    );
    Ok(())
}
