//! The IMA keyring: X.509 certificates whose public keys verify `security.ima` signatures
//! (kernel `security/integrity/digsig.c`: `integrity_init_keyring`, `integrity_load_x509`;
//! `crypto/asymmetric_keys/x509_public_key.c`; `security/integrity/digsig_asymmetric.c`:
//! `asymmetric_verify`; ima-evm-utils `calc_keyid_v2`).
//!
//! Supported keys: RSA (PKCS#1 v1.5 signatures over a DigestInfo of md5, sha1, rmd160,
//! sha224, sha256, sha384, sha512, sha3-256/384/512, as the kernel's `pkcs1pad`) and ECDSA
//! on NIST P-256 and P-384 (DER `SEQUENCE { r, s }`, the kernel's "x962" encoding).
//! Verification is over the already computed digest ("prehashed"), like the kernel's
//! `verify_signature`.
//!
//! Key lookup ([`Keyring::find`]) follows the kernel's `id:<8 hex>` partial match: the 4-byte
//! id matches the tail of any of the key's three identifiers (serial||issuer, Subject Key
//! Identifier, subject), exactly as `asymmetric_key_cmp_partial`.

use std::path::Path;

use rsa::traits::PublicKeyParts;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

use super::hash::HashAlgo;

/// `rsaEncryption` (1.2.840.113549.1.1.1).
const OID_RSA: &str = "1.2.840.113549.1.1.1";
/// `id-ecPublicKey` (1.2.840.10045.2.1).
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
/// `subjectKeyIdentifier` (2.5.29.14).
const OID_SKI: &str = "2.5.29.14";

/// Largest RSA modulus accepted, in bits (the kernel's RSA has no lower cap we rely on).
const RSA_MAX_BITS: usize = 16384;

/// `CONFIG_IMA_X509_PATH` default: the certificate the kernel loads into the IMA keyring
/// at boot (`CONFIG_IMA_LOAD_X509`).
pub const IMA_X509_PATH: &str = "/etc/keys/x509_ima.der";

/// A key id as it appears in a v2/v3 signature header (big-endian u32).
pub type KeyId = u32;

/// Why a certificate could not be added.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed X.509 certificate: {0}")]
    Parse(String),
    #[error("malformed PEM: {0}")]
    Pem(String),
    #[error("unsupported public key algorithm {0}")]
    Unsupported(String),
    #[error("no certificate found")]
    NoCertificate,
    #[error("self-signed certificate rejected: {0}")]
    Rejected(&'static str),
    /// The key could not be journaled (`--state`), so it was not added.
    #[error("journal: {0}")]
    Journal(super::Errno),
}

impl KeyError {
    /// The errno the kernel's `add_key` would return for this failure.
    pub fn errno(&self) -> super::Errno {
        match self {
            KeyError::Io { .. } => super::Errno::EIO,
            KeyError::Unsupported(_) => super::Errno(libc::ENOPKG),
            KeyError::Rejected(_) => super::Errno(libc::EKEYREJECTED),
            KeyError::Journal(errno) => *errno,
            KeyError::Parse(_) | KeyError::Pem(_) | KeyError::NoCertificate => {
                super::Errno(libc::EBADMSG)
            }
        }
    }
}

enum PublicKey {
    /// The `rsa` crate key (validation, and verification above 8192 bits) plus the
    /// big-endian modulus and exponent for the fast path.
    Rsa {
        key: rsa::RsaPublicKey,
        fast: Option<RsaFast>,
    },
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

/// One certificate in the keyring.
pub struct Key {
    der: Vec<u8>,
    keyid: KeyId,
    /// Kernel `asymmetric_key_ids`: serial||issuer, SKI (when present), subject.
    kernel_ids: [Option<Vec<u8>>; 3],
    subject: String,
    public: PublicKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key({:08x} {} {})",
            self.keyid,
            self.algorithm(),
            self.subject
        )
    }
}

impl Key {
    /// Parse one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Key, KeyError> {
        let cert = Certificate::from_der(der).map_err(|e| KeyError::Parse(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        let key_bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Parse("public key is not a whole number of bytes".into()))?;

        let public = match spki.algorithm.oid.to_string().as_str() {
            OID_RSA => {
                let parsed = rsa::pkcs1::RsaPublicKey::from_der(key_bits)
                    .map_err(|e| KeyError::Parse(e.to_string()))?;
                let n = parsed.modulus.as_bytes().to_vec();
                let e = parsed.public_exponent.as_bytes().to_vec();
                let key = rsa::RsaPublicKey::new_with_max_size(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                    RSA_MAX_BITS,
                )
                .map_err(|e| KeyError::Parse(e.to_string()))?;
                if n.last().is_none_or(|b| b & 1 == 0) {
                    return Err(KeyError::Parse("even RSA modulus".into()));
                }
                PublicKey::Rsa {
                    key,
                    fast: RsaFast::new(&n, &e),
                }
            }
            OID_EC => {
                // The kernel's ecdsa_set_pub_key takes only uncompressed points (0x04).
                if key_bits.first() != Some(&0x04) {
                    return Err(KeyError::Unsupported("compressed EC point".into()));
                }
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .ok_or_else(|| KeyError::Parse("EC key without named curve".into()))?;
                match curve.as_str() {
                    OID_P256 => PublicKey::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                            .map_err(|e| KeyError::Parse(e.to_string()))?,
                    ),
                    OID_P384 => PublicKey::P384(
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                            .map_err(|e| KeyError::Parse(e.to_string()))?,
                    ),
                    other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
                }
            }
            other => return Err(KeyError::Unsupported(other.to_string())),
        };

        let ski = tbs
            .extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == OID_SKI))
            .and_then(|e| {
                x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok()
            })
            .map(|s| s.0.as_bytes().to_vec());

        // evmctl (`read_keyid_from_cert`, `calc_keyid_v2`): the SKI's last 4 bytes, or
        // without an SKI of at least 4 bytes, the last 4 bytes of SHA-1 over the
        // subjectPublicKey BIT STRING contents.
        let keyid = match ski.as_deref() {
            Some(s) if s.len() >= 4 => tail_id(s),
            _ => {
                let sha1 = HashAlgo::Sha1
                    .digest(key_bits)
                    .ok_or_else(|| KeyError::Parse("sha1 unavailable".into()))?;
                tail_id(sha1.as_bytes())
            }
        };

        let mut serial_issuer = tbs.serial_number.as_bytes().to_vec();
        let issuer = name_contents(&tbs.issuer)?;
        let subject = name_contents(&tbs.subject)?;
        serial_issuer.extend_from_slice(&issuer);
        let kernel_ids = [Some(serial_issuer), ski, Some(subject)];

        let key = Key {
            der: der.to_vec(),
            keyid,
            kernel_ids,
            subject: kernel_name(&tbs.subject),
            public,
        };
        if issuer == key.kernel_ids[2].as_deref().unwrap_or_default() {
            key.check_self_signature(&cert, der)?;
        }
        Ok(key)
    }

    /// The kernel's `x509_check_for_self_signed` for a certificate whose issuer is its
    /// subject: when the AKID (if any) points at the certificate itself, its signature
    /// must verify with its own key, else adding it fails with EKEYREJECTED. Signature
    /// algorithms imafs cannot check are accepted, like the kernel's ENOPKG case.
    fn check_self_signature(&self, cert: &Certificate, der: &[u8]) -> Result<(), KeyError> {
        const OID_AKI: &str = "2.5.29.35";
        let akid = cert
            .tbs_certificate
            .extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == OID_AKI))
            .and_then(|e| {
                x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok()
            });
        if let Some(akid) = akid {
            let auth_kid = akid.key_identifier.as_ref().map(|k| k.as_bytes().to_vec());
            let auth_serial_issuer = match (
                akid.authority_cert_serial_number.as_ref(),
                akid.authority_cert_issuer
                    .as_ref()
                    .and_then(|names| names.first()),
            ) {
                (Some(serial), Some(x509_cert::ext::pkix::name::GeneralName::DirectoryName(n))) => {
                    let mut id = serial.as_bytes().to_vec();
                    id.extend_from_slice(&name_contents(n)?);
                    Some(id)
                }
                _ => None,
            };
            if auth_kid.is_some() || auth_serial_issuer.is_some() {
                let same = |a: &Option<Vec<u8>>, b: &Option<Vec<u8>>| matches!((a, b), (Some(a), Some(b)) if a == b);
                let a = same(&self.kernel_ids[1], &auth_kid);
                let b = same(&self.kernel_ids[0], &auth_serial_issuer);
                if !a && !b {
                    return Ok(()); // signed by another key with the same name
                }
                if a != b && auth_kid.is_some() && auth_serial_issuer.is_some() {
                    return Err(KeyError::Rejected("AKID parts disagree"));
                }
            }
        }
        let Some((rsa, algo)) = signature_algorithm(&cert.signature_algorithm.oid.to_string())
        else {
            return Ok(()); // ENOPKG: unsupported_sig, accepted
        };
        if rsa != matches!(self.public, PublicKey::Rsa { .. }) {
            return Err(KeyError::Rejected(
                "signature algorithm differs from key type",
            ));
        }
        let tbs = tbs_bytes(der)?;
        let Some(digest) = algo.digest(tbs) else {
            return Ok(());
        };
        let sig = cert
            .signature
            .as_bytes()
            .ok_or(KeyError::Rejected("signature is not whole bytes"))?;
        if self.verify_prehashed(algo, digest.as_bytes(), sig) {
            Ok(())
        } else {
            Err(KeyError::Rejected("self-signature does not verify"))
        }
    }

    /// The id evmctl puts in signatures made with this key (SKI tail, or SHA-1 fallback).
    pub fn keyid(&self) -> KeyId {
        self.keyid
    }

    /// The certificate's DER bytes: the KEY_CHECK measurement payload.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject as the kernel names it in key descriptions (`x509_fabricate_name`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The kernel's `pkey_algo` name: `rsa`, `ecdsa-nist-p256`, `ecdsa-nist-p384`.
    pub fn algorithm(&self) -> &'static str {
        match self.public {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::P256(_) => "ecdsa-nist-p256",
            PublicKey::P384(_) => "ecdsa-nist-p384",
        }
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        match &self.public {
            PublicKey::Rsa { key, .. } => key.size() * 8,
            PublicKey::P256(_) => 256,
            PublicKey::P384(_) => 384,
        }
    }

    /// Whether `keyid` selects this key under the kernel's `id:%08x` partial match.
    pub fn matches(&self, keyid: KeyId) -> bool {
        let want = keyid.to_be_bytes();
        self.kernel_ids
            .iter()
            .flatten()
            .any(|id| id.len() >= 4 && id[id.len() - 4..] == want)
    }

    /// Verify `sig` over an already computed `digest` made with `algo`.
    pub fn verify_prehashed(&self, algo: HashAlgo, digest: &[u8], sig: &[u8]) -> bool {
        if digest.len() != algo.digest_size() {
            return false;
        }
        match &self.public {
            PublicKey::Rsa { key, fast } => {
                let Some(prefix) = digest_info_prefix(algo) else {
                    return false;
                };
                match fast {
                    Some(fast) => fast
                        .public_op(sig)
                        .is_some_and(|em| em == pkcs1_v15_encoding(key.size(), &prefix, digest)),
                    None => {
                        let scheme = rsa::Pkcs1v15Sign {
                            hash_len: Some(digest.len()),
                            prefix: prefix.into_boxed_slice(),
                        };
                        key.verify(scheme, digest, sig).is_ok()
                    }
                }
            }
            PublicKey::P256(key) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
                let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(sig) else {
                    return false;
                };
                key.verify_prehash(&pad_prehash(digest, 32), &sig).is_ok()
            }
            PublicKey::P384(key) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier as _;
                let Ok(sig) = p384::ecdsa::DerSignature::from_bytes(sig) else {
                    return false;
                };
                key.verify_prehash(&pad_prehash(digest, 48), &sig).is_ok()
            }
        }
    }
}

/// X.509 signature algorithm OID -> (is RSA PKCS#1 v1.5, hash), for the ones imafs checks.
fn signature_algorithm(oid: &str) -> Option<(bool, HashAlgo)> {
    Some(match oid {
        "1.2.840.113549.1.1.5" => (true, HashAlgo::Sha1),
        "1.2.840.113549.1.1.14" => (true, HashAlgo::Sha224),
        "1.2.840.113549.1.1.11" => (true, HashAlgo::Sha256),
        "1.2.840.113549.1.1.12" => (true, HashAlgo::Sha384),
        "1.2.840.113549.1.1.13" => (true, HashAlgo::Sha512),
        "1.2.840.10045.4.1" => (false, HashAlgo::Sha1),
        "1.2.840.10045.4.3.1" => (false, HashAlgo::Sha224),
        "1.2.840.10045.4.3.2" => (false, HashAlgo::Sha256),
        "1.2.840.10045.4.3.3" => (false, HashAlgo::Sha384),
        "1.2.840.10045.4.3.4" => (false, HashAlgo::Sha512),
        _ => return None,
    })
}

/// The exact bytes of the `tbsCertificate` element (what the issuer signed).
fn tbs_bytes(der: &[u8]) -> Result<&[u8], KeyError> {
    use x509_cert::der::Reader as _;
    let err = |e: x509_cert::der::Error| KeyError::Parse(e.to_string());
    let mut outer = x509_cert::der::SliceReader::new(der).map_err(err)?;
    let header = x509_cert::der::Header::decode(&mut outer).map_err(err)?;
    let body = outer.read_slice(header.length).map_err(err)?;
    let mut inner = x509_cert::der::SliceReader::new(body).map_err(err)?;
    inner.tlv_bytes().map_err(err)
}

/// Moduli up to this many bytes (8192 bits) take the fixed-size fast path.
const RSA_FAST_MAX_BYTES: usize = 1024;

/// RSAVP1 (`sig^e mod n`) with the Montgomery parameters computed once per key: fixed-size
/// integers for moduli up to 8192 bits.
enum RsaFast {
    L16(Box<FastModulus<16>>),
    L32(Box<FastModulus<32>>),
    L48(Box<FastModulus<48>>),
    L64(Box<FastModulus<64>>),
    L128(Box<FastModulus<128>>),
}

impl RsaFast {
    /// `None` when the modulus is even, empty or larger than the fast path handles.
    fn new(n: &[u8], e: &[u8]) -> Option<RsaFast> {
        Some(match n.len() {
            1..=128 => RsaFast::L16(Box::new(FastModulus::new(n, e)?)),
            129..=256 => RsaFast::L32(Box::new(FastModulus::new(n, e)?)),
            257..=384 => RsaFast::L48(Box::new(FastModulus::new(n, e)?)),
            385..=512 => RsaFast::L64(Box::new(FastModulus::new(n, e)?)),
            513..=RSA_FAST_MAX_BYTES => RsaFast::L128(Box::new(FastModulus::new(n, e)?)),
            _ => return None,
        })
    }

    /// `sig^e mod n` as modulus-length big-endian bytes; `None` when the signature length
    /// differs from the modulus length or its value is not below the modulus (RFC 8017 8.2.2).
    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        match self {
            RsaFast::L16(m) => m.public_op(sig),
            RsaFast::L32(m) => m.public_op(sig),
            RsaFast::L48(m) => m.public_op(sig),
            RsaFast::L64(m) => m.public_op(sig),
            RsaFast::L128(m) => m.public_op(sig),
        }
    }
}

struct FastModulus<const LIMBS: usize> {
    params: crypto_bigint::modular::runtime_mod::DynResidueParams<LIMBS>,
    n: crypto_bigint::Uint<LIMBS>,
    e: crypto_bigint::Uint<LIMBS>,
    e_bits: usize,
    k: usize,
}

impl<const LIMBS: usize> FastModulus<LIMBS> {
    const WIDTH: usize = LIMBS * crypto_bigint::Limb::BYTES;

    fn load(bytes: &[u8]) -> Option<crypto_bigint::Uint<LIMBS>> {
        let mut buf = vec![0u8; Self::WIDTH];
        buf.get_mut(Self::WIDTH.checked_sub(bytes.len())?..)?
            .copy_from_slice(bytes);
        Some(crypto_bigint::Uint::from_be_slice(&buf))
    }

    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        // `DynResidueParams::new` panics on an even modulus.
        if n.last().is_none_or(|b| b & 1 == 0) {
            return None;
        }
        let n_int = Self::load(n)?;
        let e_int = Self::load(e)?;
        Some(FastModulus {
            params: crypto_bigint::modular::runtime_mod::DynResidueParams::new(&n_int),
            n: n_int,
            e_bits: e_int.bits_vartime(),
            e: e_int,
            k: n.len(),
        })
    }

    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        use crypto_bigint::modular::runtime_mod::DynResidue;
        if sig.len() != self.k {
            return None;
        }
        let s = Self::load(sig)?;
        if s >= self.n {
            return None;
        }
        let m = DynResidue::new(&s, self.params)
            .pow_bounded_exp(&self.e, self.e_bits)
            .retrieve();
        let mut out = Vec::with_capacity(Self::WIDTH);
        for word in m.as_words().iter().rev() {
            out.extend_from_slice(&word.to_be_bytes());
        }
        Some(out.split_off(Self::WIDTH - self.k))
    }
}

#[cfg(test)]
fn rsa_public_op(n: &[u8], e: &[u8], sig: &[u8]) -> Option<Vec<u8>> {
    RsaFast::new(n, e)?.public_op(sig)
}

/// EMSA-PKCS1-v1_5 (RFC 8017 9.2): `00 01 FF.. 00 DigestInfo`, `k` bytes. Verification
/// compares whole encodings, so no padding parser can be fooled.
fn pkcs1_v15_encoding(k: usize, prefix: &[u8], digest: &[u8]) -> Vec<u8> {
    let t_len = prefix.len() + digest.len();
    if k < t_len + 11 {
        return Vec::new(); // "intended encoded message length too short": never equal
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t_len - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(digest);
    em
}

/// ECDSA takes the leftmost field-size bytes of the digest; shorter digests are the same
/// integer left-padded with zeros (the `ecdsa` crate refuses digests under half the field).
fn pad_prehash(digest: &[u8], field: usize) -> Vec<u8> {
    if digest.len() >= field {
        return digest.to_vec();
    }
    let mut out = vec![0u8; field - digest.len()];
    out.extend_from_slice(digest);
    out
}

/// The kernel's `x509_fabricate_name`: the last CN, O and emailAddress attributes; "O: CN"
/// unless the CN starts with the O (or shares its first 7 bytes), else CN, O or email.
fn kernel_name(name: &x509_cert::name::Name) -> String {
    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const EMAIL: &str = "1.2.840.113549.1.9.1";
    let (mut cn, mut o, mut email): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let value = atv.value.value();
            match atv.oid.to_string().as_str() {
                CN => cn = value,
                O => o = value,
                EMAIL => email = value,
                _ => {}
            }
        }
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if !cn.is_empty() && !o.is_empty() {
        let prefixed = cn.starts_with(o) || (cn.len() >= 7 && o.len() >= 7 && cn[..7] == o[..7]);
        if prefixed {
            text(cn)
        } else {
            format!("{}: {}", text(o), text(cn))
        }
    } else if !cn.is_empty() {
        text(cn)
    } else if !o.is_empty() {
        text(o)
    } else {
        text(email)
    }
}

fn tail_id(bytes: &[u8]) -> KeyId {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[bytes.len() - 4..]);
    u32::from_be_bytes(b)
}

/// The contents (without tag and length) of a Name's DER encoding, as the kernel's
/// `raw_issuer` / `raw_subject`. Only the tail matters for id matching.
fn name_contents(name: &x509_cert::name::Name) -> Result<Vec<u8>, KeyError> {
    use x509_cert::der::Reader as _;
    let der = name.to_der().map_err(|e| KeyError::Parse(e.to_string()))?;
    let mut reader =
        x509_cert::der::SliceReader::new(&der).map_err(|e| KeyError::Parse(e.to_string()))?;
    let header =
        x509_cert::der::Header::decode(&mut reader).map_err(|e| KeyError::Parse(e.to_string()))?;
    let contents = reader
        .read_slice(header.length)
        .map_err(|e| KeyError::Parse(e.to_string()))?;
    Ok(contents.to_vec())
}

/// DER `DigestInfo` prefix (everything before the digest) for PKCS#1 v1.5, for the
/// algorithms the kernel's `rsassa-pkcs1` template knows.
fn digest_info_prefix(algo: HashAlgo) -> Option<Vec<u8>> {
    const NIST: [u8; 8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    let oid: Vec<u8> = match algo {
        HashAlgo::Md5 => vec![0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05],
        HashAlgo::Sha1 => vec![0x2b, 0x0e, 0x03, 0x02, 0x1a],
        HashAlgo::Rmd160 => vec![0x2b, 0x24, 0x03, 0x02, 0x01],
        HashAlgo::Sha256 => [&NIST[..], &[0x01]].concat(),
        HashAlgo::Sha384 => [&NIST[..], &[0x02]].concat(),
        HashAlgo::Sha512 => [&NIST[..], &[0x03]].concat(),
        HashAlgo::Sha224 => [&NIST[..], &[0x04]].concat(),
        HashAlgo::Sha3_256 => [&NIST[..], &[0x08]].concat(),
        HashAlgo::Sha3_384 => [&NIST[..], &[0x09]].concat(),
        HashAlgo::Sha3_512 => [&NIST[..], &[0x0a]].concat(),
        _ => return None,
    };
    let hash_len = u8::try_from(algo.digest_size()).ok()?;
    let oid_len = u8::try_from(oid.len()).ok()?;
    // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING digest }
    let alg_len = 2 + oid_len + 2;
    let total = 2 + alg_len + 2 + hash_len;
    let mut out = vec![0x30, total, 0x30, alg_len, 0x06, oid_len];
    out.extend_from_slice(&oid);
    out.extend_from_slice(&[0x05, 0x00, 0x04, hash_len]);
    Some(out)
}

/// The `_ima` keyring.
#[derive(Default, Debug)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Add one DER certificate; returns its key id.
    pub fn add_der(&mut self, der: &[u8]) -> Result<KeyId, KeyError> {
        let key = Key::from_der(der)?;
        let id = key.keyid;
        // The kernel updates a key with the same description in place; an identical
        // certificate is a no-op here.
        if !self.keys.iter().any(|k| k.der == key.der) {
            self.keys.push(key);
        }
        Ok(id)
    }

    /// Add every `CERTIFICATE` block of a PEM file (other blocks, such as private keys,
    /// are skipped). Fails without adding anything if a certificate block is bad.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<Vec<KeyId>, KeyError> {
        let mut parsed = Vec::new();
        for block in pem_blocks(pem) {
            let (label, der) =
                x509_cert::der::pem::decode_vec(block).map_err(|e| KeyError::Pem(e.to_string()))?;
            if label == "CERTIFICATE" || label == "X509 CERTIFICATE" {
                parsed.push(Key::from_der(&der)?);
            }
        }
        if parsed.is_empty() {
            return Err(KeyError::NoCertificate);
        }
        let mut ids = Vec::with_capacity(parsed.len());
        for key in parsed {
            ids.push(key.keyid);
            if !self.keys.iter().any(|k| k.der == key.der) {
                self.keys.push(key);
            }
        }
        Ok(ids)
    }

    /// Add DER or PEM bytes (PEM when a `-----BEGIN ` line is present).
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<Vec<KeyId>, KeyError> {
        if find(bytes, b"-----BEGIN ").is_some() {
            self.add_pem(bytes)
        } else {
            self.add_der(bytes).map(|id| vec![id])
        }
    }

    /// Load a certificate file (DER or PEM), or every regular file of a directory in
    /// name order. In a directory, files that hold no usable certificate are skipped.
    pub fn load_path(&mut self, path: &Path) -> Result<Vec<KeyId>, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_dir() {
            let bytes = std::fs::read(path).map_err(io)?;
            return self.add_bytes(&bytes);
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut ids = Vec::new();
        for file in entries {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            match self.add_bytes(&bytes) {
                Ok(mut got) => ids.append(&mut got),
                Err(e) => log::warn!("skipping {}: {e}", file.display()),
            }
        }
        Ok(ids)
    }

    /// The key a signature header's key id selects (the kernel's `id:%08x` lookup;
    /// the first matching key in load order).
    pub fn find(&self, keyid: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.matches(keyid))
    }

    /// One line per key, in load order: `<keyid as 8 lowercase hex> <algorithm> <subject>`,
    /// e.g. `4b6a2e1f rsa imafs: signing key`. The algorithm is the kernel's `pkey_algo`
    /// (`rsa`, `ecdsa-nist-p256`, `ecdsa-nist-p384`); the subject is the kernel's key
    /// description name (`x509_fabricate_name`, as in /proc/keys), possibly with spaces.
    pub fn list(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{:08x} {} {}", k.keyid, k.algorithm(), k.subject))
            .collect()
    }

    /// Every key, in load order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Slices of `pem` from each `-----BEGIN X-----` line through its `-----END X-----` line.
fn pem_blocks(pem: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = pem;
    let mut base = 0usize;
    while let Some(start) = find(rest, b"-----BEGIN ") {
        let Some(end_rel) = find(&rest[start..], b"-----END ") else {
            break;
        };
        let end_marker = start + end_rel;
        // The END line runs to its closing dashes.
        let after = end_marker + b"-----END ".len();
        let Some(close) = find(&rest[after..], b"-----") else {
            break;
        };
        let end = after + close + b"-----".len();
        out.push(&pem[base + start..base + end]);
        base += end;
        rest = &pem[base..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_prefixes_match_rfc8017() {
        // RFC 8017 section 9.2, note 1.
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Sha256).unwrap()),
            "3031300d060960864801650304020105000420"
        );
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Sha1).unwrap()),
            "3021300906052b0e03021a05000414"
        );
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Md5).unwrap()),
            "3020300c06082a864886f70d020505000410"
        );
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Sha512).unwrap()),
            "3051300d060960864801650304020305000440"
        );
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Sha224).unwrap()),
            "302d300d06096086480165030402040500041c"
        );
        assert_eq!(
            hex::encode(digest_info_prefix(HashAlgo::Sha384).unwrap()),
            "3041300d060960864801650304020205000430"
        );
        assert!(digest_info_prefix(HashAlgo::Sm3).is_none());
    }

    #[test]
    fn rsa_public_op_on_textbook_key() {
        // n = 61 * 53 = 3233, e = 17: 65^17 mod 3233 = 2790.
        let n = 3233u16.to_be_bytes();
        assert_eq!(
            rsa_public_op(&n, &[17], &[0x00, 0x41]),
            Some(2790u16.to_be_bytes().to_vec())
        );
        // The signature must be shorter than the modulus in value and equal in length.
        assert_eq!(rsa_public_op(&n, &[17], &3233u16.to_be_bytes()), None);
        assert_eq!(rsa_public_op(&n, &[17], &[0x41]), None);
        // Even modulus refused rather than panicking.
        assert_eq!(
            rsa_public_op(&3232u16.to_be_bytes(), &[17], &[0, 0x41]),
            None
        );
        // Every size class, identity exponent.
        for k in [64usize, 200, 300, 500, 1000] {
            let mut n = vec![0xffu8; k];
            n[k - 1] = 0xfd;
            let mut s = vec![0u8; k];
            s[k - 1] = 7;
            s[0] = 0x12;
            assert_eq!(rsa_public_op(&n, &[1], &s), Some(s.clone()), "{k}");
        }
        assert_eq!(rsa_public_op(&vec![0xff; 1025], &[1], &vec![1; 1025]), None);
    }

    #[test]
    fn pkcs1_encoding_layout() {
        let prefix = digest_info_prefix(HashAlgo::Sha256).unwrap();
        let em = pkcs1_v15_encoding(256, &prefix, &[0xab; 32]);
        assert_eq!(em.len(), 256);
        assert_eq!(em[..2], [0x00, 0x01]);
        assert!(em[2..256 - 51 - 1].iter().all(|&b| b == 0xff));
        assert_eq!(em[256 - 52], 0x00);
        assert_eq!(em[256 - 51..256 - 32], prefix[..]);
        // Too small a modulus for this DigestInfo: no valid encoding exists.
        assert!(pkcs1_v15_encoding(61, &prefix, &[0xab; 32]).is_empty());
    }

    #[test]
    fn names_as_the_kernel_fabricates_them() {
        use std::str::FromStr as _;
        let name = |s: &str| kernel_name(&x509_cert::name::Name::from_str(s).unwrap());
        assert_eq!(name("CN=signing key,O=imafs"), "imafs: signing key");
        assert_eq!(name("CN=imafs signing key,O=imafs"), "imafs signing key");
        // A CN sharing the O's first 7 bytes stands alone.
        assert_eq!(name("CN=Example key,O=Example Corp"), "Example key");
        assert_eq!(name("O=only org,C=DE"), "only org");
        assert_eq!(name("emailAddress=a@b.example"), "a@b.example");
        assert_eq!(name("C=DE"), "");
    }

    #[test]
    fn pem_block_splitting() {
        let text = b"junk\n-----BEGIN A-----\nQUJD\n-----END A-----\nmid\n-----BEGIN B-----\nREVG\n-----END B-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with(b"-----BEGIN A-----"));
        assert!(blocks[0].ends_with(b"-----END A-----"));
        assert!(blocks[1].starts_with(b"-----BEGIN B-----"));
        let (label, der) = x509_cert::der::pem::decode_vec(blocks[1]).unwrap();
        assert_eq!(label, "B");
        assert_eq!(der, b"DEF");
        assert!(pem_blocks(b"-----BEGIN A-----\nQUJD\n").is_empty());
    }

    #[test]
    fn empty_and_garbage_inputs_are_errors() {
        let mut ring = Keyring::new();
        assert!(matches!(ring.add_der(&[]), Err(KeyError::Parse(_))));
        assert!(matches!(
            ring.add_pem(b"no pem here"),
            Err(KeyError::NoCertificate)
        ));
        assert!(ring
            .add_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .is_err());
        assert!(ring.is_empty());
        assert!(ring.find(0).is_none());
        assert_eq!(
            KeyError::Unsupported("x".into()).errno(),
            super::super::Errno(libc::ENOPKG)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut s: u64 = 0x0123_4567_89ab_cdef;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut ring = Keyring::new();
        for i in 0..5_000 {
            let len = (next() % 300) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && buf.len() > 4 {
                // Look like a DER SEQUENCE so the parser gets past the first byte.
                buf[0] = 0x30;
                buf[1] = 0x82;
            }
            assert!(ring.add_der(&buf).is_err());
            let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
            pem.extend(
                buf.iter()
                    .map(|b| b"ABCDabcd0123+/=\n"[usize::from(b % 16)]),
            );
            pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
            assert!(ring.add_pem(&pem).is_err());
        }
        assert!(ring.is_empty());
    }
}
