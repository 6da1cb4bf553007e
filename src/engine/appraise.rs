//! Appraisal verdicts: the decision of the kernel's `ima_appraise_measurement` and
//! `xattr_verify` (security/integrity/ima/ima_appraise.c), plus the `appraise_algos=` check
//! of `process_measurement` (ima_main.c).
//!
//! The decision follows the kernel's byte-level checks (not the strict
//! [`parse_ima_xattr`](super::xattr::parse_ima_xattr)), in the kernel's order:
//!
//! 1. The file digest is collected with the algorithm `ima_get_hash_algo` picks
//!    ([`hash_algo_of`], else `ima_hash`); failure is `collect_data`/`failed`.
//! 2. No (or an empty) `security.ima`: `missing-hash`, `IMA-signature-required` or
//!    `verity-signature-required`; newly created files pass unless a signature is
//!    required and they already have data.
//! 3. By type: 0x01/0x04 hashes (refused when a signature is required, else compared over the
//!    digest's length: longer values are accepted, as the kernel does for the 20-byte md5
//!    form), 0x03 v2 signatures (version >= 3 refused; version 1 is the legacy v1 format
//!    whose keys are not X.509 and which imafs cannot verify; other versions leave the
//!    kernel's cause "unknown"), 0x06 v3 signatures over `H(ima_file_id)`, anything else
//!    `unknown-ima-data`.
//! 4. A new, empty file carrying a signature xattr passes even when verification failed.
//! 5. After a pass, a rule's `appraise_algos=` may still deny the algorithm
//!    (`collect_data`/`denied-hash-algorithm`).
//!
//! Not modelled: EVM (`evm_verifyxattr` is taken to return INTEGRITY_UNKNOWN, as with EVM
//! not initialised), appended module signatures (no modsig is ever present, so
//! `modsig_allowed` changes nothing), filesystems without xattr support and the
//! `unverifiable-signature` mount case (the runtime decides those). For sigv3 the caller
//! must supply the fs-verity digest as the "file digest" (`digest_type=verity` rules);
//! imafs has no fs-verity, so in practice v3 signatures verify only against digests
//! the caller obtained elsewhere.

use super::hash::{Digest, HashAlgo};
use super::keys::Keyring;
use super::xattr::{
    hash_algo_of, ima_file_id, SigHeader, DIGSIG_VERSION_2, DIGSIG_VERSION_3, EVM_IMA_XATTR_DIGSIG,
    IMA_VERITY_DIGSIG, IMA_XATTR_DIGEST, IMA_XATTR_DIGEST_NG, SIG_HDR_LEN,
};
use super::Errno;

/// What the matching appraise rule demands, and the facts about the file the kernel consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppraiseRequirements {
    /// `IMA_DIGSIG_REQUIRED`: `appraise_type=imasig` (or `sigv3`, which also sets
    /// `sigv3_required`).
    pub signature_required: bool,
    /// `IMA_VERITY_REQUIRED`: `digest_type=verity` (with `appraise_type=sigv3`, a v3
    /// fs-verity signature is required).
    pub sigv3_required: bool,
    /// `IMA_MODSIG_ALLOWED` (`appraise_type=imasig|modsig`). No effect: imafs never sees
    /// appended signatures.
    pub modsig_allowed: bool,
    /// `appraise_algos=`: bit `1 << algo id` per allowed algorithm; `None` or `Some(0)`
    /// allows all.
    pub appraise_algos: Option<u64>,
    /// `ima_hash=`: the algorithm used when the xattr names none.
    pub ima_hash: HashAlgo,
    /// `IMA_NEW_FILE`: the file was created by this open (`FMODE_CREATED`) or earlier and
    /// not yet closed.
    pub new_file: bool,
    /// Current file size (`i_size`); new empty files get exemptions.
    pub file_size: u64,
}

impl Default for AppraiseRequirements {
    fn default() -> Self {
        AppraiseRequirements {
            signature_required: false,
            sigv3_required: false,
            modsig_allowed: false,
            appraise_algos: None,
            ima_hash: HashAlgo::Sha256,
            new_file: false,
            file_size: 0,
        }
    }
}

impl AppraiseRequirements {
    /// Whether `algo` passes the rule's `appraise_algos=` (the check in `process_measurement`).
    pub fn algo_allowed(&self, algo: HashAlgo) -> bool {
        match self.appraise_algos {
            None | Some(0) => true,
            Some(mask) => mask & (1u64 << algo.id()) != 0,
        }
    }
}

/// The outcome of appraising one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Access allowed. `signed`: the xattr is a signature (the kernel's `IMA_DIGSIG`
    /// bit), which makes the file unwritable under an appraise rule.
    Pass { signed: bool },
    /// Access denied in enforce mode (EACCES), audited with `cause` (ima_appraise.c:
    /// ima_appraise_measurement).
    /// `fixable`: fix mode rewrites `security.ima` with the file's hash
    /// ([`encode_digest_xattr`](super::xattr::encode_digest_xattr)) and allows access
    /// (still auditing the cause). The kernel never replaces a type 0x03 signature.
    Fail { cause: &'static str, fixable: bool },
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass { .. })
    }

    /// The audit `op=`: `collect_data` for hashing failures and algorithm denials,
    /// `appraise_data` otherwise; `None` for a pass.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Verdict::Pass { .. } => None,
            Verdict::Fail {
                cause: CAUSE_COLLECT_FAILED | CAUSE_DENIED_ALGO,
                ..
            } => Some("collect_data"),
            Verdict::Fail { .. } => Some("appraise_data"),
        }
    }

    /// The cause string, `None` for a pass.
    pub fn cause(&self) -> Option<&'static str> {
        match self {
            Verdict::Pass { .. } => None,
            Verdict::Fail { cause, .. } => Some(cause),
        }
    }

    /// The error an enforcing open/exec/mmap returns: EACCES on failure.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Verdict::Pass { .. } => None,
            Verdict::Fail { .. } => Some(Errno::EACCES),
        }
    }
}

/// `ima_collect_measurement` audit cause when the file could not be hashed.
pub const CAUSE_COLLECT_FAILED: &str = "failed";
/// `process_measurement`: digest algorithm not in `appraise_algos=`.
pub const CAUSE_DENIED_ALGO: &str = "denied-hash-algorithm";

/// Appraise a file.
///
/// `xattr` is the raw `security.ima` value (`None` when absent). `file_digest_for(algo)`
/// returns the file's digest (the fs-verity digest under `digest_type=verity`) computed
/// with `algo`, or `None` if hashing failed; it is called exactly once, with the
/// algorithm the kernel would use (`hash_algo_of(xattr)` or `req.ima_hash`).
pub fn appraise(
    xattr: Option<&[u8]>,
    file_digest_for: impl FnOnce(HashAlgo) -> Option<Digest>,
    req: &AppraiseRequirements,
    keys: &Keyring,
) -> Verdict {
    // An empty value reads as length 0, which the kernel treats like no xattr.
    let value = xattr.filter(|v| !v.is_empty());
    let algo = value.and_then(hash_algo_of).unwrap_or(req.ima_hash);
    let Some(digest) = file_digest_for(algo) else {
        return Verdict::Fail {
            cause: CAUSE_COLLECT_FAILED,
            fixable: false,
        };
    };
    let verdict = match value {
        None => appraise_missing(req),
        Some(value) => appraise_value(value, &digest, req, keys),
    };
    match verdict {
        Verdict::Pass { .. } if !req.algo_allowed(algo) => Verdict::Fail {
            cause: CAUSE_DENIED_ALGO,
            fixable: false,
        },
        v => v,
    }
}

fn signature_required_cause(req: &AppraiseRequirements) -> &'static str {
    if req.sigv3_required {
        "verity-signature-required"
    } else {
        "IMA-signature-required"
    }
}

fn appraise_missing(req: &AppraiseRequirements) -> Verdict {
    let cause = if req.signature_required {
        signature_required_cause(req)
    } else {
        "missing-hash"
    };
    if req.new_file && (!req.signature_required || req.file_size == 0) {
        return Verdict::Pass { signed: false };
    }
    Verdict::Fail {
        cause,
        fixable: true,
    }
}

fn appraise_value(
    value: &[u8],
    digest: &Digest,
    req: &AppraiseRequirements,
    keys: &Keyring,
) -> Verdict {
    let kind = value[0];
    let signed = kind == EVM_IMA_XATTR_DIGSIG || kind == IMA_VERITY_DIGSIG;
    let status = xattr_verify(value, digest, req, keys);
    match status {
        Ok(()) => Verdict::Pass { signed },
        // "Permit new files with file/EVM portable signatures, but without data."
        Err(_) if signed && req.new_file && req.file_size == 0 => Verdict::Pass { signed },
        Err(cause) => Verdict::Fail {
            cause,
            fixable: kind != EVM_IMA_XATTR_DIGSIG,
        },
    }
}

/// `xattr_verify`: `Ok` for INTEGRITY_PASS, else the audit cause.
fn xattr_verify(
    value: &[u8],
    digest: &Digest,
    req: &AppraiseRequirements,
    keys: &Keyring,
) -> Result<(), &'static str> {
    let version = value.get(1).copied();
    match value[0] {
        kind @ (IMA_XATTR_DIGEST | IMA_XATTR_DIGEST_NG) => {
            if req.signature_required {
                return Err(signature_required_cause(req));
            }
            let start = if kind == IMA_XATTR_DIGEST_NG { 2 } else { 1 };
            let want = digest.as_bytes();
            match value.get(start..start + want.len()) {
                Some(stored) if stored == want => Ok(()),
                _ => Err("invalid-hash"),
            }
        }
        EVM_IMA_XATTR_DIGSIG => {
            if req.signature_required && req.sigv3_required {
                return Err("verity-signature-required");
            }
            match version {
                Some(v) if v >= DIGSIG_VERSION_3 => Err("invalid-signature-version"),
                Some(DIGSIG_VERSION_2) => asymmetric_verify(value, digest.as_bytes(), keys)
                    .map_err(|_| "invalid-signature"),
                // Version 0: integrity_digsig_verify returns EOPNOTSUPP, status UNKNOWN,
                // and the cause keeps its initial value.
                Some(0) => Err("unknown"),
                // Version 1 (legacy `digsig_verify`, keys of type "user") or a 1-byte value.
                _ => Err("invalid-signature"),
            }
        }
        IMA_VERITY_DIGSIG => {
            if req.signature_required && !req.sigv3_required {
                return Err("IMA-signature-required");
            }
            if version != Some(DIGSIG_VERSION_3) {
                return Err("invalid-signature-version");
            }
            let file_id = ima_file_id(IMA_VERITY_DIGSIG, digest);
            let Some(id_hash) = digest.algo().digest(&file_id) else {
                return Err("sigv3-hashing-error");
            };
            asymmetric_verify(value, id_hash.as_bytes(), keys)
                .map_err(|_| "invalid-verity-signature")
        }
        _ => Err("unknown-ima-data"),
    }
}

/// `asymmetric_verify` (digsig_asymmetric.c): header checks, key lookup by id, then the
/// signature over `data` with the header's hash algorithm.
fn asymmetric_verify(value: &[u8], data: &[u8], keys: &Keyring) -> Result<(), Errno> {
    let bad_message = Errno(libc::EBADMSG);
    if value.len() <= SIG_HDR_LEN {
        return Err(bad_message);
    }
    let hdr = SigHeader::parse(value).map_err(|_| bad_message)?;
    let sig = &value[SIG_HDR_LEN..];
    if sig.len() != usize::from(hdr.sig_size) {
        return Err(bad_message);
    }
    let algo = HashAlgo::from_id(hdr.hash_algo).ok_or(Errno(libc::ENOPKG))?;
    let key = keys.find(hdr.keyid).ok_or(Errno::ENOKEY)?;
    if key.verify_prehashed(algo, data, sig) {
        Ok(())
    } else {
        Err(Errno(libc::EKEYREJECTED))
    }
}

/// Whether the xattr, if it carries a v2/v3 signature, names a key absent from `keys`
/// (the kernel's ENOKEY case, useful for diagnostics).
pub fn signature_key_missing(xattr: &[u8], keys: &Keyring) -> bool {
    match SigHeader::parse(xattr) {
        Ok(hdr) if hdr.kind == EVM_IMA_XATTR_DIGSIG || hdr.kind == IMA_VERITY_DIGSIG => {
            keys.find(hdr.keyid).is_none()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::xattr::{encode_digest_xattr, encode_signature_xattr};

    /// A P-256 self-signed certificate made with `openssl req -x509` (SKI ...b7cf2b3b).
    const P256_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBqzCCAVGgAwIBAgIUEAjQlBSzHwLCK+AuQiTRhuD0C9swCgYIKoZIzj0EAwIw
KjEYMBYGA1UEAwwPaW1hZnMgdGVzdCBwMjU2MQ4wDAYDVQQKDAVpbWFmczAgFw0y
NjExMjMyMDU0MjNaGA8yMTI2MTAzMDIwNTQyM1owKjEYMBYGA1UEAwwPaW1hZnMg
dGVzdCBwMjU2MQ4wDAYDVQQKDAVpbWFmczBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABB0DdV8oQJoc1+8jNdQWz8/b1+7kp7idmn0KfvBSEE/RXonplgAyfpHDvchn
SWJzFl2GxPkhY9Ht5nwTJOpjruyjUzBRMB0GA1UdDgQWBBQ3EQGUYxkc8BJ4PFla
ELqgt88rOzAfBgNVHSMEGDAWgBQ3EQGUYxkc8BJ4PFlaELqgt88rOzAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCi5AtFJlb76KGVqnitgcO1DOEx
JulPVu/EwXGfYbEXXAIgZwbY8mUOZU4v6PzaNHz4Vdl7pBn+AndNv9/8Z3VS2Og=
-----END CERTIFICATE-----
";
    /// `evmctl ima_sign --key <key+cert> -a sha256 --sigfile hello` for "hello\n".
    const HELLO_SIG_V2: &str = "030204b7cf2b3b0046304402200327475407757c508eb3c0d670702a4544499d4c89f04d0bbb8f363f4f901830022006a4e70ef21adbbf87e3924ad4a68a82d52f53d56235cdaa72e05b6d678f7433";
    /// `openssl pkeyutl -sign` over sha256(06 04 <sha256("hello\n")>), i.e. a sigv3 body.
    const HELLO_SIG_V3_BODY: &str = "3046022100835327749906c3f52768213056bdc9eccaa5897139888e926ef174a84908d59d022100ac1777fc9994f9fe736d79e61616b9eea35474d042d87e901a5d44fb17d3f372";
    const KEYID: u32 = 0xb7cf_2b3b;

    fn ring() -> Keyring {
        let mut r = Keyring::new();
        assert_eq!(r.add_pem(P256_CERT.as_bytes()).unwrap(), vec![KEYID]);
        r
    }

    fn hello(algo: HashAlgo) -> Option<Digest> {
        algo.digest(b"hello\n")
    }

    fn other(algo: HashAlgo) -> Option<Digest> {
        algo.digest(b"tampered\n")
    }

    fn fail(cause: &'static str, fixable: bool) -> Verdict {
        Verdict::Fail { cause, fixable }
    }

    const PASS_SIGNED: Verdict = Verdict::Pass { signed: true };
    const PASS_HASH: Verdict = Verdict::Pass { signed: false };

    fn sigv2() -> Vec<u8> {
        hex::decode(HELLO_SIG_V2).unwrap()
    }

    fn sigv3() -> Vec<u8> {
        let body = hex::decode(HELLO_SIG_V3_BODY).unwrap();
        encode_signature_xattr(true, HashAlgo::Sha256, KEYID, &body).unwrap()
    }

    #[test]
    fn keyring_lists_the_cert() {
        let r = ring();
        assert_eq!(r.len(), 1);
        assert_eq!(r.list(), vec!["b7cf2b3b ecdsa-nist-p256 imafs test p256"]);
        let k = r.find(KEYID).unwrap();
        assert_eq!(k.keyid(), KEYID);
        assert_eq!(k.bits(), 256);
        // The kernel's id match also covers the tail of the subject ("imafs" ends in "mafs").
        assert!(r.find(u32::from_be_bytes(*b"mafs")).is_some());
        assert!(r.find(0x1234_5678).is_none());
    }

    #[test]
    fn evmctl_v2_signature_passes() {
        let r = ring();
        let req = AppraiseRequirements::default();
        assert_eq!(appraise(Some(&sigv2()), hello, &req, &r), PASS_SIGNED);
        let req = AppraiseRequirements {
            signature_required: true,
            ..Default::default()
        };
        assert_eq!(appraise(Some(&sigv2()), hello, &req, &r), PASS_SIGNED);
    }

    #[test]
    fn v2_signature_failures() {
        let r = ring();
        let req = AppraiseRequirements::default();
        // Tampered content.
        let v = appraise(Some(&sigv2()), other, &req, &r);
        assert_eq!(v, fail("invalid-signature", false));
        assert_eq!(v.op(), Some("appraise_data"));
        assert_eq!(v.errno(), Some(Errno::EACCES));
        // Unknown key.
        assert_eq!(
            appraise(Some(&sigv2()), hello, &req, &Keyring::new()),
            fail("invalid-signature", false)
        );
        assert!(signature_key_missing(&sigv2(), &Keyring::new()));
        assert!(!signature_key_missing(&sigv2(), &r));
        // Flipped signature byte.
        let mut bad = sigv2();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            appraise(Some(&bad), hello, &req, &r),
            fail("invalid-signature", false)
        );
        // sig_size disagreeing with the length.
        let mut long = sigv2();
        long.push(0);
        assert_eq!(
            appraise(Some(&long), hello, &req, &r),
            fail("invalid-signature", false)
        );
        // Bare header, 1-byte value.
        assert_eq!(
            appraise(Some(&sigv2()[..9]), hello, &req, &r),
            fail("invalid-signature", false)
        );
        assert_eq!(
            appraise(Some(&[0x03]), hello, &req, &r),
            fail("invalid-signature", false)
        );
        // Versions.
        let mut v3 = sigv2();
        v3[1] = 3;
        assert_eq!(
            appraise(Some(&v3), hello, &req, &r),
            fail("invalid-signature-version", false)
        );
        v3[1] = 0;
        assert_eq!(appraise(Some(&v3), hello, &req, &r), fail("unknown", false));
        v3[1] = 1;
        assert_eq!(
            appraise(Some(&v3), hello, &req, &r),
            fail("invalid-signature", false)
        );
        // Header algorithm differs from the one used to sign.
        let mut wrong_algo = sigv2();
        wrong_algo[2] = HashAlgo::Sha512.id();
        assert_eq!(
            appraise(Some(&wrong_algo), hello, &req, &r),
            fail("invalid-signature", false)
        );
    }

    #[test]
    fn digest_is_collected_with_the_xattrs_algorithm() {
        let r = ring();
        let mut asked = None;
        let req = AppraiseRequirements {
            ima_hash: HashAlgo::Sha1,
            ..Default::default()
        };
        let v = appraise(
            Some(&sigv2()),
            |a| {
                asked = Some(a);
                hello(a)
            },
            &req,
            &r,
        );
        assert_eq!(v, PASS_SIGNED);
        assert_eq!(asked, Some(HashAlgo::Sha256));
        let mut asked = None;
        let _ = appraise(
            None,
            |a| {
                asked = Some(a);
                hello(a)
            },
            &req,
            &r,
        );
        assert_eq!(asked, Some(HashAlgo::Sha1));
        assert_eq!(
            appraise(Some(&sigv2()), |_| None, &req, &r),
            fail("failed", false)
        );
        assert_eq!(
            appraise(None, |_| None, &req, &r).op(),
            Some("collect_data")
        );
    }

    #[test]
    fn hashes() {
        let r = Keyring::new();
        let req = AppraiseRequirements::default();
        for algo in [
            HashAlgo::Md5,
            HashAlgo::Sha1,
            HashAlgo::Sha256,
            HashAlgo::Sha512,
            HashAlgo::Sm3,
        ] {
            let good = encode_digest_xattr(&hello(algo).unwrap());
            assert_eq!(appraise(Some(&good), hello, &req, &r), PASS_HASH, "{algo}");
            assert_eq!(
                appraise(Some(&good), other, &req, &r),
                fail("invalid-hash", true),
                "{algo}"
            );
        }
        // The old md5 form padded to 20 bytes.
        let mut md5 = encode_digest_xattr(&hello(HashAlgo::Md5).unwrap());
        md5.extend_from_slice(&[0; 4]);
        assert_eq!(appraise(Some(&md5), hello, &req, &r), PASS_HASH);
        // Too short.
        let good = encode_digest_xattr(&hello(HashAlgo::Sha256).unwrap());
        assert_eq!(
            appraise(Some(&good[..good.len() - 1]), hello, &req, &r),
            fail("invalid-hash", true)
        );
        assert_eq!(
            appraise(Some(&[0x04]), hello, &req, &r),
            fail("invalid-hash", true)
        );
        // Unknown algorithm byte: the kernel hashes with ima_hash and compares anyway.
        let mut unknown_algo = good.clone();
        unknown_algo[1] = 0xee;
        assert_eq!(appraise(Some(&unknown_algo), hello, &req, &r), PASS_HASH);
        // A legacy 0x01 value of the default algorithm's length is compared too.
        let mut legacy256 = vec![0x01];
        legacy256.extend_from_slice(hello(HashAlgo::Sha256).unwrap().as_bytes());
        assert_eq!(appraise(Some(&legacy256), hello, &req, &r), PASS_HASH);
    }

    #[test]
    fn missing_and_required() {
        let r = ring();
        let req = AppraiseRequirements::default();
        assert_eq!(appraise(None, hello, &req, &r), fail("missing-hash", true));
        assert_eq!(
            appraise(Some(&[]), hello, &req, &r),
            fail("missing-hash", true)
        );
        let sig = AppraiseRequirements {
            signature_required: true,
            ..Default::default()
        };
        assert_eq!(
            appraise(None, hello, &sig, &r),
            fail("IMA-signature-required", true)
        );
        let hash = encode_digest_xattr(&hello(HashAlgo::Sha256).unwrap());
        assert_eq!(
            appraise(Some(&hash), hello, &sig, &r),
            fail("IMA-signature-required", true)
        );
        let verity = AppraiseRequirements {
            signature_required: true,
            sigv3_required: true,
            ..Default::default()
        };
        assert_eq!(
            appraise(None, hello, &verity, &r),
            fail("verity-signature-required", true)
        );
        assert_eq!(
            appraise(Some(&hash), hello, &verity, &r),
            fail("verity-signature-required", true)
        );
        assert_eq!(
            appraise(Some(&sigv2()), hello, &verity, &r),
            fail("verity-signature-required", false)
        );
        // digest_type=verity alone (no sigv3) still accepts a v2 signature.
        let verity_digest = AppraiseRequirements {
            sigv3_required: true,
            ..Default::default()
        };
        assert_eq!(
            appraise(Some(&sigv2()), hello, &verity_digest, &r),
            PASS_SIGNED
        );
    }

    #[test]
    fn new_files() {
        let r = ring();
        let new = AppraiseRequirements {
            new_file: true,
            file_size: 10,
            ..Default::default()
        };
        assert_eq!(appraise(None, hello, &new, &r), PASS_HASH);
        let new_sig = AppraiseRequirements {
            signature_required: true,
            ..new
        };
        assert_eq!(
            appraise(None, hello, &new_sig, &r),
            fail("IMA-signature-required", true)
        );
        let empty_sig = AppraiseRequirements {
            file_size: 0,
            ..new_sig
        };
        assert_eq!(appraise(None, hello, &empty_sig, &r), PASS_HASH);
        // An empty new file with a (not yet matching) signature is permitted.
        assert_eq!(appraise(Some(&sigv2()), other, &empty_sig, &r), PASS_SIGNED);
        // But not a hash.
        let hash = encode_digest_xattr(&hello(HashAlgo::Sha256).unwrap());
        let empty = AppraiseRequirements {
            file_size: 0,
            ..new
        };
        assert_eq!(
            appraise(Some(&hash), other, &empty, &r),
            fail("invalid-hash", true)
        );
    }

    #[test]
    fn sigv3_signatures() {
        let r = ring();
        let verity = AppraiseRequirements {
            signature_required: true,
            sigv3_required: true,
            ..Default::default()
        };
        assert_eq!(appraise(Some(&sigv3()), hello, &verity, &r), PASS_SIGNED);
        assert_eq!(
            appraise(Some(&sigv3()), other, &verity, &r),
            fail("invalid-verity-signature", true)
        );
        // Without any signature requirement a v3 signature is still verified.
        assert_eq!(
            appraise(Some(&sigv3()), hello, &AppraiseRequirements::default(), &r),
            PASS_SIGNED
        );
        // imasig without sigv3 refuses a verity signature.
        let imasig = AppraiseRequirements {
            signature_required: true,
            ..Default::default()
        };
        assert_eq!(
            appraise(Some(&sigv3()), hello, &imasig, &r),
            fail("IMA-signature-required", true)
        );
        let mut bad_version = sigv3();
        bad_version[1] = 2;
        assert_eq!(
            appraise(Some(&bad_version), hello, &verity, &r),
            fail("invalid-signature-version", true)
        );
        // The v3 body does not verify as a v2 signature (it signs the file id hash).
        let mut as_v2 = sigv3();
        as_v2[0] = 0x03;
        as_v2[1] = 0x02;
        assert_eq!(
            appraise(Some(&as_v2), hello, &AppraiseRequirements::default(), &r),
            fail("invalid-signature", false)
        );
    }

    #[test]
    fn unknown_types_and_algo_restriction() {
        let r = ring();
        let req = AppraiseRequirements::default();
        for t in [0x00u8, 0x02, 0x05, 0x07, 0xff] {
            assert_eq!(
                appraise(Some(&[t, 1, 2, 3]), hello, &req, &r),
                fail("unknown-ima-data", true)
            );
        }
        let only_sha512 = AppraiseRequirements {
            appraise_algos: Some(1 << HashAlgo::Sha512.id()),
            ..Default::default()
        };
        let v = appraise(Some(&sigv2()), hello, &only_sha512, &r);
        assert_eq!(v, fail("denied-hash-algorithm", false));
        assert_eq!(v.op(), Some("collect_data"));
        let with_sha256 = AppraiseRequirements {
            appraise_algos: Some((1 << HashAlgo::Sha512.id()) | (1 << HashAlgo::Sha256.id())),
            ..Default::default()
        };
        assert_eq!(
            appraise(Some(&sigv2()), hello, &with_sha256, &r),
            PASS_SIGNED
        );
        // A failure is reported as the appraisal failure, not the algorithm.
        assert_eq!(
            appraise(Some(&sigv2()), other, &only_sha512, &r),
            fail("invalid-signature", false)
        );
        assert!(AppraiseRequirements {
            appraise_algos: Some(0),
            ..Default::default()
        }
        .algo_allowed(HashAlgo::Md5));
    }

    #[test]
    fn random_xattrs_never_panic() {
        let r = ring();
        let mut s: u64 = 0xdead_beef_cafe_f00d;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let reqs = [
            AppraiseRequirements::default(),
            AppraiseRequirements {
                signature_required: true,
                sigv3_required: true,
                new_file: true,
                ..Default::default()
            },
        ];
        for i in 0..5_000 {
            let len = (next() % 90) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = buf.first_mut() {
                *b %= 8;
            }
            if buf.len() > 3 {
                buf[1] %= 4;
                buf[2] %= 24;
            }
            let v = appraise(Some(&buf), hello, &reqs[i % 2], &r);
            if let Verdict::Fail { cause, .. } = v {
                assert!(!cause.is_empty());
            }
        }
    }
}
