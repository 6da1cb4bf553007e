//! The IMA policy language: rules, the kernel's parser and read-back printer, the built-in
//! policies and the matcher (security/integrity/ima/ima_policy.c).
//!
//! Kernel model: Linux 6.19 with `CONFIG_IMA_WRITE_POLICY=y`, `CONFIG_IMA_READ_POLICY=y`,
//! `CONFIG_IMA_APPRAISE_MODSIG=y`, `CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS=y`, no
//! `CONFIG_IMA_APPRAISE_SIGNED_INIT`, no `CONFIG_IMA_APPRAISE_REQUIRE_*_SIGS` and no
//! architecture rules. Version-dependent details that follow from this choice:
//! - `dont_audit` and `fs_subtype=` exist (both new in 6.19);
//! - every signature requirement implies the blacklist check and `appraise_flag=` is accepted
//!   with any value, logged and ignored, and never printed (6.6);
//! - the `tcb` tmpfs exclusion is `dont_measure fsmagic=0x1021994`, for every hook, as in the
//!   released 6.12.118 source (`dont_measure_rules[]`).
//!
//! There is no LSM: `obj_*`/`subj_*` labels can never be resolved. As in the kernel such a
//! condition makes the rule invalid while the built-in policy is active (the first load);
//! once a custom policy is active the rule is accepted, never matches and is left out of the
//! policy read-back ([`Policy`]'s `Display`). [`Rule`]'s own `Display` still prints them.

mod builtin;
mod parse;

use std::fmt;
use std::sync::Arc;

use crate::engine::hash::HashAlgo;
use crate::engine::Errno;

pub use builtin::{builtin, BuiltinPolicy, BuiltinPolicyError, BUILTIN_NAMES};
pub use parse::{parse_line, parse_line_in, parse_text, parse_text_in, ParseContext};

pub const MAY_EXEC: u32 = 0x01;
pub const MAY_WRITE: u32 = 0x02;
pub const MAY_READ: u32 = 0x04;
pub const MAY_APPEND: u32 = 0x08;

/// An IMA hook, numbered as the kernel's `enum ima_hooks` (6.3+).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Func {
    FileCheck = 1,
    MmapCheck,
    MmapCheckReqprot,
    BprmCheck,
    CredsCheck,
    PostSetattr,
    ModuleCheck,
    FirmwareCheck,
    KexecKernelCheck,
    KexecInitramfsCheck,
    PolicyCheck,
    KexecCmdline,
    KeyCheck,
    CriticalData,
    SetxattrCheck,
}

const ALL_FUNCS: [Func; 15] = [
    Func::FileCheck,
    Func::MmapCheck,
    Func::MmapCheckReqprot,
    Func::BprmCheck,
    Func::CredsCheck,
    Func::PostSetattr,
    Func::ModuleCheck,
    Func::FirmwareCheck,
    Func::KexecKernelCheck,
    Func::KexecInitramfsCheck,
    Func::PolicyCheck,
    Func::KexecCmdline,
    Func::KeyCheck,
    Func::CriticalData,
    Func::SetxattrCheck,
];

impl Func {
    /// Every hook, in enum order.
    pub fn all() -> &'static [Func] {
        &ALL_FUNCS
    }

    /// The kernel enum name, as printed by the policy read-back (`func_tokens[]`).
    pub fn name(self) -> &'static str {
        match self {
            Func::FileCheck => "FILE_CHECK",
            Func::MmapCheck => "MMAP_CHECK",
            Func::MmapCheckReqprot => "MMAP_CHECK_REQPROT",
            Func::BprmCheck => "BPRM_CHECK",
            Func::CredsCheck => "CREDS_CHECK",
            Func::PostSetattr => "POST_SETATTR",
            Func::ModuleCheck => "MODULE_CHECK",
            Func::FirmwareCheck => "FIRMWARE_CHECK",
            Func::KexecKernelCheck => "KEXEC_KERNEL_CHECK",
            Func::KexecInitramfsCheck => "KEXEC_INITRAMFS_CHECK",
            Func::PolicyCheck => "POLICY_CHECK",
            Func::KexecCmdline => "KEXEC_CMDLINE",
            Func::KeyCheck => "KEY_CHECK",
            Func::CriticalData => "CRITICAL_DATA",
            Func::SetxattrCheck => "SETXATTR_CHECK",
        }
    }

    /// The kernel number (`enum ima_hooks`).
    pub fn id(self) -> u8 {
        self as u8
    }

    /// A `func=` value as `ima_parse_rule` accepts it, including the old aliases
    /// `PATH_CHECK` and `FILE_MMAP`. `POST_SETATTR` is internal and cannot be written.
    pub fn from_policy_name(name: &str) -> Option<Func> {
        Some(match name {
            "FILE_CHECK" | "PATH_CHECK" => Func::FileCheck,
            "MODULE_CHECK" => Func::ModuleCheck,
            "FIRMWARE_CHECK" => Func::FirmwareCheck,
            "FILE_MMAP" | "MMAP_CHECK" => Func::MmapCheck,
            "MMAP_CHECK_REQPROT" => Func::MmapCheckReqprot,
            "BPRM_CHECK" => Func::BprmCheck,
            "CREDS_CHECK" => Func::CredsCheck,
            "KEXEC_KERNEL_CHECK" => Func::KexecKernelCheck,
            "KEXEC_INITRAMFS_CHECK" => Func::KexecInitramfsCheck,
            "POLICY_CHECK" => Func::PolicyCheck,
            "KEXEC_CMDLINE" => Func::KexecCmdline,
            "KEY_CHECK" => Func::KeyCheck,
            "CRITICAL_DATA" => Func::CriticalData,
            "SETXATTR_CHECK" => Func::SetxattrCheck,
            _ => return None,
        })
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

bitflags::bitflags! {
    /// Positive action kinds, with the kernel's bit values (`IMA_MEASURE`, ...).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Actions: u32 {
        const MEASURE = 0x0001;
        const APPRAISE = 0x0004;
        const AUDIT = 0x0040;
        const HASH = 0x0100;
    }
}

/// The action of a rule (exactly one per rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Measure,
    DontMeasure,
    Appraise,
    DontAppraise,
    Audit,
    /// New in 6.19 (with `fs_subtype=`).
    DontAudit,
    Hash,
    DontHash,
}

impl Action {
    /// The policy keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Action::Measure => "measure",
            Action::DontMeasure => "dont_measure",
            Action::Appraise => "appraise",
            Action::DontAppraise => "dont_appraise",
            Action::Audit => "audit",
            Action::DontAudit => "dont_audit",
            Action::Hash => "hash",
            Action::DontHash => "dont_hash",
        }
    }

    /// The kernel's action bit (`MEASURE` 0x1, `DONT_MEASURE` 0x2, ...): a `dont_X` bit is
    /// the `X` bit shifted left by one.
    fn bit(self) -> u32 {
        match self {
            Action::Measure => 0x0001,
            Action::DontMeasure => 0x0002,
            Action::Appraise => 0x0004,
            Action::DontAppraise => 0x0008,
            Action::Audit => 0x0040,
            Action::DontAudit => 0x0080,
            Action::Hash => 0x0100,
            Action::DontHash => 0x0200,
        }
    }

    /// Whether this is `measure`, `appraise`, `audit` or `hash` (not a `dont_` rule).
    pub fn is_positive(self) -> bool {
        matches!(
            self,
            Action::Measure | Action::Appraise | Action::Audit | Action::Hash
        )
    }

    /// The action kind this rule decides.
    pub fn kind(self) -> Actions {
        match self {
            Action::Measure | Action::DontMeasure => Actions::MEASURE,
            Action::Appraise | Action::DontAppraise => Actions::APPRAISE,
            Action::Audit | Action::DontAudit => Actions::AUDIT,
            Action::Hash | Action::DontHash => Actions::HASH,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Why a rule was rejected: the errno the policy write returns and a readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub errno: Errno,
    pub reason: String,
}

impl PolicyError {
    pub(crate) fn einval(reason: impl Into<String>) -> PolicyError {
        PolicyError {
            errno: Errno::EINVAL,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PolicyError {}

/// The outcome of parsing one policy line.
#[derive(Clone, Debug)]
pub struct ParsedLine {
    /// `Ok(None)` for a comment or blank line.
    pub result: Result<Option<Rule>, PolicyError>,
    /// Body of the type 1807 (INTEGRITY_POLICY_RULE) audit record, e.g.
    /// `action=measure func=BPRM_CHECK mask=MAY_EXEC res=1`; `None` for comment/blank.
    pub audit: Option<String>,
}

/// Comparison of a `uid`/`euid`/`gid`/`egid`/`fowner`/`fgroup` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdOp {
    Eq,
    Gt,
    Lt,
}

impl IdOp {
    fn symbol(self) -> char {
        match self {
            IdOp::Eq => '=',
            IdOp::Gt => '>',
            IdOp::Lt => '<',
        }
    }

    /// `uid_eq`/`uid_gt`/`uid_lt(actual, rule)`.
    #[inline]
    fn holds(self, actual: u32, rule: u32) -> bool {
        match self {
            IdOp::Eq => actual == rule,
            IdOp::Gt => actual > rule,
            IdOp::Lt => actual < rule,
        }
    }
}

/// A task id condition: `uid`/`gid` (real) or `euid`/`egid` (effective, widened by
/// CAP_SETUID/CAP_SETGID). The kernel keeps one slot for uid/euid and one for gid/egid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskIdCond {
    pub effective: bool,
    pub op: IdOp,
    pub id: u32,
}

/// An inode id condition (`fowner`, `fgroup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeIdCond {
    pub op: IdOp,
    pub id: u32,
}

/// `mask=MAY_x` (exact) or `mask=^MAY_x` (contains).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskCond {
    pub bit: u32,
    pub contains: bool,
}

/// LSM condition slots, in the kernel's order (`enum lsm_rule_types`).
pub const LSM_KEYS: [&str; 6] = [
    "obj_user",
    "obj_role",
    "obj_type",
    "subj_user",
    "subj_role",
    "subj_type",
];

/// One policy rule (`struct ima_rule_entry`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub(crate) action: Action,
    pub(crate) func: Option<Func>,
    pub(crate) mask: Option<MaskCond>,
    pub(crate) fsmagic: Option<u64>,
    pub(crate) fsname: Option<Box<str>>,
    pub(crate) fs_subtype: Option<Box<str>>,
    pub(crate) fsuuid: Option<[u8; 16]>,
    pub(crate) uid: Option<TaskIdCond>,
    pub(crate) gid: Option<TaskIdCond>,
    pub(crate) fowner: Option<InodeIdCond>,
    pub(crate) fgroup: Option<InodeIdCond>,
    pub(crate) pcr: Option<u32>,
    pub(crate) template: Option<Arc<str>>,
    pub(crate) keyrings: Option<Box<[Box<str>]>>,
    pub(crate) label: Option<Box<[Box<str>]>>,
    /// Label text per LSM slot (never resolvable here, see the module docs).
    pub(crate) lsm: [Option<Box<str>>; 6],
    /// Bit n = `HashAlgo` id n.
    pub(crate) appraise_algos: Option<u64>,
    pub(crate) digsig_required: bool,
    pub(crate) modsig_allowed: bool,
    pub(crate) check_blacklist: bool,
    pub(crate) verity_required: bool,
    pub(crate) permit_directio: bool,
}

impl Rule {
    pub(crate) fn new(action: Action) -> Rule {
        Rule {
            action,
            func: None,
            mask: None,
            fsmagic: None,
            fsname: None,
            fs_subtype: None,
            fsuuid: None,
            uid: None,
            gid: None,
            fowner: None,
            fgroup: None,
            pcr: None,
            template: None,
            keyrings: None,
            label: None,
            lsm: Default::default(),
            appraise_algos: None,
            digsig_required: false,
            modsig_allowed: false,
            check_blacklist: false,
            verity_required: false,
            permit_directio: false,
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn func(&self) -> Option<Func> {
        self.func
    }

    pub fn mask(&self) -> Option<MaskCond> {
        self.mask
    }

    pub fn fsmagic(&self) -> Option<u64> {
        self.fsmagic
    }

    pub fn pcr(&self) -> Option<u32> {
        self.pcr
    }

    /// The canonical template name of `template=`, if any.
    pub fn template(&self) -> Option<&Arc<str>> {
        self.template.as_ref()
    }

    /// `appraise_algos=` as a bit set (bit n = `HashAlgo` id n).
    pub fn appraise_algos(&self) -> Option<u64> {
        self.appraise_algos
    }

    /// `appraise_type=imasig` / `imasig|modsig` / `sigv3`.
    pub fn signature_required(&self) -> bool {
        self.digsig_required
    }

    /// Whether the rule has an LSM condition. Without an LSM such a rule never matches and
    /// the kernel leaves it out of the policy read-back.
    pub fn has_lsm_condition(&self) -> bool {
        self.lsm.iter().any(Option::is_some)
    }

    /// `ima_match_rules` (plus `ima_match_rule_data` for KEY_CHECK / CRITICAL_DATA).
    #[inline]
    pub fn matches(&self, input: &MatchInput<'_>) -> bool {
        let func = input.func;
        let setattr = func == Func::PostSetattr;
        if let Some(rf) = self.func {
            if rf != func && !setattr {
                return false;
            }
        }
        if matches!(func, Func::KeyCheck | Func::CriticalData) {
            return self.func == Some(func) && self.matches_data(input);
        }
        if let Some(m) = self.mask {
            if !setattr {
                let ok = if m.contains {
                    m.bit & input.mask != 0
                } else {
                    m.bit == input.mask
                };
                if !ok {
                    return false;
                }
            }
        }
        if self.fsmagic.is_some()
            || self.fsname.is_some()
            || self.fs_subtype.is_some()
            || self.fsuuid.is_some()
            || self.fowner.is_some()
            || self.fgroup.is_some()
        {
            // Object conditions need an inode; events without one never match them.
            let Some(obj) = input.object else {
                return false;
            };
            if let Some(magic) = self.fsmagic {
                if magic != obj.fsmagic {
                    return false;
                }
            }
            if let Some(name) = &self.fsname {
                if **name != *obj.fsname {
                    return false;
                }
            }
            if let Some(sub) = &self.fs_subtype {
                // A superblock without a subtype never matches.
                if obj.fs_subtype.is_empty() || **sub != *obj.fs_subtype {
                    return false;
                }
            }
            if let Some(uuid) = &self.fsuuid {
                // A filesystem without a UUID has the null UUID.
                if *uuid != obj.fsuuid.unwrap_or([0; 16]) {
                    return false;
                }
            }
        }
        let subj = input.subject;
        if let Some(c) = self.uid {
            let ok = if c.effective {
                c.op.holds(subj.euid, c.id)
                    || (subj.cap_setuid
                        && (c.op.holds(subj.suid, c.id) || c.op.holds(subj.uid, c.id)))
            } else {
                c.op.holds(subj.uid, c.id)
            };
            if !ok {
                return false;
            }
        }
        if let Some(c) = self.gid {
            let ok = if c.effective {
                c.op.holds(subj.egid, c.id)
                    || (subj.cap_setgid
                        && (c.op.holds(subj.sgid, c.id) || c.op.holds(subj.gid, c.id)))
            } else {
                c.op.holds(subj.gid, c.id)
            };
            if !ok {
                return false;
            }
        }
        if let Some(c) = self.fowner {
            match input.object {
                Some(obj) if c.op.holds(obj.uid, c.id) => {}
                _ => return false,
            }
        }
        if let Some(c) = self.fgroup {
            match input.object {
                Some(obj) if c.op.holds(obj.gid, c.id) => {}
                _ => return false,
            }
        }
        // No LSM: a label condition can never be satisfied.
        !self.has_lsm_condition()
    }

    /// `ima_match_rule_data`: only `uid` is checked (the kernel ignores `gid` here), then
    /// the keyring / label list (no list = any).
    fn matches_data(&self, input: &MatchInput<'_>) -> bool {
        if let Some(c) = self.uid {
            if !c.effective && !c.op.holds(input.subject.uid, c.id) {
                return false;
            }
        }
        let (list, data) = match self.func {
            Some(Func::KeyCheck) => (&self.keyrings, input.keyring),
            Some(Func::CriticalData) => (&self.label, input.label),
            _ => return false,
        };
        let Some(list) = list else {
            return true;
        };
        let Some(data) = data else {
            return false;
        };
        list.iter().any(|item| **item == *data)
    }
}

/// Lowercase 8-4-4-4-12 (`%pU`).
fn write_uuid(f: &mut fmt::Formatter<'_>, u: &[u8; 16]) -> fmt::Result {
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Ids are printed with `%d` of the kernel-internal value, so ids above 2^31-1 print negative.
fn kid(id: u32) -> i32 {
    id as i32
}

/// One read-back line exactly as `ima_policy_show` prints it, including the trailing `" \n"`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.action.keyword())?;
        if let Some(func) = self.func {
            write!(f, "func={} ", func.name())?;
        }
        if let Some(m) = self.mask {
            let name = match m.bit {
                MAY_EXEC => "MAY_EXEC",
                MAY_WRITE => "MAY_WRITE",
                MAY_READ => "MAY_READ",
                _ => "MAY_APPEND",
            };
            write!(f, "mask={}{} ", if m.contains { "^" } else { "" }, name)?;
        }
        if let Some(magic) = self.fsmagic {
            write!(f, "fsmagic=0x{magic:x} ")?;
        }
        if let Some(name) = &self.fsname {
            write!(f, "fsname={name} ")?;
        }
        if let Some(sub) = &self.fs_subtype {
            write!(f, "fs_subtype={sub} ")?;
        }
        if let Some(list) = &self.keyrings {
            write!(f, "keyrings={} ", list.join("|"))?;
        }
        if let Some(list) = &self.label {
            write!(f, "label={} ", list.join("|"))?;
        }
        if let Some(pcr) = self.pcr {
            write!(f, "pcr={pcr} ")?;
        }
        if let Some(uuid) = &self.fsuuid {
            f.write_str("fsuuid=")?;
            write_uuid(f, uuid)?;
            f.write_str(" ")?;
        }
        if let Some(c) = self.uid {
            let key = if c.effective { "euid" } else { "uid" };
            write!(f, "{key}{}{} ", c.op.symbol(), kid(c.id))?;
        }
        if let Some(c) = self.gid {
            let key = if c.effective { "egid" } else { "gid" };
            write!(f, "{key}{}{} ", c.op.symbol(), kid(c.id))?;
        }
        if let Some(c) = self.fowner {
            write!(f, "fowner{}{} ", c.op.symbol(), kid(c.id))?;
        }
        if let Some(c) = self.fgroup {
            write!(f, "fgroup{}{} ", c.op.symbol(), kid(c.id))?;
        }
        if let Some(algos) = self.appraise_algos {
            f.write_str("appraise_algos=")?;
            let mut first = true;
            for algo in HashAlgo::all() {
                if algos & (1u64 << algo.id()) != 0 {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    f.write_str(algo.name())?;
                }
            }
            f.write_str(" ")?;
        }
        for (key, value) in LSM_KEYS.iter().zip(&self.lsm) {
            if let Some(value) = value {
                write!(f, "{key}={value} ")?;
            }
        }
        if let Some(t) = &self.template {
            write!(f, "template={t} ")?;
        }
        if self.digsig_required {
            f.write_str(if self.verity_required {
                "appraise_type=sigv3 "
            } else if self.modsig_allowed {
                "appraise_type=imasig|modsig "
            } else {
                "appraise_type=imasig "
            })?;
        }
        if self.verity_required {
            f.write_str("digest_type=verity ")?;
        }
        if self.permit_directio {
            f.write_str("permit_directio ")?;
        }
        f.write_str("\n")
    }
}

/// The credentials an event is evaluated against (initial-namespace ids).
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub cap_setuid: bool,
    pub cap_setgid: bool,
}

/// The inode an event is about. `uid`/`gid` are the owner as seen through the mount's idmap;
/// `fs_subtype` is empty when the superblock has none; `fsuuid` `None` means the null UUID.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a> {
    pub uid: u32,
    pub gid: u32,
    pub fsmagic: u64,
    pub fsname: &'a str,
    pub fs_subtype: &'a str,
    pub fsuuid: Option<[u8; 16]>,
}

/// One event to evaluate.
#[derive(Clone, Copy, Debug)]
pub struct MatchInput<'a> {
    pub func: Func,
    pub mask: u32,
    pub subject: &'a Subject,
    pub object: Option<&'a Object<'a>>,
    /// Keyring name for KEY_CHECK.
    pub keyring: Option<&'a str>,
    /// Data label for CRITICAL_DATA.
    pub label: Option<&'a str>,
}

/// What the policy decided for one event (`ima_match_policy`'s action word and outputs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Positive actions to take.
    pub actions: Actions,
    /// `pcr=` of the last matching rule that set one (None: the default PCR).
    pub pcr: Option<u32>,
    /// `template=` of the last matching rule that set one (None: the default template).
    pub template: Option<Arc<str>>,
    /// IMA_DIGSIG_REQUIRED
    pub signature_required: bool,
    /// IMA_MODSIG_ALLOWED
    pub modsig_allowed: bool,
    /// A v3 (fs-verity) signature is required (`appraise_type=sigv3`).
    pub sigv3_required: bool,
    /// IMA_CHECK_BLACKLIST
    pub check_blacklist: bool,
    /// IMA_PERMIT_DIRECTIO
    pub permit_directio: bool,
    /// `appraise_algos=` of the matching appraise rule (bit n = `HashAlgo` id n).
    pub appraise_algos: Option<u64>,
    /// IMA_VERITY_REQUIRED: use the fs-verity digest.
    pub verity_digest: bool,
}

/// An ordered rule list (the active policy).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Some rule has a `uid`/`euid`/`gid`/`egid` condition (kept with the rules).
    tests_subject: bool,
    /// The hooks of such rules (`None`: a rule for any hook).
    subject_funcs: Vec<Option<Func>>,
}

impl Policy {
    pub fn new(rules: Vec<Rule>) -> Policy {
        let mut policy = Policy::default();
        policy.extend(rules);
        policy
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Append rules (a later successful policy write session).
    pub fn extend(&mut self, rules: Vec<Rule>) {
        for rule in rules.iter().filter(|r| r.uid.is_some() || r.gid.is_some()) {
            self.tests_subject = true;
            if !self.subject_funcs.contains(&rule.func) {
                self.subject_funcs.push(rule.func);
            }
        }
        self.rules.extend(rules);
    }

    /// Whether evaluating an event may look at its [`Subject`]: without such a rule the
    /// caller need not find out the task's credentials.
    pub fn tests_subject(&self) -> bool {
        self.tests_subject
    }

    /// [`Policy::tests_subject`] for an event of hook `func`: whether a rule that can match
    /// it has a subject condition (an `uid=0` FILE_CHECK rule does not make a mapping read
    /// the task's credentials).
    pub fn tests_subject_for(&self, func: Func) -> bool {
        self.subject_funcs
            .iter()
            .any(|f| f.is_none_or(|f| f == func))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `ima_match_policy`: walk the rules once; the first matching rule of each wanted
    /// action kind decides it; flags, `pcr=` and `template=` accumulate over matching rules.
    pub fn evaluate(&self, input: &MatchInput<'_>, wanted: Actions) -> Decision {
        let mut actmask = wanted.bits() | (wanted.bits() << 1);
        let mut actions = 0u32;
        let mut d = Decision::default();
        for rule in &self.rules {
            if actmask == 0 {
                break;
            }
            let bit = rule.action.bit();
            if bit & actmask == 0 || !rule.matches(input) {
                continue;
            }
            // IMA_NONACTION_FLAGS are taken from every matching rule.
            d.signature_required |= rule.digsig_required;
            d.modsig_allowed |= rule.modsig_allowed;
            d.sigv3_required |= rule.digsig_required && rule.verity_required;
            d.check_blacklist |= rule.check_blacklist;
            d.permit_directio |= rule.permit_directio;
            d.verity_digest |= rule.verity_required;
            if rule.action.is_positive() {
                actions |= bit;
                actmask &= !(bit | bit << 1);
            } else {
                actmask &= !(bit | bit >> 1);
            }
            if rule.action == Action::Appraise {
                // An appraise decision cancels a pending hash.
                actions &= !Actions::HASH.bits();
                if rule.appraise_algos.is_some() {
                    d.appraise_algos = rule.appraise_algos;
                }
            }
            if rule.pcr.is_some() {
                d.pcr = rule.pcr;
            }
            if let Some(t) = &rule.template {
                d.template = Some(Arc::clone(t));
            }
        }
        d.actions = Actions::from_bits_truncate(actions);
        d
    }

    /// The positive actions any rule uses (`ima_update_policy_flags`; SETXATTR_CHECK rules
    /// do not count).
    pub fn actions_used(&self) -> Actions {
        let bits = self
            .rules
            .iter()
            .filter(|r| r.func != Some(Func::SetxattrCheck) && r.action.is_positive())
            .fold(0, |acc, r| acc | r.action.bit());
        Actions::from_bits_truncate(bits)
    }

    /// Whether an `appraise func=POLICY_CHECK` rule is present (IMA_APPRAISE_POLICY): policy
    /// text writes are then refused and policies must be loaded by (signed) path.
    pub fn requires_signed_policy(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == Action::Appraise && r.func == Some(Func::PolicyCheck))
    }

    /// The hash algorithms allowed for `security.ima` writes: the `appraise_algos=` of the
    /// first SETXATTR_CHECK rule (the kernel keeps only one).
    pub fn setxattr_allowed_algos(&self) -> Option<u64> {
        self.rules
            .iter()
            .find(|r| r.func == Some(Func::SetxattrCheck))
            .and_then(|r| r.appraise_algos)
    }
}

/// The policy read-back (`integrity/ima/policy`): every rule's line, leaving out rules whose
/// LSM labels cannot be resolved (all LSM rules here).
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in self.rules.iter().filter(|r| !r.has_lsm_condition()) {
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
