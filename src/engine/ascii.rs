//! Parsing the ASCII measurement list (ima_fs.c: ima_ascii_measurements_show, fields
//! printed by ima_template_lib.c's `ima_show_template_*`) back into records: the inverse
//! of [`TemplateDesc::render_ascii_fields`], for verifiers (`imafs verify`, `imafs status`).
//!
//! A line is `%2d <template digest hex> <template name> <field> <field> ...`: every field
//! is preceded by one space (an empty field leaves just the space), names never contain a
//! space (the kernel stores `_`), so splitting on spaces gives exactly one token per field.
//! Every token is turned back into the field's stored bytes, so the record's template
//! digests can be recomputed and compared with the printed one, as Keylime does.
//!
//! Bad input is an error naming the line, never a panic.

use std::sync::Arc;

use crate::engine::hash::{Digest, HashAlgo};
use crate::engine::measurement_list::Record;
use crate::engine::template::{Field, TemplateDesc, TemplateError};

/// One parsed line.
#[derive(Clone, Debug)]
pub struct AsciiEntry {
    /// 1-based line number in the parsed text.
    pub line: usize,
    /// The record, its digests recomputed for the requested banks (zeros for violations).
    pub record: Record,
    /// The template digest printed in column 2 (bank [`AsciiList::file_bank`]).
    pub printed_digest: Digest,
    /// Whether the printed digest equals the one recomputed from the fields (always true
    /// for violations, whose printed digest is zeros).
    pub digest_matches: bool,
}

/// A parsed list.
#[derive(Clone, Debug)]
pub struct AsciiList {
    /// The bank of the printed template digests (`ascii_runtime_measurements_<bank>`).
    pub file_bank: HashAlgo,
    pub entries: Vec<AsciiEntry>,
}

/// A line that cannot be parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct AsciiError {
    pub line: usize,
    #[source]
    pub reason: AsciiReason,
}

/// What is wrong with a line ([`AsciiError`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AsciiReason {
    #[error("the line contains a NUL byte")]
    NulByte,
    /// Column 1 is not a decimal PCR number (`pcr`: the token, lossily decoded).
    #[error("invalid PCR {pcr:?}")]
    InvalidPcr { pcr: String },
    #[error("missing template digest")]
    MissingDigest,
    #[error("template digest is not hex")]
    DigestNotHex(#[source] hex::FromHexError),
    /// The list's bank is inferred from the first digest, and no bank has this size.
    #[error("a {len}-byte template digest names no list bank")]
    NoBankForDigest { len: usize },
    #[error("template digest has {len} bytes, {bank} has {}", .bank.digest_size())]
    DigestLength { len: usize, bank: HashAlgo },
    #[error("missing template name")]
    MissingTemplateName,
    #[error("template name is not UTF-8")]
    TemplateNameNotUtf8(#[source] std::str::Utf8Error),
    /// Neither a built-in template nor a valid format string.
    #[error("unknown template {name:?}: {source}")]
    UnknownTemplate {
        name: String,
        #[source]
        source: TemplateError,
    },
    #[error("template {name} has {expected} fields, the line {found}")]
    FieldCount {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("field {}: {source}", .field.id())]
    Field {
        field: Field,
        #[source]
        source: FieldError,
    },
}

/// Why one printed field cannot be turned back into its stored bytes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error("not hex")]
    NotHex(#[source] hex::FromHexError),
    /// A digest printed without its `<alg>:` prefix whose bytes hold a NUL.
    #[error("no `<alg>:` prefix, and the digest holds a NUL")]
    NulWithoutPrefix,
    #[error("not a decimal number")]
    NotDecimal,
    #[error("out of range")]
    OutOfRange,
}

/// The bank whose digests are `len` bytes long, as the list files are named: 20 sha1,
/// 32 sha256, 48 sha384, 64 sha512 (other algorithms of the same size need `--bank`).
pub fn bank_for_digest_len(len: usize) -> Option<HashAlgo> {
    match len {
        20 => Some(HashAlgo::Sha1),
        32 => Some(HashAlgo::Sha256),
        48 => Some(HashAlgo::Sha384),
        64 => Some(HashAlgo::Sha512),
        _ => None,
    }
}

/// Parse a whole ASCII list. `file_bank`: the bank of column 2, or `None` to infer it from
/// the first line's digest length. `banks`: the banks to compute the records' digests for.
/// A final line without its newline (a list read while it grew) is parsed too.
pub fn parse_ascii_list(
    text: &[u8],
    file_bank: Option<HashAlgo>,
    banks: &[HashAlgo],
) -> Result<AsciiList, AsciiError> {
    let mut parser = AsciiParser::new(file_bank, banks);
    let mut entries = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        entries.push(parser.parse_line(i + 1, line)?);
    }
    let file_bank = parser.file_bank.unwrap_or(HashAlgo::Sha1);
    Ok(AsciiList { file_bank, entries })
}

/// Parses lines one by one, remembering templates and the list's bank.
pub struct AsciiParser {
    file_bank: Option<HashAlgo>,
    banks: Vec<HashAlgo>,
    templates: Vec<Arc<TemplateDesc>>,
}

impl AsciiParser {
    pub fn new(file_bank: Option<HashAlgo>, banks: &[HashAlgo]) -> Self {
        AsciiParser {
            file_bank,
            banks: banks.to_vec(),
            templates: Vec::new(),
        }
    }

    /// The bank of column 2, once known.
    pub fn file_bank(&self) -> Option<HashAlgo> {
        self.file_bank
    }

    /// Parse one line (without its newline); `line_no` only labels errors.
    pub fn parse_line(&mut self, line_no: usize, line: &[u8]) -> Result<AsciiEntry, AsciiError> {
        let err = |reason: AsciiReason| AsciiError {
            line: line_no,
            reason,
        };
        // No field the kernel prints can hold a NUL (names end at one, the rest is hex).
        if line.contains(&0) {
            return Err(err(AsciiReason::NulByte));
        }
        // `%2d` pads one-digit PCR numbers with a leading space.
        let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
        let mut tokens = line[start..].split(|&b| b == b' ');
        let pcr = tokens.next().unwrap_or_default();
        let pcr: u32 = std::str::from_utf8(pcr)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                err(AsciiReason::InvalidPcr {
                    pcr: String::from_utf8_lossy(pcr).into_owned(),
                })
            })?;
        let printed = tokens
            .next()
            .ok_or_else(|| err(AsciiReason::MissingDigest))?;
        let printed = hex::decode(printed).map_err(|e| err(AsciiReason::DigestNotHex(e)))?;
        let file_bank = match self.file_bank {
            Some(b) => b,
            None => {
                let b = bank_for_digest_len(printed.len())
                    .ok_or_else(|| err(AsciiReason::NoBankForDigest { len: printed.len() }))?;
                self.file_bank = Some(b);
                b
            }
        };
        let printed_digest = Digest::from_bytes(file_bank, &printed).ok_or_else(|| {
            err(AsciiReason::DigestLength {
                len: printed.len(),
                bank: file_bank,
            })
        })?;
        let name = tokens
            .next()
            .ok_or_else(|| err(AsciiReason::MissingTemplateName))?;
        let name =
            std::str::from_utf8(name).map_err(|e| err(AsciiReason::TemplateNameNotUtf8(e)))?;
        let template = self.template(name).map_err(|source| {
            err(AsciiReason::UnknownTemplate {
                name: name.to_string(),
                source,
            })
        })?;
        let fields: Vec<&[u8]> = tokens.collect();
        if fields.len() != template.fields().len() {
            return Err(err(AsciiReason::FieldCount {
                name: name.to_string(),
                expected: template.fields().len(),
                found: fields.len(),
            }));
        }
        let mut data = Vec::with_capacity(line.len());
        for (&field, token) in template.fields().iter().zip(fields) {
            let len_at = data.len();
            data.extend_from_slice(&[0; 4]);
            decode_field(field, token, &mut data)
                .map_err(|source| err(AsciiReason::Field { field, source }))?;
            let len = (data.len() - len_at - 4) as u32;
            data[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
        let violation = printed_digest.is_zero();
        let digest_matches = violation || template.digest(&data, file_bank) == printed_digest;
        let record = Record::from_data(pcr, template, data, violation, &self.banks);
        Ok(AsciiEntry {
            line: line_no,
            record,
            printed_digest,
            digest_matches,
        })
    }

    /// A built-in template by name, or a custom one by its format string.
    fn template(&mut self, name: &str) -> Result<Arc<TemplateDesc>, TemplateError> {
        if let Some(t) = self.templates.iter().find(|t| t.display_name() == name) {
            return Ok(t.clone());
        }
        let t = match TemplateDesc::builtin(name) {
            Some(t) => t,
            None => TemplateDesc::from_fmt(name)?,
        };
        let t = Arc::new(t);
        self.templates.push(t.clone());
        Ok(t)
    }
}

/// Append the stored bytes of `field` printed as `token` (the inverse of the kernel's
/// `ima_show_template_*`).
fn decode_field(field: Field, token: &[u8], out: &mut Vec<u8>) -> Result<(), FieldError> {
    let hex_of = |t: &[u8]| hex::decode(t).map_err(FieldError::NotHex);
    match field {
        Field::D | Field::Sig | Field::Buf | Field::Modsig | Field::Evmsig => {
            out.extend(hex_of(token)?)
        }
        Field::Xattrlengths | Field::Xattrvalues => out.extend(hex_of(token)?),
        Field::DNg | Field::DNgv2 | Field::DModsig => {
            if token.is_empty() {
                return Ok(());
            }
            // `<alg>:` (or `<type>:<alg>:`) is stored up to a NUL, then the raw digest.
            match token.iter().rposition(|&b| b == b':') {
                Some(colon) => {
                    out.extend_from_slice(&token[..=colon]);
                    out.push(0);
                    out.extend(hex_of(&token[colon + 1..])?);
                }
                // The kernel prints data without a NUL as plain hex; hex with a NUL in it
                // would have been printed with its prefix.
                None => {
                    let bytes = hex_of(token)?;
                    if bytes.contains(&0) {
                        return Err(FieldError::NulWithoutPrefix);
                    }
                    out.extend(bytes)
                }
            }
        }
        Field::N | Field::NNg => {
            out.extend_from_slice(token);
            out.push(0);
        }
        Field::Xattrnames => {
            // No protected xattrs is an empty field; names are NUL-terminated otherwise.
            if !token.is_empty() {
                out.extend_from_slice(token);
                out.push(0);
            }
        }
        Field::Iuid | Field::Igid | Field::Imode => {
            if token.is_empty() {
                return Ok(());
            }
            let value: u64 = std::str::from_utf8(token)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(FieldError::NotDecimal)?;
            if field == Field::Imode {
                let v = u16::try_from(value).map_err(|_| FieldError::OutOfRange)?;
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                let v = u32::try_from(value).map_err(|_| FieldError::OutOfRange)?;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// What a verifier needs of a file entry: the file digest (algorithm from the `d-ng`
/// prefix, sha1/md5 by size for `d`) and the event name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeasurement {
    pub digest: Option<Digest>,
    /// `ima` for `d-ngv2` full-file digests, `verity` for fs-verity ones, `None` otherwise.
    pub digest_type: Option<String>,
    pub name: Vec<u8>,
    /// The `buf` field of `ima-buf` entries.
    pub buf: Option<Vec<u8>>,
}

/// Extract the file digest and name of a record's template data.
pub fn file_measurement(template: &TemplateDesc, data: &[u8]) -> FileMeasurement {
    let mut m = FileMeasurement {
        digest: None,
        digest_type: None,
        name: Vec::new(),
        buf: None,
    };
    for (field, d) in template.split_fields(data) {
        match field {
            Field::D if m.digest.is_none() => {
                m.digest = match d.len() {
                    20 => Digest::from_bytes(HashAlgo::Sha1, d),
                    16 => Digest::from_bytes(HashAlgo::Md5, d),
                    _ => None,
                }
            }
            Field::DNg | Field::DNgv2 if m.digest.is_none() => {
                if let Some(nul) = d.iter().position(|&b| b == 0) {
                    let prefix = String::from_utf8_lossy(&d[..nul]);
                    let mut parts: Vec<&str> = prefix.trim_end_matches(':').split(':').collect();
                    let algo = parts.pop().and_then(HashAlgo::from_name);
                    m.digest_type = parts.pop().map(str::to_string);
                    m.digest = algo.and_then(|a| Digest::from_bytes(a, &d[nul + 1..]));
                }
            }
            Field::N | Field::NNg => {
                m.name = d.split(|&b| b == 0).next().unwrap_or_default().to_vec();
            }
            Field::Buf => m.buf = Some(d.to_vec()),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::measurement_list::{MeasurementList, ViewKind};
    use crate::engine::pcr::{self, PcrBanks};
    use crate::engine::template::EventData;

    const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];
    /// Reference vectors, computed independently of imafs (a model of the kernel's
    /// ima_template_lib.c encoders and ima_crypto.c: ima_calc_field_array_hash, cross-checked
    /// with `openssl dgst`); little endian, PCR 10, ima_hash=sha256, banks sha1 and sha256:
    /// T1 the ima-ng entry for /tmp/hello ("hello\n"), T2 boot_aggregate without a TPM,
    /// T3 the `ima` template entry, T4 ima-sig entries with and without a made-up v2
    /// signature, T5 the violation entry for /tmp/hello, T6 the PCR 10 replay of T2, T1, T5.
    /// This is T1's line in the sha1 list.
    const T1_SHA1_LINE: &str = "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /tmp/hello";

    fn read_view(list: &MeasurementList, bank: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = list.read(ViewKind::Ascii, bank, out.len() as u64, &mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Entries of every built-in template and a custom one, a violation, PCR 9 and 11.
    fn sample_list() -> MeasurementList {
        let list = MeasurementList::new(&BANKS);
        list.append(pcr::boot_aggregate_record(
            10,
            Arc::new(TemplateDesc::builtin("ima-ng").unwrap()),
            HashAlgo::Sha256,
            &BANKS,
        ));
        let sig = [3u8, 2, 4, 0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0x10, 0x11];
        let xattrs: [(&str, &[u8]); 2] =
            [("security.ima", &[4, 1, 2]), ("security.selinux", b"x\0")];
        let mut names: Vec<String> = TemplateDesc::builtin_names().map(str::to_string).collect();
        names.push("d-ng|n-ng|iuid|igid|imode|xattrnames".into());
        names.push("n-ng|d|buf".into());
        for (i, name) in names.iter().enumerate() {
            let t = TemplateDesc::builtin(name)
                .unwrap_or_else(|| TemplateDesc::from_fmt(name).unwrap());
            let path = format!("/usr/bin/prog {i}");
            let ev = EventData {
                digest: HashAlgo::Sha256.digest(path.as_bytes()),
                sha1_or_md5_digest: HashAlgo::Sha1.digest(path.as_bytes()),
                name: path.as_bytes(),
                ima_xattr: (i % 2 == 0).then_some(&sig[..]),
                buf: Some(b"buffer"),
                modsig: (i == 6).then_some(&b"pkcs7"[..]),
                modsig_digest: HashAlgo::Sha256.digest(b"x"),
                evm_xattrs: if i % 3 == 0 { &xattrs } else { &[] },
                iuid: Some(1000 + i as u32),
                igid: Some(7),
                imode: Some(0o100755),
                ..Default::default()
            };
            let pcr = [9, 10, 11][i % 3];
            list.append(Record::new(pcr, Arc::new(t), &ev, &BANKS));
        }
        list.append(Record::violation(
            10,
            Arc::new(TemplateDesc::builtin("ima-ng").unwrap()),
            b"/tmp/f",
            HashAlgo::Sha256,
            &BANKS,
        ));
        list
    }

    #[test]
    fn round_trips_every_template_in_both_banks() {
        let list = sample_list();
        for (bank_idx, &bank) in BANKS.iter().enumerate() {
            let text = read_view(&list, bank_idx);
            let parsed = parse_ascii_list(&text, None, &BANKS).unwrap();
            assert_eq!(parsed.file_bank, bank);
            assert_eq!(parsed.entries.len() as u64, list.len());
            for (i, e) in parsed.entries.iter().enumerate() {
                assert!(e.digest_matches, "line {}", e.line);
                assert_eq!(e.record, list.record(i as u64).unwrap(), "line {}", e.line);
            }
            // The replay of the parsed records equals the replay of the list.
            let mut pcrs = PcrBanks::new(&BANKS);
            for e in &parsed.entries {
                pcrs.extend_record(&e.record);
            }
            assert_eq!(pcrs, pcr::replay(&list));
        }
    }

    /// Reference vectors T1-T6 (see `T1_SHA1_LINE`): the lines of both list files, and the
    /// PCR 10 replay of T2, T1, T5.
    #[test]
    fn spec_vectors() {
        let zeros = "0".repeat(64);
        let sha1_list = format!(
            "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:{zeros} boot_aggregate\n\
             {T1_SHA1_LINE}\n\
             10 {} ima-ng sha256:{zeros} /tmp/hello\n",
            "0".repeat(40)
        );
        let parsed = parse_ascii_list(sha1_list.as_bytes(), None, &BANKS).unwrap();
        assert_eq!(parsed.file_bank, HashAlgo::Sha1);
        assert!(parsed.entries.iter().all(|e| e.digest_matches));
        let t1 = &parsed.entries[1].record;
        assert_eq!(
            t1.digest(1).to_hex(),
            "ce7d262406458b975543fb944f7352e62ef0ae01df30bb61f802d003cf87b19c"
        );
        assert!(parsed.entries[2].record.is_violation());
        let mut pcrs = PcrBanks::new(&BANKS);
        for e in &parsed.entries {
            pcrs.extend_record(&e.record);
        }
        assert_eq!(
            pcrs.value(10, HashAlgo::Sha1).to_hex(),
            "652f26ba8600dec490d4f70214bc63bc5b9f034b"
        );
        assert_eq!(
            pcrs.value(10, HashAlgo::Sha256).to_hex(),
            "9f1bad35a4facd01a0d47fcb55e0448ba187b439fc90946d48d338f7b95895d2"
        );
        let m = file_measurement(t1.template(), t1.template_data());
        assert_eq!(m.name, b"/tmp/hello");
        assert_eq!(m.digest, HashAlgo::Sha256.digest(b"hello\n"));

        // T3 (template ima) and T4 (ima-sig, with and without a signature), sha256 list.
        let sha256_list = "10 44a2f423ee580e063552cb98bf20bab41f5801a1c97aaf0a10c84b762ba81189 ima f572d396fae9206628714fb2ce00f72e94f2258f /tmp/hello\n\
            10 ca6ef2cb11db83f53683a3be734d185d744a1524cd606bd79de1a4db6ee8e3b8 ima-sig sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /tmp/hello 030204a1b2c3d400081011121314151617\n\
            10 e566d02f288b6fb0a2cd671f8adc93dbdb59a18e5c4b3e877844ac1893456a15 ima-sig sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /tmp/hello \n";
        let parsed = parse_ascii_list(sha256_list.as_bytes(), None, &BANKS).unwrap();
        assert_eq!(parsed.file_bank, HashAlgo::Sha256);
        assert_eq!(parsed.entries.len(), 3);
        assert!(parsed.entries.iter().all(|e| e.digest_matches));
        assert_eq!(
            parsed.entries[0].record.digest(0).to_hex(),
            "aa3229b267c3c9f21dee2ce7746b7c3e68d10ab4"
        );
        let t3 = &parsed.entries[0].record;
        let m = file_measurement(t3.template(), t3.template_data());
        assert_eq!(m.digest, HashAlgo::Sha1.digest(b"hello\n"));
    }

    #[test]
    fn edited_digest_or_field_is_detected() {
        let edited = T1_SHA1_LINE.replace("/tmp/hello", "/tmp/hellp");
        let parsed = parse_ascii_list(edited.as_bytes(), None, &BANKS).unwrap();
        assert!(!parsed.entries[0].digest_matches);
        let edited = T1_SHA1_LINE.replace("7e12", "7e13");
        let parsed = parse_ascii_list(edited.as_bytes(), None, &BANKS).unwrap();
        assert!(!parsed.entries[0].digest_matches);
    }

    #[test]
    fn one_digit_pcr_and_missing_final_newline() {
        let list = MeasurementList::new(&BANKS);
        let ev = EventData {
            digest: HashAlgo::Sha256.digest(b"x"),
            name: b"/x",
            ..Default::default()
        };
        list.append(Record::new(
            9,
            Arc::new(TemplateDesc::builtin("ima-ng").unwrap()),
            &ev,
            &BANKS,
        ));
        let text = read_view(&list, 1);
        assert!(text.starts_with(b" 9 "));
        let parsed = parse_ascii_list(&text[..text.len() - 1], None, &BANKS).unwrap();
        assert_eq!(parsed.entries[0].record.pcr(), 9);
        assert!(parsed.entries[0].digest_matches);
    }

    #[test]
    fn bad_lines_are_errors_with_line_numbers() {
        let cases: [(&str, &str); 8] = [
            ("x 00 ima-ng", "invalid PCR"),
            ("10", "missing template digest"),
            ("10 zz ima-ng", "not hex"),
            (
                "10 0011 ima-ng a b",
                "template digest has 2 bytes, sha1 has 20",
            ),
            (
                "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-nope a b",
                "unknown template",
            ),
            (
                "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:00",
                "has 2 fields, the line 1",
            ),
            (
                "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb ima-ng sha256:0g /x",
                "field d-ng: not hex",
            ),
            (
                "10 7e12b5b354a90b6491f97e4075c8bc0428ad74bb d-ng|n-ng|imode sha256:00 /x 70000",
                "field imode: out of range",
            ),
        ];
        for (line, reason) in cases {
            let text = format!("{T1_SHA1_LINE}\n{line}\n");
            let e = parse_ascii_list(text.as_bytes(), None, &BANKS).unwrap_err();
            assert_eq!(e.line, 2, "{line}");
            assert!(
                e.reason.to_string().contains(reason),
                "{line}: {}",
                e.reason
            );
        }
        let nul_digest = format!("{T1_SHA1_LINE}\n10 {} ima-ng 610062 /x\n", "ab".repeat(20));
        let e = parse_ascii_list(nul_digest.as_bytes(), None, &BANKS).unwrap_err();
        assert!(e.reason.to_string().contains("holds a NUL"), "{e}");
        let e = parse_ascii_list(b"10 00 ima-ng a\0 b\n", None, &BANKS).unwrap_err();
        assert!(e.reason.to_string().contains("NUL byte"), "{e}");
        let e = parse_ascii_list(b"10 0011 ima-ng a b\n", None, &BANKS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: a 2-byte template digest names no list bank"
        );
        // A sha256 digest in a list that started with sha1 ones.
        let long = format!(
            "{T1_SHA1_LINE}\n10 {} ima-ng sha256:00 /x\n",
            "ab".repeat(32)
        );
        assert!(parse_ascii_list(long.as_bytes(), None, &BANKS).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_lines_round_trip() {
        // A cheap deterministic fuzz: one-byte mutations of a valid list (fuzz/ascii_list
        // is the libFuzzer version of the same property).
        let list = sample_list();
        let text = [read_view(&list, 0), read_view(&list, 1)].concat();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut accepted = 0;
        for _ in 0..1000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut t = text.clone();
            let pos = (seed as usize) % t.len();
            let byte = [b' ', b'\n', b':', b'0', b'|', 0, b'z', 0xff, b'A', b'9']
                [(seed >> 32) as usize % 10];
            t[pos] = byte;
            let _ = parse_ascii_list(&t, None, &BANKS);
            let _ = parse_ascii_list(&t, Some(HashAlgo::Sha384), &BANKS);
            // Every line that parses re-renders to a line that parses to the same record.
            for line in t.split(|&b| b == b'\n') {
                let Ok(e) = AsciiParser::new(None, &BANKS).parse_line(1, line) else {
                    continue;
                };
                accepted += 1;
                let rec = &e.record;
                let mut again =
                    format!("{:2} {} ", rec.pcr(), e.printed_digest.to_hex()).into_bytes();
                again.extend_from_slice(rec.template().display_name().as_bytes());
                rec.template()
                    .render_ascii_fields(rec.template_data(), &mut again);
                let parsed = AsciiParser::new(Some(e.printed_digest.algo()), &BANKS)
                    .parse_line(1, &again)
                    .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&again)));
                assert_eq!(parsed.record, *rec);
                assert_eq!(parsed.digest_matches, e.digest_matches);
            }
        }
        assert!(accepted > 5_000, "{accepted}");
    }
}
