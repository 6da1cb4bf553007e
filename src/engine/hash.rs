//! Hash algorithms as the kernel numbers and names them (include/uapi/linux/hash_info.h,
//! crypto/hash_info.c), with streaming hashers for the ones we can compute.

use std::fmt;

/// Largest digest any algorithm produces (sha512, wp512, streebog512, sha3-512).
pub const MAX_DIGEST_SIZE: usize = 64;

/// A kernel hash algorithm, numbered as `enum hash_algo` (include/uapi/linux/hash_info.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum HashAlgo {
    Md4 = 0,
    Md5 = 1,
    Sha1 = 2,
    Rmd160 = 3,
    Sha256 = 4,
    Sha384 = 5,
    Sha512 = 6,
    Sha224 = 7,
    Rmd128 = 8,
    Rmd256 = 9,
    Rmd320 = 10,
    Wp256 = 11,
    Wp384 = 12,
    Wp512 = 13,
    Tgr128 = 14,
    Tgr160 = 15,
    Tgr192 = 16,
    Sm3 = 17,
    Streebog256 = 18,
    Streebog512 = 19,
    Sha3_256 = 20,
    Sha3_384 = 21,
    Sha3_512 = 22,
}

const ALL: [HashAlgo; 23] = [
    HashAlgo::Md4,
    HashAlgo::Md5,
    HashAlgo::Sha1,
    HashAlgo::Rmd160,
    HashAlgo::Sha256,
    HashAlgo::Sha384,
    HashAlgo::Sha512,
    HashAlgo::Sha224,
    HashAlgo::Rmd128,
    HashAlgo::Rmd256,
    HashAlgo::Rmd320,
    HashAlgo::Wp256,
    HashAlgo::Wp384,
    HashAlgo::Wp512,
    HashAlgo::Tgr128,
    HashAlgo::Tgr160,
    HashAlgo::Tgr192,
    HashAlgo::Sm3,
    HashAlgo::Streebog256,
    HashAlgo::Streebog512,
    HashAlgo::Sha3_256,
    HashAlgo::Sha3_384,
    HashAlgo::Sha3_512,
];

impl HashAlgo {
    /// Every algorithm, in kernel enum order.
    pub fn all() -> &'static [HashAlgo] {
        &ALL
    }

    /// The algorithm with kernel number `id` (the byte in `security.ima` and signatures).
    pub fn from_id(id: u8) -> Option<HashAlgo> {
        ALL.get(usize::from(id)).copied()
    }

    /// The kernel number.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The kernel name (`hash_algo_name[]`): used in `d-ng` prefixes, bank file names,
    /// `appraise_algos=` and `ima_hash=`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md4 => "md4",
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Rmd160 => "rmd160",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
            HashAlgo::Sha224 => "sha224",
            HashAlgo::Rmd128 => "rmd128",
            HashAlgo::Rmd256 => "rmd256",
            HashAlgo::Rmd320 => "rmd320",
            HashAlgo::Wp256 => "wp256",
            HashAlgo::Wp384 => "wp384",
            HashAlgo::Wp512 => "wp512",
            HashAlgo::Tgr128 => "tgr128",
            HashAlgo::Tgr160 => "tgr160",
            HashAlgo::Tgr192 => "tgr192",
            HashAlgo::Sm3 => "sm3",
            HashAlgo::Streebog256 => "streebog256",
            HashAlgo::Streebog512 => "streebog512",
            HashAlgo::Sha3_256 => "sha3-256",
            HashAlgo::Sha3_384 => "sha3-384",
            HashAlgo::Sha3_512 => "sha3-512",
        }
    }

    /// Look an algorithm up by its kernel name (exact, case-sensitive, as `match_string`).
    pub fn from_name(name: &str) -> Option<HashAlgo> {
        ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Digest size in bytes (`hash_digest_size[]`).
    pub fn digest_size(self) -> usize {
        match self {
            HashAlgo::Md4 | HashAlgo::Md5 | HashAlgo::Rmd128 | HashAlgo::Tgr128 => 16,
            HashAlgo::Sha1 | HashAlgo::Rmd160 | HashAlgo::Tgr160 => 20,
            HashAlgo::Tgr192 => 24,
            HashAlgo::Sha224 => 28,
            HashAlgo::Sha256
            | HashAlgo::Rmd256
            | HashAlgo::Wp256
            | HashAlgo::Sm3
            | HashAlgo::Streebog256
            | HashAlgo::Sha3_256 => 32,
            HashAlgo::Rmd320 => 40,
            HashAlgo::Sha384 | HashAlgo::Wp384 | HashAlgo::Sha3_384 => 48,
            HashAlgo::Sha512 | HashAlgo::Wp512 | HashAlgo::Streebog512 | HashAlgo::Sha3_512 => 64,
        }
    }

    /// Whether imafs can compute this algorithm (the kernel's "crypto API has a transform").
    pub fn is_supported(self) -> bool {
        self.hasher().is_some()
    }

    /// A fresh streaming hasher, or `None` when the algorithm is not available.
    pub fn hasher(self) -> Option<Hasher> {
        use sha2::Digest as _;
        let inner = match self {
            HashAlgo::Md5 => HasherInner::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => HasherInner::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha224 => HasherInner::Sha224(sha2::Sha224::new()),
            HashAlgo::Sha256 => HasherInner::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha384 => HasherInner::Sha384(sha2::Sha384::new()),
            HashAlgo::Sha512 => HasherInner::Sha512(sha2::Sha512::new()),
            HashAlgo::Sm3 => HasherInner::Sm3(sm3::Sm3::new()),
            HashAlgo::Sha3_256 => HasherInner::Sha3_256(sha3::Sha3_256::new()),
            HashAlgo::Sha3_384 => HasherInner::Sha3_384(sha3::Sha3_384::new()),
            HashAlgo::Sha3_512 => HasherInner::Sha3_512(sha3::Sha3_512::new()),
            _ => return None,
        };
        Some(Hasher { algo: self, inner })
    }

    /// One-shot digest of `data`; `None` when the algorithm is not available.
    pub fn digest(self, data: &[u8]) -> Option<Digest> {
        let mut h = self.hasher()?;
        h.update(data);
        Some(h.finalize())
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest value with its algorithm; stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    algo: HashAlgo,
    bytes: [u8; MAX_DIGEST_SIZE],
}

impl Digest {
    /// A digest from raw bytes; the length must be the algorithm's digest size.
    pub fn from_bytes(algo: HashAlgo, bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != algo.digest_size() {
            return None;
        }
        let mut buf = [0u8; MAX_DIGEST_SIZE];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Digest { algo, bytes: buf })
    }

    /// All-zero digest of `algo`'s size (boot_aggregate without TPM, violations).
    pub fn zero(algo: HashAlgo) -> Digest {
        Digest {
            algo,
            bytes: [0u8; MAX_DIGEST_SIZE],
        }
    }

    /// All-0xff digest of `algo`'s size (what a violation extends into a PCR).
    pub fn ones(algo: HashAlgo) -> Digest {
        let mut bytes = [0u8; MAX_DIGEST_SIZE];
        bytes[..algo.digest_size()].fill(0xff);
        Digest { algo, bytes }
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algo.digest_size()]
    }

    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
    }

    /// Lowercase hex, as every IMA text file prints digests.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.to_hex())
    }
}

enum HasherInner {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Sm3(sm3::Sm3),
    Sha3_256(sha3::Sha3_256),
    Sha3_384(sha3::Sha3_384),
    Sha3_512(sha3::Sha3_512),
}

/// A streaming hasher for one algorithm.
pub struct Hasher {
    algo: HashAlgo,
    inner: HasherInner,
}

impl Hasher {
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match &mut self.inner {
            HasherInner::Md5(h) => h.update(data),
            HasherInner::Sha1(h) => h.update(data),
            HasherInner::Sha224(h) => h.update(data),
            HasherInner::Sha256(h) => h.update(data),
            HasherInner::Sha384(h) => h.update(data),
            HasherInner::Sha512(h) => h.update(data),
            HasherInner::Sm3(h) => h.update(data),
            HasherInner::Sha3_256(h) => h.update(data),
            HasherInner::Sha3_384(h) => h.update(data),
            HasherInner::Sha3_512(h) => h.update(data),
        }
    }

    pub fn finalize(self) -> Digest {
        use sha2::Digest as _;
        let algo = self.algo;
        let mut bytes = [0u8; MAX_DIGEST_SIZE];
        // Copy straight out of each hasher's fixed-size output: no allocation per digest.
        fn put(dst: &mut [u8; MAX_DIGEST_SIZE], src: &[u8]) {
            dst[..src.len()].copy_from_slice(src);
        }
        match self.inner {
            HasherInner::Md5(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha1(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha224(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha256(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha384(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha512(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sm3(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha3_256(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha3_384(h) => put(&mut bytes, &h.finalize()),
            HasherInner::Sha3_512(h) => put(&mut bytes, &h.finalize()),
        }
        Digest { algo, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_names_match_the_kernel_table() {
        for (i, a) in HashAlgo::all().iter().enumerate() {
            assert_eq!(usize::from(a.id()), i);
            assert_eq!(HashAlgo::from_name(a.name()), Some(*a));
        }
        assert_eq!(HashAlgo::from_id(4), Some(HashAlgo::Sha256));
        assert_eq!(HashAlgo::from_id(23), None);
        assert_eq!(HashAlgo::from_name("SHA256"), None);
        assert_eq!(HashAlgo::Sha3_256.name(), "sha3-256");
    }

    #[test]
    fn digests_of_hello_match_spec_vectors() {
        let d = HashAlgo::Sha256.digest(b"hello\n").unwrap();
        assert_eq!(
            d.to_hex(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let d = HashAlgo::Sha1.digest(b"hello\n").unwrap();
        assert_eq!(d.to_hex(), "f572d396fae9206628714fb2ce00f72e94f2258f");
        for a in HashAlgo::all() {
            if let Some(d) = a.digest(b"") {
                assert_eq!(d.as_bytes().len(), a.digest_size(), "{a}");
            }
        }
    }

    #[test]
    fn zero_and_ones_have_bank_size() {
        assert_eq!(Digest::zero(HashAlgo::Sha1).as_bytes(), &[0u8; 20]);
        assert_eq!(Digest::ones(HashAlgo::Sha256).as_bytes(), &[0xffu8; 32]);
        assert!(Digest::from_bytes(HashAlgo::Sha1, &[0u8; 19]).is_none());
    }
}
