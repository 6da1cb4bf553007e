//! Configuration of a child namespace before its first process, in the style of Huawei's
//! CLONE_NEWIMA series (2020-2021, shipped in openEuler, never merged into mainline Linux):
//! the parent's `policy_for_children`, `x509_for_children` and `kcmd_for_children` stage a
//! policy, a certificate and kernel-command-line options, and the next child namespace
//! starts with them.
//!
//! The parent keeps what was staged ([`crate::engine::ima::Ima::take_child_config`] hands it
//! over and clears it); the child's daemon receives it encoded ([`ChildConfig::encode`])
//! when it registers with its parent and applies it to its engine options before the
//! engine is built.

use super::hash::HashAlgo;
use super::template::TemplateDesc;

/// What a parent staged for its next child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildConfig {
    /// Policy text (kernel syntax): the child's initial policy.
    pub policy: Option<String>,
    /// Certificates (DER or PEM) for the child's IMA keyring.
    pub x509: Vec<Vec<u8>>,
    /// `kcmd_for_children` options, validated by [`parse_kcmd`], in the order written.
    pub kcmd: Vec<(String, String)>,
}

/// First line of an encoded [`ChildConfig`] (format version 1).
const MAGIC: &str = "imafs-child-config 1";

impl ChildConfig {
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.x509.is_empty() && self.kcmd.is_empty()
    }

    /// Encoding for the hand-over: the magic line, then one section per item, each
    /// `NAME LEN\n` followed by LEN bytes and `\n` (`policy`, `x509` per certificate,
    /// `kcmd` as `name=value`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{MAGIC}\n").into_bytes();
        let mut section = |name: &str, body: &[u8]| {
            out.extend_from_slice(format!("{name} {}\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            out.push(b'\n');
        };
        if let Some(policy) = &self.policy {
            section("policy", policy.as_bytes());
        }
        for cert in &self.x509 {
            section("x509", cert);
        }
        for (name, value) in &self.kcmd {
            section("kcmd", format!("{name}={value}").as_bytes());
        }
        out
    }

    /// Decode [`ChildConfig::encode`]'s output; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<ChildConfig, ChildConfigError> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_bytes())
            .and_then(|r| r.strip_prefix(b"\n"))
            .ok_or(ChildConfigError::BadHeader)?;
        let mut cfg = ChildConfig::default();
        while !rest.is_empty() {
            let eol = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(ChildConfigError::UnterminatedSectionHeader)?;
            let header = std::str::from_utf8(&rest[..eol])
                .map_err(ChildConfigError::SectionHeaderNotText)?;
            let (name, len) =
                header
                    .split_once(' ')
                    .ok_or_else(|| ChildConfigError::BadSectionHeader {
                        header: header.to_string(),
                    })?;
            let len: usize = len.parse().map_err(|source| ChildConfigError::BadLength {
                header: header.to_string(),
                source,
            })?;
            let body_start = eol + 1;
            let body_end = body_start
                .checked_add(len)
                .filter(|&end| end < rest.len() && rest[end] == b'\n')
                .ok_or_else(|| ChildConfigError::Truncated {
                    section: name.to_string(),
                })?;
            let body = &rest[body_start..body_end];
            match name {
                "policy" if cfg.policy.is_none() => {
                    let text = String::from_utf8(body.to_vec())
                        .map_err(ChildConfigError::PolicyNotUtf8)?;
                    cfg.policy = Some(text);
                }
                "x509" => cfg.x509.push(body.to_vec()),
                "kcmd" => {
                    let text = std::str::from_utf8(body).map_err(ChildConfigError::KcmdNotUtf8)?;
                    let (k, v) = text
                        .split_once('=')
                        .ok_or(ChildConfigError::KcmdWithoutEquals)?;
                    check_kcmd_option(k, v)?;
                    cfg.kcmd.push((k.to_owned(), v.to_owned()));
                }
                other => {
                    return Err(ChildConfigError::UnknownSection {
                        section: other.to_string(),
                    })
                }
            }
            rest = &rest[body_end + 1..];
        }
        Ok(cfg)
    }
}

/// Why [`ChildConfig::decode`] refuses its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChildConfigError {
    #[error("child configuration: bad header")]
    BadHeader,
    #[error("child configuration: unterminated section header")]
    UnterminatedSectionHeader,
    #[error("child configuration: section header is not text")]
    SectionHeaderNotText(#[source] std::str::Utf8Error),
    #[error("child configuration: bad section header {header:?}")]
    BadSectionHeader { header: String },
    #[error("child configuration: bad length in {header:?}")]
    BadLength {
        header: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("child configuration: section {section} is truncated")]
    Truncated { section: String },
    #[error("child configuration: policy is not UTF-8")]
    PolicyNotUtf8(#[source] std::string::FromUtf8Error),
    #[error("child configuration: kcmd is not UTF-8")]
    KcmdNotUtf8(#[source] std::str::Utf8Error),
    #[error("child configuration: kcmd item without `=`")]
    KcmdWithoutEquals,
    /// A kcmd item [`parse_kcmd`] would refuse.
    #[error(transparent)]
    Kcmd(#[from] KcmdError),
    /// A section name other than `policy` (once), `x509` and `kcmd`.
    #[error("child configuration: unknown section {section:?}")]
    UnknownSection { section: String },
}

/// Why a `kcmd_for_children` write ([`parse_kcmd`]) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KcmdError {
    #[error("{arg}: expected name=value")]
    NotNameValue { arg: String },
    /// A name not in [`KCMD_OPTIONS`].
    #[error("{name}: not a kcmd_for_children option ({})", KCMD_OPTIONS.join(", "))]
    UnknownOption { name: String },
    /// A value the kernel would not accept for `name`.
    #[error("{name}={value}: invalid value")]
    InvalidValue { name: String, value: String },
    #[error("unterminated quote")]
    UnterminatedQuote,
}

/// The options `kcmd_for_children` accepts, as on a kernel command line.
pub const KCMD_OPTIONS: [&str; 5] = [
    "ima_appraise",
    "ima_policy",
    "ima_template",
    "ima_template_fmt",
    "ima_hash",
];

/// Parse a `kcmd_for_children` write as the kernel's `next_arg` splits a command line
/// (space separated `param=value`, a value may be double-quoted). Each option must be one
/// of [`KCMD_OPTIONS`] with a value the kernel would accept; the first bad one is the
/// error (the write fails with EINVAL).
pub fn parse_kcmd(text: &str) -> Result<Vec<(String, String)>, KcmdError> {
    let mut out = Vec::new();
    for arg in split_args(text)? {
        let (name, value) = arg.split_once('=').ok_or_else(|| KcmdError::NotNameValue {
            arg: arg.to_string(),
        })?;
        let value = unquote(value);
        check_kcmd_option(name, value)?;
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

fn check_kcmd_option(name: &str, value: &str) -> Result<(), KcmdError> {
    let ok = match name {
        "ima_appraise" => matches!(value, "enforce" | "fix" | "log" | "off"),
        "ima_policy" => {
            let names: Vec<&str> = value.split('|').filter(|n| !n.is_empty()).collect();
            super::policy::builtin(&names).is_ok()
        }
        "ima_template" => TemplateDesc::builtin(value).is_some(),
        "ima_template_fmt" => TemplateDesc::from_fmt(value).is_ok(),
        "ima_hash" => HashAlgo::from_name(value).is_some_and(|a| a.is_supported()),
        _ => {
            return Err(KcmdError::UnknownOption {
                name: name.to_string(),
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(KcmdError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// Split on unquoted blanks (spaces, tabs, newlines).
fn split_args(text: &str) -> Result<Vec<&str>, KcmdError> {
    let mut args = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_ascii_whitespace() && !quoted {
            if let Some(s) = start.take() {
                args.push(&text[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if quoted {
        return Err(KcmdError::UnterminatedQuote);
    }
    if let Some(s) = start {
        args.push(&text[s..]);
    }
    Ok(args)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChildConfig {
        ChildConfig {
            policy: Some("measure func=BPRM_CHECK\n".into()),
            x509: vec![
                b"\x30\x82\x01\x00binary\ncert".to_vec(),
                b"-----BEGIN".to_vec(),
            ],
            kcmd: vec![
                ("ima_hash".into(), "sha512".into()),
                ("ima_template".into(), "ima-sig".into()),
            ],
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        for cfg in [sample(), ChildConfig::default()] {
            assert_eq!(ChildConfig::decode(&cfg.encode()).expect("decode"), cfg);
        }
        assert!(ChildConfig::default().is_empty());
        assert!(!sample().is_empty());
    }

    #[test]
    fn decode_refuses_every_truncation_and_garbage() {
        let bytes = sample().encode();
        let mut accepted = 0;
        for cut in 0..bytes.len() {
            // A cut exactly between sections is a valid shorter configuration.
            if ChildConfig::decode(&bytes[..cut]).is_ok() {
                accepted += 1;
            }
        }
        // The header alone, and after each of the first four of the five sections.
        assert_eq!(accepted, 5);
        for bad in [
            &b""[..],
            b"imafs-child-config 2\n",
            b"imafs-child-config 1\nfoo 1\nx\n",
            b"imafs-child-config 1\npolicy 99999999999999999999\n",
            b"imafs-child-config 1\npolicy 3\nab\n",
            b"imafs-child-config 1\nkcmd 3\nabc\n",
            b"imafs-child-config 1\nkcmd 11\nima_hash=no\n",
            b"imafs-child-config 1\npolicy 1\n\xff\n",
        ] {
            assert!(ChildConfig::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kcmd_parsing_follows_the_command_line_rules() {
        let got = parse_kcmd(
            "  ima_appraise=log ima_policy=tcb|critical_data\nima_template_fmt=\"d-ng|n-ng\" ",
        )
        .expect("valid");
        assert_eq!(
            got,
            [
                ("ima_appraise".to_string(), "log".to_string()),
                ("ima_policy".into(), "tcb|critical_data".into()),
                ("ima_template_fmt".into(), "d-ng|n-ng".into()),
            ]
        );
        assert_eq!(parse_kcmd("").expect("empty"), []);
        for bad in [
            "ima_appraise",
            "ima_appraise=sometimes",
            "ima_hash=nope",
            "ima_template=nope",
            "ima_template_fmt=zz",
            "ima_policy=nope",
            "evm=fix",
            "ima_hash=\"sha1",
        ] {
            assert!(parse_kcmd(bad).is_err(), "{bad}");
        }
    }
}
