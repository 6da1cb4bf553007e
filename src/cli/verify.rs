//! `imafs verify`: did anything unexpected run in this container?
//!
//! Reads a measurement list (an ASCII list of any template, a binary list, or a live
//! securityfs mount), replays it to PCR values (template digests; 0xff.. for violations, as
//! the kernel extends them) and compares those with the PCR values imafs reports (`pcrs`),
//! a TPM's (`tpm2_pcrread` output, sysfs `pcr-<alg>/<n>`) or a `--pcrs` file; checks every
//! entry's file digest against allowlists (Keylime runtime policy JSON, or `sha256sum`
//! lines) and/or a reference directory; prints what was measured and what failed.
//!
//! Exit status: 0 everything matched; 1 verification failed (a changed or unknown file, a
//! violation, an edited line, a PCR mismatch); 2 the input could not be read or parsed.
//!
//! `--generate-allowlist DIR` prints a Keylime runtime policy of DIR's files instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::engine::ascii::{self, AsciiEntry};
use crate::engine::hash::{Digest, HashAlgo};
use crate::engine::measurement_list::{self, Record};
use crate::engine::pcr::{PcrBanks, BOOT_AGGREGATE_NAME};

/// Exit status when every check passed.
pub const EXIT_OK: u8 = 0;
/// Exit status when a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status when an input could not be read or parsed.
pub const EXIT_ERROR: u8 = 2;

/// `imafs verify` arguments.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A measurement list, ASCII or binary (told by its content), or a securityfs
    /// directory: the same as --ascii, --binary or --securityfs.
    #[arg(value_name = "LIST", conflicts_with_all = ["ascii", "binary", "securityfs"])]
    pub list: Option<PathBuf>,
    /// An ASCII measurement list (any template; the digest bank from its width).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["binary", "securityfs"])]
    pub ascii: Option<PathBuf>,
    /// A binary measurement list (its bank from a `_<alg>` name suffix, else sha1, or
    /// --list-bank).
    #[arg(long, value_name = "FILE", conflicts_with = "securityfs")]
    pub binary: Option<PathBuf>,
    /// A live securityfs mount (its `integrity/ima`, or the `ima` directory itself).
    /// The default when no list is given: /sys/kernel/security.
    #[arg(long, value_name = "DIR")]
    pub securityfs: Option<PathBuf>,
    /// PCR values to compare with: imafs `pcrs` (`PCR-10 sha256 HEX`), `tpm2_pcrread`
    /// output, TPM 1.2 `PCR-10: HEX BYTES` lines, or evmctl's `PCR-10 HEX` (bank by size). Default with a securityfs: its `pcrs`
    /// file, else the TPM's /sys/class/tpm/tpm0/pcr-<alg>/<n>.
    #[arg(long, value_name = "FILE")]
    pub pcrs: Option<PathBuf>,
    /// Allowed file digests: a Keylime runtime policy (JSON `digests`, `excludes`) or
    /// `sha256sum`-style `HEX  PATH` lines. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Vec<PathBuf>,
    /// A reference tree: each measured PATH must hash the same as DIR/PATH (symlinks are
    /// resolved inside DIR, as in the container).
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
    /// PCR bank to replay and compare (default: every bank the PCR values have, else
    /// sha256); with --securityfs also the list file read (`..._<bank>`).
    #[arg(long, value_name = "ALG")]
    pub bank: Option<String>,
    /// Template-digest bank of the --ascii/--binary file, when its name or width does not
    /// tell (e.g. sm3 lists).
    #[arg(long, value_name = "ALG")]
    pub list_bank: Option<String>,
    /// Violations (ToMToU, open_writers) do not fail the verification.
    #[arg(long)]
    pub allow_violations: bool,
    /// Only print entries that failed a check, and the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print a Keylime runtime policy (JSON) of the files under DIR and exit. With a list
    /// given too, its boot_aggregate digests are added.
    #[arg(long, value_name = "DIR")]
    pub generate_allowlist: Option<PathBuf>,
    /// --generate-allowlist: file hash algorithm.
    #[arg(long, value_name = "ALG", default_value = "sha256")]
    pub hash: String,
    /// --generate-allowlist: Keylime's `ima.log_hash_alg`, the bank of the template digests
    /// in the list Keylime will read (sha1 for `ascii_runtime_measurements`).
    #[arg(long, value_name = "ALG", default_value = "sha1")]
    pub log_hash_alg: String,
    /// --generate-allowlist: a regular expression of paths Keylime ignores (`excludes`).
    #[arg(long, value_name = "REGEX")]
    pub exclude: Vec<String>,
}

pub fn main(mut args: VerifyArgs) -> ExitCode {
    let result = resolve_list_argument(&mut args).and_then(|()| {
        if let Some(dir) = &args.generate_allowlist {
            generate_allowlist(&args, dir).map(|()| EXIT_OK)
        } else {
            verify(&args)
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("imafs verify: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The positional LIST as the option it stands for: a directory is a securityfs mount; a
/// file is a binary list when its first record's PCR index (a little-endian u32, so NUL
/// bytes for any PCR below 2^24) shows, else an ASCII list.
fn resolve_list_argument(args: &mut VerifyArgs) -> Result<(), String> {
    let Some(path) = args.list.take() else {
        return Ok(());
    };
    if path.is_dir() {
        args.securityfs = Some(path);
        return Ok(());
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(&path)
        .and_then(|mut f| {
            use std::io::Read;
            f.read(&mut head)
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if looks_binary(&head[..n]) {
        args.binary = Some(path);
    } else {
        args.ascii = Some(path);
    }
    Ok(())
}

/// Whether the first bytes of a list are a binary record's PCR index rather than text.
fn looks_binary(head: &[u8]) -> bool {
    head.iter()
        .any(|&b| b == 0 || !(b.is_ascii_graphic() || b == b' '))
}

fn algo(name: &str) -> Result<HashAlgo, String> {
    HashAlgo::from_name(name).ok_or_else(|| format!("unknown hash algorithm {name:?}"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Inputs

/// The `integrity/ima` directory of a securityfs mount (or DIR itself if it is one).
pub fn ima_dir(securityfs: &Path) -> PathBuf {
    for sub in ["integrity/ima", "ima"] {
        let d = securityfs.join(sub);
        if d.join("runtime_measurements_count").exists() {
            return d;
        }
    }
    securityfs.to_path_buf()
}

/// Where the list comes from, once resolved.
struct ListSource {
    /// What the report calls it.
    label: String,
    kind: &'static str,
    bytes: Vec<u8>,
    /// Template-digest bank of the file, if known before parsing.
    bank: Option<HashAlgo>,
    /// `runtime_measurements_count` of a live mount.
    count: Option<u64>,
}

fn list_source(args: &VerifyArgs, compare_bank: HashAlgo) -> Result<ListSource, String> {
    let list_bank = args.list_bank.as_deref().map(algo).transpose()?;
    if let Some(path) = &args.ascii {
        return Ok(ListSource {
            label: path.display().to_string(),
            kind: "ascii",
            bytes: read(path)?,
            bank: list_bank,
            count: None,
        });
    }
    if let Some(path) = &args.binary {
        let from_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('_'))
            .and_then(|(_, alg)| HashAlgo::from_name(alg));
        return Ok(ListSource {
            label: path.display().to_string(),
            kind: "binary",
            bytes: read(path)?,
            bank: list_bank.or(from_name).or(Some(HashAlgo::Sha1)),
            count: None,
        });
    }
    let dir = ima_dir(&securityfs_of(args));
    // 6.10+ kernels have one file per bank; older ones only the sha1 list.
    let per_bank = dir.join(format!("ascii_runtime_measurements_{compare_bank}"));
    let (path, bank) = if per_bank.exists() {
        (per_bank, Some(compare_bank))
    } else {
        (dir.join("ascii_runtime_measurements"), Some(HashAlgo::Sha1))
    };
    let count = std::fs::read_to_string(dir.join("runtime_measurements_count"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Ok(ListSource {
        label: path.display().to_string(),
        kind: "ascii",
        bytes: read(&path)?,
        bank,
        count,
    })
}

fn securityfs_of(args: &VerifyArgs) -> PathBuf {
    args.securityfs
        .clone()
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/security"))
}

fn list_given(args: &VerifyArgs) -> bool {
    args.ascii.is_some() || args.binary.is_some() || args.securityfs.is_some()
}

/// A parsed list: records for the replay banks, plus what the ASCII form told.
struct Entry {
    record: Record,
    /// 1-based line (ascii) or record number (binary).
    number: usize,
    /// The printed template digest equals the recomputed one.
    digest_matches: bool,
}

fn parse_list(src: &ListSource, banks: &[HashAlgo]) -> Result<(Vec<Entry>, HashAlgo), String> {
    if src.kind == "binary" {
        let bank = src.bank.unwrap_or(HashAlgo::Sha1);
        let records = measurement_list::parse_binary_list(&src.bytes, bank, banks)
            .map_err(|e| format!("{}: {e}", src.label))?;
        let entries = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| Entry {
                record,
                number: i + 1,
                digest_matches: true,
            })
            .collect();
        return Ok((entries, bank));
    }
    let list = ascii::parse_ascii_list(&src.bytes, src.bank, banks)
        .map_err(|e| format!("{}: {e}", src.label))?;
    let entries = list
        .entries
        .into_iter()
        .map(
            |AsciiEntry {
                 line,
                 record,
                 digest_matches,
                 ..
             }| Entry {
                record,
                number: line,
                digest_matches,
            },
        )
        .collect();
    Ok((entries, list.file_bank))
}

/// PCR values to compare with, and where they came from.
#[derive(Default)]
struct ExpectedPcrs {
    label: String,
    values: BTreeMap<(u32, HashAlgo), Digest>,
}

/// Parse PCR values in any of the three text forms (see `--pcrs`).
fn parse_pcrs(text: &str) -> BTreeMap<(u32, HashAlgo), Digest> {
    let mut values = BTreeMap::new();
    let mut tpm2_bank: Option<HashAlgo> = None;
    for line in text.lines() {
        let t = line.trim();
        // imafs: "PCR-10 sha256 HEX"; TPM 1.2: "PCR-10: AA BB ...".
        if let Some(rest) = t.strip_prefix("PCR-") {
            let (num, rest) = match rest.split_once(':') {
                Some((num, hexbytes)) => (num, ("sha1", hexbytes.replace(' ', ""))),
                None => {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    match fields[..] {
                        [num, alg, hex] => (num, (alg, hex.to_string())),
                        // evmctl's --pcrs file: `PCR-NN HEX`, the bank given on its command line.
                        [num, hex] => (num, ("", hex.to_string())),
                        _ => continue,
                    }
                }
            };
            let (alg, hex) = rest;
            let bytes = hex::decode(hex);
            let algo = match (alg, &bytes) {
                ("", Ok(b)) => ascii::bank_for_digest_len(b.len()),
                _ => HashAlgo::from_name(alg),
            };
            if let (Ok(n), Some(a), Ok(bytes)) = (num.trim().parse(), algo, bytes) {
                if let Some(d) = Digest::from_bytes(a, &bytes) {
                    values.insert((n, a), d);
                }
            }
            continue;
        }
        // tpm2_pcrread: "  sha256:" then "    10: 0xHEX".
        if let Some(alg) = t.strip_suffix(':') {
            if let Some(a) = HashAlgo::from_name(alg) {
                tpm2_bank = Some(a);
                continue;
            }
        }
        if let (Some(bank), Some((num, value))) = (tpm2_bank, t.split_once(':')) {
            let value = value.trim();
            let value = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
                .unwrap_or(value);
            if let (Ok(n), Ok(bytes)) = (num.trim().parse(), hex::decode(value)) {
                if let Some(d) = Digest::from_bytes(bank, &bytes) {
                    values.insert((n, bank), d);
                }
            }
        }
    }
    values
}

/// PCR values of a TPM's sysfs (`/sys/class/tpm/tpm0/pcr-<alg>/<n>`, uppercase hex).
fn tpm_sysfs_pcrs(pcrs: &[u32]) -> BTreeMap<(u32, HashAlgo), Digest> {
    let mut values = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/tpm/tpm0") else {
        return values;
    };
    for ent in dir.flatten() {
        let name = ent.file_name();
        let Some(alg) = name.to_str().and_then(|n| n.strip_prefix("pcr-")) else {
            continue;
        };
        let Some(a) = HashAlgo::from_name(alg) else {
            continue;
        };
        for &n in pcrs {
            let text = std::fs::read_to_string(ent.path().join(n.to_string())).unwrap_or_default();
            if let Some(d) = hex::decode(text.trim())
                .ok()
                .and_then(|b| Digest::from_bytes(a, &b))
            {
                values.insert((n, a), d);
            }
        }
    }
    values
}

fn expected_pcrs(args: &VerifyArgs) -> Result<ExpectedPcrs, String> {
    if let Some(path) = &args.pcrs {
        let text = String::from_utf8_lossy(&read(path)?).into_owned();
        let values = parse_pcrs(&text);
        if values.is_empty() {
            return Err(format!("{}: no PCR values found", path.display()));
        }
        return Ok(ExpectedPcrs {
            label: path.display().to_string(),
            values,
        });
    }
    if args.ascii.is_some() || args.binary.is_some() {
        return Ok(ExpectedPcrs::default());
    }
    let file = ima_dir(&securityfs_of(args)).join("pcrs");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Ok(ExpectedPcrs {
            label: file.display().to_string(),
            values: parse_pcrs(&text),
        });
    }
    // A kernel's securityfs: the PCRs are the TPM's (filled in once the list's PCRs are known).
    Ok(ExpectedPcrs {
        label: "/sys/class/tpm/tpm0".into(),
        values: BTreeMap::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Allowlists and reference trees

/// Accepted digests per path, merged from every allowlist.
#[derive(Default)]
struct Allowlist {
    labels: Vec<String>,
    digests: BTreeMap<Vec<u8>, BTreeSet<String>>,
    excludes: Vec<regex::Regex>,
}

impl Allowlist {
    fn load(&mut self, path: &Path) -> Result<(), String> {
        let bytes = read(path)?;
        let err = |e: String| format!("{}: {e}", path.display());
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
            // A signed (DSSE) policy carries the policy base64-encoded in `payload`.
            if v.get("payload").is_some() {
                return Err(err(
                    "signed runtime policies are not supported; pass the unsigned policy".into(),
                ));
            }
            // Keylime: `digests` for files, `keyrings` for keys, `ima-buf` for buffers;
            // `hashes` in the JSON allowlists of Keylime before runtime policies.
            for section in ["digests", "keyrings", "ima-buf", "hashes"] {
                if let Some(map) = v.get(section).and_then(Value::as_object) {
                    for (name, list) in map {
                        let set = self.digests.entry(name.as_bytes().to_vec()).or_default();
                        for d in list.as_array().into_iter().flatten() {
                            if let Some(s) = d.as_str() {
                                set.insert(s.to_ascii_lowercase());
                            }
                        }
                    }
                }
            }
            for ex in v
                .get("excludes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(s) = ex.as_str() else { continue };
                // Keylime applies Python's re.match: anchored at the start.
                let re = regex::Regex::new(&format!("^(?:{s})"))
                    .map_err(|e| err(format!("exclude {s:?}: {e}")))?;
                self.excludes.push(re);
            }
        } else {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
                    continue;
                }
                // `HEX  PATH` (text mode) or `HEX *PATH` (binary mode), as sha256sum prints.
                let sp = line
                    .iter()
                    .position(|&b| b == b' ')
                    .ok_or_else(|| err(format!("line {}: expected `HEX  PATH`", i + 1)))?;
                let hex = std::str::from_utf8(&line[..sp])
                    .ok()
                    .filter(|h| hex::decode(h).is_ok())
                    .ok_or_else(|| err(format!("line {}: digest is not hex", i + 1)))?;
                let mut name = &line[sp + 1..];
                if let Some(rest) = name.strip_prefix(b" ").or(name.strip_prefix(b"*")) {
                    name = rest;
                }
                self.digests
                    .entry(container_path(name))
                    .or_default()
                    .insert(hex.to_ascii_lowercase());
            }
        }
        self.labels.push(path.display().to_string());
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn excluded(&self, name: &[u8]) -> bool {
        let name = String::from_utf8_lossy(name);
        self.excludes.iter().any(|re| re.is_match(&name))
    }
}

/// `./etc/x` and `etc/x` (as `find . | sha256sum` prints them) name `/etc/x`.
fn container_path(name: &[u8]) -> Vec<u8> {
    let name = name
        .strip_prefix(b".")
        .filter(|n| n.first() == Some(&b'/'))
        .unwrap_or(name);
    if name.first() == Some(&b'/') {
        name.to_vec()
    } else {
        [b"/", name].concat()
    }
}

/// What the reference tree says about one path.
enum Reference {
    Missing,
    File { digest: Digest, executable: bool },
}

/// Hash `name` under `root` with `algo`, resolving symlinks inside `root`.
fn reference_file(root: &std::fs::File, name: &[u8], algo: HashAlgo) -> Result<Reference, String> {
    use std::os::unix::ffi::OsStrExt;
    let rel = std::ffi::OsStr::from_bytes(name.strip_prefix(b"/").unwrap_or(name));
    // O_PATH first: a device node or FIFO in the reference tree is never opened for real.
    let fd = rustix::fs::openat2(
        root,
        rel,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    );
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", String::from_utf8_lossy(name));
    let path_fd = match fd {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            return Ok(Reference::Missing)
        }
        Err(e) => return Err(err(&e)),
    };
    let st = rustix::fs::fstat(&path_fd).map_err(|e| err(&e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(Reference::Missing);
    }
    // Reopen the very inode found for reading.
    let mut file = std::fs::File::open(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&path_fd)
    ))
    .map_err(|e| err(&e))?;
    let meta = file.metadata().map_err(|e| err(&e))?;
    let digest = hash_reader(&mut file, algo).map_err(|e| err(&e))?;
    Ok(Reference::File {
        digest,
        executable: meta.permissions().mode() & 0o111 != 0,
    })
}

fn hash_reader(r: &mut impl Read, algo: HashAlgo) -> std::io::Result<Digest> {
    let mut h = algo.hasher().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("cannot compute {algo}"),
        )
    })?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

// ---------------------------------------------------------------------------------------
// The verification

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Digest accepted by an allowlist or the reference tree.
    Ok,
    /// The path is known with other digests.
    Changed,
    /// The path is in no allowlist / not in the reference tree.
    Unknown,
    /// Matched an allowlist's `excludes`.
    Excluded,
    /// Nothing to check against.
    Unchecked,
    /// A violation entry (zero digest).
    Violation,
    /// The printed template digest is not the one of the printed fields: an edited list.
    BadTemplateDigest,
    /// boot_aggregate that no allowlist names (there is no TPM boot log to check it with).
    BootAggregate,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "CHANGED",
            Status::Unknown => "UNKNOWN",
            Status::Excluded => "excluded",
            Status::Unchecked => "measured",
            Status::Violation => "VIOLATION",
            Status::BadTemplateDigest => "BAD-DIGEST",
            Status::BootAggregate => "boot",
        }
    }

    fn fails(self, allow_violations: bool) -> bool {
        match self {
            Status::Changed | Status::Unknown | Status::BadTemplateDigest => true,
            Status::Violation => !allow_violations,
            _ => false,
        }
    }
}

struct Checked {
    number: usize,
    pcr: u32,
    template: String,
    name: String,
    digest: Option<Digest>,
    status: Status,
    /// "exec" when the reference file is executable, "file" otherwise, "" when unknown.
    kind: &'static str,
    expected: Vec<String>,
}

fn check_entry(
    e: &Entry,
    allow: &Allowlist,
    reference: Option<&std::fs::File>,
) -> Result<Checked, String> {
    let rec = &e.record;
    let m = ascii::file_measurement(rec.template(), rec.template_data());
    let mut c = Checked {
        number: e.number,
        pcr: rec.pcr(),
        template: rec.template().display_name().to_string(),
        name: String::from_utf8_lossy(&m.name).into_owned(),
        digest: if rec.is_violation() { None } else { m.digest },
        status: Status::Unchecked,
        kind: "",
        expected: Vec::new(),
    };
    if rec.is_violation() {
        c.status = Status::Violation;
        return Ok(c);
    }
    if !e.digest_matches {
        c.status = Status::BadTemplateDigest;
        return Ok(c);
    }
    let hex = m.digest.map(|d| d.to_hex()).unwrap_or_default();
    let is_boot = m.name == BOOT_AGGREGATE_NAME.as_bytes();
    let mut known = false;
    let mut accepted = false;
    if !allow.is_empty() {
        if !is_boot && allow.excluded(&m.name) {
            c.status = Status::Excluded;
            return Ok(c);
        }
        if let Some(set) = allow.digests.get(&m.name) {
            known = true;
            accepted |= set.contains(&hex);
            c.expected.extend(set.iter().cloned());
        }
    }
    if let (Some(root), Some(d), false) = (reference, m.digest, is_boot) {
        if let Reference::File { digest, executable } = reference_file(root, &m.name, d.algo())? {
            known = true;
            accepted |= digest == d;
            c.kind = if executable { "exec" } else { "file" };
            c.expected.push(digest.to_hex());
        }
    }
    c.status = if accepted {
        Status::Ok
    } else if known {
        Status::Changed
    } else if is_boot {
        Status::BootAggregate
    } else if allow.is_empty() && reference.is_none() {
        Status::Unchecked
    } else {
        Status::Unknown
    };
    Ok(c)
}

struct PcrResult {
    pcr: u32,
    bank: HashAlgo,
    replayed: Digest,
    expected: Option<Digest>,
}

fn verify(args: &VerifyArgs) -> Result<u8, String> {
    let mut expected = expected_pcrs(args)?;
    let requested_bank = args.bank.as_deref().map(algo).transpose()?;
    let compare_bank = requested_bank.unwrap_or(HashAlgo::Sha256);
    let src = list_source(args, compare_bank)?;
    // Replay in the requested bank, or every bank the PCR values name.
    let mut banks: Vec<HashAlgo> = match requested_bank {
        Some(b) => vec![b],
        None => expected
            .values
            .keys()
            .map(|&(_, a)| a)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    banks.retain(|b| b.is_supported());
    if banks.is_empty() {
        banks.push(HashAlgo::Sha256);
    }
    let (entries, list_bank) = parse_list(&src, &banks)?;

    let mut allow = Allowlist::default();
    for path in &args.allowlist {
        allow.load(path)?;
    }
    let reference = match &args.reference {
        Some(dir) => Some(std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?),
        None => None,
    };
    let checked = entries
        .iter()
        .map(|e| check_entry(e, &allow, reference.as_ref()))
        .collect::<Result<Vec<_>, String>>()?;

    let mut replayed = PcrBanks::new(&banks);
    for e in &entries {
        replayed.extend_record(&e.record);
    }
    let used = replayed.used();
    if expected.values.is_empty() && expected.label.starts_with("/sys/class/tpm") {
        expected.values = tpm_sysfs_pcrs(&used);
        if expected.values.is_empty() {
            expected.label.clear();
        }
    }
    let mut pcr_results = Vec::new();
    for &pcr in &used {
        for &bank in &banks {
            pcr_results.push(PcrResult {
                pcr,
                bank,
                replayed: replayed.value(pcr, bank),
                expected: expected.values.get(&(pcr, bank)).copied(),
            });
        }
    }
    // PCRs the source reports that the list never extended must still be zero.
    for (&(pcr, bank), &value) in &expected.values {
        if banks.contains(&bank)
            && !used.contains(&pcr)
            && !value.is_zero()
            && (10..=14).contains(&pcr)
        {
            pcr_results.push(PcrResult {
                pcr,
                bank,
                replayed: Digest::zero(bank),
                expected: Some(value),
            });
        }
    }
    let pcr_mismatches = pcr_results
        .iter()
        .filter(|r| r.expected.is_some_and(|e| e != r.replayed))
        .count();
    let pcr_compared = pcr_results.iter().filter(|r| r.expected.is_some()).count();

    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for c in &checked {
        *counts.entry(c.status.label()).or_default() += 1;
    }
    let failed_entries = checked
        .iter()
        .filter(|c| c.status.fails(args.allow_violations))
        .count();
    let ok = failed_entries == 0 && pcr_mismatches == 0;
    let summary = summary_text(
        &checked,
        pcr_mismatches,
        pcr_compared,
        args.allow_violations,
    );

    if args.json {
        let report = json!({
            "list": {"source": src.label, "format": src.kind, "bank": list_bank.name(),
                     "entries": entries.len(), "runtime_measurements_count": src.count},
            "checked_against": {"allowlists": allow.labels,
                                "reference": args.reference.as_ref().map(|p| p.display().to_string()),
                                "pcrs": (!expected.label.is_empty()).then_some(&expected.label)},
            "entries": checked.iter().map(|c| json!({
                "number": c.number, "pcr": c.pcr, "template": c.template, "path": c.name,
                "digest": c.digest.map(|d| format!("{}:{}", d.algo(), d.to_hex())),
                "status": c.status.label().to_ascii_lowercase(), "kind": c.kind,
                "expected": c.expected,
            })).collect::<Vec<_>>(),
            "pcrs": pcr_results.iter().map(|r| json!({
                "pcr": r.pcr, "bank": r.bank.name(), "replayed": r.replayed.to_hex(),
                "expected": r.expected.map(|d| d.to_hex()),
                "matches": r.expected.map(|d| d == r.replayed),
            })).collect::<Vec<_>>(),
            "counts": counts,
            "result": if ok { "pass" } else { "fail" },
            "summary": summary,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(
            args,
            &src,
            list_bank,
            entries.len(),
            &allow,
            &expected,
            &checked,
            &pcr_results,
        );
        println!("result: {}", if ok { "PASS" } else { "FAIL" });
        println!("  {summary}");
    }
    Ok(if ok { EXIT_OK } else { EXIT_FAILED })
}

fn summary_text(
    checked: &[Checked],
    pcr_mismatches: usize,
    pcr_compared: usize,
    allow_violations: bool,
) -> String {
    let n = |s: Status| checked.iter().filter(|c| c.status == s).count();
    let mut parts = vec![format!("{} entries", checked.len())];
    for (s, what) in [
        (Status::Ok, "ok"),
        (Status::Changed, "changed"),
        (Status::Unknown, "unknown"),
        (Status::Excluded, "excluded"),
        (Status::Unchecked, "not checked"),
        (
            Status::BootAggregate,
            "boot_aggregate (not checked: no boot log)",
        ),
        (
            Status::BadTemplateDigest,
            "with a template digest that does not match its fields",
        ),
    ] {
        if n(s) > 0 {
            parts.push(format!("{} {what}", n(s)));
        }
    }
    let v = n(Status::Violation);
    if v > 0 {
        let tail = if allow_violations { " (allowed)" } else { "" };
        parts.push(format!(
            "{v} violation{}{tail}",
            if v == 1 { "" } else { "s" }
        ));
    }
    parts.push(if pcr_compared == 0 {
        "no PCR values to compare with".into()
    } else if pcr_mismatches == 0 {
        format!("PCRs match ({pcr_compared} compared)")
    } else {
        format!("{pcr_mismatches} of {pcr_compared} PCR values differ from the replay")
    });
    parts.join(", ")
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    args: &VerifyArgs,
    src: &ListSource,
    list_bank: HashAlgo,
    entries: usize,
    allow: &Allowlist,
    expected: &ExpectedPcrs,
    checked: &[Checked],
    pcrs: &[PcrResult],
) {
    println!(
        "list: {} ({}, template digests {list_bank})",
        src.label, src.kind
    );
    match src.count {
        Some(c) if c != entries as u64 => {
            println!(
                "  {entries} entries (runtime_measurements_count {c}: the list grew while read)"
            )
        }
        _ => println!("  {entries} entries"),
    }
    let templates: BTreeSet<&str> = checked.iter().map(|c| c.template.as_str()).collect();
    let hashes: BTreeSet<String> = checked
        .iter()
        .filter_map(|c| c.digest.map(|d| d.algo().name().to_string()))
        .collect();
    println!(
        "  templates: {}; file hashes: {}",
        templates.into_iter().collect::<Vec<_>>().join(", "),
        hashes.into_iter().collect::<Vec<_>>().join(", ")
    );
    for a in &allow.labels {
        println!("allowlist: {a}");
    }
    if let Some(r) = &args.reference {
        println!("reference: {}", r.display());
    }
    let (execs, others): (Vec<&Checked>, Vec<&Checked>) =
        checked.iter().partition(|c| c.kind == "exec");
    let show = |c: &Checked| !args.quiet || c.status.fails(args.allow_violations);
    let row = |c: &Checked| {
        let digest = match c.digest {
            Some(d) => format!("{}:{}", d.algo(), d.to_hex()),
            None => "-".into(),
        };
        let mut line = format!(
            "  {:<10} {:>2} {digest} {}",
            c.status.label(),
            c.pcr,
            printable(&c.name)
        );
        if c.status == Status::Changed {
            line.push_str(&format!(" (expected {})", c.expected.join(" or ")));
        }
        println!("{line}");
    };
    if args.reference.is_some() {
        println!(
            "\nexecutables measured (executable in the reference tree): {}",
            execs.len()
        );
        execs.iter().copied().filter(|c| show(c)).for_each(row);
        println!("\nother files measured: {}", others.len());
    } else {
        println!("\nmeasured: {}", checked.len());
    }
    others.iter().copied().filter(|c| show(c)).for_each(row);
    let problems = |s: Status, title: &str| {
        let list: Vec<&Checked> = checked.iter().filter(|c| c.status == s).collect();
        if !list.is_empty() {
            println!("\n{title}: {}", list.len());
            for c in list {
                println!("  {}", printable(&c.name));
            }
        }
    };
    problems(
        Status::Changed,
        "changed (digest differs from the allowlist or reference)",
    );
    problems(
        Status::Unknown,
        "unknown (not in the allowlist or reference)",
    );
    problems(Status::Violation, "violations (ToMToU or open_writers)");
    problems(
        Status::BadTemplateDigest,
        "edited entries (template digest does not match the fields)",
    );
    println!("\nPCR replay:");
    if pcrs.is_empty() {
        println!("  (no entries)");
    }
    for r in pcrs {
        let verdict = match r.expected {
            None => "not compared".to_string(),
            Some(e) if e == r.replayed => format!("matches {}", expected.label),
            Some(e) => format!("DIFFERS: {} has {}", expected.label, e.to_hex()),
        };
        println!(
            "  PCR-{:02} {} {}  {verdict}",
            r.pcr,
            r.bank,
            r.replayed.to_hex()
        );
    }
    if expected.label.is_empty() {
        println!("  (no PCR values given: --pcrs FILE, or a securityfs with `pcrs`, or a TPM)");
    }
    println!();
}

/// A name from the list as the terminal should see it: control characters (a list may name
/// any path, escape sequences included) as `\xNN`.
fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// --generate-allowlist

fn generate_allowlist(args: &VerifyArgs, dir: &Path) -> Result<(), String> {
    let hash = algo(&args.hash)?;
    let log_hash = algo(&args.log_hash_alg)?;
    if !matches!(
        log_hash,
        HashAlgo::Sha1 | HashAlgo::Sha256 | HashAlgo::Sha384 | HashAlgo::Sha512
    ) {
        return Err(format!(
            "Keylime's log_hash_alg is sha1, sha256, sha384 or sha512, not {log_hash}"
        ));
    }
    for ex in &args.exclude {
        regex::Regex::new(ex).map_err(|e| format!("exclude {ex:?}: {e}"))?;
    }
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    walk(dir, Path::new("/"), hash, &mut digests)?;
    if list_given(args) {
        let src = list_source(args, HashAlgo::Sha256)?;
        let (entries, _) = parse_list(&src, &[HashAlgo::Sha256])?;
        for e in entries {
            let m = ascii::file_measurement(e.record.template(), e.record.template_data());
            if m.name == BOOT_AGGREGATE_NAME.as_bytes() {
                if let Some(d) = m.digest {
                    let set = digests.entry(BOOT_AGGREGATE_NAME.into()).or_default();
                    if !set.contains(&d.to_hex()) {
                        set.push(d.to_hex());
                    }
                }
            }
        }
    }
    let policy = json!({
        "meta": {"version": 1, "generator": 0, "timestamp": timestamp()},
        "release": 0,
        "digests": digests,
        "excludes": args.exclude,
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": log_hash.name(), "dm_policy": null},
        "ima-buf": {},
        "verification-keys": "",
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&policy).unwrap_or_default()
    );
    Ok(())
}

/// Hash every regular file under `dir` (symlinks are not followed: the list names the
/// files they lead to) into `digests`, keyed by the path the container sees.
fn walk(
    dir: &Path,
    prefix: &Path,
    hash: HashAlgo,
    digests: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<_> = rd.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for ent in names {
        let path = ent.path();
        let inner = prefix.join(ent.file_name());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, &inner, hash, digests)?;
        } else if meta.is_file() {
            let Some(key) = inner.to_str() else {
                log::warn!("{}: not UTF-8, left out of the policy", path.display());
                continue;
            };
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    log::warn!("{}: {e}, left out of the policy", path.display());
                    continue;
                }
            };
            let d = hash_reader(&mut f, hash).map_err(|e| format!("{}: {e}", path.display()))?;
            digests.entry(key.to_string()).or_default().push(d.to_hex());
        }
    }
    Ok(())
}

/// Now as ISO 8601 UTC (Keylime's `meta.timestamp`), without a date crate.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_text_forms() {
        let h1 = "652f26ba8600dec490d4f70214bc63bc5b9f034b";
        let h256 = "9f1bad35a4facd01a0d47fcb55e0448ba187b439fc90946d48d338f7b95895d2";
        let imafs = format!("PCR-10 sha1 {h1}\nPCR-11 sha256 {h256}\n");
        let v = parse_pcrs(&imafs);
        assert_eq!(v[&(10, HashAlgo::Sha1)].to_hex(), h1);
        assert_eq!(v[&(11, HashAlgo::Sha256)].to_hex(), h256);
        let tpm2 = format!(
            "  sha1:\n    0 : 0x{}\n    10: 0x{}\n  sha256:\n    10: 0x{}\n",
            "00".repeat(20),
            h1.to_uppercase(),
            h256.to_uppercase()
        );
        let v = parse_pcrs(&tpm2);
        assert_eq!(v.len(), 3);
        assert_eq!(v[&(10, HashAlgo::Sha1)].to_hex(), h1);
        assert_eq!(v[&(10, HashAlgo::Sha256)].to_hex(), h256);
        let tpm12 = "PCR-10: 65 2F 26 BA 86 00 DE C4 90 D4 F7 02 14 BC 63 BC 5B 9F 03 4B\n";
        assert_eq!(parse_pcrs(tpm12)[&(10, HashAlgo::Sha1)].to_hex(), h1);
        assert!(parse_pcrs("garbage\nPCR-x sha1 zz\nPCR-10: 11\nPCR-10 a b c d\n").is_empty());
        // evmctl's --pcrs file: the bank by digest size.
        let evmctl = format!("PCR-00 {}\nPCR-10 {h256}\n", "00".repeat(32));
        let v = parse_pcrs(&evmctl);
        assert_eq!(v[&(10, HashAlgo::Sha256)].to_hex(), h256);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn allowlists_in_keylime_and_sha256sum_forms() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("policy.json");
        std::fs::write(
            &json,
            r#"{"digests": {"/bin/sh": ["AB12", "cd34"]}, "keyrings": {".ima": ["ee"]},
                "hashes": {"/old": ["ff"]}, "excludes": ["/tmp/.*", "/var/log"]}"#,
        )
        .unwrap();
        let sums = dir.path().join("sums");
        std::fs::write(&sums, "# comment\n0011  ./etc/a b\n2233 *usr/bin/x\n\n").unwrap();
        let mut allow = Allowlist::default();
        allow.load(&json).unwrap();
        allow.load(&sums).unwrap();
        assert_eq!(allow.labels.len(), 2);
        let set = |p: &[u8]| allow.digests.get(p).cloned().unwrap_or_default();
        assert_eq!(
            set(b"/bin/sh"),
            ["ab12".to_string(), "cd34".to_string()].into()
        );
        assert!(set(b".ima").contains("ee") && set(b"/old").contains("ff"));
        assert!(set(b"/etc/a b").contains("0011") && set(b"/usr/bin/x").contains("2233"));
        // re.match semantics: anchored at the start only.
        assert!(allow.excluded(b"/tmp/x") && allow.excluded(b"/var/log/syslog"));
        assert!(!allow.excluded(b"/x/tmp/y"));

        for (text, why) in [
            ("{\"digests\": ", "EOF"),
            ("{\"excludes\": [\"(\"]}", "exclude"),
            ("{\"payload\": \"x\"}", "signed"),
            ("zz  /x\n", "line 1: digest is not hex"),
            ("0011\n", "line 1: expected `HEX  PATH`"),
        ] {
            std::fs::write(&json, text).unwrap();
            let e = Allowlist::default().load(&json).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn reference_paths_resolve_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("etc/real"), b"inside\n").unwrap();
        // Absolute and `..`-escaping links stay in the tree, as in the container.
        std::os::unix::fs::symlink("/etc/real", root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/real", root.join("bin/up")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("bin/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let tree = std::fs::File::open(root).unwrap();
        let inside = HashAlgo::Sha256.digest(b"inside\n").unwrap();
        for name in [&b"/etc/real"[..], b"/etc/abs", b"/bin/up"] {
            match reference_file(&tree, name, HashAlgo::Sha256).unwrap() {
                Reference::File { digest, executable } => {
                    assert_eq!(digest, inside, "{}", String::from_utf8_lossy(name));
                    assert!(!executable);
                }
                Reference::Missing => panic!("{} missing", String::from_utf8_lossy(name)),
            }
        }
        // A FIFO is not opened (it would block), a directory or a missing path is no file.
        for name in [&b"/bin/fifo"[..], b"/etc", b"/nope", b"/etc/real/x"] {
            assert!(matches!(
                reference_file(&tree, name, HashAlgo::Sha256).unwrap(),
                Reference::Missing
            ));
        }
    }

    #[test]
    fn names_are_printed_without_control_characters() {
        assert_eq!(printable("/tmp/a\u{1b}[2J\tb"), "/tmp/a\\x1b[2J\\x09b");
        assert_eq!(printable("/usr/bin/ok"), "/usr/bin/ok");
    }

    #[test]
    fn sha256sum_paths_are_container_paths() {
        assert_eq!(container_path(b"./etc/x"), b"/etc/x");
        assert_eq!(container_path(b"etc/x"), b"/etc/x");
        assert_eq!(container_path(b"/etc/x"), b"/etc/x");
        assert_eq!(container_path(b".hidden"), b"/.hidden");
    }

    #[test]
    fn timestamp_is_iso8601() {
        let t = timestamp();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T");
    }
}
