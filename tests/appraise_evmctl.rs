//! Appraisal interop with the real tools: keys and certificates made by `openssl`,
//! `security.ima` written by `evmctl ima_sign` / `evmctl ima_hash` / `setfattr`, read back
//! with `getfattr`, and judged by `engine::appraise` exactly as the kernel would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use imafs::engine::appraise::{appraise, AppraiseRequirements, Verdict};
use imafs::engine::hash::{Digest, HashAlgo};
use imafs::engine::keys::Keyring;
use imafs::engine::xattr::{parse_ima_xattr, ImaXattr};

const PASS_SIGNED: Verdict = Verdict::Pass { signed: true };
const PASS_HASH: Verdict = Verdict::Pass { signed: false };

fn fail(cause: &'static str, fixable: bool) -> Verdict {
    Verdict::Fail { cause, fixable }
}

/// The tools this file needs, or the reason it cannot run here.
fn missing_tools() -> Option<String> {
    for tool in ["openssl", "evmctl", "getfattr", "setfattr"] {
        if !common::have_tool(tool) {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

/// A temp dir where `security.ima` can be written (root on a filesystem with xattrs).
fn workdir(test: &str) -> Option<tempfile::TempDir> {
    if let Some(reason) = missing_tools() {
        common::skip(test, &reason);
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"x").expect("write probe");
    if !run_ok(
        Command::new("setfattr")
            .args(["-n", "security.ima", "-v", "0x0404"])
            .arg(&probe),
    ) {
        common::skip(
            test,
            "cannot set security.ima here (needs root and xattr support)",
        );
        return None;
    }
    Some(dir)
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

/// A signing key: `key` holds the private key followed by the certificate (so evmctl takes
/// the key id from the certificate's SKI), `cert` the PEM certificate alone.
struct TestKey {
    key: PathBuf,
    cert: PathBuf,
    der: PathBuf,
    /// The private key alone (evmctl then derives the key id from the public key).
    priv_only: PathBuf,
}

fn make_key(dir: &Path, name: &str, newkey: &[&str], subject: &str, extra: &[&str]) -> TestKey {
    let priv_pem = dir.join(format!("{name}.priv.pem"));
    let cert = dir.join(format!("{name}.crt"));
    common::run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-subj", subject])
            .args(newkey)
            .args(extra)
            .arg("-keyout")
            .arg(&priv_pem)
            .arg("-out")
            .arg(&cert),
    );
    let key = dir.join(format!("{name}.pem"));
    let mut both = std::fs::read(&priv_pem).unwrap();
    both.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&key, both).unwrap();
    let der = dir.join(format!("{name}.der"));
    common::run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der),
    );
    TestKey {
        key,
        cert,
        der,
        priv_only: priv_pem,
    }
}

fn rsa2048(dir: &Path) -> TestKey {
    make_key(
        dir,
        "rsa",
        &["-newkey", "rsa:2048"],
        "/CN=imafs rsa test/O=imafs",
        &[],
    )
}

fn ec(dir: &Path, curve: &str) -> TestKey {
    let opt = format!("ec_paramgen_curve:{curve}");
    make_key(
        dir,
        curve,
        &["-newkey", "ec", "-pkeyopt", &opt],
        &format!("/CN=imafs {curve} test"),
        &[],
    )
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// `security.ima` as `getfattr -e hex` prints it; `None` when the file has none.
fn read_ima(file: &Path) -> Option<Vec<u8>> {
    let out = Command::new("getfattr")
        .args(["--absolute-names", "-n", "security.ima", "-e", "hex"])
        .arg(file)
        .output()
        .expect("getfattr");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("security.ima="))?;
    let hex = line.trim_start_matches("security.ima=0x");
    Some(hex::decode(hex).expect("getfattr hex"))
}

fn ima_sign(key: &Path, algo: &str, file: &Path, extra: &[&str]) -> Vec<u8> {
    common::run_ok(
        Command::new("evmctl")
            .args(["ima_sign", "--key"])
            .arg(key)
            .args(["-a", algo])
            .args(extra)
            .arg(file),
    );
    read_ima(file).expect("evmctl wrote security.ima")
}

fn file_digest(file: &Path) -> impl Fn(HashAlgo) -> Option<Digest> {
    let data = std::fs::read(file).unwrap();
    move |algo| algo.digest(&data)
}

fn keyring(certs: &[&Path]) -> Keyring {
    let mut ring = Keyring::new();
    for c in certs {
        ring.load_path(c).expect("load cert");
    }
    ring
}

fn default_req() -> AppraiseRequirements {
    AppraiseRequirements::default()
}

fn sig_req() -> AppraiseRequirements {
    AppraiseRequirements {
        signature_required: true,
        ..Default::default()
    }
}

#[test]
fn evmctl_signatures_verify_for_rsa_p256_p384() {
    let Some(dir) = workdir("evmctl_signatures_verify_for_rsa_p256_p384") else {
        return;
    };
    let d = dir.path();
    let keys = [rsa2048(d), ec(d, "P-256"), ec(d, "P-384")];
    let ring = keyring(&[&keys[0].cert, &keys[1].cert, &keys[2].cert]);
    assert_eq!(ring.len(), 3);
    let mut checked = 0;
    for (k, key) in keys.iter().enumerate() {
        for algo in ["sha1", "sha224", "sha256", "sha384", "sha512"] {
            let file = write_file(
                d,
                &format!("f{k}{algo}"),
                format!("content {k} {algo}\n").as_bytes(),
            );
            let value = ima_sign(&key.key, algo, &file, &[]);
            let parsed = parse_ima_xattr(&value).expect("evmctl value parses");
            let ImaXattr::SigV2 { algo: a, keyid, .. } = parsed else {
                panic!("not a v2 signature: {parsed:?}");
            };
            assert_eq!(a.name(), algo);
            assert!(ring.find(keyid).is_some(), "key {keyid:08x} not found");
            for req in [default_req(), sig_req()] {
                assert_eq!(
                    appraise(Some(&value), file_digest(&file), &req, &ring),
                    PASS_SIGNED,
                    "key {k} {algo}"
                );
            }
            // evmctl agrees that the signature is good (it wants the certificate in DER).
            assert!(run_ok(
                Command::new("evmctl")
                    .args(["ima_verify", "--key"])
                    .arg(&key.der)
                    .arg(&file)
            ));

            // Tampered content: invalid-signature, and fix mode may not touch it.
            std::fs::write(&file, b"tampered\n").unwrap();
            assert_eq!(
                appraise(Some(&value), file_digest(&file), &default_req(), &ring),
                fail("invalid-signature", false),
                "key {k} {algo}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn unknown_key_and_wrong_key_fail() {
    let Some(dir) = workdir("unknown_key_and_wrong_key_fail") else {
        return;
    };
    let d = dir.path();
    let signer = ec(d, "P-256");
    let other = rsa2048(d);
    let file = write_file(d, "f", b"signed by p256\n");
    let value = ima_sign(&signer.key, "sha256", &file, &[]);

    let only_other = keyring(&[&other.cert]);
    assert_eq!(
        appraise(Some(&value), file_digest(&file), &sig_req(), &only_other),
        fail("invalid-signature", false)
    );
    assert_eq!(
        appraise(
            Some(&value),
            file_digest(&file),
            &sig_req(),
            &Keyring::new()
        ),
        fail("invalid-signature", false)
    );
    // The right key id pointing at the wrong key: evmctl --keyid forces another key's id.
    let other_id = only_other.keys()[0].keyid();
    let forged = ima_sign(
        &signer.key,
        "sha256",
        &file,
        &["--keyid", &format!("{other_id:08x}")],
    );
    assert_eq!(
        u32::from_be_bytes(forged[3..7].try_into().unwrap()),
        other_id
    );
    assert_eq!(
        appraise(Some(&forged), file_digest(&file), &sig_req(), &only_other),
        fail("invalid-signature", false)
    );
    let both = keyring(&[&other.cert, &signer.cert]);
    assert_eq!(
        appraise(Some(&value), file_digest(&file), &sig_req(), &both),
        PASS_SIGNED
    );
}

#[test]
fn evmctl_hashes_and_missing_xattr() {
    let Some(dir) = workdir("evmctl_hashes_and_missing_xattr") else {
        return;
    };
    let d = dir.path();
    let ring = Keyring::new();
    for (algo, kind) in [("sha1", 0x01u8), ("sha256", 0x04), ("sha512", 0x04)] {
        let file = write_file(d, algo, b"hashed content\n");
        common::run_ok(
            Command::new("evmctl")
                .args(["ima_hash", "-a", algo])
                .arg(&file),
        );
        let value = read_ima(&file).expect("evmctl ima_hash wrote security.ima");
        assert_eq!(value[0], kind, "{algo}");
        assert_eq!(
            appraise(Some(&value), file_digest(&file), &default_req(), &ring),
            PASS_HASH,
            "{algo}"
        );
        // A hash where a signature is required.
        assert_eq!(
            appraise(Some(&value), file_digest(&file), &sig_req(), &ring),
            fail("IMA-signature-required", true),
            "{algo}"
        );
        // Content changed after hashing.
        std::fs::write(&file, b"changed\n").unwrap();
        let v = appraise(Some(&value), file_digest(&file), &default_req(), &ring);
        assert_eq!(v, fail("invalid-hash", true), "{algo}");
        assert_eq!(v.op(), Some("appraise_data"));
    }
    let bare = write_file(d, "bare", b"no xattr\n");
    assert_eq!(read_ima(&bare), None);
    assert_eq!(
        appraise(
            read_ima(&bare).as_deref(),
            file_digest(&bare),
            &default_req(),
            &ring
        ),
        fail("missing-hash", true)
    );
    assert_eq!(
        appraise(
            read_ima(&bare).as_deref(),
            file_digest(&bare),
            &sig_req(),
            &ring
        ),
        fail("IMA-signature-required", true)
    );
}

#[test]
fn fix_mode_value_matches_evmctl_ima_hash() {
    let Some(dir) = workdir("fix_mode_value_matches_evmctl_ima_hash") else {
        return;
    };
    let d = dir.path();
    for algo in [HashAlgo::Sha1, HashAlgo::Sha256, HashAlgo::Sha384] {
        let file = write_file(d, algo.name(), b"fix me\n");
        common::run_ok(
            Command::new("evmctl")
                .args(["ima_hash", "-a", algo.name()])
                .arg(&file),
        );
        let by_evmctl = read_ima(&file).unwrap();
        let digest = algo.digest(b"fix me\n").unwrap();
        let ours = imafs::engine::xattr::encode_digest_xattr(&digest);
        assert_eq!(ours, by_evmctl, "{algo}");
        // What we would write is accepted back by setfattr/getfattr unchanged.
        let hexval = format!("0x{}", hex::encode(&ours));
        common::run_ok(
            Command::new("setfattr")
                .args(["-n", "security.ima", "-v", &hexval])
                .arg(&file),
        );
        assert_eq!(read_ima(&file).unwrap(), ours);
    }
}

#[test]
fn appraise_algos_restricts_signatures_and_hashes() {
    let Some(dir) = workdir("appraise_algos_restricts_signatures_and_hashes") else {
        return;
    };
    let d = dir.path();
    let key = ec(d, "P-384");
    let ring = keyring(&[&key.cert]);
    let file = write_file(d, "f", b"algos\n");
    let sha1_sig = ima_sign(&key.key, "sha1", &file, &[]);
    let only_sha256 = AppraiseRequirements {
        signature_required: true,
        appraise_algos: Some(1 << HashAlgo::Sha256.id()),
        ..Default::default()
    };
    let v = appraise(Some(&sha1_sig), file_digest(&file), &only_sha256, &ring);
    assert_eq!(v, fail("denied-hash-algorithm", false));
    assert_eq!(v.op(), Some("collect_data"));
    let sha256_sig = ima_sign(&key.key, "sha256", &file, &[]);
    assert_eq!(
        appraise(Some(&sha256_sig), file_digest(&file), &only_sha256, &ring),
        PASS_SIGNED
    );
}

#[test]
fn keyring_loads_der_pem_bundles_and_directories() {
    let Some(dir) = workdir("keyring_loads_der_pem_bundles_and_directories") else {
        return;
    };
    let d = dir.path();
    let rsa = rsa2048(d);
    let p256 = ec(d, "P-256");
    let p384 = ec(d, "P-384");

    // DER, as /etc/keys/x509_ima.der.
    let der = rsa.der.clone();
    let mut ring = Keyring::new();
    let ids = ring.load_path(&der).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        ring.keys()[0].der(),
        std::fs::read(&der).unwrap().as_slice()
    );

    // The key id is the SKI's last 4 bytes, as openssl prints it.
    let text = common::run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectKeyIdentifier", "-in"])
            .arg(&rsa.cert),
    );
    let ski_hex: String = text
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .split(':')
        .collect::<Vec<_>>()
        .concat()
        .to_lowercase();
    assert_eq!(format!("{:08x}", ids[0]), ski_hex[ski_hex.len() - 8..]);
    // And it is what evmctl writes into signatures.
    let file = write_file(d, "f", b"x\n");
    let sig = ima_sign(&rsa.key, "sha256", &file, &[]);
    assert_eq!(sig[3..7], ids[0].to_be_bytes());

    // A PEM bundle of several certificates (plus a private key, which is skipped).
    let bundle = d.join("bundle.pem");
    let mut text = std::fs::read(&p256.key).unwrap();
    text.extend(std::fs::read(&p384.cert).unwrap());
    std::fs::write(&bundle, &text).unwrap();
    let mut ring = Keyring::new();
    assert_eq!(ring.load_path(&bundle).unwrap().len(), 2);
    let lines = ring.list();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with(" ecdsa-nist-p256 imafs P-256 test"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" ecdsa-nist-p384 imafs P-384 test"),
        "{lines:?}"
    );
    for (line, key) in lines.iter().zip(ring.keys()) {
        assert_eq!(&line[..8], format!("{:08x}", key.keyid()));
    }

    // A directory: every certificate file, bad files skipped.
    let keydir = d.join("keys");
    std::fs::create_dir(&keydir).unwrap();
    std::fs::copy(&der, keydir.join("a.der")).unwrap();
    std::fs::copy(&p256.cert, keydir.join("b.pem")).unwrap();
    std::fs::copy(&p384.cert, keydir.join("c.crt")).unwrap();
    std::fs::write(keydir.join("junk"), b"not a certificate").unwrap();
    let mut ring = Keyring::new();
    assert_eq!(ring.load_path(&keydir).unwrap().len(), 3);
    assert_eq!(ring.len(), 3);
    assert!(
        ring.list()[0].contains(" rsa imafs rsa test"),
        "{:?}",
        ring.list()
    );
    // Loading the same certificates again adds nothing.
    ring.load_path(&keydir).unwrap();
    assert_eq!(ring.len(), 3);
    assert!(ring.load_path(&d.join("absent")).is_err());
}

#[test]
fn certificate_without_ski_uses_kernel_id_matching() {
    let Some(dir) = workdir("certificate_without_ski_uses_kernel_id_matching") else {
        return;
    };
    let d = dir.path();
    let key = make_key(
        d,
        "noski",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=imafs noski",
        &[
            "-addext",
            "subjectKeyIdentifier=none",
            "-addext",
            "authorityKeyIdentifier=none",
        ],
    );
    let noext = common::run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&key.cert),
    );
    if noext.contains("Subject Key Identifier") {
        common::skip(
            "certificate_without_ski_uses_kernel_id_matching",
            "this openssl cannot omit the SKI",
        );
        return;
    }
    let ring = keyring(&[&key.cert]);
    let file = write_file(d, "f", b"no ski\n");

    // Without an SKI evmctl signs with SHA-1(public key)'s tail, which we report as the
    // key id but which the kernel cannot look up: its ids are serial+issuer, SKI, subject.
    // (evmctl 1.4 crashes reading a certificate without SKI, so sign with the bare key.)
    let value = ima_sign(&key.priv_only, "sha256", &file, &[]);
    let keyid = u32::from_be_bytes(value[3..7].try_into().unwrap());
    assert_eq!(ring.keys()[0].keyid(), keyid);
    assert_eq!(
        appraise(Some(&value), file_digest(&file), &sig_req(), &ring),
        fail("invalid-signature", false)
    );
    // The kernel's "id:" match on the subject's tail ("oski") does find it.
    let by_subject = ima_sign(
        &key.key,
        "sha256",
        &file,
        &["--keyid", &hex::encode(b"oski")],
    );
    assert_eq!(
        appraise(Some(&by_subject), file_digest(&file), &sig_req(), &ring),
        PASS_SIGNED
    );
}

#[test]
fn evmctl_sigfile_value_verifies() {
    let Some(dir) = workdir("evmctl_sigfile_value_verifies") else {
        return;
    };
    let d = dir.path();
    let key = rsa2048(d);
    let ring = keyring(&[&key.cert]);
    let file = write_file(d, "f", b"sigfile\n");
    common::run_ok(
        Command::new("evmctl")
            .args(["ima_sign", "--sigfile", "--key"])
            .arg(&key.key)
            .args(["-a", "sha256"])
            .arg(&file),
    );
    let mut sigfile = file.clone().into_os_string();
    sigfile.push(".sig");
    let value = std::fs::read(&sigfile).unwrap();
    assert_eq!(value.len(), 9 + 256);
    assert_eq!(value[..3], [0x03, 0x02, 0x04]);
    assert_eq!(u16::from_be_bytes([value[7], value[8]]), 256);
    assert_eq!(
        appraise(Some(&value), file_digest(&file), &sig_req(), &ring),
        PASS_SIGNED
    );
}

#[test]
fn mutated_certificates_and_values_never_panic() {
    let Some(dir) = workdir("mutated_certificates_and_values_never_panic") else {
        return;
    };
    let d = dir.path();
    let key = rsa2048(d);
    let der = key.der.clone();
    let cert = std::fs::read(&der).unwrap();
    let file = write_file(d, "f", b"fuzz\n");
    let value = ima_sign(&key.key, "sha256", &file, &[]);
    let good = keyring(&[&der]);

    let mut s: u64 = 0x1357_9bdf_2468_ace0;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut accepted = 0;
    for _ in 0..2000 {
        let mut c = cert.clone();
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let i = (next() as usize) % c.len();
            c[i] ^= 1 << (next() % 8);
        }
        if next() % 4 == 0 {
            c.truncate((next() as usize) % c.len());
        }
        let mut ring = Keyring::new();
        if ring.add_der(&c).is_ok() {
            accepted += 1;
        }
        let mut v = value.clone();
        let i = (next() as usize) % v.len();
        v[i] ^= 1 << (next() % 8);
        let verdict = appraise(Some(&v), file_digest(&file), &sig_req(), &good);
        // A flipped bit anywhere in a signature value must not pass (header bits
        // included: they change the algorithm, key id, length or type).
        assert!(
            !verdict.is_pass(),
            "mutated value passed: {}",
            hex::encode(&v)
        );
    }
    // Some flips land in ignored places (e.g. the signature bits of a self-signed cert),
    // most break the DER; both are fine as long as nothing panicked.
    assert!(accepted < 2000);
}

#[test]
fn self_signed_certificates_must_verify_ca_issued_need_not() {
    let Some(dir) = workdir("self_signed_certificates_must_verify_ca_issued_need_not") else {
        return;
    };
    let d = dir.path();
    for key in [rsa2048(d), ec(d, "P-256"), ec(d, "P-384")] {
        let mut der = std::fs::read(&key.der).unwrap();
        assert!(Keyring::new().add_der(&der).is_ok());
        // The last byte belongs to the signature: the kernel's x509_check_for_self_signed
        // rejects the key (EKEYREJECTED).
        *der.last_mut().unwrap() ^= 0x01;
        let err = Keyring::new().add_der(&der).unwrap_err();
        assert_eq!(err.errno().0, libc::EKEYREJECTED, "{err}");
    }

    // A compressed EC point: the kernel's ECDSA takes only uncompressed keys.
    let plain = d.join("c.key");
    let compressed = d.join("c.compressed.key");
    let cert = d.join("c.crt");
    common::run_ok(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&plain),
    );
    common::run_ok(
        Command::new("openssl")
            .args(["ec", "-conv_form", "compressed", "-in"])
            .arg(&plain)
            .arg("-out")
            .arg(&compressed),
    );
    common::run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=imafs compressed",
                "-key",
            ])
            .arg(&compressed)
            .arg("-out")
            .arg(&cert),
    );
    let err = Keyring::new().load_path(&cert).unwrap_err();
    assert_eq!(err.errno().0, libc::ENOPKG, "{err}");

    // A leaf issued by a CA: not self-signed, loaded without the CA.
    let ca = make_key(
        d,
        "ca",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=imafs ca",
        &[],
    );
    let leaf_key = d.join("leaf.priv.pem");
    let csr = d.join("leaf.csr");
    common::run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-subj",
                "/CN=imafs leaf",
            ])
            .arg("-keyout")
            .arg(&leaf_key)
            .arg("-out")
            .arg(&csr),
    );
    let leaf_cert = d.join("leaf.crt");
    let ext = d.join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    common::run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.cert)
            .arg("-CAkey")
            .arg(&ca.priv_only)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&leaf_cert),
    );
    let ring = keyring(&[&leaf_cert]);
    assert_eq!(ring.list().len(), 1);
    assert!(
        ring.list()[0].ends_with(" rsa imafs leaf"),
        "{:?}",
        ring.list()
    );
    let signer = d.join("leaf.pem");
    let mut both = std::fs::read(&leaf_key).unwrap();
    both.extend(std::fs::read(&leaf_cert).unwrap());
    std::fs::write(&signer, both).unwrap();
    let file = write_file(d, "f", b"leaf signed\n");
    let value = ima_sign(&signer, "sha512", &file, &[]);
    assert_eq!(
        appraise(Some(&value), file_digest(&file), &sig_req(), &ring),
        PASS_SIGNED
    );
}
