//! Nested namespaces (README "Namespaces"): `imafs run` inside a container that imafs serves
//! becomes a child namespace. Real nested runs, one and two levels deep, as root and as an
//! unprivileged user: what each namespace's list holds, with which path; the hook an exec
//! has in the parent; the child daemon's own reads left out of the parent; a parent's
//! appraisal denial binding the child; `*_for_children` configuring the next child.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const APPLETS: &[&str] = &["sh", "cat", "echo"];
const LIST: &str = "/sys/kernel/security/ima/ascii_runtime_measurements";

/// A scratch tree on the host: `inner/` is the child's rootfs (busybox), the rest holds
/// policies and results. The outer container's root is the host's `/`, so host paths are
/// its paths too.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(test: &str) -> Option<Tree> {
        let inner = common::busybox_rootfs(test, APPLETS)?;
        let dir = tempfile::Builder::new()
            .prefix("imafs-nested")
            .tempdir()
            .expect("temp dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(inner.path())
            .arg(dir.path().join("inner"))
            .status()
            .expect("cp");
        assert!(status.success());
        std::fs::write(dir.path().join("inner/data"), "data\n").expect("write");
        std::fs::create_dir(dir.path().join("out")).expect("mkdir");
        for d in ["", "out"] {
            chmod(&dir.path().join(d), 0o777);
        }
        Some(Tree { dir })
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().expect("utf-8").to_owned()
    }
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).expect("write");
        chmod(&self.path(rel), 0o644);
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
    /// Owner `uid` for `rel` (so `fowner=` rules can single it out).
    fn chown(&self, rel: &str, uid: u32) {
        std::os::unix::fs::lchown(self.path(rel), Some(uid), Some(uid)).expect("chown");
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn imafs() -> String {
    common::imafs_bin().to_str().expect("utf-8").to_owned()
}

/// `imafs run ARGS -- sh -c SCRIPT` on the host (as `prefix` says), whose container is the
/// host's `/` through the overlay.
fn outer_run(prefix: &[&str], args: &[&str], script: &str) -> Output {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(imafs());
            c
        }
        None => Command::new(imafs()),
    };
    cmd.arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("imafs run")
}

fn paths(list: &str) -> Vec<String> {
    list.lines()
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
        .collect()
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn child_accesses_are_recorded_in_parent_with_parent_paths() {
    let test = "child_accesses_are_recorded_in_parent_with_parent_paths";
    let Some(t) = Tree::new(test) else { return };
    // The parent measures only execs of busybox (uid 4242's) and reads of 4243's files.
    t.write(
        "outer.policy",
        "measure func=BPRM_CHECK fowner=4242\nmeasure func=FILE_CHECK mask=MAY_READ fowner=4243\n",
    );
    t.write(
        "inner.policy",
        "measure func=FILE_CHECK mask=MAY_READ\nmeasure func=BPRM_CHECK\n",
    );
    t.chown("inner/bin/busybox", 4242);
    t.chown("inner/data", 4243);
    // Read by the child's daemon itself (its --policy): not an event of the parent.
    t.chown("inner.policy", 4243);
    let script = format!(
        "{imafs} run --rootfs {inner} --policy {ipol} -- sh -c 'cat /data > /dev/null; \
         cat {LIST} > /out/inner_list' && cat {LIST} > {out}",
        imafs = imafs(),
        inner = t.s("inner"),
        ipol = t.s("inner.policy"),
        out = t.s("out/outer_list"),
    );
    let o = outer_run(&[], &["--policy", &t.s("outer.policy")], &script);
    assert_ok(&o, test);
    let inner = paths(&t.read("inner/out/inner_list"));
    assert!(inner.contains(&"/data".to_string()), "{inner:?}");
    assert!(inner.contains(&"/bin/busybox".to_string()), "{inner:?}");
    let outer = paths(&t.read("out/outer_list"));
    // The parent's paths, and the exec reaching it as BPRM_CHECK: without forwarding the
    // parent would only see its child daemon read busybox (FILE_CHECK, not 4243's).
    assert!(outer.contains(&t.s("inner/data")), "{outer:?}");
    assert!(outer.contains(&t.s("inner/bin/busybox")), "{outer:?}");
    assert!(
        !outer.contains(&t.s("inner.policy")),
        "daemon read leaked: {outer:?}"
    );
    assert_eq!(outer.iter().filter(|p| **p == t.s("inner/data")).count(), 1);
}

#[test]
fn parent_appraisal_denial_binds_the_child() {
    let test = "parent_appraisal_denial_binds_the_child";
    let Some(t) = Tree::new(test) else { return };
    t.write("inner/secret", "unsigned\n");
    t.chown("inner/secret", 4244);
    t.write("outer.policy", "appraise func=FILE_CHECK fowner=4244\n");
    // The child has no appraise rule and appraisal off: only the parent can refuse.
    t.write("inner.policy", "measure func=FILE_CHECK mask=MAY_READ\n");
    let script = format!(
        "{imafs} run --rootfs {inner} --policy {ipol} -- sh -c \
         'cat /secret > /out/secret 2> /out/err; echo $? > /out/rc; cat /data > /out/data'",
        imafs = imafs(),
        inner = t.s("inner"),
        ipol = t.s("inner.policy"),
    );
    let o = outer_run(
        &[],
        &["--appraise", "enforce", "--policy", &t.s("outer.policy")],
        &script,
    );
    assert_ok(&o, test);
    assert_ne!(t.read("inner/out/rc").trim(), "0");
    assert!(t.read("inner/out/err").contains("Permission denied"));
    assert_eq!(t.read("inner/out/secret"), "");
    assert_eq!(t.read("inner/out/data"), "data\n", "other files still open");
}

#[test]
fn grandchild_accesses_reach_every_ancestor() {
    let test = "grandchild_accesses_reach_every_ancestor";
    let Some(t) = Tree::new(test) else { return };
    t.write(
        "all.policy",
        "measure func=FILE_CHECK mask=MAY_READ fowner=4243\n",
    );
    t.write("inner.policy", "measure func=FILE_CHECK mask=MAY_READ\n");
    t.chown("inner/data", 4243);
    let grandchild = format!(
        "{imafs} run --rootfs {inner} --policy {ipol} -- sh -c \"cat /data > /dev/null; \
         cat {LIST} > /out/inner_list\"",
        imafs = imafs(),
        inner = t.s("inner"),
        ipol = t.s("inner.policy"),
    );
    let child = format!(
        "{imafs} run --policy {pol} -- sh -c '{grandchild} && cat {LIST} > {mid}' && \
         cat {LIST} > {top}",
        imafs = imafs(),
        pol = t.s("all.policy"),
        mid = t.s("out/mid_list"),
        top = t.s("out/top_list"),
    );
    // Privileged: the middle daemon keeps CAP_SYS_ADMIN, so no user namespace of its own,
    // and sees the file's owner 4243 its `fowner=` rule tests (unmapped in a user namespace).
    let o = outer_run(
        &[],
        &["--privileged", "--policy", &t.s("all.policy")],
        &child,
    );
    assert_ok(&o, test);
    let inner = paths(&t.read("inner/out/inner_list"));
    assert!(inner.contains(&"/data".to_string()), "{inner:?}");
    for list in ["out/mid_list", "out/top_list"] {
        let p = paths(&t.read(list));
        let n = p.iter().filter(|x| **x == t.s("inner/data")).count();
        assert_eq!(n, 1, "{list}: {p:?}");
    }
}

#[test]
fn nested_run_works_unprivileged() {
    let test = "nested_run_works_unprivileged";
    if !common::can_run_as_nobody(test) {
        return;
    }
    let Some(t) = Tree::new(test) else { return };
    // Owners other than the caller are unmapped in its user namespace, so the policies
    // cannot use fowner: the parent measures every read and exec.
    t.write(
        "outer.policy",
        "measure func=BPRM_CHECK\nmeasure func=FILE_CHECK mask=MAY_READ\n",
    );
    t.write("inner.policy", "measure func=FILE_CHECK mask=MAY_READ\n");
    std::fs::create_dir(t.path("scratch")).expect("mkdir");
    t.chown("scratch", 65534);
    let script = format!(
        "TMPDIR={scratch} {imafs} run --rootfs {inner} --policy {ipol} -- sh -c 'cat /data' \
         > {scratch}/data && cat {LIST} > {scratch}/outer_list",
        scratch = t.s("scratch"),
        imafs = imafs(),
        inner = t.s("inner"),
        ipol = t.s("inner.policy"),
    );
    let o = outer_run(
        &common::NOBODY,
        &["--policy", &t.s("outer.policy")],
        &script,
    );
    assert_ok(&o, test);
    assert_eq!(t.read("scratch/data"), "data\n");
    let outer = paths(&t.read("scratch/outer_list"));
    assert!(outer.contains(&t.s("inner/data")), "{outer:?}");
    assert!(outer.contains(&t.s("inner/bin/busybox")), "{outer:?}");
    assert!(
        !outer.contains(&t.s("inner.policy")),
        "daemon read leaked: {outer:?}"
    );
}

#[test]
fn for_children_configures_the_next_child_only() {
    let test = "for_children_configures_the_next_child_only";
    let Some(t) = Tree::new(test) else { return };
    t.write("child.policy", "measure func=BPRM_CHECK\n");
    let ima = "/sys/kernel/security/integrity/ima";
    let inner_run = |out: &str| {
        format!(
            "{imafs} run --rootfs {inner} -- sh -c 'cat /data > /dev/null; cat {LIST} > /out/{out}'",
            imafs = imafs(),
            inner = t.s("inner"),
        )
    };
    let script = format!(
        "echo {pol} > {ima}/policy_for_children && \
         echo 'ima_template=ima-sig ima_hash=sha512' > {ima}/kcmd_for_children && \
         {first} && {second}",
        pol = t.s("child.policy"),
        first = inner_run("first"),
        second = inner_run("second"),
    );
    let o = outer_run(&[], &[], &script);
    assert_ok(&o, test);
    let first = t.read("inner/out/first");
    let lines: Vec<&str> = first.lines().collect();
    // The staged policy (execs only), template and hash.
    assert!(
        lines.iter().all(|l| l.contains(" ima-sig sha512:")),
        "{first}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_end().ends_with(" /bin/busybox")),
        "{first}"
    );
    assert!(
        !lines.iter().any(|l| l.trim_end().ends_with(" /data")),
        "{first}"
    );
    // The next child starts with its own defaults (tcb: root's reads, ima-ng, sha256).
    let second = t.read("inner/out/second");
    assert!(
        second.lines().all(|l| l.contains(" ima-ng sha256:")),
        "{second}"
    );
    assert!(second.lines().any(|l| l.ends_with(" /data")), "{second}");
}

#[test]
fn child_rule_cap_gives_enomem() {
    let test = "child_rule_cap_gives_enomem";
    let Some(t) = Tree::new(test) else { return };
    let ima = "/sys/kernel/security/integrity/ima";
    let script = format!(
        // Privileged: reading the policy needs CAP_SYS_ADMIN (ima_fs.c: ima_open_policy).
        "{imafs} run --privileged --rootfs {inner} --max-rules 1 -- sh -c \
         'echo \"measure func=BPRM_CHECK\" > {ima}/policy; \
          echo \"measure func=FILE_CHECK\" > {ima}/policy 2> /out/err; \
          cat {ima}/policy > /out/policy'",
        imafs = imafs(),
        inner = t.s("inner"),
    );
    let o = outer_run(&[], &[], &script);
    assert_ok(&o, test);
    let err = t.read("inner/out/err");
    assert!(err.contains("Cannot allocate memory"), "{err:?}");
    assert_eq!(t.read("inner/out/policy"), "measure func=BPRM_CHECK \n");
}

/// 32 levels, as the user-namespace series' own tests nest: each level an `imafs run` over
/// its parent's root, each measuring execs. The innermost container runs a marker program;
/// every one of the 32 namespaces records that exec exactly once (a child's events reach
/// every ancestor), and each level's list replays to its PCRs (`imafs verify`). The time is
/// printed (`-- --nocapture`), never asserted; bench/nesting measures it per level.
#[test]
fn thirty_two_levels_each_record_the_innermost_exec() {
    let test = "thirty_two_levels_each_record_the_innermost_exec";
    if !common::is_root() || !common::fuse_available() {
        common::skip(
            test,
            "needs root and /dev/fuse (the rootfs is the host's /)",
        );
        return;
    }
    const LEVELS: usize = 32;
    let dir = tempfile::Builder::new()
        .prefix("imafs-deep")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let d = dir.path();
    let marker = d.join("marker");
    std::fs::copy("/bin/true", &marker).expect("copy true");
    std::fs::write(
        d.join("policy"),
        "dont_measure fsmagic=0x73636673\nmeasure func=BPRM_CHECK\n",
    )
    .expect("write");
    // level.sh K, in the container of level K: level 0, the innermost, runs the marker;
    // level K > 0 runs level K-1 in a new `imafs run`. Then each saves how often its own
    // list names the marker and whether its list verifies.
    std::fs::write(
        d.join("level.sh"),
        format!(
            "#!/bin/sh\nk=$1\n\
             if [ \"$k\" -eq 0 ]; then {marker} || exit $?; else \
             {imafs} run --policy {d}/policy -- {d}/level.sh $((k - 1)) || exit $?; fi\n\
             grep -c ' {marker}$' {LIST} > {d}/count.$k\n\
             {imafs} verify -q > {d}/verify.$k 2>&1; echo $? >> {d}/verify.$k\n",
            marker = marker.display(),
            imafs = imafs(),
            d = d.display(),
        ),
    )
    .expect("write");
    chmod(&d.join("level.sh"), 0o755);
    let start = std::time::Instant::now();
    let out = Command::new(imafs())
        .arg("run")
        .arg("--policy")
        .arg(d.join("policy"))
        .arg("--")
        .arg(d.join("level.sh"))
        .arg((LEVELS - 1).to_string())
        .output()
        .expect("imafs run");
    eprintln!(
        "NEST {LEVELS} levels: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_ok(&out, test);
    for k in 0..LEVELS {
        let count = std::fs::read_to_string(d.join(format!("count.{k}")))
            .unwrap_or_else(|e| panic!("level {k} left no count: {e}"));
        assert_eq!(count.trim(), "1", "level {k}");
        let verify = std::fs::read_to_string(d.join(format!("verify.{k}"))).expect("verify");
        assert!(verify.ends_with("\n0\n"), "level {k}: {verify}");
    }
}
