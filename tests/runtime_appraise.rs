//! The runtime (`engine::ima::Ima`) appraising real files signed by `evmctl ima_sign` with
//! keys made by `openssl`, and measuring keys added to its keyring (KEY_CHECK).

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use imafs::engine::audit::AUDIT_INTEGRITY_DATA;
use imafs::engine::hash::HashAlgo;
use imafs::engine::ima::{
    AppraiseMode, Config, FileEvent, Ima, KnownTask, PolicyAccess, PolicyFile, XattrSource,
};
use imafs::engine::measure::{FileId, FileVersion};
use imafs::engine::measurement_list::ViewKind;
use imafs::engine::policy::{Func, Subject, MAY_READ, MAY_WRITE};
use imafs::engine::Errno;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An RSA key + self-signed certificate (with SKI); returns (key+cert PEM, DER cert).
fn make_key(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let priv_pem = dir.join(format!("{name}.priv.pem"));
    let cert = dir.join(format!("{name}.crt"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-days", "2", "-newkey", "rsa:2048",
        ])
        .args(["-subj", &format!("/CN=imafs runtime {name}")])
        .arg("-keyout")
        .arg(&priv_pem)
        .arg("-out")
        .arg(&cert));
    let key = dir.join(format!("{name}.pem"));
    let mut both = std::fs::read(&priv_pem).unwrap();
    both.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&key, both).unwrap();
    let der = run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert));
    (key, der)
}

/// `evmctl ima_sign --sigfile`: the security.ima value without touching xattrs.
fn sign(key: &Path, file: &Path) -> Vec<u8> {
    run(Command::new("evmctl")
        .args(["ima_sign", "--sigfile", "-a", "sha256", "--key"])
        .arg(key)
        .arg(file));
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    std::fs::read(sig).expect("evmctl wrote FILE.sig")
}

fn tools_or_skip(test: &str) -> bool {
    for tool in ["openssl", "evmctl"] {
        if !common::have_tool(tool) {
            common::skip(test, &format!("{tool} not installed"));
            return false;
        }
    }
    true
}

fn load(ima: &Ima, text: &str) {
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let n = ima
            .policy_write(&mut h, 0, rest, &|p| std::fs::read(p))
            .expect("rule accepted");
        rest = &rest[n.min(rest.len())..];
    }
    ima.policy_release(h);
}

fn id_version(path: &Path) -> (FileId, FileVersion) {
    let m = std::fs::metadata(path).unwrap();
    (
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
        FileVersion::of_file(&File::open(path).unwrap()).unwrap(),
    )
}

/// A FILE_CHECK by root of `path` (seen as `name`) with `xattr` as security.ima.
fn open(
    ima: &Ima,
    path: &Path,
    name: &str,
    xattr: Option<&[u8]>,
    write: bool,
) -> Result<(), Errno> {
    let (id, version) = id_version(path);
    let task = KnownTask {
        subject: Subject::default(),
        comm: "runtime-test".into(),
    };
    let ev = FileEvent {
        func: Func::FileCheck,
        mask: if write { MAY_WRITE } else { MAY_READ },
        task: &task,
        pid: 1,
        id,
        version,
        owner: 0,
        group: 0,
        mode: 0o100755,
        fsmagic: 0xef53,
        fsname: "ext4",
        fs_id: "vda",
        fsuuid: None,
        path: name.as_bytes(),
        ima_xattr: XattrSource::Known(xattr),
        opened_for_write: write,
        created: false,
    };
    ima.process_file(&ev, &File::open(path).unwrap())
}

fn ascii_sha256(ima: &Ima) -> String {
    let idx = ima.list().bank_index(HashAlgo::Sha256).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = ima.list().read(ViewKind::Ascii, idx, 0, &mut buf);
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn audit_causes(ima: &Ima) -> Vec<String> {
    ima.audit()
        .recent()
        .into_iter()
        .filter(|r| r.kind == AUDIT_INTEGRITY_DATA)
        .map(|r| r.body)
        .collect()
}

#[test]
fn evmctl_signed_files_are_appraised_and_measured() {
    if !tools_or_skip("evmctl_signed_files_are_appraised_and_measured") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, der) = make_key(dir.path(), "good");
    let (other_key, _) = make_key(dir.path(), "other");
    let ima = Ima::new(Config {
        builtin_policy: vec![],
        appraise: AppraiseMode::Enforce,
        ..Config::default()
    })
    .unwrap();
    ima.add_keys(&der, &Subject::default()).unwrap();
    load(
        &ima,
        "appraise func=FILE_CHECK appraise_type=imasig\nmeasure func=FILE_CHECK template=ima-sig\n",
    );

    let prog = dir.path().join("prog");
    std::fs::write(&prog, b"#!/bin/sh\necho signed\n").unwrap();
    let sig = sign(&key, &prog);
    assert_eq!(&sig[..3], &[0x03, 0x02, 0x04]);
    assert_eq!(
        open(&ima, &prog, "/usr/bin/prog", Some(&sig), false),
        Ok(())
    );
    let list = ascii_sha256(&ima);
    let line = list.lines().nth(1).expect("measured");
    assert!(
        line.ends_with(&format!(" /usr/bin/prog {}", hex::encode(&sig))),
        "{line}"
    );
    assert!(audit_causes(&ima).is_empty());

    // A file with a valid signature cannot be opened for write under an appraise rule.
    assert_eq!(
        open(&ima, &prog, "/usr/bin/prog", Some(&sig), true),
        Err(Errno::EACCES)
    );

    // Signed by a key the keyring does not hold.
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"foreign").unwrap();
    let foreign_sig = sign(&other_key, &foreign);
    assert_eq!(
        open(&ima, &foreign, "/foreign", Some(&foreign_sig), false),
        Err(Errno::EACCES)
    );

    // Unsigned, and signed-then-modified.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"plain").unwrap();
    assert_eq!(
        open(&ima, &plain, "/plain", None, false),
        Err(Errno::EACCES)
    );
    std::fs::write(&prog, b"#!/bin/sh\necho tampered!\n").unwrap();
    assert_eq!(
        open(&ima, &prog, "/usr/bin/prog", Some(&sig), false),
        Err(Errno::EACCES)
    );
    let causes = audit_causes(&ima);
    assert_eq!(causes.len(), 3, "{causes:?}");
    assert!(causes[0].contains(
        "op=appraise_data cause=invalid-signature comm=\"runtime-test\" name=\"/foreign\""
    ));
    assert!(causes[1].contains("cause=IMA-signature-required"));
    assert!(
        causes[2].contains("cause=invalid-signature comm=\"runtime-test\" name=\"/usr/bin/prog\"")
    );
}

#[test]
fn keys_are_measured_as_key_check_when_added_under_the_policy() {
    if !tools_or_skip("keys_are_measured_as_key_check_when_added_under_the_policy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, der) = make_key(dir.path(), "k1");
    let (_, der2) = make_key(dir.path(), "k2");
    let ima = Ima::new(Config::default()).unwrap();
    // Before a key-measuring policy: in the keyring, not measured, and not queued (a
    // namespace has no early-boot key queue: engine/ima/keys.rs).
    let ids = ima.add_keys(&der, &Subject::default()).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ima.keyring().len(), 1);
    assert_eq!(ima.list().len(), 1);
    load(
        &ima,
        "measure func=KEY_CHECK keyrings=_ima template=ima-buf\n",
    );
    assert_eq!(ima.list().len(), 1, "nothing measured at the policy's load");
    ima.add_keys(&der2, &Subject::default()).unwrap();
    let list = ascii_sha256(&ima);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    for (line, der) in lines[1..].iter().zip([&der2]) {
        let sha = HashAlgo::Sha256.digest(der).unwrap().to_hex();
        assert!(
            line.ends_with(&format!(" ima-buf sha256:{sha} _ima {}", hex::encode(der))),
            "{line}"
        );
    }
}

#[test]
fn signed_policy_file_loads_under_secure_boot() {
    if !tools_or_skip("signed_policy_file_loads_under_secure_boot") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, der) = make_key(dir.path(), "policy");
    let ima = Ima::new(Config {
        builtin_policy: vec!["secure_boot".into(), "tcb".into()],
        appraise: AppraiseMode::Enforce,
        ..Config::default()
    })
    .unwrap();
    ima.add_keys(&der, &Subject::default()).unwrap();
    let policy = dir.path().join("ima-policy");
    std::fs::write(
        &policy,
        "measure func=BPRM_CHECK\nappraise func=POLICY_CHECK appraise_type=imasig\n",
    )
    .unwrap();
    let sig = sign(&key, &policy);
    let loader = |p: &str| {
        Ok(PolicyFile {
            content: std::fs::read(p)?,
            ima_xattr: (Path::new(p) == policy).then(|| sig.clone()),
        })
    };
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    // Rule text is refused outright.
    assert_eq!(
        ima.policy_write_file(&mut h, 0, b"measure func=BPRM_CHECK\n", &loader),
        Err(Errno::EACCES)
    );
    ima.policy_release(h);
    let mut h = ima.open_policy(PolicyAccess::Write, true).unwrap();
    let written = format!("{}\n", policy.display());
    assert_eq!(
        ima.policy_write_file(&mut h, 0, written.as_bytes(), &loader),
        Ok(written.len())
    );
    ima.policy_release(h);
    assert_eq!(
        ima.policy_text(),
        "measure func=BPRM_CHECK \nappraise func=POLICY_CHECK appraise_type=imasig \n"
    );
    // The tcb rule measured the policy file as it was read.
    let list = ascii_sha256(&ima);
    assert!(list.contains(&format!(" {}\n", policy.display())), "{list}");
}
