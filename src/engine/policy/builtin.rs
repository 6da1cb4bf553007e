//! Built-in policies (`ima_policy=`, `ima_tcb`, `ima_appraise_tcb`) assembled as
//! `ima_init_policy` does.

use super::parse::{parse_line_in, ParseContext};
use super::{PolicyError, Rule};

/// Names `builtin` accepts.
pub const BUILTIN_NAMES: [&str; 7] = [
    "tcb",
    "ima_tcb",
    "appraise_tcb",
    "ima_appraise_tcb",
    "secure_boot",
    "critical_data",
    "fail_securely",
];

/// Why [`builtin`] refuses a list of names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuiltinPolicyError {
    /// A name not in [`BUILTIN_NAMES`].
    #[error("policy \"{name}\" not found (known: {})", BUILTIN_NAMES.join(", "))]
    UnknownName { name: String },
    /// A rule of the static tables parses to nothing (a bug in the tables).
    #[error("built-in rule \"{rule}\" is empty")]
    EmptyRule { rule: &'static str },
    /// A rule of the static tables does not parse (a bug in the tables).
    #[error("built-in rule \"{rule}\": {source}")]
    BadRule {
        rule: &'static str,
        #[source]
        source: PolicyError,
    },
}

/// The boot-time rule list and the `fail_securely` flag.
#[derive(Clone, Debug, Default)]
pub struct BuiltinPolicy {
    pub rules: Vec<Rule>,
    /// Appraisal fails unverifiable signatures on filesystems flagged as such (FUSE).
    pub fail_securely: bool,
}

/// `dont_measure_rules[]`, as in a released kernel's `ima_policy.c` (Debian's
/// linux-source-6.12, 6.12.118): the tmpfs rule has no `func=`, so a tmpfs file is measured
/// by no hook. (A mailing-list patch limits it to FILE_CHECK; no released source here has it.)
const DONT_MEASURE: &[&str] = &[
    "dont_measure fsmagic=0x9fa0",     // PROC_SUPER_MAGIC
    "dont_measure fsmagic=0x62656572", // SYSFS_MAGIC
    "dont_measure fsmagic=0x64626720", // DEBUGFS_MAGIC
    "dont_measure fsmagic=0x1021994",  // TMPFS_MAGIC
    "dont_measure fsmagic=0x1cd1",     // DEVPTS_SUPER_MAGIC
    "dont_measure fsmagic=0x42494e4d", // BINFMTFS_MAGIC
    "dont_measure fsmagic=0x73636673", // SECURITYFS_MAGIC
    "dont_measure fsmagic=0xf97cff8c", // SELINUX_MAGIC
    "dont_measure fsmagic=0x43415d53", // SMACK_MAGIC
    "dont_measure fsmagic=0x27e0eb",   // CGROUP_SUPER_MAGIC
    "dont_measure fsmagic=0x63677270", // CGROUP2_SUPER_MAGIC
    "dont_measure fsmagic=0x6e736673", // NSFS_MAGIC
    "dont_measure fsmagic=0xde5e81e4", // EFIVARFS_MAGIC
];

/// `original_measurement_rules[]` (`ima_tcb`).
const ORIGINAL_MEASUREMENT: &[&str] = &[
    "measure func=MMAP_CHECK mask=MAY_EXEC",
    "measure func=BPRM_CHECK mask=MAY_EXEC",
    "measure func=FILE_CHECK mask=MAY_READ uid=0",
    "measure func=MODULE_CHECK",
    "measure func=FIRMWARE_CHECK",
];

/// `default_measurement_rules[]` (`ima_policy=tcb`).
const DEFAULT_MEASUREMENT: &[&str] = &[
    "measure func=MMAP_CHECK mask=MAY_EXEC",
    "measure func=BPRM_CHECK mask=MAY_EXEC",
    "measure func=FILE_CHECK mask=^MAY_READ euid=0",
    "measure func=FILE_CHECK mask=^MAY_READ uid=0",
    "measure func=MODULE_CHECK",
    "measure func=FIRMWARE_CHECK",
    "measure func=POLICY_CHECK",
];

/// `secure_boot_rules[]`.
const SECURE_BOOT: &[&str] = &[
    "appraise func=MODULE_CHECK appraise_type=imasig",
    "appraise func=FIRMWARE_CHECK appraise_type=imasig",
    "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig",
    "appraise func=POLICY_CHECK appraise_type=imasig",
];

/// `default_appraise_rules[]` with CONFIG_IMA_WRITE_POLICY=y (so the POLICY_CHECK rule is
/// present) and without CONFIG_IMA_APPRAISE_SIGNED_INIT (so `appraise fowner=0` needs no
/// signature).
const DEFAULT_APPRAISE: &[&str] = &[
    "dont_appraise fsmagic=0x9fa0",     // PROC_SUPER_MAGIC
    "dont_appraise fsmagic=0x62656572", // SYSFS_MAGIC
    "dont_appraise fsmagic=0x64626720", // DEBUGFS_MAGIC
    "dont_appraise fsmagic=0x1021994",  // TMPFS_MAGIC
    "dont_appraise fsmagic=0x858458f6", // RAMFS_MAGIC
    "dont_appraise fsmagic=0x1cd1",     // DEVPTS_SUPER_MAGIC
    "dont_appraise fsmagic=0x42494e4d", // BINFMTFS_MAGIC
    "dont_appraise fsmagic=0x73636673", // SECURITYFS_MAGIC
    "dont_appraise fsmagic=0xf97cff8c", // SELINUX_MAGIC
    "dont_appraise fsmagic=0x43415d53", // SMACK_MAGIC
    "dont_appraise fsmagic=0x6e736673", // NSFS_MAGIC
    "dont_appraise fsmagic=0xde5e81e4", // EFIVARFS_MAGIC
    "dont_appraise fsmagic=0x27e0eb",   // CGROUP_SUPER_MAGIC
    "dont_appraise fsmagic=0x63677270", // CGROUP2_SUPER_MAGIC
    "appraise func=POLICY_CHECK appraise_type=imasig",
    "appraise fowner=0",
];

/// `critical_data_rules[]`.
const CRITICAL_DATA: &[&str] = &["measure func=CRITICAL_DATA"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tcb {
    Original,
    Default,
}

/// Assemble the built-in policy from `ima_policy=`-style names (each name may itself be a
/// `|`- or space-separated list), in the kernel's order: dont_measure rules, tcb
/// measurement rules, secure_boot, appraise_tcb, critical_data. Of `tcb` and `ima_tcb`
/// the first one named wins, as with the boot parameters.
pub fn builtin(names: &[&str]) -> Result<BuiltinPolicy, BuiltinPolicyError> {
    let mut tcb = None;
    let (mut appraise_tcb, mut secure_boot, mut critical_data, mut fail_securely) =
        (false, false, false, false);
    for name in names
        .iter()
        .flat_map(|n| n.split(['|', ' ', ',']))
        .filter(|n| !n.is_empty())
    {
        match name {
            "tcb" => {
                tcb.get_or_insert(Tcb::Default);
            }
            "ima_tcb" => {
                tcb.get_or_insert(Tcb::Original);
            }
            "appraise_tcb" | "ima_appraise_tcb" => appraise_tcb = true,
            "secure_boot" => secure_boot = true,
            "critical_data" => critical_data = true,
            "fail_securely" => fail_securely = true,
            other => {
                return Err(BuiltinPolicyError::UnknownName {
                    name: other.to_string(),
                })
            }
        }
    }
    let mut groups: Vec<&'static [&'static str]> = Vec::new();
    if let Some(kind) = tcb {
        groups.push(DONT_MEASURE);
        groups.push(match kind {
            Tcb::Original => ORIGINAL_MEASUREMENT,
            Tcb::Default => DEFAULT_MEASUREMENT,
        });
    }
    if secure_boot {
        groups.push(SECURE_BOOT);
    }
    if appraise_tcb {
        groups.push(DEFAULT_APPRAISE);
    }
    if critical_data {
        groups.push(CRITICAL_DATA);
    }
    let mut rules = Vec::new();
    for text in groups.into_iter().flatten() {
        let ctx = ParseContext::default();
        let mut rule = match parse_line_in(text, ctx).result {
            Ok(Some(rule)) => rule,
            Ok(None) => return Err(BuiltinPolicyError::EmptyRule { rule: text }),
            Err(source) => return Err(BuiltinPolicyError::BadRule { rule: text, source }),
        };
        // The static tables carry IMA_DIGSIG_REQUIRED without IMA_CHECK_BLACKLIST.
        rule.check_blacklist = false;
        rules.push(rule);
    }
    Ok(BuiltinPolicy {
        rules,
        fail_securely,
    })
}
