//! Measurement-list benchmark: append N `ima-ng` records (sha1 + sha256 banks, template
//! digests included) on one thread, report records/s and resident bytes per record (list,
//! duplicate index and PCRs), then read the whole ASCII and binary views in 64 KiB reads
//! and report MB/s.
//!
//! Usage: `cargo run --release --example bench_list [N]` (default 1,000,000).

use std::sync::Arc;
use std::time::Instant;

use imafs::engine::hash::{Digest, HashAlgo};
use imafs::engine::log::{MeasurementList, Record, ViewKind};
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

fn read_view(list: &MeasurementList, kind: ViewKind, bank: usize) -> (u64, f64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    let start = Instant::now();
    loop {
        let n = list.read(kind, bank, off, &mut buf);
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    (off, start.elapsed().as_secs_f64())
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
    let start = Instant::now();
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
    let append_secs = start.elapsed().as_secs_f64();
    let grown = resident_bytes().saturating_sub(before);
    drop(digests);

    assert_eq!(list.len(), n);
    // Appending without duplicate check and PCR extend (Record::new hashing included).
    let list2 = MeasurementList::new(&banks);
    let start = Instant::now();
    for (i, path) in paths.iter().enumerate() {
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let ev = EventData {
            digest: Digest::from_bytes(HashAlgo::Sha256, &seed),
            name: path.as_bytes(),
            ..Default::default()
        };
        list2.append(Record::new(10, template.clone(), &ev, &banks));
    }
    let append_only_secs = start.elapsed().as_secs_f64();
    drop(list2);

    let avg_path = path_bytes as f64 / n as f64;
    let per_record = grown as f64 / n as f64;
    println!("records                     {n}");
    println!(
        "check+append+extend        {:.0} records/s",
        n as f64 / append_secs
    );
    println!(
        "new+append                  {:.0} records/s",
        n as f64 / append_only_secs
    );
    println!(
        "resident per record         {per_record:.1} B (path {avg_path:.1} B, beyond path {:.1} B)",
        per_record - avg_path
    );
    for (kind, label) in [(ViewKind::Ascii, "ascii"), (ViewKind::Binary, "binary")] {
        for (bank, algo) in banks.iter().enumerate() {
            let (bytes, secs) = read_view(&list, kind, bank);
            println!(
                "read {label:6} {:6} 64KiB   {:.0} MB/s ({} bytes)",
                algo.name(),
                bytes as f64 / secs / 1e6,
                bytes
            );
        }
    }
    // Random-offset reads (a keylime-style resume anywhere in the file).
    let total = list.view_len(ViewKind::Ascii, 1);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let reads = 100_000;
    for _ in 0..reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        list.read(ViewKind::Ascii, 1, x % total, &mut buf);
    }
    println!(
        "random 4KiB ascii reads     {:.0} reads/s",
        reads as f64 / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let replayed = imafs::engine::pcr::replay(&list);
    println!(
        "replay                      {:.0} records/s (PCR 10 sha256 {})",
        n as f64 / start.elapsed().as_secs_f64(),
        replayed.value(10, HashAlgo::Sha256).to_hex()
    );
    assert_eq!(replayed, pcrs);
}
