//! The `security.ima` extended attribute: parsing every form the kernel accepts and
//! encoding the forms it writes (kernel `security/integrity/integrity.h`:
//! `enum evm_ima_xattr_type`, `struct signature_v2_hdr`;
//! `ima_appraise.c`: `ima_get_hash_algo`, `xattr_verify`, `ima_fix_xattr`).
//!
//! [`parse_ima_xattr`] is strict: it accepts only well-formed values and says why a value
//! is malformed. The appraisal decision itself (`engine::appraise`) follows the kernel's
//! more lenient byte-level checks, which is why it does not go through this parser.

use super::hash::{Digest, HashAlgo};

/// `enum evm_ima_xattr_type` (integrity.h).
pub const IMA_XATTR_DIGEST: u8 = 0x01;
pub const EVM_XATTR_HMAC: u8 = 0x02;
pub const EVM_IMA_XATTR_DIGSIG: u8 = 0x03;
pub const IMA_XATTR_DIGEST_NG: u8 = 0x04;
pub const EVM_XATTR_PORTABLE_DIGSIG: u8 = 0x05;
pub const IMA_VERITY_DIGSIG: u8 = 0x06;

/// `struct signature_v2_hdr` size: type, version, hash_algo, keyid (4), sig_size (2).
pub const SIG_HDR_LEN: usize = 9;

/// `DIGSIG_VERSION_2` / `DIGSIG_VERSION_3`.
pub const DIGSIG_VERSION_2: u8 = 2;
pub const DIGSIG_VERSION_3: u8 = 3;

/// A well-formed `security.ima` value, borrowing from the raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImaXattr<'a> {
    /// Type 0x01 (`legacy: true`; sha1, or md5 in its 16- or 16+4-zero-byte forms) or
    /// type 0x04 (`legacy: false`; algorithm byte + digest of exactly that size).
    Digest {
        algo: HashAlgo,
        digest: &'a [u8],
        legacy: bool,
    },
    /// Type 0x03, version 2: a signature over the file digest.
    SigV2 {
        algo: HashAlgo,
        keyid: u32,
        sig: &'a [u8],
    },
    /// Type 0x06, version 3: a signature over `H_algo(ima_file_id)` of the fs-verity digest.
    SigV3 {
        algo: HashAlgo,
        keyid: u32,
        sig: &'a [u8],
    },
}

impl ImaXattr<'_> {
    /// The hash algorithm the value names.
    pub fn algo(&self) -> HashAlgo {
        match *self {
            ImaXattr::Digest { algo, .. }
            | ImaXattr::SigV2 { algo, .. }
            | ImaXattr::SigV3 { algo, .. } => algo,
        }
    }

    /// Whether this is a signature (type 0x03 or 0x06).
    pub fn is_signature(&self) -> bool {
        !matches!(self, ImaXattr::Digest { .. })
    }
}

/// Why a `security.ima` value is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XattrError {
    #[error("empty security.ima value")]
    Empty,
    #[error("security.ima value of type {kind:#04x} too short ({len} bytes)")]
    TooShort { kind: u8, len: usize },
    #[error("unknown security.ima type {0:#04x}")]
    UnknownType(u8),
    #[error("security.ima value of type {kind:#04x} names unknown hash algorithm {algo}")]
    UnknownAlgo { kind: u8, algo: u8 },
    #[error("security.ima value of type {kind:#04x} has {len} bytes, expected {expected}")]
    LengthMismatch {
        kind: u8,
        len: usize,
        expected: usize,
    },
    #[error("signature type {kind:#04x} with unsupported version {version}")]
    BadVersion { kind: u8, version: u8 },
}

impl XattrError {
    /// The kernel's audit cause (`op=appraise_data`) for a file carrying such a value.
    pub fn cause(&self) -> &'static str {
        match *self {
            XattrError::Empty => "missing-hash",
            XattrError::UnknownType(_) => "unknown-ima-data",
            // Version 1 goes to the (keyless here) v1 verifier; other versions below 3
            // make `integrity_digsig_verify` return EOPNOTSUPP and the cause stays "unknown".
            XattrError::BadVersion {
                kind: EVM_IMA_XATTR_DIGSIG,
                version: 1,
            } => "invalid-signature",
            XattrError::BadVersion {
                kind: EVM_IMA_XATTR_DIGSIG,
                version,
            } if version < DIGSIG_VERSION_3 => "unknown",
            XattrError::BadVersion { .. } => "invalid-signature-version",
            XattrError::TooShort { kind, .. }
            | XattrError::LengthMismatch { kind, .. }
            | XattrError::UnknownAlgo { kind, .. }
                if kind == EVM_IMA_XATTR_DIGSIG =>
            {
                "invalid-signature"
            }
            XattrError::TooShort { kind, .. }
            | XattrError::LengthMismatch { kind, .. }
            | XattrError::UnknownAlgo { kind, .. }
                if kind == IMA_VERITY_DIGSIG =>
            {
                "invalid-verity-signature"
            }
            XattrError::TooShort { .. }
            | XattrError::LengthMismatch { .. }
            | XattrError::UnknownAlgo { .. } => "invalid-hash",
        }
    }
}

/// Parse a `security.ima` value strictly (every length and field checked).
pub fn parse_ima_xattr(value: &[u8]) -> Result<ImaXattr<'_>, XattrError> {
    let (&kind, rest) = value.split_first().ok_or(XattrError::Empty)?;
    match kind {
        IMA_XATTR_DIGEST => {
            // Same length rules as `ima_get_hash_algo`: 21 bytes is sha1 unless the
            // last four are zero (md5 padded to sha1 size), 17 bytes is md5.
            let algo = match value.len() {
                21 if rest[16..] == [0, 0, 0, 0] => HashAlgo::Md5,
                21 => HashAlgo::Sha1,
                17 => HashAlgo::Md5,
                len if len < 17 => return Err(XattrError::TooShort { kind, len }),
                len => {
                    return Err(XattrError::LengthMismatch {
                        kind,
                        len,
                        expected: 21,
                    })
                }
            };
            Ok(ImaXattr::Digest {
                algo,
                digest: &rest[..algo.digest_size()],
                legacy: true,
            })
        }
        IMA_XATTR_DIGEST_NG => {
            let (&id, digest) = rest.split_first().ok_or(XattrError::TooShort {
                kind,
                len: value.len(),
            })?;
            let algo = HashAlgo::from_id(id).ok_or(XattrError::UnknownAlgo { kind, algo: id })?;
            if digest.len() != algo.digest_size() {
                return Err(XattrError::LengthMismatch {
                    kind,
                    len: value.len(),
                    expected: 2 + algo.digest_size(),
                });
            }
            Ok(ImaXattr::Digest {
                algo,
                digest,
                legacy: false,
            })
        }
        EVM_IMA_XATTR_DIGSIG | IMA_VERITY_DIGSIG => {
            let hdr = SigHeader::parse(value)?;
            let expected_version = if kind == EVM_IMA_XATTR_DIGSIG {
                DIGSIG_VERSION_2
            } else {
                DIGSIG_VERSION_3
            };
            if hdr.version != expected_version {
                return Err(XattrError::BadVersion {
                    kind,
                    version: hdr.version,
                });
            }
            let algo = HashAlgo::from_id(hdr.hash_algo).ok_or(XattrError::UnknownAlgo {
                kind,
                algo: hdr.hash_algo,
            })?;
            let sig = &value[SIG_HDR_LEN..];
            if sig.is_empty() || sig.len() != usize::from(hdr.sig_size) {
                return Err(XattrError::LengthMismatch {
                    kind,
                    len: value.len(),
                    expected: SIG_HDR_LEN + usize::from(hdr.sig_size),
                });
            }
            Ok(if kind == EVM_IMA_XATTR_DIGSIG {
                ImaXattr::SigV2 {
                    algo,
                    keyid: hdr.keyid,
                    sig,
                }
            } else {
                ImaXattr::SigV3 {
                    algo,
                    keyid: hdr.keyid,
                    sig,
                }
            })
        }
        other => Err(XattrError::UnknownType(other)),
    }
}

/// The raw fields of a `struct signature_v2_hdr`, unvalidated beyond its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigHeader {
    pub kind: u8,
    pub version: u8,
    pub hash_algo: u8,
    pub keyid: u32,
    pub sig_size: u16,
}

impl SigHeader {
    /// Read the 9-byte header; errors only when the value is shorter than that.
    pub fn parse(value: &[u8]) -> Result<SigHeader, XattrError> {
        match value {
            [kind, version, hash_algo, k0, k1, k2, k3, s0, s1, ..] => Ok(SigHeader {
                kind: *kind,
                version: *version,
                hash_algo: *hash_algo,
                keyid: u32::from_be_bytes([*k0, *k1, *k2, *k3]),
                sig_size: u16::from_be_bytes([*s0, *s1]),
            }),
            _ => Err(XattrError::TooShort {
                kind: value.first().copied().unwrap_or(0),
                len: value.len(),
            }),
        }
    }
}

/// The algorithm the kernel hashes the file with for this xattr value (`ima_get_hash_algo`),
/// or `None` when it falls back to the default (`ima_hash=`).
pub fn hash_algo_of(value: &[u8]) -> Option<HashAlgo> {
    if value.len() < 2 {
        return None;
    }
    match value[0] {
        kind @ (EVM_IMA_XATTR_DIGSIG | IMA_VERITY_DIGSIG) => {
            let want = if kind == EVM_IMA_XATTR_DIGSIG {
                DIGSIG_VERSION_2
            } else {
                DIGSIG_VERSION_3
            };
            // The kernel requires more than a bare header before trusting hash_algo.
            if value[1] != want || value.len() <= SIG_HDR_LEN {
                return None;
            }
            HashAlgo::from_id(value[2])
        }
        IMA_XATTR_DIGEST_NG => HashAlgo::from_id(value[1]),
        IMA_XATTR_DIGEST => match value.len() {
            21 if value[17..21] == [0, 0, 0, 0] => Some(HashAlgo::Md5),
            21 => Some(HashAlgo::Sha1),
            17 => Some(HashAlgo::Md5),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the value is a file signature (type 0x03 or 0x06): the kernel's `IMA_DIGSIG`
/// bit, which makes the file unwritable under an appraise rule.
pub fn is_signature(value: &[u8]) -> bool {
    matches!(
        value.first(),
        Some(&EVM_IMA_XATTR_DIGSIG) | Some(&IMA_VERITY_DIGSIG)
    )
}

/// The value the kernel writes in fix mode and on close of a modified file
/// (`ima_fix_xattr`): algorithms up to sha1 as `01 <digest>`, others `04 <algo> <digest>`.
pub fn encode_digest_xattr(d: &Digest) -> Vec<u8> {
    let digest = d.as_bytes();
    let mut out = Vec::with_capacity(2 + digest.len());
    if d.algo() <= HashAlgo::Sha1 {
        out.push(IMA_XATTR_DIGEST);
    } else {
        out.push(IMA_XATTR_DIGEST_NG);
        out.push(d.algo().id());
    }
    out.extend_from_slice(digest);
    out
}

/// Build a type 0x03 (v2) or 0x06 (v3) signature value from its parts.
pub fn encode_signature_xattr(v3: bool, algo: HashAlgo, keyid: u32, sig: &[u8]) -> Option<Vec<u8>> {
    let size = u16::try_from(sig.len()).ok()?;
    let mut out = Vec::with_capacity(SIG_HDR_LEN + sig.len());
    if v3 {
        out.extend_from_slice(&[IMA_VERITY_DIGSIG, DIGSIG_VERSION_3]);
    } else {
        out.extend_from_slice(&[EVM_IMA_XATTR_DIGSIG, DIGSIG_VERSION_2]);
    }
    out.push(algo.id());
    out.extend_from_slice(&keyid.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(sig);
    Some(out)
}

/// `struct ima_file_id` as hashed for sigv3: hash_type, hash_algorithm, then only the
/// digest's own bytes (the kernel hashes `sizeof(file_id) - unused`).
pub fn ima_file_id(hash_type: u8, digest: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + digest.as_bytes().len());
    out.push(hash_type);
    out.push(digest.algo().id());
    out.extend_from_slice(digest.as_bytes());
    out
}

/// One past the last `security.ima` type the kernel accepts from user space
/// (`IMA_XATTR_LAST`).
pub const IMA_XATTR_LAST: u8 = 0x07;

/// What `ima_inode_setxattr` consults besides the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetxattrContext {
    /// The writer has CAP_SYS_ADMIN (`ima_protect_xattr`).
    pub cap_sys_admin: bool,
    /// `ima_setxattr_allowed_hash_algorithms`: union of the `appraise_algos=` of
    /// `func=SETXATTR_CHECK` rules (bit `1 << algo id`); 0 when there are none.
    pub allowed_algos: u64,
    /// `ima_hash=`.
    pub ima_hash: HashAlgo,
}

/// Why a write of `security.ima` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetxattrDenied {
    /// No CAP_SYS_ADMIN: EPERM, not audited.
    NotPermitted,
    /// Empty value or type >= 0x07: EINVAL, not audited.
    Invalid,
    /// The value's algorithm is refused: EACCES, audited as `op=set_data cause=<cause>`
    /// (`denied-hash-algorithm` under SETXATTR_CHECK rules, else `unavailable-hash-algorithm`).
    Algorithm { cause: &'static str },
}

impl SetxattrDenied {
    pub fn errno(&self) -> super::Errno {
        match self {
            SetxattrDenied::NotPermitted => super::Errno::EPERM,
            SetxattrDenied::Invalid => super::Errno::EINVAL,
            SetxattrDenied::Algorithm { .. } => super::Errno::EACCES,
        }
    }

    /// The audit cause (`op=set_data`), when the kernel audits the refusal.
    pub fn audit_cause(&self) -> Option<&'static str> {
        match self {
            SetxattrDenied::Algorithm { cause } => Some(cause),
            _ => None,
        }
    }
}

/// `ima_inode_setxattr` for `security.ima` (ima_appraise.c, with `validate_hash_algo`).
/// `Ok(digsig)`: the write is allowed; `digsig` is whether the file's `IMA_DIGSIG` bit
/// becomes set (only for type 0x03). Either way the file's appraisal state is reset.
pub fn check_setxattr(value: &[u8], ctx: &SetxattrContext) -> Result<bool, SetxattrDenied> {
    if !ctx.cap_sys_admin {
        return Err(SetxattrDenied::NotPermitted);
    }
    match value.first() {
        None => return Err(SetxattrDenied::Invalid),
        Some(&t) if t >= IMA_XATTR_LAST => return Err(SetxattrDenied::Invalid),
        Some(_) => {}
    }
    let algo = hash_algo_of(value).unwrap_or(ctx.ima_hash);
    if ctx.allowed_algos != 0 {
        if ctx.allowed_algos & (1u64 << algo.id()) == 0 {
            return Err(SetxattrDenied::Algorithm {
                cause: "denied-hash-algorithm",
            });
        }
    } else if algo != ctx.ima_hash && !algo.is_supported() {
        return Err(SetxattrDenied::Algorithm {
            cause: "unavailable-hash-algorithm",
        });
    }
    Ok(value[0] == EVM_IMA_XATTR_DIGSIG)
}

/// `ima_inode_removexattr` for `security.ima`: CAP_SYS_ADMIN or EPERM; on success the
/// file's appraisal state is reset and `IMA_DIGSIG` cleared.
pub fn check_removexattr(cap_sys_admin: bool) -> Result<(), super::Errno> {
    if cap_sys_admin {
        Ok(())
    } else {
        Err(super::Errno::EPERM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hello() -> Digest {
        HashAlgo::Sha256.digest(b"hello\n").unwrap()
    }

    #[test]
    fn digest_ng_roundtrip() {
        let d = sha256_hello();
        let v = encode_digest_xattr(&d);
        assert_eq!(v[..2], [0x04, 0x04]);
        assert_eq!(
            hex::encode(&v[2..]),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(
            parse_ima_xattr(&v),
            Ok(ImaXattr::Digest {
                algo: HashAlgo::Sha256,
                digest: d.as_bytes(),
                legacy: false
            })
        );
        assert_eq!(hash_algo_of(&v), Some(HashAlgo::Sha256));
    }

    #[test]
    fn sha1_and_md5_use_legacy_type() {
        let d = HashAlgo::Sha1.digest(b"hello\n").unwrap();
        let v = encode_digest_xattr(&d);
        assert_eq!(v.len(), 21);
        assert_eq!(v[0], 0x01);
        assert_eq!(
            hex::encode(&v[1..]),
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert_eq!(hash_algo_of(&v), Some(HashAlgo::Sha1));
        assert_eq!(parse_ima_xattr(&v).unwrap().algo(), HashAlgo::Sha1);

        let m = HashAlgo::Md5.digest(b"hello\n").unwrap();
        let v = encode_digest_xattr(&m);
        assert_eq!(v.len(), 17);
        assert_eq!(v[0], 0x01);
        assert_eq!(hash_algo_of(&v), Some(HashAlgo::Md5));
        // The old 20-byte md5 form, zero padded.
        let mut padded = v.clone();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(hash_algo_of(&padded), Some(HashAlgo::Md5));
        assert_eq!(
            parse_ima_xattr(&padded),
            Ok(ImaXattr::Digest {
                algo: HashAlgo::Md5,
                digest: m.as_bytes(),
                legacy: true
            })
        );
    }

    #[test]
    fn legacy_odd_lengths_fall_back_to_default() {
        let mut v = vec![0x01];
        v.extend_from_slice(&[7u8; 32]);
        assert_eq!(hash_algo_of(&v), None);
        assert!(matches!(
            parse_ima_xattr(&v),
            Err(XattrError::LengthMismatch { .. })
        ));
        assert_eq!(
            parse_ima_xattr(&[0x01, 1, 2]),
            Err(XattrError::TooShort { kind: 1, len: 3 })
        );
    }

    #[test]
    fn digest_ng_errors() {
        assert_eq!(
            parse_ima_xattr(&[0x04]),
            Err(XattrError::TooShort { kind: 4, len: 1 })
        );
        assert_eq!(
            parse_ima_xattr(&[0x04, 23, 0]),
            Err(XattrError::UnknownAlgo { kind: 4, algo: 23 })
        );
        assert_eq!(hash_algo_of(&[0x04, 23, 0]), None);
        let e = parse_ima_xattr(&[0x04, 4, 0, 0]).unwrap_err();
        assert_eq!(
            e,
            XattrError::LengthMismatch {
                kind: 4,
                len: 4,
                expected: 34
            }
        );
        assert_eq!(e.cause(), "invalid-hash");
    }

    #[test]
    fn sig_v2_header_layout() {
        let v = encode_signature_xattr(false, HashAlgo::Sha256, 0x1234_abcd, &[9, 8, 7]).unwrap();
        assert_eq!(
            hex::encode(&v),
            "030204".to_owned() + "1234abcd" + "0003" + "090807"
        );
        assert_eq!(
            parse_ima_xattr(&v),
            Ok(ImaXattr::SigV2 {
                algo: HashAlgo::Sha256,
                keyid: 0x1234_abcd,
                sig: &[9, 8, 7]
            })
        );
        assert_eq!(hash_algo_of(&v), Some(HashAlgo::Sha256));
        assert!(is_signature(&v));

        // sig_size must match the remaining length exactly.
        let mut long = v.clone();
        long.push(0);
        assert_eq!(
            parse_ima_xattr(&long),
            Err(XattrError::LengthMismatch {
                kind: 3,
                len: 13,
                expected: 12
            })
        );
        // A bare header: the kernel ignores its hash_algo.
        assert_eq!(hash_algo_of(&v[..9]), None);
        assert!(parse_ima_xattr(&v[..9]).is_err());
        assert_eq!(
            parse_ima_xattr(&v[..5]),
            Err(XattrError::TooShort { kind: 3, len: 5 })
        );
    }

    #[test]
    fn spec_t4_made_up_signature() {
        let v = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
        assert_eq!(
            parse_ima_xattr(&v),
            Ok(ImaXattr::SigV2 {
                algo: HashAlgo::Sha256,
                keyid: 0xa1b2_c3d4,
                sig: &[0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17]
            })
        );
        assert_eq!(
            encode_signature_xattr(false, HashAlgo::Sha256, 0xa1b2_c3d4, &v[9..]).unwrap(),
            v
        );
    }

    #[test]
    fn sig_versions() {
        let mut v = encode_signature_xattr(false, HashAlgo::Sha256, 1, &[1]).unwrap();
        v[1] = 3;
        let e = parse_ima_xattr(&v).unwrap_err();
        assert_eq!(
            e,
            XattrError::BadVersion {
                kind: 3,
                version: 3
            }
        );
        assert_eq!(e.cause(), "invalid-signature-version");
        assert_eq!(hash_algo_of(&v), None);

        let v3 = encode_signature_xattr(true, HashAlgo::Sha384, 7, &[1, 2]).unwrap();
        assert_eq!(v3[..2], [0x06, 0x03]);
        assert_eq!(
            parse_ima_xattr(&v3),
            Ok(ImaXattr::SigV3 {
                algo: HashAlgo::Sha384,
                keyid: 7,
                sig: &[1, 2]
            })
        );
        let mut bad = v3.clone();
        bad[1] = 2;
        assert_eq!(
            parse_ima_xattr(&bad).unwrap_err().cause(),
            "invalid-signature-version"
        );
    }

    #[test]
    fn unknown_types() {
        for t in [0x00u8, 0x02, 0x05, 0x07, 0xff] {
            let e = parse_ima_xattr(&[t, 4, 0]).unwrap_err();
            assert_eq!(e, XattrError::UnknownType(t));
            assert_eq!(e.cause(), "unknown-ima-data");
            assert_eq!(hash_algo_of(&[t, 4, 0]), None);
        }
        assert_eq!(parse_ima_xattr(&[]), Err(XattrError::Empty));
        assert_eq!(hash_algo_of(&[0x04]), None);
    }

    #[test]
    fn setxattr_rules() {
        let root = SetxattrContext {
            cap_sys_admin: true,
            allowed_algos: 0,
            ima_hash: HashAlgo::Sha256,
        };
        let hash = encode_digest_xattr(&sha256_hello());
        assert_eq!(check_setxattr(&hash, &root), Ok(false));
        let sig = encode_signature_xattr(false, HashAlgo::Sha512, 1, &[1]).unwrap();
        assert_eq!(check_setxattr(&sig, &root), Ok(true));
        // A v3 signature does not set IMA_DIGSIG on setxattr.
        let v3 = encode_signature_xattr(true, HashAlgo::Sha256, 1, &[1]).unwrap();
        assert_eq!(check_setxattr(&v3, &root), Ok(false));
        let user = SetxattrContext {
            cap_sys_admin: false,
            ..root
        };
        assert_eq!(
            check_setxattr(&hash, &user).unwrap_err().errno(),
            crate::engine::Errno::EPERM
        );
        assert_eq!(check_removexattr(false), Err(crate::engine::Errno::EPERM));
        assert_eq!(check_removexattr(true), Ok(()));
        assert_eq!(check_setxattr(&[], &root), Err(SetxattrDenied::Invalid));
        assert_eq!(
            check_setxattr(&[0x07, 4], &root),
            Err(SetxattrDenied::Invalid)
        );
        // Types 0x02 and 0x05 (EVM's) are below IMA_XATTR_LAST and accepted.
        assert_eq!(check_setxattr(&[0x02, 4], &root), Ok(false));
        // An algorithm imafs cannot compute (wp256) is unavailable.
        let wp = [0x04, HashAlgo::Wp256.id()];
        let e = check_setxattr(&wp, &root).unwrap_err();
        assert_eq!(e.audit_cause(), Some("unavailable-hash-algorithm"));
        assert_eq!(e.errno(), crate::engine::Errno::EACCES);
        // SETXATTR_CHECK rules restrict to their appraise_algos.
        let restricted = SetxattrContext {
            allowed_algos: 1 << HashAlgo::Sha512.id(),
            ..root
        };
        assert_eq!(
            check_setxattr(&hash, &restricted)
                .unwrap_err()
                .audit_cause(),
            Some("denied-hash-algorithm")
        );
        assert_eq!(check_setxattr(&sig, &restricted), Ok(true));
    }

    #[test]
    fn file_id_is_type_algo_digest() {
        let d = sha256_hello();
        let id = ima_file_id(IMA_VERITY_DIGSIG, &d);
        assert_eq!(id.len(), 34);
        assert_eq!(id[..2], [0x06, 0x04]);
        assert_eq!(&id[2..], d.as_bytes());
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic, no extra crates.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = buf.first_mut() {
                *b %= 8; // bias toward known types
            }
            let parsed = parse_ima_xattr(&buf);
            let algo = hash_algo_of(&buf);
            if let Ok(x) = parsed {
                // A strictly valid value always names the algorithm the kernel would use.
                assert_eq!(algo, Some(x.algo()), "{buf:02x?}");
            }
        }
    }
}
