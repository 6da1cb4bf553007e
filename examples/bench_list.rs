//! Measurement-list benchmark: append N `ima-ng` records (sha1 + sha256 banks, template
//! digests included) on one thread, report records/s and resident bytes per record (list,
//! duplicate index and PCRs), then read the whole ASCII and binary views in 64 KiB reads
//! and report MB/s.
//!
//! Usage: `cargo run --release --example bench_list [N]` (default 1,000,000).

use std::sync::Arc;
use std::time::Instant;

use imafs::engine::hash::{Digest, HashAlgo};
use imafs::engine::measurement_list::{MeasurementList, Record, ViewKind};
use imafs::engine::pcr::PcrBanks;
use imafs::engine::template::{EventData, TemplateDesc};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time this thread used so far (utime + stime from /proc/thread-self/stat, 10 ms
/// ticks): rates per CPU second stay meaningful when other processes share the cores.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let cpu = thread_cpu_secs();
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64(), thread_cpu_secs() - cpu)
}

fn rate(label: &str, count: f64, unit: &str, wall: f64, cpu: f64) {
    println!(
        "{label:28}{:>10.0} {unit}/s wall, {:>10.0} {unit}/s per CPU second",
        count / wall,
        count / cpu.max(0.01)
    );
}

fn read_view(list: &MeasurementList, kind: ViewKind, bank: usize) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        let n = list.read(kind, bank, off, &mut buf);
        if n == 0 {
            return off;
        }
        off += n as u64;
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let banks = [HashAlgo::Sha1, HashAlgo::Sha256];
    let template = Arc::new(TemplateDesc::builtin("ima-ng").unwrap());
    // Paths and file digests are made up front: they are the caller's, not the list's, cost.
    let paths: Vec<String> = (0..n)
        .map(|i| format!("/usr/lib/x86_64-linux-gnu/lib{i:07}.so.1"))
        .collect();
    let path_bytes: u64 = paths.iter().map(|p| p.len() as u64).sum();
    let mut seed = [0u8; 32];
    let digests: Vec<Digest> = (0..n)
        .map(|i| {
            seed[..8].copy_from_slice(&i.to_le_bytes());
            Digest::from_bytes(HashAlgo::Sha256, &seed).unwrap()
        })
        .collect();

    let list = MeasurementList::new(&banks);
    let mut pcrs = PcrBanks::new(&banks);
    let before = resident_bytes();
    let ((), append_wall, append_cpu) = timed(|| {
        for (path, digest) in paths.iter().zip(&digests) {
            let ev = EventData {
                digest: Some(*digest),
                name: path.as_bytes(),
                ..Default::default()
            };
            let rec = Record::new(10, template.clone(), &ev, &banks);
            // What the runtime does per measurement: duplicate check, append, extend.
            if !list.contains_digest(10, 1, &rec.digest(1)) {
                pcrs.extend_record(&rec);
                list.append(rec);
            }
        }
    });
    let grown = resident_bytes().saturating_sub(before);
    drop(digests);

    assert_eq!(list.len(), n);
    // Appending without duplicate check and PCR extend (Record::new hashing included).
    let list2 = MeasurementList::new(&banks);
    let ((), only_wall, only_cpu) = timed(|| {
        for (i, path) in paths.iter().enumerate() {
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let ev = EventData {
                digest: Digest::from_bytes(HashAlgo::Sha256, &seed),
                name: path.as_bytes(),
                ..Default::default()
            };
            list2.append(Record::new(10, template.clone(), &ev, &banks));
        }
    });
    drop(list2);

    let avg_path = path_bytes as f64 / n as f64;
    let per_record = grown as f64 / n as f64;
    println!("records                     {n}");
    rate(
        "check+new+append+extend",
        n as f64,
        "records",
        append_wall,
        append_cpu,
    );
    rate("new+append", n as f64, "records", only_wall, only_cpu);
    println!(
        "resident per record         {per_record:.1} B (path {avg_path:.1} B, beyond path {:.1} B)",
        per_record - avg_path
    );
    for (kind, label) in [(ViewKind::Ascii, "ascii"), (ViewKind::Binary, "binary")] {
        for (bank, algo) in banks.iter().enumerate() {
            let (bytes, wall, cpu) = timed(|| read_view(&list, kind, bank));
            let what = format!("read {label} {} 64KiB", algo.name());
            rate(&what, bytes as f64 / 1e6, "MB", wall, cpu);
        }
    }
    // Random-offset reads (a keylime-style resume anywhere in the file).
    let total = list.view_len(ViewKind::Ascii, 1);
    let mut buf = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let reads = 100_000;
    let ((), wall, cpu) = timed(|| {
        for _ in 0..reads {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            list.read(ViewKind::Ascii, 1, x % total, &mut buf);
        }
    });
    rate("random 4KiB ascii reads", reads as f64, "reads", wall, cpu);
    let (replayed, wall, cpu) = timed(|| imafs::engine::pcr::replay(&list));
    rate("replay", n as f64, "records", wall, cpu);
    assert_eq!(replayed, pcrs);
}
