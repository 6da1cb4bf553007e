//! Cost of `--state` per record: N buffer measurements (`ima_policy=critical_data`, every
//! one a new ima-buf record through the full hook path: policy, dedup, list, PCRs, audit)
//! without a journal, with one, and with one that fdatasyncs every entry
//! (`--state-sync`); then the time to open and replay the journal of N records (a restart).
//!
//! With a TPM spec as 4th argument (`swtpm:SOCKET`), also N_SYNC records extended into it.
//!
//! Usage: `cargo run --release --example bench_journal [N] [N_SYNC] [DIR] [TPM]`
//! (default 100000, 2000, a directory under $TMPDIR, no TPM).

use std::path::{Path, PathBuf};
use std::time::Instant;

use imafs::engine::ima::{Backing, Config, Ima};
use imafs::engine::journal::Journal;
use imafs::engine::policy::{Func, Subject};
use imafs::engine::tpm::Tpm;

fn config() -> Config {
    Config {
        builtin_policy: vec!["critical_data".to_string()],
        ..Config::default()
    }
}

fn backing(state: Option<(&Path, bool)>) -> Backing {
    match state {
        None => Backing::default(),
        Some((dir, sync)) => {
            let (journal, recovery) = Journal::open(dir, sync).expect("journal");
            Backing {
                journal: Some(journal),
                replay: recovery.entries,
                tpm: None,
            }
        }
    }
}

/// Records appended per second.
fn appends(label: &str, n: usize, state: Option<(&Path, bool)>) -> f64 {
    appends_with(label, n, backing(state))
}

fn appends_with(label: &str, n: usize, backing: Backing) -> f64 {
    let ima = Ima::with_backing(config(), backing).expect("engine");
    let bufs: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("bench event {i:09} with some payload").into_bytes())
        .collect();
    let before = ima.list().len();
    let subject = Subject::default();
    let start = Instant::now();
    for b in &bufs {
        ima.measure_buffer(Func::CriticalData, "bench", b, Some("bench"), &subject);
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ima.list().len() - before, n as u64, "every event recorded");
    let rate = n as f64 / secs;
    println!(
        "{label:34}{n:>8} records {secs:>8.3} s {rate:>10.0} records/s {:>8.2} us/record",
        secs * 1e6 / n as f64
    );
    rate
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let n_sync: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let base: PathBuf = args
        .next()
        .filter(|a| !a.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("imafs-bench-journal-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");
    println!("journal directory: {}", base.display());

    let plain = appends("no --state", n, None);
    let dir = base.join("state");
    let journaled = appends("--state", n, Some((&dir, false)));
    let sync_dir = base.join("state-sync");
    let synced = appends("--state --state-sync", n_sync, Some((&sync_dir, true)));
    let bytes = std::fs::metadata(dir.join("journal"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "journal: {bytes} bytes for {} records ({:.0} bytes/record)",
        n + 1,
        bytes as f64 / (n + 1) as f64
    );
    println!(
        "ratio --state / none: {:.2}x throughput; --state-sync / none: {:.4}x",
        journaled / plain,
        synced / plain
    );

    if let Some(spec) = args.next() {
        let tpm = Tpm::open(&spec).expect("TPM");
        let rate = appends_with(
            &format!("--tpm {spec}"),
            n_sync,
            Backing {
                tpm: Some(tpm),
                ..Backing::default()
            },
        );
        println!("ratio --tpm / none: {:.4}x", rate / plain);
    }

    // A restart: open (scan + checksums) and replay (template digests, PCR extends).
    let start = Instant::now();
    let ima = Ima::with_backing(config(), backing(Some((&dir, false)))).expect("replay");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "restart: replayed {} records in {secs:.3} s ({:.0} records/s)",
        ima.list().len(),
        ima.list().len() as f64 / secs
    );
    drop(ima);
    let _ = std::fs::remove_dir_all(&base);
}
