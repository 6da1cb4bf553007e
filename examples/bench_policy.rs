//! Policy matching cost: ns per event for the built-in tcb policy and for a 1,000-rule
//! policy whose events walk (almost) every rule. Run with `bench/policy.sh`.

use std::hint::black_box;
use std::time::Instant;

use imafs::engine::policy::{
    builtin, parse_text, Actions, Func, MatchInput, Object, Policy, Subject, MAY_EXEC, MAY_READ,
    MAY_WRITE,
};

fn per_event_ns(policy: &Policy, events: &[MatchInput<'_>], wanted: Actions) -> f64 {
    let rounds = 2_000_000 / events.len().max(1) / (policy.rules().len() / 20).max(1) + 1;
    // Warm up.
    for ev in events {
        black_box(policy.evaluate(black_box(ev), wanted));
    }
    let start = Instant::now();
    for _ in 0..rounds {
        for ev in events {
            black_box(policy.evaluate(black_box(ev), wanted));
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds * events.len()) as f64
}

fn main() {
    let tcb = match builtin(&["tcb"]) {
        Ok(b) => Policy::new(b.rules),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut text = String::new();
    for i in 0..999u32 {
        match i % 3 {
            0 => text.push_str(&format!("dont_measure fsmagic=0x{:x}\n", 0x1000 + i)),
            1 => text.push_str(&format!(
                "measure func=FILE_CHECK mask=^MAY_READ uid={}\n",
                10_000 + i
            )),
            _ => text.push_str(&format!("measure func=BPRM_CHECK fsname=fs{i}\n")),
        }
    }
    text.push_str("measure func=FILE_CHECK mask=^MAY_READ\n");
    let big = match parse_text(&text) {
        Ok(rules) => Policy::new(rules),
        Err((n, e)) => {
            eprintln!("line {n}: {e}");
            std::process::exit(1);
        }
    };

    let root = Subject::default();
    let user = Subject {
        uid: 1000,
        euid: 1000,
        suid: 1000,
        gid: 1000,
        egid: 1000,
        sgid: 1000,
        ..Subject::default()
    };
    let ext4 = Object {
        uid: 0,
        gid: 0,
        fsmagic: 0xef53,
        fsname: "ext4",
        fs_subtype: "",
        fsuuid: None,
    };
    let proc_ = Object {
        fsmagic: 0x9fa0,
        fsname: "proc",
        ..ext4
    };
    let ev = |func, mask, subject, object| MatchInput {
        func,
        mask,
        subject,
        object: Some(object),
        keyring: None,
        label: None,
    };
    // A mix like a container's workload: reads by users and root, writes, exec, mmap, /proc.
    let events = [
        ev(Func::FileCheck, MAY_READ, &user, &ext4),
        ev(Func::FileCheck, MAY_READ, &root, &ext4),
        ev(Func::FileCheck, MAY_WRITE, &user, &ext4),
        ev(Func::BprmCheck, MAY_EXEC, &user, &ext4),
        ev(Func::MmapCheck, MAY_EXEC, &user, &ext4),
        ev(Func::FileCheck, MAY_READ, &root, &proc_),
    ];
    let wanted = Actions::MEASURE | Actions::APPRAISE | Actions::AUDIT | Actions::HASH;
    println!(
        "tcb policy ({} rules): {:.1} ns/event",
        tcb.rules().len(),
        per_event_ns(&tcb, &events, wanted)
    );
    let ns = per_event_ns(&big, &events, wanted);
    println!(
        "{}-rule policy: {ns:.1} ns/event ({:.2} ns/rule walked)",
        big.rules().len(),
        ns / big.rules().len() as f64
    );
}
