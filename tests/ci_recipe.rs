//! The README's CI-runner recipe (examples/ci/, examples/github-actions.yml), run here as an
//! unprivileged user with its exact commands: `make test` under imafs, the list saved, and
//! `imafs verify --reference /` as the verdict: 0 for a clean run, 1 when a script that ran
//! was changed afterwards.
mod common;

use std::path::Path;
use std::process::{Command, Output};

fn as_nobody(dir: &Path, script: &str) -> Output {
    let bin = common::imafs_bin();
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        bin.parent().expect("bin dir").display()
    );
    Command::new(common::NOBODY[0])
        .args(&common::NOBODY[1..])
        .args(["sh", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .output()
        .expect("setpriv")
}

#[test]
fn ci_recipe_measures_make_test_and_gives_a_verdict() {
    let test = "ci_recipe_measures_make_test_and_gives_a_verdict";
    if !common::have_tool("make") {
        common::skip(test, "make not installed");
        return;
    }
    if !common::can_run_as_nobody(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(d.join("ci")).expect("mkdir");
    for f in ["ci.policy", "run-measured.sh"] {
        std::fs::copy(repo.join("examples/ci").join(f), d.join("ci").join(f)).expect("copy");
    }
    std::fs::write(
        d.join("Makefile"),
        "test:\n\t./check.sh\n\t./check.sh again\n",
    )
    .expect("write");
    std::fs::write(d.join("check.sh"), "#!/bin/sh\necho checked $1\n").expect("write");
    let status = Command::new("chmod")
        .args(["755"])
        .arg(d.join("check.sh"))
        .status();
    assert!(status.expect("chmod").success());
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(d)
        .status();
    assert!(status.expect("chown").success());
    // The workflow's two steps, verbatim.
    let run = as_nobody(d, "ci/run-measured.sh ci/ci.policy ima -- make test");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("checked again"));
    let verdict = "imafs verify --ascii ima/ima-list.txt --pcrs ima/ima-pcrs.txt --reference /";
    let v = as_nobody(d, verdict);
    let report = String::from_utf8_lossy(&v.stdout).to_string();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let list = std::fs::read_to_string(d.join("ima/ima-list.txt")).expect("list");
    let script = format!("{}/check.sh", d.display());
    assert_eq!(
        list.lines().filter(|l| l.ends_with(&script)).count(),
        1,
        "the script ran twice, unchanged: measured once\n{list}"
    );
    assert!(list.lines().any(|l| l.ends_with("/make")), "{list}");
    // A step that rewrites a script it ran: the verdict fails and names it.
    std::fs::write(d.join("check.sh"), "#!/bin/sh\necho tampered\n").expect("write");
    let v = as_nobody(d, verdict);
    let report = String::from_utf8_lossy(&v.stdout).to_string();
    assert_eq!(v.status.code(), Some(1), "{report}");
    assert!(
        report.contains("CHANGED") && report.contains(&script),
        "{report}"
    );
}
