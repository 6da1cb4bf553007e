//! IMA templates (ima_template.c: `builtin_templates`, `supported_fields`): descriptors,
//! field encodings, template digests and the ASCII / binary renderings of template data.
//!
//! Template data is stored exactly as the kernel keeps it (`ima_field_data`): for every
//! field `le32(len) || data`. This is also the form hashed for every template except the
//! one named `ima`, whose digest and binary rendering are special-cased
//! (ima_crypto.c: ima_calc_field_array_hash_tfm; ima_fs.c: ima_measurements_show).
//! Kernel source: security/integrity/ima/ima_template.c, ima_template_lib.c, ima_crypto.c.

use crate::engine::hash::{Digest, HashAlgo};

/// Maximum number of fields in a template (`IMA_TEMPLATE_NUM_FIELDS_MAX`).
pub const MAX_FIELDS: usize = 15;
/// Maximum length of a field id in a format string (`IMA_TEMPLATE_FIELD_ID_MAX_LEN`).
const FIELD_ID_MAX_LEN: usize = 16;
/// Longest name the `n` field keeps (`IMA_EVENT_NAME_LEN_MAX`).
pub const EVENT_NAME_LEN_MAX: usize = 255;
/// Size of the `d` field when no digest is available (`IMA_DIGEST_SIZE`).
const IMA_DIGEST_SIZE: usize = 20;

/// EVM xattr types that the `sig` / `evmsig` fields record (integrity.h:
/// `enum evm_ima_xattr_type`).
const EVM_IMA_XATTR_DIGSIG: u8 = 0x03;
const EVM_XATTR_PORTABLE_DIGSIG: u8 = 0x05;
const IMA_VERITY_DIGSIG: u8 = 0x06;

/// A template field (ima_template.c: `supported_fields`), named as in format strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    D,
    N,
    DNg,
    DNgv2,
    NNg,
    Sig,
    Buf,
    DModsig,
    Modsig,
    Evmsig,
    Xattrnames,
    Xattrlengths,
    Xattrvalues,
    Iuid,
    Igid,
    Imode,
}

const ALL_FIELDS: [Field; 16] = [
    Field::D,
    Field::N,
    Field::DNg,
    Field::DNgv2,
    Field::NNg,
    Field::Sig,
    Field::Buf,
    Field::DModsig,
    Field::Modsig,
    Field::Evmsig,
    Field::Xattrnames,
    Field::Xattrlengths,
    Field::Xattrvalues,
    Field::Iuid,
    Field::Igid,
    Field::Imode,
];

/// How a field's data is printed in the ASCII list (`enum data_formats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Show {
    /// Lowercase hex of all bytes (`DATA_FMT_DIGEST`, `DATA_FMT_HEX`).
    Hex,
    /// `<prefix>` up to the NUL, then hex of what follows (`DATA_FMT_DIGEST_WITH_ALGO`,
    /// `..._WITH_TYPE_AND_ALGO`).
    DigestWithAlgo,
    /// Text up to the first NUL (`DATA_FMT_STRING`).
    String,
    /// Unsigned decimal of a 1/2/4/8-byte little-endian number (`DATA_FMT_UINT`).
    Uint,
}

impl Field {
    /// The field id used in format strings (`supported_fields[].field_id`).
    pub fn id(self) -> &'static str {
        match self {
            Field::D => "d",
            Field::N => "n",
            Field::DNg => "d-ng",
            Field::DNgv2 => "d-ngv2",
            Field::NNg => "n-ng",
            Field::Sig => "sig",
            Field::Buf => "buf",
            Field::DModsig => "d-modsig",
            Field::Modsig => "modsig",
            Field::Evmsig => "evmsig",
            Field::Xattrnames => "xattrnames",
            Field::Xattrlengths => "xattrlengths",
            Field::Xattrvalues => "xattrvalues",
            Field::Iuid => "iuid",
            Field::Igid => "igid",
            Field::Imode => "imode",
        }
    }

    /// The field with format-string id `id`.
    pub fn from_id(id: &str) -> Option<Field> {
        ALL_FIELDS.iter().copied().find(|f| f.id() == id)
    }

    fn show(self) -> Show {
        match self {
            Field::D
            | Field::Sig
            | Field::Buf
            | Field::Modsig
            | Field::Evmsig
            | Field::Xattrlengths
            | Field::Xattrvalues => Show::Hex,
            Field::DNg | Field::DNgv2 | Field::DModsig => Show::DigestWithAlgo,
            Field::N | Field::NNg | Field::Xattrnames => Show::String,
            Field::Iuid | Field::Igid | Field::Imode => Show::Uint,
        }
    }
}

/// What one measurement event supplies to the template fields (`struct ima_event_data`).
#[derive(Clone, Copy, Debug)]
pub struct EventData<'a> {
    /// File or buffer digest (`None` only for violations).
    pub digest: Option<Digest>,
    /// Recording a violation: digest fields hold zeros.
    pub violation: bool,
    /// `ima_hash`: labels the zero digest of violations (and of the TPM-less boot aggregate).
    pub hash_algo: HashAlgo,
    /// For the `d` field when `digest` is neither sha1 nor md5: the caller re-hashes the
    /// file with sha1 (or `ima_hash` if that is md5). `None` then records 20 zero bytes.
    pub sha1_or_md5_digest: Option<Digest>,
    /// The digest is an fs-verity digest (`d-ngv2` type `verity`).
    pub verity: bool,
    /// Event name: the path, or a label for buffer measurements.
    pub name: &'a [u8],
    /// The file's `security.ima` value, if any.
    pub ima_xattr: Option<&'a [u8]>,
    /// The file's `security.evm` value, if any.
    pub evm_xattr: Option<&'a [u8]>,
    /// Measured buffer (`ima-buf`).
    pub buf: Option<&'a [u8]>,
    /// Raw appended signature (PKCS#7), if the file has one.
    pub modsig: Option<&'a [u8]>,
    /// Digest of the file without its appended signature, algorithm from the signature.
    pub modsig_digest: Option<Digest>,
    /// EVM-protected xattrs present on the file, in EVM's order: (name, value).
    pub evm_xattrs: &'a [(&'a str, &'a [u8])],
    /// Inode owner, group and mode (`None` when there is no file, e.g. buffers).
    pub iuid: Option<u32>,
    pub igid: Option<u32>,
    pub imode: Option<u16>,
}

impl Default for EventData<'_> {
    fn default() -> Self {
        EventData {
            digest: None,
            violation: false,
            hash_algo: HashAlgo::Sha256,
            sha1_or_md5_digest: None,
            verity: false,
            name: b"",
            ima_xattr: None,
            evm_xattr: None,
            buf: None,
            modsig: None,
            modsig_digest: None,
            evm_xattrs: &[],
            iuid: None,
            igid: None,
            imode: None,
        }
    }
}

/// A template descriptor: built-in (`ima-ng`, ...) or custom (nameless, shown by its format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateDesc {
    name: String,
    fmt: String,
    fields: Vec<Field>,
}

/// Built-in templates (`builtin_templates[]`).
const BUILTIN: [(&str, &str); 8] = [
    ("ima", "d|n"),
    ("ima-ng", "d-ng|n-ng"),
    ("ima-sig", "d-ng|n-ng|sig"),
    ("ima-ngv2", "d-ngv2|n-ng"),
    ("ima-sigv2", "d-ngv2|n-ng|sig"),
    ("ima-buf", "d-ng|n-ng|buf"),
    ("ima-modsig", "d-ng|n-ng|sig|d-modsig|modsig"),
    (
        "evm-sig",
        "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode",
    ),
];

/// Why a format string (`ima_template_fmt=`) is refused, in the words of
/// `template_desc_init_fields`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// More than `IMA_TEMPLATE_NUM_FIELDS_MAX` fields.
    #[error("format string '{fmt}' contains too many fields")]
    TooManyFields { fmt: String },
    /// An empty field id, or one longer than `IMA_TEMPLATE_FIELD_ID_MAX_LEN`.
    #[error("Invalid field with length {len}")]
    FieldLength { len: usize },
    /// A field id no template field has.
    #[error("field '{id}' not found")]
    UnknownField { id: String },
}

/// Parse a format string the way `template_desc_init_fields` does.
fn parse_fmt(fmt: &str) -> Result<Vec<Field>, TemplateError> {
    let ids: Vec<&str> = fmt.split('|').collect();
    if ids.len() > MAX_FIELDS {
        return Err(TemplateError::TooManyFields {
            fmt: fmt.to_string(),
        });
    }
    ids.iter()
        .map(|id| {
            if id.is_empty() || id.len() > FIELD_ID_MAX_LEN {
                return Err(TemplateError::FieldLength { len: id.len() });
            }
            Field::from_id(id).ok_or_else(|| TemplateError::UnknownField {
                id: (*id).to_string(),
            })
        })
        .collect()
}

impl TemplateDesc {
    /// A built-in template by name (`ima`, `ima-ng`, `ima-sig`, `ima-ngv2`, `ima-sigv2`,
    /// `ima-buf`, `ima-modsig`, `evm-sig`).
    pub fn builtin(name: &str) -> Option<TemplateDesc> {
        let (n, fmt) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        let fields = parse_fmt(fmt).ok()?;
        Some(TemplateDesc {
            name: (*n).to_string(),
            fmt: (*fmt).to_string(),
            fields,
        })
    }

    /// The name of the built-in template given by its name or its format string
    /// (`ima_template.c`: `lookup_template_desc`), as a policy's `template=` may give it.
    pub fn lookup_builtin(name_or_fmt: &str) -> Option<&'static str> {
        BUILTIN
            .iter()
            .find(|(n, fmt)| *n == name_or_fmt || *fmt == name_or_fmt)
            .map(|(n, _)| *n)
    }

    /// Names of all built-in templates, in kernel order.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A custom template from a format string (`ima_template_fmt=`): nameless, up to 15
    /// fields separated by `|`.
    pub fn from_fmt(fmt: &str) -> Result<TemplateDesc, TemplateError> {
        let fields = parse_fmt(fmt)?;
        Ok(TemplateDesc {
            name: String::new(),
            fmt: fmt.to_string(),
            fields,
        })
    }

    /// The descriptor name; empty for custom templates.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fmt(&self) -> &str {
        &self.fmt
    }

    /// What the lists show as template name: the name, or the format string if nameless.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.fmt
        } else {
            &self.name
        }
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The template named `ima`, whose digest and binary record follow the old rules.
    pub fn is_ima(&self) -> bool {
        self.name == "ima"
    }

    /// Template data for an event: every field as `le32(len) || data`
    /// (ima_api.c: ima_alloc_init_template).
    pub fn encode(&self, ev: &EventData<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fields.len() * 4 + 64 + ev.name.len());
        for &field in &self.fields {
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            encode_field(field, ev, &mut out);
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// The template digest of `data` (as produced by [`encode`](Self::encode)) with `algo`
    /// (ima_crypto.c: ima_calc_field_array_hash). Banks the crate cannot compute get the sha1
    /// digest zero-padded, as the kernel does for TPM banks without a crypto transform.
    pub fn digest(&self, data: &[u8], algo: HashAlgo) -> Digest {
        let Some(mut h) = algo.hasher().or_else(|| HashAlgo::Sha1.hasher()) else {
            return Digest::zero(algo);
        };
        if self.is_ima() {
            // d raw without length; n padded with NULs to IMA_EVENT_NAME_LEN_MAX + 1.
            for (field, d) in self.fields.iter().zip(FieldIter::new(data)) {
                h.update(d);
                if *field == Field::N && d.len() <= EVENT_NAME_LEN_MAX {
                    h.update(&[0u8; EVENT_NAME_LEN_MAX + 1][..EVENT_NAME_LEN_MAX + 1 - d.len()]);
                }
            }
        } else {
            h.update(data);
        }
        let d = h.finalize();
        if d.algo() == algo {
            return d;
        }
        let mut padded = [0u8; crate::engine::hash::MAX_DIGEST_SIZE];
        let n = d.as_bytes().len().min(algo.digest_size());
        padded[..n].copy_from_slice(&d.as_bytes()[..n]);
        Digest::from_bytes(algo, &padded[..algo.digest_size()]).unwrap_or(Digest::zero(algo))
    }

    /// Append the ASCII rendering of the fields: `" " + field` for each
    /// (ima_fs.c: ima_ascii_measurements_show).
    pub fn render_ascii_fields(&self, data: &[u8], out: &mut Vec<u8>) {
        for (field, d) in self.fields.iter().zip(FieldIter::new(data)) {
            out.push(b' ');
            render_ascii_field(field.show(), d, out);
        }
    }

    /// Length of [`render_ascii_fields`](Self::render_ascii_fields)' output.
    pub fn ascii_fields_len(&self, data: &[u8]) -> usize {
        self.fields
            .iter()
            .zip(FieldIter::new(data))
            .map(|(field, d)| 1 + ascii_field_len(field.show(), d))
            .sum()
    }

    /// Append the binary rendering of the template data (ima_fs.c:
    /// ima_measurements_show, its 5th and 6th items):
    /// `le32(template_data_len) || data`, or for `ima` the raw `d` and `le32(strlen) || name`.
    pub fn render_binary_data(&self, data: &[u8], out: &mut Vec<u8>) {
        if !self.is_ima() {
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            return;
        }
        for (field, d) in self.fields.iter().zip(FieldIter::new(data)) {
            match field {
                Field::D => out.extend_from_slice(d),
                Field::N => {
                    let s = until_nul(d);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s);
                }
                _ => {
                    out.extend_from_slice(&(d.len() as u32).to_le_bytes());
                    out.extend_from_slice(d);
                }
            }
        }
    }

    /// Length of [`render_binary_data`](Self::render_binary_data)' output.
    pub fn binary_data_len(&self, data: &[u8]) -> usize {
        if !self.is_ima() {
            return 4 + data.len();
        }
        self.fields
            .iter()
            .zip(FieldIter::new(data))
            .map(|(field, d)| match field {
                Field::D => d.len(),
                Field::N => 4 + until_nul(d).len(),
                _ => 4 + d.len(),
            })
            .sum()
    }

    /// Split template data into its fields' data (stops at malformed lengths).
    pub fn split_fields<'d>(&self, data: &'d [u8]) -> Vec<(Field, &'d [u8])> {
        self.fields
            .iter()
            .copied()
            .zip(FieldIter::new(data))
            .collect()
    }
}

/// Iterates over `le32(len) || data` items; stops at the first truncated one.
struct FieldIter<'d> {
    rest: &'d [u8],
}

impl<'d> FieldIter<'d> {
    fn new(data: &'d [u8]) -> Self {
        FieldIter { rest: data }
    }
}

impl<'d> Iterator for FieldIter<'d> {
    type Item = &'d [u8];

    fn next(&mut self) -> Option<&'d [u8]> {
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            self.rest = &[];
            return None;
        }
        let (d, rest) = rest.split_at(len);
        self.rest = rest;
        Some(d)
    }
}

fn until_nul(d: &[u8]) -> &[u8] {
    match d.iter().position(|&b| b == 0) {
        Some(i) => &d[..i],
        None => d,
    }
}

/// `<alg>:\0` (or `<type>:<alg>:\0`) followed by the digest, zeros of `algo`'s size if none.
fn push_digest_with_algo(
    out: &mut Vec<u8>,
    digest_type: Option<&str>,
    algo: HashAlgo,
    digest: Option<&Digest>,
) {
    if let Some(t) = digest_type {
        out.extend_from_slice(t.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(algo.name().as_bytes());
    out.extend_from_slice(b":\0");
    match digest {
        Some(d) => out.extend_from_slice(d.as_bytes()),
        None => out.resize(out.len() + algo.digest_size(), 0),
    }
}

/// A name as `DATA_FMT_STRING` stores it: up to the first NUL, spaces as `_`, plus a NUL.
fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(
        until_nul(s)
            .iter()
            .map(|&b| if b == b' ' { b'_' } else { b }),
    );
    out.push(0);
}

fn encode_field(field: Field, ev: &EventData<'_>, out: &mut Vec<u8>) {
    let is_sha1_or_md5 = |d: &Digest| matches!(d.algo(), HashAlgo::Sha1 | HashAlgo::Md5);
    match field {
        Field::D => {
            // ima_eventdigest_init: sha1/md5 digest as is, otherwise the sha1 re-hash;
            // violations (and anything missing) record IMA_DIGEST_SIZE zero bytes.
            let d = match ev.digest {
                _ if ev.violation => None,
                Some(d) if is_sha1_or_md5(&d) => Some(d),
                _ => ev.sha1_or_md5_digest.filter(is_sha1_or_md5),
            };
            match d {
                Some(d) => out.extend_from_slice(d.as_bytes()),
                None => out.resize(out.len() + IMA_DIGEST_SIZE, 0),
            }
        }
        Field::DNg | Field::DNgv2 => {
            let digest = if ev.violation { None } else { ev.digest };
            let algo = digest.map_or(ev.hash_algo, |d| d.algo());
            let digest_type = match field {
                Field::DNgv2 if ev.verity && digest.is_some() => Some("verity"),
                Field::DNgv2 => Some("ima"),
                _ => None,
            };
            push_digest_with_algo(out, digest_type, algo, digest.as_ref());
        }
        Field::N => {
            // ima_eventname_init_common with size limit: a longer path falls back to the
            // file's last component; a name that is no path is cut to 255 bytes.
            let name = until_nul(ev.name);
            if name.len() <= EVENT_NAME_LEN_MAX {
                push_string(out, name);
            } else if name.first() == Some(&b'/') {
                let last = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
                push_string(out, &last[..last.len().min(EVENT_NAME_LEN_MAX)]);
            } else {
                push_string(out, &name[..EVENT_NAME_LEN_MAX]);
            }
        }
        Field::NNg => push_string(out, ev.name),
        Field::Sig => match ev.ima_xattr {
            Some(x) if matches!(x.first(), Some(&EVM_IMA_XATTR_DIGSIG | &IMA_VERITY_DIGSIG)) => {
                out.extend_from_slice(x)
            }
            _ => encode_field(Field::Evmsig, ev, out),
        },
        Field::Evmsig => {
            if let Some(x) = ev.evm_xattr {
                if x.first() == Some(&EVM_XATTR_PORTABLE_DIGSIG) {
                    out.extend_from_slice(x);
                }
            }
        }
        Field::Buf => {
            if let Some(b) = ev.buf {
                out.extend_from_slice(b);
            }
        }
        Field::DModsig => {
            if ev.modsig.is_some() {
                if ev.violation {
                    push_digest_with_algo(out, None, HashAlgo::Sha1, None);
                } else if let Some(d) = ev.modsig_digest {
                    push_digest_with_algo(out, None, d.algo(), Some(&d));
                }
            }
        }
        Field::Modsig => {
            if let Some(m) = ev.modsig {
                out.extend_from_slice(m);
            }
        }
        Field::Xattrnames => {
            // evm_read_protected_xattrs('n'): names joined by '|', NUL-terminated.
            for (i, (name, _)) in ev.evm_xattrs.iter().enumerate() {
                if i > 0 {
                    out.push(b'|');
                }
                out.extend_from_slice(name.as_bytes());
            }
            if !ev.evm_xattrs.is_empty() {
                out.push(0);
            }
        }
        Field::Xattrlengths => {
            for (_, v) in ev.evm_xattrs {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            }
        }
        Field::Xattrvalues => {
            for (_, v) in ev.evm_xattrs {
                out.extend_from_slice(v);
            }
        }
        Field::Iuid => {
            if let Some(id) = ev.iuid {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        Field::Igid => {
            if let Some(id) = ev.igid {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        Field::Imode => {
            if let Some(mode) = ev.imode {
                out.extend_from_slice(&mode.to_le_bytes());
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append lowercase hex of `bytes`.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    for (pair, &b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

fn uint_value(d: &[u8]) -> Option<u64> {
    Some(match d.len() {
        1 => u64::from(d[0]),
        2 => u64::from(u16::from_le_bytes([d[0], d[1]])),
        4 => u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]])),
        8 => u64::from_le_bytes(d.try_into().ok()?),
        _ => return None,
    })
}

fn decimal_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Split `<prefix>\0<digest>`; `None` when there is no NUL (malformed restored data).
fn split_prefix(d: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = d.iter().position(|&b| b == 0)?;
    Some((&d[..nul], &d[nul + 1..]))
}

fn render_ascii_field(show: Show, d: &[u8], out: &mut Vec<u8>) {
    if d.is_empty() {
        return;
    }
    match show {
        Show::Hex => push_hex(out, d),
        Show::DigestWithAlgo => match split_prefix(d) {
            Some((prefix, digest)) => {
                out.extend_from_slice(prefix);
                push_hex(out, digest);
            }
            None => push_hex(out, d),
        },
        Show::String => out.extend_from_slice(until_nul(d)),
        Show::Uint => {
            if let Some(v) = uint_value(d) {
                out.extend_from_slice(v.to_string().as_bytes());
            }
        }
    }
}

fn ascii_field_len(show: Show, d: &[u8]) -> usize {
    if d.is_empty() {
        return 0;
    }
    match show {
        Show::Hex => 2 * d.len(),
        Show::DigestWithAlgo => match split_prefix(d) {
            Some((prefix, digest)) => prefix.len() + 2 * digest.len(),
            None => 2 * d.len(),
        },
        Show::String => until_nul(d).len(),
        Show::Uint => uint_value(d).map_or(0, decimal_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const FILE_SHA1: &str = "f572d396fae9206628714fb2ce00f72e94f2258f";

    fn sha256_of_hello() -> Digest {
        HashAlgo::Sha256.digest(b"hello\n").unwrap()
    }

    fn hello_event() -> EventData<'static> {
        EventData {
            digest: Some(sha256_of_hello()),
            name: b"/tmp/hello",
            ..Default::default()
        }
    }

    fn ascii(t: &TemplateDesc, data: &[u8]) -> String {
        let mut out = Vec::new();
        t.render_ascii_fields(data, &mut out);
        assert_eq!(out.len(), t.ascii_fields_len(data));
        String::from_utf8(out).unwrap()
    }

    fn binary(t: &TemplateDesc, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        t.render_binary_data(data, &mut out);
        assert_eq!(out.len(), t.binary_data_len(data));
        out
    }

    #[test]
    fn builtins_have_kernel_formats() {
        let expect = [
            ("ima", "d|n", 2),
            ("ima-ng", "d-ng|n-ng", 2),
            ("ima-sig", "d-ng|n-ng|sig", 3),
            ("ima-ngv2", "d-ngv2|n-ng", 2),
            ("ima-sigv2", "d-ngv2|n-ng|sig", 3),
            ("ima-buf", "d-ng|n-ng|buf", 3),
            ("ima-modsig", "d-ng|n-ng|sig|d-modsig|modsig", 5),
            (
                "evm-sig",
                "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode",
                9,
            ),
        ];
        for (name, fmt, n) in expect {
            let t = TemplateDesc::builtin(name).unwrap();
            assert_eq!(t.name(), name);
            assert_eq!(t.fmt(), fmt);
            assert_eq!(t.display_name(), name);
            assert_eq!(t.fields().len(), n);
            let ids: Vec<&str> = t.fields().iter().map(|f| f.id()).collect();
            assert_eq!(ids.join("|"), fmt);
        }
        assert_eq!(TemplateDesc::builtin("ima-ima"), None);
        assert_eq!(TemplateDesc::builtin("d-ng|n-ng"), None);
        assert_eq!(TemplateDesc::builtin_names().count(), 8);
    }

    #[test]
    fn custom_formats_parse_like_template_desc_init_fields() {
        let t = TemplateDesc::from_fmt("d-ng|n-ng|sig").unwrap();
        assert_eq!(t.name(), "");
        assert_eq!(t.display_name(), "d-ng|n-ng|sig");
        assert_eq!(t.fields(), &[Field::DNg, Field::NNg, Field::Sig]);
        let fifteen = vec!["n-ng"; 15].join("|");
        assert_eq!(TemplateDesc::from_fmt(&fifteen).unwrap().fields().len(), 15);
        let sixteen = vec!["n-ng"; 16].join("|");
        assert!(TemplateDesc::from_fmt(&sixteen).is_err());
        for bad in [
            "",
            "d-ng||n-ng",
            "d-ng|",
            "x",
            "d-ng|n-ngg",
            "D-NG",
            "d-ng n-ng",
        ] {
            assert!(TemplateDesc::from_fmt(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn t1_ima_ng_template_data_and_digests() {
        let t = TemplateDesc::builtin("ima-ng").unwrap();
        let data = t.encode(&hello_event());
        let expect = hex::decode(format!(
            "280000007368613235363a00{FILE_SHA256}0b0000002f746d702f68656c6c6f00"
        ))
        .unwrap();
        assert_eq!(data, expect);
        assert_eq!(data.len(), 59);
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1).to_hex(),
            "7e12b5b354a90b6491f97e4075c8bc0428ad74bb"
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha256).to_hex(),
            "ce7d262406458b975543fb944f7352e62ef0ae01df30bb61f802d003cf87b19c"
        );
        assert_eq!(
            ascii(&t, &data),
            format!(" sha256:{FILE_SHA256} /tmp/hello")
        );
        let mut bin = vec![0x3b, 0, 0, 0];
        bin.extend_from_slice(&data);
        assert_eq!(binary(&t, &data), bin);
    }

    #[test]
    fn t2_boot_aggregate_without_tpm() {
        let t = TemplateDesc::builtin("ima-ng").unwrap();
        let ev = EventData {
            digest: Some(Digest::zero(HashAlgo::Sha256)),
            name: b"boot_aggregate",
            ..Default::default()
        };
        let data = t.encode(&ev);
        assert_eq!(data.len(), 63);
        assert_eq!(
            hex::encode(&data),
            format!(
                "280000007368613235363a00{}0f000000626f6f745f61676772656761746500",
                "00".repeat(32)
            )
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1).to_hex(),
            "0adefe762c149c7cec19da62f0da1297fcfbffff"
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha256).to_hex(),
            "36f1cd67a730bc4137870c4d00dbc7430b51b1ebdaa130744297cf65339078a0"
        );
        assert_eq!(
            ascii(&t, &data),
            format!(" sha256:{} boot_aggregate", "0".repeat(64))
        );
    }

    #[test]
    fn t3_ima_template_digest_and_binary() {
        let t = TemplateDesc::builtin("ima").unwrap();
        // ima_hash=sha256: the caller supplies the sha1 re-hash for `d`.
        let ev = EventData {
            sha1_or_md5_digest: HashAlgo::Sha1.digest(b"hello\n"),
            ..hello_event()
        };
        let data = t.encode(&ev);
        assert_eq!(
            hex::encode(&data),
            format!("14000000{FILE_SHA1}0b0000002f746d702f68656c6c6f00")
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1).to_hex(),
            "aa3229b267c3c9f21dee2ce7746b7c3e68d10ab4"
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha256).to_hex(),
            "44a2f423ee580e063552cb98bf20bab41f5801a1c97aaf0a10c84b762ba81189"
        );
        assert_eq!(ascii(&t, &data), format!(" {FILE_SHA1} /tmp/hello"));
        assert_eq!(
            hex::encode(binary(&t, &data)),
            format!("{FILE_SHA1}0a0000002f746d702f68656c6c6f")
        );
        // A sha1 file digest is used directly.
        let direct = EventData {
            digest: HashAlgo::Sha1.digest(b"hello\n"),
            ..hello_event()
        };
        assert_eq!(t.encode(&direct), data);
        // boot_aggregate with a zero digest and the `ima` template.
        let boot = EventData {
            digest: Some(Digest::zero(HashAlgo::Sha256)),
            sha1_or_md5_digest: Some(Digest::zero(HashAlgo::Sha1)),
            name: b"boot_aggregate",
            ..Default::default()
        };
        assert_eq!(
            t.digest(&t.encode(&boot), HashAlgo::Sha1).to_hex(),
            "719de8e521439498e9b77f6ed41e230b9821111e"
        );
    }

    #[test]
    fn t4_ima_sig_with_and_without_signature() {
        let t = TemplateDesc::builtin("ima-sig").unwrap();
        let sig = hex::decode("030204a1b2c3d400081011121314151617").unwrap();
        let ev = EventData {
            ima_xattr: Some(&sig),
            ..hello_event()
        };
        let data = t.encode(&ev);
        assert_eq!(data.len(), 80);
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1).to_hex(),
            "29b6d322759956bc6284612c43dc71ba8195d519"
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha256).to_hex(),
            "ca6ef2cb11db83f53683a3be734d185d744a1524cd606bd79de1a4db6ee8e3b8"
        );
        assert_eq!(
            ascii(&t, &data),
            format!(" sha256:{FILE_SHA256} /tmp/hello 030204a1b2c3d400081011121314151617")
        );
        // A digest-type security.ima (0x04) is not a signature: `sig` stays empty.
        let digest_xattr = [&[4u8, 4][..], sha256_of_hello().as_bytes()].concat();
        let unsigned = EventData {
            ima_xattr: Some(&digest_xattr),
            ..hello_event()
        };
        let data = t.encode(&unsigned);
        assert_eq!(data.len(), 63);
        assert!(data.ends_with(&[0, 0, 0, 0]));
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1).to_hex(),
            "3acbcb32ffd125dfdd93220a6efe00d36f7ffe7b"
        );
        assert_eq!(
            t.digest(&data, HashAlgo::Sha256).to_hex(),
            "e566d02f288b6fb0a2cd671f8adc93dbdb59a18e5c4b3e877844ac1893456a15"
        );
        assert_eq!(
            ascii(&t, &data),
            format!(" sha256:{FILE_SHA256} /tmp/hello ")
        );
        // No IMA signature but an EVM portable signature: `sig` records that.
        let evm = [5u8, 2, 4, 1, 2, 3, 4, 0, 1, 0xaa];
        let portable = EventData {
            evm_xattr: Some(&evm),
            ..hello_event()
        };
        assert!(ascii(&t, &t.encode(&portable)).ends_with(" 050204010203040001aa"));
    }

    #[test]
    fn t5_violation_data() {
        let t = TemplateDesc::builtin("ima-ng").unwrap();
        let ev = EventData {
            violation: true,
            name: b"/tmp/hello",
            ..Default::default()
        };
        let data = t.encode(&ev);
        assert_eq!(
            hex::encode(&data),
            format!(
                "280000007368613235363a00{}0b0000002f746d702f68656c6c6f00",
                "00".repeat(32)
            )
        );
        // `d` of a violation is 20 zero bytes; d-ngv2 is labelled ima:<ima_hash>.
        let ima = TemplateDesc::builtin("ima").unwrap();
        assert_eq!(
            &ima.encode(&ev)[..24],
            &[&[20u8, 0, 0, 0][..], &[0; 20]].concat()[..]
        );
        let v2 = TemplateDesc::builtin("ima-ngv2").unwrap();
        let sha1_ev = EventData {
            hash_algo: HashAlgo::Sha1,
            ..ev
        };
        assert_eq!(
            ascii(&v2, &v2.encode(&sha1_ev)),
            format!(" ima:sha1:{} /tmp/hello", "0".repeat(40))
        );
    }

    #[test]
    fn names_replace_spaces_and_ima_limits_length() {
        let t = TemplateDesc::builtin("ima-ng").unwrap();
        let ev = EventData {
            name: b"/tmp/a b (deleted)",
            ..hello_event()
        };
        let data = t.encode(&ev);
        assert!(ascii(&t, &data).ends_with(" /tmp/a_b_(deleted)"));
        assert!(data.ends_with(b"/tmp/a_b_(deleted)\0"));

        let ima = TemplateDesc::builtin("ima").unwrap();
        let long_path = format!("/{}/file name", "d".repeat(300));
        let ev = EventData {
            name: long_path.as_bytes(),
            digest: HashAlgo::Sha1.digest(b"x"),
            ..Default::default()
        };
        let data = ima.encode(&ev);
        assert_eq!(ima.split_fields(&data)[1].1, b"file_name\0");
        let long_label = "k".repeat(300);
        let ev = EventData {
            name: long_label.as_bytes(),
            ..ev
        };
        let data = ima.encode(&ev);
        let fields = ima.split_fields(&data);
        assert_eq!(fields[1].1.len(), 256);
        // n-ng keeps the full path.
        let ev = EventData {
            name: long_path.as_bytes(),
            ..hello_event()
        };
        let data = t.encode(&ev);
        assert_eq!(t.split_fields(&data)[1].1.len(), long_path.len() + 1);
    }

    #[test]
    fn ngv2_verity_buf_modsig_and_evm_sig_fields() {
        let v2 = TemplateDesc::builtin("ima-ngv2").unwrap();
        let ev = EventData {
            verity: true,
            ..hello_event()
        };
        let data = v2.encode(&ev);
        assert_eq!(data.len(), 4 + 15 + 32 + 4 + 11);
        assert_eq!(
            ascii(&v2, &data),
            format!(" verity:sha256:{FILE_SHA256} /tmp/hello")
        );
        assert_eq!(
            ascii(&v2, &v2.encode(&hello_event())),
            format!(" ima:sha256:{FILE_SHA256} /tmp/hello")
        );

        let buf = TemplateDesc::builtin("ima-buf").unwrap();
        let ev = EventData {
            digest: HashAlgo::Sha256.digest(b"ro quiet"),
            name: b"kexec-cmdline",
            buf: Some(b"ro quiet"),
            ..Default::default()
        };
        assert!(ascii(&buf, &buf.encode(&ev)).ends_with(" kexec-cmdline 726f207175696574"));
        let empty = EventData { buf: None, ..ev };
        assert!(ascii(&buf, &buf.encode(&empty)).ends_with(" kexec-cmdline "));

        let modsig = TemplateDesc::builtin("ima-modsig").unwrap();
        let md = HashAlgo::Sha1.digest(b"body").unwrap();
        let ev = EventData {
            modsig: Some(&[0x30, 0x82]),
            modsig_digest: Some(md),
            ..hello_event()
        };
        let line = ascii(&modsig, &modsig.encode(&ev));
        assert!(
            line.ends_with(&format!(" /tmp/hello  sha1:{} 3082", md.to_hex())),
            "{line}"
        );
        let none = ascii(&modsig, &modsig.encode(&hello_event()));
        assert!(none.ends_with(" /tmp/hello   "), "{none:?}");

        let evm = TemplateDesc::builtin("evm-sig").unwrap();
        let xattrs: [(&str, &[u8]); 2] = [
            ("security.selinux", b"ctx\0"),
            ("security.ima", b"\x04\x04"),
        ];
        let ev = EventData {
            evm_xattrs: &xattrs,
            iuid: Some(1000),
            igid: Some(0),
            imode: Some(0o100644),
            ..hello_event()
        };
        let data = evm.encode(&ev);
        let fields = evm.split_fields(&data);
        assert_eq!(fields[3].1, b"security.selinux|security.ima\0");
        assert_eq!(fields[4].1, &[4, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(fields[5].1, b"ctx\0\x04\x04");
        assert_eq!(fields[6].1, &1000u32.to_le_bytes());
        assert_eq!(fields[8].1, &0o100644u16.to_le_bytes());
        assert_eq!(
            ascii(&evm, &data),
            format!(
                " sha256:{FILE_SHA256} /tmp/hello  security.selinux|security.ima 0400000002000000 637478000404 1000 0 33188"
            )
        );
        // Without a file (buffers): inode fields are empty.
        let nofile = evm.encode(&hello_event());
        assert!(ascii(&evm, &nofile).ends_with(" /tmp/hello       "));
    }

    #[test]
    fn custom_nameless_template_uses_generic_digest() {
        // A nameless "d|n" template hashes like any non-`ima` template (lengths included).
        let t = TemplateDesc::from_fmt("d|n").unwrap();
        let ev = EventData {
            digest: HashAlgo::Sha1.digest(b"hello\n"),
            ..hello_event()
        };
        let data = t.encode(&ev);
        assert_eq!(
            t.digest(&data, HashAlgo::Sha1),
            HashAlgo::Sha1.digest(&data).unwrap()
        );
        assert_eq!(binary(&t, &data)[..4], (data.len() as u32).to_le_bytes());
    }

    #[test]
    fn malformed_data_renders_without_panicking() {
        let t = TemplateDesc::builtin("evm-sig").unwrap();
        for data in [
            &b""[..],
            &[1, 0],
            &[0xff, 0xff, 0xff, 0xff, 1],
            &[3, 0, 0, 0, 1, 2, 3, 9],
        ] {
            let _ = ascii(&t, data);
            let _ = binary(&t, data);
            let _ = t.digest(data, HashAlgo::Sha256);
        }
        let ima = TemplateDesc::builtin("ima").unwrap();
        let _ = binary(&ima, &[4, 0, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0, b'a', b'b']);
    }
}
