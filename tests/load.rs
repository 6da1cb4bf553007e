//! Load (issues 9, 18): N processes read, write and execute through `imafs run` for a few
//! seconds while two readers stream the measurement list. Nothing may deadlock, every
//! access must be measured exactly as the policy says (each shared file once, each new
//! version of a written file once, the program's exec once), and the list must replay to
//! the PCRs (`imafs verify` inside the container). Violations are exact: each process
//! closes and reopens its own files all the time (a close that has happened must never
//! count as an open), and every fourth round makes one genuine conflict (a read while it
//! holds the file open for write): the list must hold exactly one violation per genuine
//! conflict. Throughput and p99 latency are printed (`cargo test --test load --
//! --nocapture`), never asserted.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const OWNER: u32 = 4245;

fn run_load(test: &str, procs: usize, seconds: u32) {
    if !common::can_run_python_over_host_root(test) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-load")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("shared")).expect("mkdir");
    for i in 0..50 {
        let f = d.join("shared").join(i.to_string());
        std::fs::write(&f, format!("shared file {i}\n")).expect("write");
        std::os::unix::fs::chown(&f, Some(OWNER), Some(OWNER)).expect("chown");
    }
    for i in 0..procs {
        for f in [d.join(format!("w{i}")), d.join(format!("c{i}"))] {
            std::fs::write(&f, "").expect("write");
            std::os::unix::fs::chown(&f, Some(OWNER), Some(OWNER)).expect("chown");
        }
    }
    let prog = d.join("prog");
    std::fs::copy("/bin/true", &prog).expect("copy true");
    std::os::unix::fs::chown(&prog, Some(OWNER), Some(OWNER)).expect("chown");
    let policy = d.join("policy");
    std::fs::write(
        &policy,
        format!(
            "measure func=FILE_CHECK mask=MAY_READ fowner={OWNER}\n\
             measure func=BPRM_CHECK fowner={OWNER}\n"
        ),
    )
    .expect("write");
    let loadgen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load.py");
    let ds = d.to_str().expect("utf-8");
    let list = "/sys/kernel/security/ima/ascii_runtime_measurements";
    let script = format!(
        "for r in 1 2; do (while [ ! -e {ds}/done ]; do cat {list} > /dev/null; done) & done; \
         /usr/bin/python3 {gen} {ds} {procs} {seconds} {ds}/prog > {ds}/load.json; rc=$?; \
         touch {ds}/done; wait; \
         cat {list} > {ds}/list; \
         {imafs} verify --allow-violations --securityfs /sys/kernel/security > {ds}/verify 2>&1; \
         echo $? > {ds}/verify_rc; \
         cat /sys/kernel/security/ima/violations > {ds}/violations; exit $rc",
        gen = loadgen.display(),
        imafs = common::imafs_bin().display(),
    );
    let out = Command::new(common::imafs_bin())
        .args(["run", "--policy"])
        .arg(&policy)
        .args(["--", "sh", "-c", &script])
        .output()
        .expect("imafs run");
    assert!(
        out.status.success(),
        "{test}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(d.join(name)).expect(name);
    let report: serde_json::Value = serde_json::from_str(read("load.json").trim()).expect("json");
    assert_eq!(report["failed"], 0, "{report}");
    eprintln!(
        "LOAD {procs} processes, {seconds} s: {:.0} accesses/s, p50 {:.0} µs, p99 {:.0} µs \
         ({} accesses; each access = one open+read, write+reread, or fork+exec)",
        report["ops_per_s"].as_f64().unwrap_or(0.0),
        report["p50_us"].as_f64().unwrap_or(0.0),
        report["p99_us"].as_f64().unwrap_or(0.0),
        report["ops"],
    );
    let verify = read("verify");
    assert_eq!(read("verify_rc").trim(), "0", "imafs verify: {verify}");
    // Count each path's measurements (violation records have an all-zero digest).
    let mut measured: HashMap<String, usize> = HashMap::new();
    let mut violations = 0;
    for line in read("list").lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 5 {
            continue;
        }
        if fields[4] != "boot_aggregate"
            && fields[3]
                .trim_start_matches("sha256:")
                .bytes()
                .all(|b| b == b'0')
        {
            violations += 1;
            continue;
        }
        *measured.entry(fields[4].to_owned()).or_default() += 1;
    }
    for i in 0..50 {
        let p = format!("{ds}/shared/{i}");
        assert!(
            measured.get(&p).copied().unwrap_or(0) <= 1,
            "{p} measured twice"
        );
    }
    assert_eq!(measured.get(&format!("{ds}/prog")), Some(&1), "the exec");
    let versions = report["versions"].as_array().expect("versions");
    for (i, v) in versions.iter().enumerate() {
        let want = v.as_u64().expect("count") as usize;
        let got = measured.get(&format!("{ds}/w{i}")).copied().unwrap_or(0);
        assert_eq!(got, want, "w{i}: one record per version read back");
    }
    assert_eq!(
        read("violations").trim(),
        violations.to_string(),
        "violations counter equals the violation records"
    );
    let conflicts = report["conflicts"].as_u64().expect("conflicts") as usize;
    assert!(conflicts > 0, "the load made no genuine conflict: {report}");
    assert_eq!(
        violations, conflicts,
        "one violation per genuine conflict, none for a closed file"
    );
}

#[test]
fn load_with_twice_the_cores() {
    let procs = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    run_load("load_with_twice_the_cores", procs, 4);
}

#[test]
fn load_with_64_processes() {
    run_load("load_with_64_processes", 64, 4);
}

#[test]
fn load_with_256_processes() {
    run_load("load_with_256_processes", 256, 4);
}
