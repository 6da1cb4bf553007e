//! Appraisal end to end through `imafs run`: a tree signed with `evmctl ima_sign` (RSA-2048
//! and P-256 keys whose certificates `openssl` makes here) under `--appraise enforce|fix|log`
//! with `appraise ... appraise_type=imasig` rules; the container is the host's root under the
//! measuring overlay, so it runs the host's `evmctl`, `getfattr` and `setfattr`. Run once as
//! root (`security.ima` on the lower files) and once as uid 65534 (the daemon stores the
//! container's `security.ima` as `user.ima`, what `evmctl --xattr-user` writes).
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const NOBODY: u32 = 65534;

fn missing_tools() -> Option<&'static str> {
    ["evmctl", "openssl", "getfattr", "setfattr", "setpriv"]
        .into_iter()
        .find(|t| !common::have_tool(t))
}

struct Setup {
    dir: tempfile::TempDir,
    /// Host id owning the tree, and the id the container sees for it (policy `fowner=`).
    owner: u32,
    fowner: u32,
    /// Lower xattr name the daemon stores IMA data in.
    stored: &'static str,
    rsa: PathBuf,
    ec: PathBuf,
    other: PathBuf,
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn tree(&self, name: &str) -> PathBuf {
        self.path("tree").join(name)
    }
    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
    fn sign(&self, key: &Path, file: &str) {
        let mut cmd = Command::new("evmctl");
        cmd.args(["ima_sign", "-a", "sha256", "--key"]).arg(key);
        if self.stored == "user.ima" {
            cmd.arg("--xattr-user");
        }
        common::run_ok(cmd.arg(self.tree(file)));
    }
    fn hash(&self, file: &str) {
        let mut cmd = Command::new("evmctl");
        cmd.args(["ima_hash", "-a", "sha256"]);
        if self.stored == "user.ima" {
            cmd.arg("--xattr-user");
        }
        common::run_ok(cmd.arg(self.tree(file)));
    }
    /// The stored IMA xattr of a lower file, as `getfattr -e hex` prints it.
    fn stored_xattr(&self, file: &str) -> Option<Vec<u8>> {
        getfattr_hex(&self.tree(file), self.stored)
    }
    fn write_tree_file(&self, name: &str, data: &str, mode: u32) {
        let p = self.tree(name);
        std::fs::write(&p, data).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::lchown(&p, Some(self.owner), Some(self.owner)).expect("chown");
    }
    fn policy(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        // The IMA files themselves are left out, as appraise_tcb and tcb do: securityfs has
        // no xattrs, and an appraise rule covering the container root's files would refuse
        // the lists (ima_appraise.c: ima_appraise_measurement, no IOP_XATTR).
        let text = format!(
            "dont_appraise fsmagic=0x73636673\ndont_measure fsmagic=0x73636673\n{}",
            text.replace("FOWNER", &self.fowner.to_string())
        );
        std::fs::write(&p, text).expect("policy");
        p
    }
    /// `imafs run` (as uid 65534 in the unprivileged setup) running `script` in the container,
    /// privileged: the container's root signs files (`security.ima` needs CAP_SYS_ADMIN,
    /// which a container's default capabilities lack, as under Podman).
    fn run(&self, args: &[&str], script: &str) -> Output {
        let mut cmd = if self.owner == NOBODY {
            let mut c = Command::new(common::NOBODY[0]);
            c.args(&common::NOBODY[1..]).arg(common::imafs_bin());
            c
        } else {
            Command::new(common::imafs_bin())
        };
        cmd.arg("run")
            .arg("--privileged")
            .args(args)
            .args(["--", "sh", "-c", script])
            .env("W", self.dir.path())
            .output()
            .expect("imafs run")
    }
    fn audit(&self) -> String {
        std::fs::read_to_string(self.path("audit")).unwrap_or_default()
    }
}

fn getfattr_hex(file: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("getfattr")
        .args(["--absolute-names", "-n", name, "-e", "hex"])
        .arg(file)
        .output()
        .expect("getfattr");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{name}=0x");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    hex::decode(&line[prefix.len()..]).ok()
}

/// A work tree in /var/tmp (the host's root file system, seen at the same path in the
/// container): keys, certificates and the files to appraise.
fn setup(test: &str, unprivileged: bool) -> Option<Setup> {
    if let Some(tool) = missing_tools() {
        common::skip(test, &format!("{tool} not installed"));
        return None;
    }
    if !common::is_root() || !common::fuse_available() {
        common::skip(test, "needs root (to prepare both setups) and /dev/fuse");
        return None;
    }
    if unprivileged && !common::can_run_as_nobody(test) {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-appraise")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    // Root: the tree belongs to uid 1234 (the rules' fowner), so the host's own files are not
    // appraised. Unprivileged: the tree belongs to 65534, the container's root.
    let (owner, fowner, stored) = if unprivileged {
        (NOBODY, 0, "user.ima")
    } else {
        (1234, 1234, "security.ima")
    };
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for d in ["keys", "certs", "tree"] {
        std::fs::create_dir(root.join(d)).expect("mkdir");
    }
    let keys = root.join("keys");
    let certs = root.join("certs");
    let rsa = common::signing_key(&keys, Some(&certs), "rsa", &["-newkey", "rsa:2048"]);
    let ec = common::signing_key(
        &keys,
        Some(&certs),
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    );
    let other = common::signing_key(&keys, None, "unknown", &["-newkey", "rsa:2048"]);
    let s = Setup {
        dir,
        owner,
        fowner,
        stored,
        rsa,
        ec,
        other,
    };
    for (name, data, mode) in [
        ("run.sh", "#!/bin/sh\necho script ran\n", 0o755),
        ("ec.txt", "signed with P-256\n", 0o644),
        ("rsa.txt", "signed with RSA\n", 0o644),
        ("tampered.txt", "original\n", 0o644),
        ("unsigned.txt", "never signed\n", 0o644),
        ("unknown.txt", "signed by a key not in the keyring\n", 0o644),
        ("hashed.txt", "hashed by evmctl\n", 0o644),
        ("stale.txt", "hashed then changed\n", 0o644),
        ("signme.txt", "to be signed in the container\n", 0o666),
    ] {
        s.write_tree_file(name, data, mode);
    }
    s.sign(&s.rsa, "run.sh");
    s.sign(&s.rsa, "rsa.txt");
    s.sign(&s.ec, "ec.txt");
    s.sign(&s.rsa, "tampered.txt");
    s.sign(&s.other, "unknown.txt");
    s.hash("hashed.txt");
    s.hash("stale.txt");
    for name in ["tampered.txt", "stale.txt"] {
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.tree(name))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"changed\n"))
            .expect("append");
    }
    for d in ["", "tree"] {
        std::os::unix::fs::lchown(s.path(d), Some(owner), Some(owner)).expect("chown");
    }
    Some(s)
}

const SIG_POLICY: &str = "appraise func=FILE_CHECK fowner=FOWNER appraise_type=imasig\n\
    appraise func=BPRM_CHECK fowner=FOWNER appraise_type=imasig\n\
    measure func=FILE_CHECK fowner=FOWNER\n\
    measure func=BPRM_CHECK fowner=FOWNER\n";

const HASH_POLICY: &str = "appraise func=FILE_CHECK fowner=FOWNER\n\
    measure func=FILE_CHECK fowner=FOWNER\n";

/// `echo NAME ok|denied` for a read of each file (`denied` only for EACCES). No output file
/// is written twice: in the unprivileged setup the container's files are under the rules too.
const VERDICTS: &str = r#"verdicts() { for f in "$@"; do
    if msg=$(cat "$W/tree/$f" 2>&1 > /dev/null); then echo "$f ok";
    else case "$msg" in *"Permission denied"*) echo "$f denied";; *) echo "$f $msg";; esac; fi
  done; }"#;

/// FUSE sends RELEASE asynchronously after close(2), so the hash the last writer's close
/// produces lands shortly after; wait (at most 10 s) until `security.ima` holds the sha256
/// of the content.
const WAIT_FOR_HASH: &str = r#"wait_for_hash() { i=0; want="0x0404$(sha256sum < "$1" | cut -d' ' -f1)";
    while [ $i -lt 200 ] && ! getfattr -n security.ima -e hex "$1" 2>/dev/null | grep -q "$want"; do
      sleep 0.05; i=$((i + 1)); done; }; wait_for_hash"#;

fn audit_has(audit: &str, cause: &str, path: &Path) -> bool {
    let name = format!("name=\"{}\"", path.display());
    audit.lines().any(|l| {
        l.starts_with("type=INTEGRITY_DATA ")
            && l.contains(&format!("op=appraise_data cause={cause} "))
            && l.contains(&name)
            && l.contains("res=0")
    })
}

fn scenario(test: &str, unprivileged: bool) {
    let Some(s) = setup(test, unprivileged) else {
        return;
    };
    let certs = s.path("certs");
    let audit = s.path("audit");
    let sig_policy = s.policy("sig-policy", SIG_POLICY);
    let hash_policy = s.policy("hash-policy", HASH_POLICY);
    let engine = |mode: &'static str, policy: &Path| -> Vec<String> {
        vec![
            "--appraise".into(),
            mode.into(),
            "--keys".into(),
            certs.display().to_string(),
            "--policy".into(),
            policy.display().to_string(),
            "--template".into(),
            "ima-sig".into(),
            "--audit".into(),
            audit.display().to_string(),
        ]
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };

    // log: everything is allowed, the failures audited; evmctl ima_sign in the container
    // writes security.ima through the overlay.
    let ima = "/sys/kernel/security/ima";
    let script = format!(
        "{VERDICTS}\nverdicts unsigned.txt signme.txt > $W/log-verdicts\n\
         evmctl ima_sign -a sha256 --key $W/keys/p256.pem $W/tree/signme.txt > $W/sign-out 2>&1\n\
         getfattr -n security.ima -e hex $W/tree/signme.txt > $W/signme-inside 2>&1\n"
    );
    let args = strs(&engine("log", &sig_policy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, &script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        s.text("log-verdicts"),
        "unsigned.txt ok\nsignme.txt ok\n",
        "{}",
        s.audit()
    );
    let log_audit = s.audit();
    assert!(
        audit_has(
            &log_audit,
            "IMA-signature-required",
            &s.tree("unsigned.txt")
        ),
        "{log_audit}"
    );
    let signed_inside = s
        .stored_xattr("signme.txt")
        .unwrap_or_else(|| panic!("no {} on signme.txt: {}", s.stored, s.text("sign-out")));
    assert_eq!(&signed_inside[..3], &[3, 2, 4], "a v2 sha256 signature");
    assert!(
        s.text("signme-inside")
            .contains(&format!("security.ima=0x{}", hex::encode(&signed_inside))),
        "{}",
        s.text("signme-inside")
    );
    std::fs::remove_file(&audit).expect("rm audit");

    // enforce with signatures required.
    let script = format!(
        "{VERDICTS}\n\
         verdicts rsa.txt ec.txt signme.txt tampered.txt unsigned.txt unknown.txt hashed.txt > $W/verdicts\n\
         $W/tree/run.sh > $W/exec 2>&1 || echo exec refused >> $W/exec\n\
         if echo more >> $W/tree/ec.txt; then echo write ok; else echo write denied; fi 2>/dev/null > $W/write\n\
         cat {ima}/ascii_runtime_measurements > $W/list\n\
         cat {ima}/binary_runtime_measurements > $W/binary\n\
         evmctl ima_measurement --ignore-violations {ima}/binary_runtime_measurements > $W/replay 2>&1\n"
    );
    let args = strs(&engine("enforce", &sig_policy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, &script);
    assert!(out.status.success(), "{out:?}");
    let audit_text = s.audit();
    assert_eq!(
        s.text("verdicts"),
        "rsa.txt ok\nec.txt ok\nsignme.txt ok\ntampered.txt denied\nunsigned.txt denied\n\
         unknown.txt denied\nhashed.txt denied\n",
        "{audit_text}"
    );
    assert_eq!(s.text("exec"), "script ran\n");
    assert_eq!(s.text("write"), "write denied\n");
    for (cause, file) in [
        ("invalid-signature", "tampered.txt"),
        ("IMA-signature-required", "unsigned.txt"),
        ("invalid-signature", "unknown.txt"),
        ("IMA-signature-required", "hashed.txt"),
    ] {
        assert!(
            audit_has(&audit_text, cause, &s.tree(file)),
            "{cause} {file}: {audit_text}"
        );
    }
    // ima-sig entries carry the signatures, byte for byte the stored xattr.
    let list = s.text("list");
    for file in ["rsa.txt", "ec.txt", "signme.txt", "run.sh"] {
        let path = s.tree(file).display().to_string();
        let sig = hex::encode(s.stored_xattr(file).expect("signed"));
        let data = std::fs::read(s.tree(file)).expect("read");
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" {path} {sig}")))
            .unwrap_or_else(|| panic!("{file} with its signature not in\n{list}"));
        assert!(
            line.contains(&format!(
                " ima-sig sha256:{} ",
                hex::encode(Sha256::digest(&data))
            )),
            "{line}"
        );
    }
    assert!(
        s.text("replay")
            .contains("Matched per TPM bank calculated digest(s)."),
        "{}",
        s.text("replay")
    );
    std::fs::remove_file(&audit).expect("rm audit");

    // enforce with a hash rule: evmctl ima_hash values pass, a stale one is refused.
    let script = format!(
        "{VERDICTS}\nverdicts hashed.txt rsa.txt stale.txt unsigned.txt > $W/hash-verdicts\n"
    );
    let args = strs(&engine("enforce", &hash_policy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, &script);
    assert!(out.status.success(), "{out:?}");
    let audit_text = s.audit();
    assert_eq!(
        s.text("hash-verdicts"),
        "hashed.txt ok\nrsa.txt ok\nstale.txt denied\nunsigned.txt denied\n",
        "{audit_text}"
    );
    assert!(audit_has(&audit_text, "invalid-hash", &s.tree("stale.txt")));
    assert!(audit_has(
        &audit_text,
        "missing-hash",
        &s.tree("unsigned.txt")
    ));
    std::fs::remove_file(&audit).expect("rm audit");

    // fix: wrong and missing hashes are rewritten; the container sees them as security.ima.
    let script = format!(
        "{VERDICTS}\nverdicts stale.txt unsigned.txt > $W/fix-verdicts\n\
         getfattr -n security.ima -e hex $W/tree/stale.txt > $W/stale-inside 2>&1\n\
         echo appended >> $W/tree/hashed.txt\n\
         {WAIT_FOR_HASH} $W/tree/hashed.txt\n"
    );
    let args = strs(&engine("fix", &hash_policy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, &script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.text("fix-verdicts"), "stale.txt ok\nunsigned.txt ok\n");
    for file in ["stale.txt", "unsigned.txt", "hashed.txt"] {
        let data = std::fs::read(s.tree(file)).expect("read");
        let mut want = vec![4, 4];
        want.extend(Sha256::digest(&data));
        assert_eq!(s.stored_xattr(file), Some(want.clone()), "{file}");
        if file == "stale.txt" {
            assert!(s
                .text("stale-inside")
                .contains(&format!("security.ima=0x{}", hex::encode(&want))));
        }
    }

    // enforce again: the repaired files pass now.
    let script = format!("{VERDICTS}\nverdicts stale.txt unsigned.txt hashed.txt > $W/after-fix\n");
    let args = strs(&engine("enforce", &hash_policy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, &script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        s.text("after-fix"),
        "stale.txt ok\nunsigned.txt ok\nhashed.txt ok\n"
    );
}

#[test]
fn appraise_through_imafs_run_as_root() {
    scenario("appraise_through_imafs_run_as_root", false);
}

#[test]
fn appraise_through_imafs_run_unprivileged_with_user_ima() {
    scenario(
        "appraise_through_imafs_run_unprivileged_with_user_ima",
        true,
    );
}

/// Inside one container: a certificate written to the `keys` file loads and is measured
/// (KEY_CHECK, ima-buf); `setfattr` of security.ima is checked as the kernel does (EINVAL for
/// an unknown type, EPERM without CAP_SYS_ADMIN) and a removal resets the cached verdict; a
/// file changed on the host while the container runs is appraised again on its next open.
fn changes_scenario(test: &str, unprivileged: bool) {
    let Some(s) = setup(test, unprivileged) else {
        return;
    };
    let p256_only = s.path("p256-only");
    std::fs::create_dir(&p256_only).expect("mkdir");
    std::fs::copy(s.path("certs/p256.der"), p256_only.join("p256.der")).expect("copy");
    let policy = s.policy(
        "policy",
        "measure func=KEY_CHECK keyrings=_ima template=ima-buf\n\
         appraise func=FILE_CHECK fowner=FOWNER appraise_type=imasig\n",
    );
    let hash_policy = s.policy("hash-policy", HASH_POLICY);
    let audit = s.path("audit");
    let ima = "/sys/kernel/security/ima";
    // Non-root callers exist only in the root setup (the unprivileged container maps one id).
    let eperm = if unprivileged {
        String::new()
    } else {
        "setpriv --reuid=1 --regid=1 --clear-groups setfattr -x security.ima $W/tree/ec.txt \
         > $W/eperm 2>&1 || echo refused >> $W/eperm\n\
         chmod 600 $W/tree/run.sh && chown 1235 $W/tree/rsa.txt\n"
            .to_owned()
    };
    let script = format!(
        "{VERDICTS}\nverdicts ec.txt > $W/v1\n\
         cat $W/certs/rsa.der > {ima}/keys\n\
         verdicts rsa.txt > $W/v2\n\
         setfattr -n security.ima -v 0x09 $W/tree/ec.txt > $W/einval 2>&1 || echo refused >> $W/einval\n\
         {eperm}\
         setfattr -x security.ima $W/tree/ec.txt\n\
         verdicts ec.txt > $W/v3\n\
         cat {ima}/ascii_runtime_measurements > $W/list\n"
    );
    let out = s.run(
        &[
            "--appraise",
            "enforce",
            "--keys",
            p256_only.to_str().expect("utf-8"),
            "--policy",
            policy.to_str().expect("utf-8"),
            "--audit",
            audit.to_str().expect("utf-8"),
        ],
        &script,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.text("v1"), "ec.txt ok\n");
    assert_eq!(s.text("v2"), "rsa.txt ok\n", "{}", s.audit());
    assert!(
        s.text("einval").contains("Invalid argument"),
        "{}",
        s.text("einval")
    );
    if !unprivileged {
        assert!(
            s.text("eperm").contains("Operation not permitted"),
            "{}",
            s.text("eperm")
        );
    }
    if !unprivileged {
        // ima_inode_post_setattr: out of the rules' fowner=, the IMA xattr goes; still
        // covered after a chmod, it stays.
        assert_eq!(s.stored_xattr("rsa.txt"), None);
        assert_eq!(s.stored_xattr("run.sh").map(|v| v[0]), Some(3));
    }
    assert_eq!(s.text("v3"), "ec.txt denied\n");
    assert_eq!(s.stored_xattr("ec.txt"), None);
    // Both keys measured as ima-buf entries of the _ima keyring, the buffer the DER.
    let list = s.text("list");
    for cert in ["p256.der", "rsa.der"] {
        let der = std::fs::read(s.path("certs").join(cert)).expect("der");
        let want = format!(
            " ima-buf sha256:{} _ima {}",
            hex::encode(Sha256::digest(&der)),
            hex::encode(&der)
        );
        assert!(list.lines().any(|l| l.ends_with(&want)), "{cert}: {list}");
    }

    // A change made on the host while the container runs: the next open is appraised again.
    let script = format!(
        "{VERDICTS}\nverdicts hashed.txt > $W/t1\n: > $W/ready\n\
         while [ ! -e $W/go ]; do sleep 0.05; done\nverdicts hashed.txt > $W/t2\n"
    );
    let child = {
        let s = &s;
        let hash_policy = hash_policy.clone();
        let audit = audit.clone();
        std::thread::scope(|scope| {
            let h = scope.spawn(move || {
                s.run(
                    &[
                        "--appraise",
                        "enforce",
                        "--policy",
                        hash_policy.to_str().expect("utf-8"),
                        "--audit",
                        audit.to_str().expect("utf-8"),
                    ],
                    &script,
                )
            });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !s.path("ready").exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::fs::OpenOptions::new()
                .append(true)
                .open(s.tree("hashed.txt"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"tampered\n"))
                .expect("append");
            std::fs::write(s.path("go"), "").expect("go");
            h.join().expect("join")
        })
    };
    assert!(child.status.success(), "{child:?}");
    assert_eq!(s.text("t1"), "hashed.txt ok\n");
    assert_eq!(s.text("t2"), "hashed.txt denied\n");
    assert!(audit_has(&s.audit(), "invalid-hash", &s.tree("hashed.txt")));

    // appraise_algos=: run.sh's good sha256 signature is refused where only sha384/sha512 are
    // allowed (`collect_data`/`denied-hash-algorithm`); appraise_flag= is accepted and ignored.
    std::fs::remove_file(&audit).expect("rm audit");
    let algos = s.policy(
        "algos-policy",
        "appraise func=FILE_CHECK fowner=FOWNER appraise_type=imasig \
         appraise_algos=sha384,sha512 appraise_flag=check_blacklist\n",
    );
    // To stdout: a file the container creates is under this rule in the unprivileged setup,
    // and a new file's default algorithm (sha256) is not allowed either.
    let script = format!("{VERDICTS}\nverdicts run.sh\n");
    let out = s.run(
        &[
            "--appraise",
            "enforce",
            "--keys",
            s.path("certs").to_str().expect("utf-8"),
            "--policy",
            algos.to_str().expect("utf-8"),
            "--audit",
            audit.to_str().expect("utf-8"),
        ],
        &script,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "run.sh denied\n",
        "{}",
        s.audit()
    );
    let name = format!("name=\"{}\"", s.tree("run.sh").display());
    assert!(
        s.audit().lines().any(
            |l| l.contains("op=collect_data cause=denied-hash-algorithm ") && l.contains(&name)
        ),
        "{}",
        s.audit()
    );
}

#[test]
fn keys_xattr_writes_and_host_changes_as_root() {
    changes_scenario("keys_xattr_writes_and_host_changes_as_root", false);
}

#[test]
fn keys_xattr_writes_and_host_changes_unprivileged() {
    changes_scenario("keys_xattr_writes_and_host_changes_unprivileged", true);
}
