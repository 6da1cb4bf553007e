//! Properties shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the seeded
//! mutation test that runs them on every `cargo test` (`tests/fuzz_properties.rs`). Each
//! takes arbitrary bytes and panics only when a property is broken: parsers return errors
//! for bad input, and whatever they accept encodes back to the same bytes or value.
#![allow(dead_code)]

use imafs::engine::children::ChildConfig;
use imafs::engine::hash::{Digest, HashAlgo};
use imafs::engine::keys::Keyring;
use imafs::engine::measurement_list::{parse_binary_list, MeasurementList, ViewKind};
use imafs::engine::xattr::{self, ImaXattr};

/// `security.ima` values: a well-formed digest or signature re-encodes to the same bytes
/// (digests of algorithms above sha1 in the `04` form: `ima_fix_xattr` writes md4/md5/sha1
/// in the legacy `01` form), and the quick accessors agree with the strict parser.
pub fn ima_xattr(data: &[u8]) {
    let Ok(parsed) = xattr::parse_ima_xattr(data) else {
        return;
    };
    assert_eq!(xattr::is_signature(data), parsed.is_signature());
    match parsed {
        ImaXattr::Digest {
            algo,
            digest,
            legacy: false,
        } if algo > HashAlgo::Sha1 => {
            let d = Digest::from_bytes(algo, digest).expect("digest of its algorithm's size");
            assert_eq!(xattr::encode_digest_xattr(&d), data);
        }
        ImaXattr::SigV2 { algo, keyid, sig } | ImaXattr::SigV3 { algo, keyid, sig } => {
            let v3 = matches!(parsed, ImaXattr::SigV3 { .. });
            let again = xattr::encode_signature_xattr(v3, algo, keyid, sig);
            assert_eq!(again.as_deref(), Some(data));
        }
        ImaXattr::Digest { .. } => {}
    }
}

/// Certificates (DER, PEM, or garbage): loading never panics; every loaded key's DER loads
/// again with the same key id.
pub fn x509(data: &[u8]) {
    let mut ring = Keyring::new();
    let Ok(ids) = ring.add_bytes(data) else {
        return;
    };
    assert_eq!(ring.len(), ids.len().min(ring.len()));
    for key in ring.keys() {
        let mut again = Keyring::new();
        let id = again
            .add_der(key.der())
            .expect("a loaded key's DER loads again");
        assert_eq!(id, key.keyid());
        let _ = ring.list();
    }
}

const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

/// A binary list (as a restarted daemon or `imafs verify` reads it): an accepted list
/// renders back byte for byte in the bank it was read with.
pub fn binary_list(data: &[u8]) {
    let Ok(records) = parse_binary_list(data, HashAlgo::Sha1, &BANKS) else {
        return;
    };
    let list = MeasurementList::new(&BANKS);
    for r in records {
        list.append(r);
    }
    let mut out = vec![0u8; data.len() + 1];
    let n = list.read(ViewKind::Binary, 0, 0, &mut out);
    assert_eq!(&out[..n], data, "binary list does not render back");
}

/// The configuration a parent hands its child: decode never panics and an accepted value
/// encodes and decodes to itself.
pub fn child_config(data: &[u8]) {
    let Ok(cfg) = ChildConfig::decode(data) else {
        return;
    };
    assert_eq!(ChildConfig::decode(&cfg.encode()).expect("re-decodes"), cfg);
}

/// An exec'd file's headers (`load_elf_binary`'s view): never panics; a `PT_INTERP` found
/// is a path the kernel would accept (no NUL, shorter than PATH_MAX).
pub fn exec_format(data: &[u8]) {
    if let imafs::fs::elf::ExecFormat::Elf { interp: Some(path) } =
        imafs::fs::elf::probe_bytes(data)
    {
        assert!(!path.contains(&0), "a NUL in the interpreter path");
        assert!(
            path.len() < 4096,
            "interpreter path of {} bytes",
            path.len()
        );
    }
}
