//! `ima_parse_add_rule` / `ima_parse_rule` / `ima_validate_rule`, with the 1807 audit text.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{
    Action, Func, IdOp, InodeIdCond, MaskCond, ParsedLine, PolicyError, Rule, TaskIdCond, LSM_KEYS,
    MAY_APPEND, MAY_EXEC, MAY_READ, MAY_WRITE,
};
use crate::engine::hash::HashAlgo;
use crate::engine::template::TemplateDesc;
use crate::engine::Errno;

const ERANGE: Errno = Errno(libc::ERANGE);

/// What the parser needs to know about the policy state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseContext {
    /// A custom policy has been loaded before (the built-in list is no longer active).
    /// Decides the fate of unresolvable LSM labels: rejected while the built-in policy is
    /// active, accepted (but never matching) afterwards.
    pub custom_policy_active: bool,
}

/// Parse one line (text after the first `\n` or NUL is ignored, as the kernel does).
/// Uses the default context: the built-in policy is active (first policy load).
pub fn parse_line(line: &str) -> ParsedLine {
    parse_line_in(line, ParseContext::default())
}

/// [`parse_line`] with an explicit context.
pub fn parse_line_in(line: &str, ctx: ParseContext) -> ParsedLine {
    let line = match line.find(['\n', '\0']) {
        Some(end) => &line[..end],
        None => line,
    };
    let rest = line.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest.starts_with('#') {
        return ParsedLine {
            result: Ok(None),
            audit: None,
        };
    }
    let mut parser = Parser {
        ctx,
        rule: Rule::new(Action::Measure),
        action_set: false,
        audit: String::new(),
    };
    let result = parser.parse(rest);
    let mut audit = parser.audit;
    audit.push_str(if result.is_ok() { "res=1" } else { "res=0" });
    ParsedLine {
        result: result.map(|()| Some(parser.rule)),
        audit: Some(audit),
    }
}

/// Parse a whole policy text (lines separated by `\n`). On error returns the 1-based line
/// number and the error of the first failing line, as a policy file load stops there.
pub fn parse_text(text: &str) -> Result<Vec<super::Rule>, (usize, PolicyError)> {
    parse_text_in(text, ParseContext::default())
}

/// [`parse_text`] with an explicit context.
pub fn parse_text_in(
    text: &str,
    ctx: ParseContext,
) -> Result<Vec<super::Rule>, (usize, PolicyError)> {
    let mut rules = Vec::new();
    for (idx, line) in text.split('\n').enumerate() {
        match parse_line_in(line, ctx).result {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(e) => return Err((idx + 1, e)),
        }
    }
    Ok(rules)
}

/// `_kstrtoull` with the `kstrtoull` '+' prefix: digits of `base` (16 may start with
/// 0x/0X), one optional trailing newline; overflow is ERANGE, anything else EINVAL.
fn kstrtoull(s: &str, base: u32) -> Result<u64, Errno> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let s = if base == 16 && (s.starts_with("0x") || s.starts_with("0X")) {
        &s[2..]
    } else {
        s
    };
    let digits_end = s
        .char_indices()
        .find(|(_, c)| !c.is_digit(base))
        .map_or(s.len(), |(i, _)| i);
    if digits_end == 0 {
        return Err(Errno::EINVAL);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for c in s[..digits_end].chars() {
        let d = u64::from(c.to_digit(base).unwrap_or(0));
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(d))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(ERANGE);
    }
    let tail = &s[digits_end..];
    if !(tail.is_empty() || tail == "\n") {
        return Err(Errno::EINVAL);
    }
    Ok(value)
}

/// `kstrtoint(s, 10)`.
fn kstrtoint(s: &str) -> Result<i32, Errno> {
    if let Some(abs) = s.strip_prefix('-') {
        let v = kstrtoull(abs, 10)?;
        if v > (i32::MAX as u64) + 1 {
            return Err(ERANGE);
        }
        Ok((-(v as i64)) as i32)
    } else {
        let v = kstrtoull(s, 10)?;
        i32::try_from(v).map_err(|_| ERANGE)
    }
}

/// `uuid_parse`: 36 characters in 8-4-4-4-12 form; only those 36 are looked at.
fn uuid_parse(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() < 36 {
        return None;
    }
    for (i, c) in b[..36].iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            *c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    const SI: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let mut out = [0u8; 16];
    for (o, &i) in out.iter_mut().zip(SI.iter()) {
        *o = (hex(b[i]) << 4) | hex(b[i + 1]);
    }
    Some(out)
}

/// `ima_alloc_rule_opt_list`: `a|b|c`, no empty items.
fn opt_list(value: &str) -> Option<Box<[Box<str>]>> {
    let items: Vec<Box<str>> = value.split('|').map(Box::from).collect();
    if items.iter().any(|i| i.is_empty()) {
        return None;
    }
    Some(items.into_boxed_slice())
}

/// Why an `appraise_algos=` list is refused.
#[derive(Debug, thiserror::Error)]
enum AlgoListError {
    #[error("unknown hash algorithm \"{0}\"")]
    Unknown(String),
    /// A known algorithm this build cannot compute.
    #[error("unavailable hash algorithm \"{0}\"")]
    Unavailable(String),
}

/// `ima_parse_appraise_algos`: comma list of known, available algorithm names.
fn appraise_algos(value: &str) -> Result<u64, AlgoListError> {
    let mut bits = 0u64;
    for name in value.split(',') {
        let Some(algo) = HashAlgo::from_name(name) else {
            return Err(AlgoListError::Unknown(name.to_string()));
        };
        if !algo.is_supported() {
            return Err(AlgoListError::Unavailable(name.to_string()));
        }
        bits |= 1u64 << algo.id();
    }
    Ok(bits)
}

struct Parser {
    ctx: ParseContext,
    rule: Rule,
    action_set: bool,
    audit: String,
}

type Step = Result<(), PolicyError>;

fn dup(key: &str) -> PolicyError {
    PolicyError::einval(format!("duplicate {key} condition"))
}

fn bad(key: &str, value: &str) -> PolicyError {
    PolicyError::einval(format!("invalid {key} value \"{value}\""))
}

fn num_err(key: &str, value: &str, errno: Errno) -> PolicyError {
    if errno == ERANGE {
        PolicyError {
            errno,
            reason: format!("{key} value \"{value}\" out of range"),
        }
    } else {
        bad(key, value)
    }
}

impl Parser {
    fn log(&mut self, key: &str, op: char, value: &str) {
        let _ = write!(self.audit, "{key}{op}{value} ");
    }

    fn parse(&mut self, text: &str) -> Step {
        // The kernel stops at the first failing token; tokens after it are not even audited.
        for token in text.split([' ', '\t']).filter(|t| !t.is_empty()) {
            self.token(token)?;
        }
        self.validate()
    }

    fn set_action(&mut self, action: Action) -> Step {
        self.log("action", '=', action.keyword());
        let first = !self.action_set;
        self.action_set = true;
        self.rule.action = action;
        if first {
            Ok(())
        } else {
            Err(PolicyError::einval("more than one action"))
        }
    }

    fn token(&mut self, token: &str) -> Step {
        let action = match token {
            "measure" => Some(Action::Measure),
            "dont_measure" => Some(Action::DontMeasure),
            "appraise" => Some(Action::Appraise),
            "dont_appraise" => Some(Action::DontAppraise),
            "audit" => Some(Action::Audit),
            "dont_audit" => Some(Action::DontAudit),
            "hash" => Some(Action::Hash),
            "dont_hash" => Some(Action::DontHash),
            "permit_directio" => {
                // Not audited.
                self.rule.permit_directio = true;
                return Ok(());
            }
            _ => None,
        };
        if let Some(action) = action {
            return self.set_action(action);
        }
        // `key=%s`, `key<%s`, `key>%s`: the value is the (non-empty) rest of the token.
        let split = token.find(['=', '<', '>']);
        if let Some(pos) = split {
            let (key, op, value) = (
                &token[..pos],
                token.as_bytes()[pos] as char,
                &token[pos + 1..],
            );
            if !value.is_empty() {
                if let Some(step) = self.condition(key, op, value) {
                    return step;
                }
            }
        }
        self.log("UNKNOWN", '=', token);
        Err(PolicyError::einval(format!("unknown token \"{token}\"")))
    }

    /// `None` when `key`/`op` is not in the token table.
    fn condition(&mut self, key: &str, op: char, value: &str) -> Option<Step> {
        let id_op = match op {
            '=' => IdOp::Eq,
            '>' => IdOp::Gt,
            _ => IdOp::Lt,
        };
        match key {
            "uid" | "euid" | "gid" | "egid" | "fowner" | "fgroup" => {
                return Some(self.id_condition(key, id_op, value));
            }
            _ if op != '=' => return None,
            _ => {}
        }
        if let Some(slot) = LSM_KEYS.iter().position(|k| *k == key) {
            return Some(self.lsm(slot, value));
        }
        Some(match key {
            "func" => self.func(value),
            "mask" => self.mask(value),
            "fsmagic" => self.fsmagic(value),
            "fsname" => {
                self.log(key, '=', value);
                self.rule.fsname = Some(value.into());
                Ok(())
            }
            "fs_subtype" => {
                self.log(key, '=', value);
                if self.rule.fs_subtype.is_some() {
                    return Some(Err(dup(key)));
                }
                self.rule.fs_subtype = Some(value.into());
                Ok(())
            }
            "fsuuid" => self.fsuuid(value),
            "keyrings" | "label" => self.list(key, value),
            "digest_type" => self.digest_type(value),
            "appraise_type" => self.appraise_type(value),
            "appraise_flag" => {
                // Since 6.6 the blacklist check is implied by every signature requirement;
                // the option is logged and otherwise ignored.
                self.log(key, '=', value);
                Ok(())
            }
            "appraise_algos" => self.appraise_algos(value),
            "pcr" => self.pcr(value),
            "template" => self.template(value),
            _ => return None,
        })
    }

    fn func(&mut self, value: &str) -> Step {
        self.log("func", '=', value);
        let had = self.rule.func.is_some();
        let func = Func::from_policy_name(value).ok_or_else(|| bad("func", value))?;
        if had {
            return Err(dup("func"));
        }
        self.rule.func = Some(func);
        Ok(())
    }

    fn mask(&mut self, value: &str) -> Step {
        self.log("mask", '=', value);
        let had = self.rule.mask.is_some();
        let (contains, name) = match value.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let bit = match name {
            "MAY_EXEC" => MAY_EXEC,
            "MAY_WRITE" => MAY_WRITE,
            "MAY_READ" => MAY_READ,
            "MAY_APPEND" => MAY_APPEND,
            _ => return Err(bad("mask", value)),
        };
        if had {
            return Err(dup("mask"));
        }
        self.rule.mask = Some(MaskCond { bit, contains });
        Ok(())
    }

    fn fsmagic(&mut self, value: &str) -> Step {
        self.log("fsmagic", '=', value);
        // The kernel tests the stored value, so a previous fsmagic=0 does not count.
        if matches!(self.rule.fsmagic, Some(m) if m != 0) {
            return Err(dup("fsmagic"));
        }
        let magic = kstrtoull(value, 16).map_err(|e| num_err("fsmagic", value, e))?;
        self.rule.fsmagic = Some(magic);
        Ok(())
    }

    fn fsuuid(&mut self, value: &str) -> Step {
        self.log("fsuuid", '=', value);
        if matches!(self.rule.fsuuid, Some(u) if u != [0; 16]) {
            return Err(dup("fsuuid"));
        }
        let uuid = uuid_parse(value).ok_or_else(|| bad("fsuuid", value))?;
        self.rule.fsuuid = Some(uuid);
        Ok(())
    }

    fn list(&mut self, key: &str, value: &str) -> Step {
        self.log(key, '=', value);
        let slot = if key == "keyrings" {
            &mut self.rule.keyrings
        } else {
            &mut self.rule.label
        };
        if slot.is_some() {
            return Err(dup(key));
        }
        *slot =
            Some(opt_list(value).ok_or_else(|| {
                PolicyError::einval(format!("empty item in {key} list \"{value}\""))
            })?);
        Ok(())
    }

    fn id_condition(&mut self, key: &str, op: IdOp, value: &str) -> Step {
        self.log(key, op.symbol(), value);
        let (slot_taken, effective) = match key {
            "uid" | "euid" => (self.rule.uid.is_some(), key == "euid"),
            "gid" | "egid" => (self.rule.gid.is_some(), key == "egid"),
            "fowner" => (self.rule.fowner.is_some(), false),
            _ => (self.rule.fgroup.is_some(), false),
        };
        if slot_taken {
            return Err(match key {
                "uid" | "euid" => PolicyError::einval("duplicate uid/euid condition"),
                "gid" | "egid" => PolicyError::einval("duplicate gid/egid condition"),
                _ => dup(key),
            });
        }
        let n = kstrtoull(value, 10).map_err(|e| num_err(key, value, e))?;
        // Identity id mapping; (u32)-1 is the invalid id and larger values do not fit.
        let id = match u32::try_from(n) {
            Ok(id) if id != u32::MAX => id,
            _ => return Err(PolicyError::einval(format!("invalid {key} \"{value}\""))),
        };
        match key {
            "uid" | "euid" => self.rule.uid = Some(TaskIdCond { effective, op, id }),
            "gid" | "egid" => self.rule.gid = Some(TaskIdCond { effective, op, id }),
            "fowner" => self.rule.fowner = Some(InodeIdCond { op, id }),
            _ => self.rule.fgroup = Some(InodeIdCond { op, id }),
        }
        Ok(())
    }

    fn lsm(&mut self, slot: usize, value: &str) -> Step {
        self.log(LSM_KEYS[slot], '=', value);
        // No LSM resolves labels: invalid while the built-in policy is active, kept (but
        // never matching) once a custom policy has been loaded.
        if !self.ctx.custom_policy_active {
            return Err(PolicyError::einval(format!(
                "rule for LSM '{value}' is undefined (no LSM)"
            )));
        }
        self.rule.lsm[slot] = Some(value.into());
        Ok(())
    }

    fn digest_type(&mut self, value: &str) -> Step {
        self.log("digest_type", '=', value);
        if self.rule.digsig_required {
            return Err(PolicyError::einval(
                "digest_type= must come before appraise_type=",
            ));
        }
        if value != "verity" {
            return Err(bad("digest_type", value));
        }
        self.rule.verity_required = true;
        Ok(())
    }

    fn appraise_type(&mut self, value: &str) -> Step {
        self.log("appraise_type", '=', value);
        let r = &mut self.rule;
        match value {
            "imasig" | "imasig|modsig" if r.verity_required => Err(PolicyError::einval(format!(
                "appraise_type={value} cannot be used with digest_type=verity"
            ))),
            "imasig" => {
                r.digsig_required = true;
                r.check_blacklist = true;
                Ok(())
            }
            "imasig|modsig" => {
                r.digsig_required = true;
                r.modsig_allowed = true;
                r.check_blacklist = true;
                Ok(())
            }
            "sigv3" if r.verity_required => {
                r.digsig_required = true;
                r.check_blacklist = true;
                Ok(())
            }
            "sigv3" => Err(PolicyError::einval(
                "appraise_type=sigv3 requires digest_type=verity first",
            )),
            _ => Err(bad("appraise_type", value)),
        }
    }

    fn appraise_algos(&mut self, value: &str) -> Step {
        self.log("appraise_algos", '=', value);
        if self.rule.appraise_algos.is_some() {
            return Err(dup("appraise_algos"));
        }
        let bits = appraise_algos(value).map_err(|e| PolicyError::einval(e.to_string()))?;
        self.rule.appraise_algos = Some(bits);
        Ok(())
    }

    fn pcr(&mut self, value: &str) -> Step {
        self.log("pcr", '=', value);
        // INVALID_PCR: the per-inode measured-PCR mask is an unsigned long (64 bits).
        match kstrtoint(value) {
            Ok(pcr) if (0..64).contains(&pcr) => {
                self.rule.pcr = Some(pcr as u32);
                Ok(())
            }
            _ => Err(PolicyError::einval(format!(
                "invalid pcr \"{value}\" (0..63)"
            ))),
        }
    }

    fn template(&mut self, value: &str) -> Step {
        self.log("template", '=', value);
        if !self.action_set || self.rule.action != Action::Measure {
            return Err(PolicyError::einval(
                "template= requires the measure action before it",
            ));
        }
        let name = TemplateDesc::lookup_builtin(value)
            .ok_or_else(|| PolicyError::einval(format!("unknown template \"{value}\"")))?;
        if self.rule.template.is_some() {
            return Err(dup("template"));
        }
        self.rule.template = Some(Arc::from(name));
        Ok(())
    }

    /// `ima_validate_rule`.
    fn validate(&self) -> Step {
        let r = &self.rule;
        let reject = |why: &str| Err(PolicyError::einval(why.to_string()));
        if !self.action_set {
            return reject("no action");
        }
        if r.action != Action::Measure && r.pcr.is_some() {
            return reject("pcr= is only allowed with measure");
        }
        if r.action != Action::Appraise
            && (r.digsig_required
                || r.modsig_allowed
                || r.check_blacklist
                || r.appraise_algos.is_some())
        {
            return reject("appraise_type=/appraise_algos= are only allowed with appraise");
        }
        let present = Present::of(r);
        let func_name = r.func.map_or("(none)", Func::name);
        let measure_only = matches!(r.action, Action::Measure | Action::DontMeasure);
        let lsm = r.has_lsm_condition();
        let allowed = match r.func {
            None
            | Some(
                Func::FileCheck
                | Func::MmapCheck
                | Func::MmapCheckReqprot
                | Func::BprmCheck
                | Func::CredsCheck
                | Func::PostSetattr
                | Func::FirmwareCheck
                | Func::PolicyCheck,
            ) => Present::FILE_HOOKS,
            Some(Func::ModuleCheck | Func::KexecKernelCheck | Func::KexecInitramfsCheck) => {
                Present::KERNEL_READS
            }
            Some(Func::KexecCmdline) => {
                if !measure_only {
                    return reject("func=KEXEC_CMDLINE only allows measure/dont_measure");
                }
                Present::KEXEC_CMDLINE
            }
            Some(Func::KeyCheck | Func::CriticalData) => {
                if !measure_only {
                    return Err(PolicyError::einval(format!(
                        "func={func_name} only allows measure/dont_measure"
                    )));
                }
                if lsm {
                    return Err(PolicyError::einval(format!(
                        "func={func_name} does not allow LSM conditions"
                    )));
                }
                if r.func == Some(Func::KeyCheck) {
                    Present::KEY_CHECK
                } else {
                    Present::CRITICAL_DATA
                }
            }
            Some(Func::SetxattrCheck) => {
                if r.action != Action::Appraise {
                    return reject("func=SETXATTR_CHECK only allows appraise");
                }
                if r.appraise_algos.is_none() {
                    return reject("func=SETXATTR_CHECK requires appraise_algos=");
                }
                Present::SETXATTR
            }
        };
        let extra = present.0 & !allowed.0;
        if extra != 0 {
            return Err(PolicyError::einval(format!(
                "{} not allowed with func={func_name}",
                Present(extra).describe()
            )));
        }
        if r.check_blacklist && !r.digsig_required {
            return reject("check_blacklist requires a signature");
        }
        if r.action == Action::Appraise && r.verity_required && !r.digsig_required {
            return reject("appraise with digest_type=verity requires appraise_type=sigv3");
        }
        Ok(())
    }
}

/// The kernel's rule flag word (IMA_FUNC ... IMA_VERITY_REQUIRED) for the validation tables.
#[derive(Clone, Copy)]
struct Present(u32);

impl Present {
    const FUNC: u32 = 1 << 0;
    const MASK: u32 = 1 << 1;
    const FSMAGIC: u32 = 1 << 2;
    const UID: u32 = 1 << 3;
    const FOWNER: u32 = 1 << 4;
    const FSUUID: u32 = 1 << 5;
    const INMASK: u32 = 1 << 6;
    const EUID: u32 = 1 << 7;
    const PCR: u32 = 1 << 8;
    const FSNAME: u32 = 1 << 9;
    const KEYRINGS: u32 = 1 << 10;
    const LABEL: u32 = 1 << 11;
    const VALIDATE_ALGOS: u32 = 1 << 12;
    const GID: u32 = 1 << 13;
    const EGID: u32 = 1 << 14;
    const FGROUP: u32 = 1 << 15;
    const FS_SUBTYPE: u32 = 1 << 16;
    const DIGSIG: u32 = 1 << 24;
    const PERMIT_DIRECTIO: u32 = 1 << 25;
    const MODSIG: u32 = 1 << 29;
    const BLACKLIST: u32 = 1 << 30;
    const VERITY: u32 = 1 << 31;

    const NAMES: [(u32, &'static str); 22] = [
        (Self::FUNC, "func="),
        (Self::MASK, "mask="),
        (Self::FSMAGIC, "fsmagic="),
        (Self::UID, "uid"),
        (Self::FOWNER, "fowner"),
        (Self::FSUUID, "fsuuid="),
        (Self::INMASK, "mask=^"),
        (Self::EUID, "euid"),
        (Self::PCR, "pcr="),
        (Self::FSNAME, "fsname="),
        (Self::KEYRINGS, "keyrings="),
        (Self::LABEL, "label="),
        (Self::VALIDATE_ALGOS, "appraise_algos="),
        (Self::GID, "gid"),
        (Self::EGID, "egid"),
        (Self::FGROUP, "fgroup"),
        (Self::FS_SUBTYPE, "fs_subtype="),
        (Self::DIGSIG, "appraise_type="),
        (Self::PERMIT_DIRECTIO, "permit_directio"),
        (Self::MODSIG, "appraise_type=imasig|modsig"),
        (Self::BLACKLIST, "check_blacklist"),
        (Self::VERITY, "digest_type=verity"),
    ];

    const BASE: u32 = Self::FUNC
        | Self::MASK
        | Self::FSMAGIC
        | Self::UID
        | Self::FOWNER
        | Self::FSUUID
        | Self::INMASK
        | Self::EUID
        | Self::PCR
        | Self::FSNAME
        | Self::FS_SUBTYPE
        | Self::GID
        | Self::EGID
        | Self::FGROUP
        | Self::DIGSIG
        | Self::PERMIT_DIRECTIO;
    const FILE_HOOKS: Present =
        Present(Self::BASE | Self::VALIDATE_ALGOS | Self::BLACKLIST | Self::VERITY);
    const KERNEL_READS: Present =
        Present(Self::BASE | Self::MODSIG | Self::BLACKLIST | Self::VALIDATE_ALGOS);
    const KEXEC_CMDLINE: Present = Present(
        Self::FUNC
            | Self::FSMAGIC
            | Self::UID
            | Self::FOWNER
            | Self::FSUUID
            | Self::EUID
            | Self::PCR
            | Self::FSNAME
            | Self::FS_SUBTYPE
            | Self::GID
            | Self::EGID
            | Self::FGROUP,
    );
    const KEY_CHECK: Present =
        Present(Self::FUNC | Self::UID | Self::GID | Self::PCR | Self::KEYRINGS);
    const CRITICAL_DATA: Present =
        Present(Self::FUNC | Self::UID | Self::GID | Self::PCR | Self::LABEL);
    const SETXATTR: Present = Present(Self::FUNC | Self::VALIDATE_ALGOS);

    fn of(r: &Rule) -> Present {
        let mut f = 0;
        let mut set = |cond: bool, bit: u32| {
            if cond {
                f |= bit;
            }
        };
        set(r.func.is_some(), Self::FUNC);
        set(matches!(r.mask, Some(m) if !m.contains), Self::MASK);
        set(matches!(r.mask, Some(m) if m.contains), Self::INMASK);
        set(r.fsmagic.is_some(), Self::FSMAGIC);
        set(matches!(r.uid, Some(c) if !c.effective), Self::UID);
        set(matches!(r.uid, Some(c) if c.effective), Self::EUID);
        set(matches!(r.gid, Some(c) if !c.effective), Self::GID);
        set(matches!(r.gid, Some(c) if c.effective), Self::EGID);
        set(r.fowner.is_some(), Self::FOWNER);
        set(r.fgroup.is_some(), Self::FGROUP);
        set(r.fsuuid.is_some(), Self::FSUUID);
        set(r.pcr.is_some(), Self::PCR);
        set(r.fsname.is_some(), Self::FSNAME);
        set(r.fs_subtype.is_some(), Self::FS_SUBTYPE);
        set(r.keyrings.is_some(), Self::KEYRINGS);
        set(r.label.is_some(), Self::LABEL);
        set(r.appraise_algos.is_some(), Self::VALIDATE_ALGOS);
        set(r.digsig_required, Self::DIGSIG);
        set(r.permit_directio, Self::PERMIT_DIRECTIO);
        set(r.modsig_allowed, Self::MODSIG);
        set(r.check_blacklist, Self::BLACKLIST);
        set(r.verity_required, Self::VERITY);
        Present(f)
    }

    fn describe(self) -> String {
        // Name the most specific offender: modsig implies digsig and blacklist.
        let mut bits = self.0;
        if bits & Self::MODSIG != 0 {
            bits &= !(Self::DIGSIG | Self::BLACKLIST);
        }
        if bits & Self::DIGSIG != 0 {
            bits &= !Self::BLACKLIST;
        }
        Self::NAMES
            .iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrtoull_like_the_kernel() {
        assert_eq!(kstrtoull("0x9fa0", 16), Ok(0x9fa0));
        assert_eq!(kstrtoull("0X9FA0", 16), Ok(0x9fa0));
        assert_eq!(kstrtoull("9fa0", 16), Ok(0x9fa0));
        assert_eq!(kstrtoull("+10", 10), Ok(10));
        assert_eq!(kstrtoull("10\n", 10), Ok(10));
        assert_eq!(kstrtoull("0x", 16), Err(Errno::EINVAL));
        assert_eq!(kstrtoull("", 10), Err(Errno::EINVAL));
        assert_eq!(kstrtoull("-1", 10), Err(Errno::EINVAL));
        assert_eq!(kstrtoull("1a", 10), Err(Errno::EINVAL));
        assert_eq!(kstrtoull("18446744073709551615", 10), Ok(u64::MAX));
        assert_eq!(kstrtoull("18446744073709551616", 10), Err(ERANGE));
        assert_eq!(kstrtoull("1ffffffffffffffff", 16), Err(ERANGE));
        assert_eq!(kstrtoint("-5"), Ok(-5));
        assert_eq!(kstrtoint("2147483648"), Err(ERANGE));
    }

    #[test]
    fn uuid_checks_only_36_characters() {
        let u = uuid_parse("01234567-89AB-cdef-0123-456789abcdefXYZ");
        assert_eq!(
            u,
            Some([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ])
        );
        assert_eq!(uuid_parse("01234567-89ab-cdef-0123-456789abcde"), None);
        assert_eq!(uuid_parse("01234567+89ab-cdef-0123-456789abcdef"), None);
    }

    #[test]
    fn templates_by_name_or_format() {
        assert_eq!(TemplateDesc::lookup_builtin("ima-sig"), Some("ima-sig"));
        assert_eq!(TemplateDesc::lookup_builtin("d-ng|n-ng"), Some("ima-ng"));
        assert_eq!(TemplateDesc::lookup_builtin("ima-foo"), None);
    }
}
