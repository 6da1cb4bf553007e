//! The engine options shared by `imafs run` and `imafs serve` (the CLI contract's common
//! options): the boot-time configuration of one IMA instance, as the kernel's command line
//! (`ima_hash=`, `ima_template=`, `ima_policy=`, `ima_appraise=`) and Kconfig
//! (`CONFIG_IMA_READ_POLICY`, `CONFIG_IMA_WRITE_POLICY`) would give it.

use std::io;
use std::path::{Path, PathBuf};

use crate::engine::children::ChildConfig;
use crate::engine::hash::HashAlgo;
use crate::engine::ima::{AppraiseMode, Backing, Config, Ima};
use crate::engine::journal::Journal;
use crate::engine::policy::Subject;
use crate::engine::tpm::Tpm;
use crate::fs::nest::child::NestError;
use crate::fs::nest::ParentLink;

/// Engine options (`#[command(flatten)]` them into a subcommand).
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Policy text in kernel syntax, loaded as a first write of the `policy` file would.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Built-in policies like ima_policy= (tcb, appraise_tcb, secure_boot, critical_data,
    /// fail_securely), comma or `|` separated; default tcb.
    #[arg(long, value_name = "NAME[,NAME]", default_value = "tcb")]
    pub policy_builtin: String,
    /// Default template (ima_template=), or a format string (ima_template_fmt=).
    #[arg(long, default_value = "ima-ng")]
    pub template: String,
    /// File hash algorithm (ima_hash=).
    #[arg(long, default_value = "sha256")]
    pub hash: String,
    /// The emulated TPM's PCR banks, in TPM order (an empty value: no TPM). Files exist for
    /// these and for sha1.
    #[arg(long, value_name = "ALG[,ALG]", default_value = "sha1,sha256")]
    pub banks: String,
    /// PCR that measurements extend (CONFIG_IMA_MEASURE_PCR_IDX).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(8..=14))]
    pub pcr: u32,
    /// Appraisal mode (ima_appraise=): enforce, fix, log, off.
    #[arg(long, value_name = "MODE", default_value = "off")]
    pub appraise: String,
    /// X.509 certificate file (DER or PEM) or directory of them, for the IMA keyring.
    #[arg(long, value_name = "PATH")]
    pub keys: Vec<PathBuf>,
    /// The lower file's xattr holding IMA data. Default: `security.ima` when the daemon is
    /// root, `user.ima` (what `evmctl --xattr-user` writes) otherwise or with `imafs run
    /// --userns always`, since a daemon that is unprivileged or in a user namespace cannot
    /// write `security.*` on the host. The container always sees
    /// `security.ima`; the overlay maps it onto this name.
    #[arg(long, value_name = "NAME")]
    pub ima_xattr: Option<String>,
    /// Append the kernel-format audit records to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Informational audit records too (integrity_audit=1).
    #[arg(long)]
    pub integrity_audit: bool,
    /// Kernel without CONFIG_IMA_READ_POLICY: `policy` is write-only (0200).
    #[arg(long)]
    pub no_read_policy: bool,
    /// Kernel without CONFIG_IMA_WRITE_POLICY: the policy can be loaded once.
    #[arg(long)]
    pub single_policy_write: bool,
    /// Keep the list, PCRs, violations and policy in DIR's journal and continue them when
    /// restarted with the same DIR (README "Persistence (--state)"). DIR is locked: one
    /// daemon at a time.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// fdatasync every journal entry before it becomes visible (survives power loss, not
    /// only a daemon crash).
    #[arg(long, requires = "state")]
    pub state_sync: bool,
    /// Extend a TPM 2.0 too and compute boot_aggregate from its PCRs: `swtpm:SOCKET`,
    /// `swtpm:host=H,port=P`, or a device (`/dev/tpmrm0`). Its banks replace --banks.
    #[arg(long, value_name = "SPEC")]
    pub tpm: Option<String>,
    /// Share the --tpm TPM with an attestation agent: serve a swtpm-style socket at PATH
    /// (and PATH.ctrl), or on TCP with `host=H,port=P` (and P+1), whose commands pass one at
    /// a time with the daemon's own extends (TCTI `swtpm:path=PATH` or
    /// `swtpm:host=H,port=P`). Changes of the IMA PCR by clients are refused.
    #[arg(long, value_name = "PATH|host=H,port=P", requires = "tpm")]
    pub tpm_share: Option<String>,
    /// Start the namespace inactive, as in the user-namespace IMA series: nothing of its
    /// own is measured, appraised or audited until `1` is written to
    /// `integrity/ima/active`; its policy and keys can be set before that.
    #[arg(long)]
    pub inactive: bool,
    /// Inside a container that imafs serves, do not become its child namespace: the
    /// daemon's reads are then measured in the parent as any process's (README
    /// "Namespaces").
    #[arg(long)]
    pub no_nest: bool,
    /// Most policy rules the namespace may hold (ENOMEM beyond). Default: no limit, 1024
    /// in a child namespace.
    #[arg(long, value_name = "N")]
    pub max_rules: Option<usize>,
    /// Most bytes of measurement list (binary sha1 view; ENOMEM, audited, beyond).
    /// Default: no limit, 64 MiB in a child namespace.
    #[arg(long, value_name = "BYTES")]
    pub max_list_bytes: Option<u64>,
    /// Initial policy text staged by the parent's `policy_for_children` (replaces
    /// `--policy`).
    #[arg(skip)]
    pub policy_text: Option<String>,
    /// Certificates staged by the parent's `x509_for_children` (besides `--keys`).
    #[arg(skip)]
    pub key_blobs: Vec<Vec<u8>>,
}

/// Default limits of a child namespace (`--max-rules`, `--max-list-bytes`).
pub const CHILD_MAX_RULES: usize = 1024;
pub const CHILD_MAX_LIST_BYTES: u64 = 64 << 20;

fn algo(name: &str, what: &str) -> Result<HashAlgo, String> {
    HashAlgo::from_name(name).ok_or_else(|| format!("{what} {name}: unknown algorithm"))
}

impl EngineArgs {
    /// The engine configuration these options describe.
    pub fn to_config(&self) -> Result<Config, String> {
        let appraise = match self.appraise.as_str() {
            "enforce" => AppraiseMode::Enforce,
            "fix" => AppraiseMode::Fix,
            "log" => AppraiseMode::Log,
            "off" => AppraiseMode::Off,
            other => return Err(format!("--appraise {other}: enforce, fix, log or off")),
        };
        let banks = self
            .banks
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| algo(b, "--banks"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            hash: algo(&self.hash, "--hash")?,
            template: self.template.clone(),
            banks,
            pcr: self.pcr,
            builtin_policy: self
                .policy_builtin
                .split([',', '|'])
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
            read_policy: !self.no_read_policy,
            write_policy: !self.single_policy_write,
            appraise,
            audit_file: self.audit.clone(),
            integrity_audit: self.integrity_audit,
            active: !self.inactive,
            max_rules: self.max_rules,
            max_list_bytes: self.max_list_bytes,
            ..Config::default()
        })
    }

    /// The lower xattr name for IMA data (`--ima-xattr`, or the default for this daemon).
    pub fn ima_xattr_name(&self) -> String {
        match &self.ima_xattr {
            Some(name) => name.clone(),
            // Root that will not need a user namespace (see `UserNamespace::Auto`).
            None if rustix::process::geteuid().is_root() && mount_helper::ns::has_sys_admin() => {
                "security.ima".to_owned()
            }
            None => "user.ima".to_owned(),
        }
    }

    /// The engine with these options, its keys added and the `--policy` file loaded.
    pub fn build(&self) -> Result<Ima, String> {
        self.build_restoring(None)
    }

    /// [`EngineArgs::build`], continuing a saved binary list (`saved`: the content of
    /// `binary_runtime_measurements_<bank>` and that bank) as a restarted daemon would: the
    /// records are restored and the PCRs re-extended, no new boot aggregate.
    pub fn build_restoring(&self, saved: Option<(&[u8], HashAlgo)>) -> Result<Ima, String> {
        let cfg = self.to_config()?;
        let ima = match saved {
            Some(_) if self.state.is_some() || self.tpm.is_some() => {
                return Err(
                    "a saved list cannot be restored with --state or --tpm (the state \
                     directory restores its own list)"
                        .to_string(),
                )
            }
            Some((bytes, bank)) => {
                Ima::with_saved_list(cfg, bytes, bank, false).map_err(|e| e.to_string())?
            }
            None => Ima::with_backing(cfg, self.backing()?).map_err(|e| e.to_string())?,
        };
        for path in &self.keys {
            add_keys_from(&ima, path)?;
        }
        for (i, cert) in self.key_blobs.iter().enumerate() {
            ima.add_keys(cert, &Subject::default())
                .map_err(|e| format!("x509_for_children certificate {}: {e}", i + 1))?;
        }
        if let Some(text) = &self.policy_text {
            if self.state.is_some() && ima.custom_policy_loaded() {
                log::warn!(
                    "policy_for_children: not loaded, the state directory's policy is in force"
                );
            } else {
                load_policy(&ima, text).map_err(|e| format!("policy_for_children: {e}"))?;
            }
        } else if let Some(path) = &self.policy {
            if self.state.is_some() && ima.custom_policy_loaded() {
                // Loading it again would append its rules a second time.
                log::warn!(
                    "--policy {}: not loaded, the state directory's policy is in force",
                    path.display()
                );
            } else {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--policy {}: {e}", path.display()))?;
                load_policy(&ima, &text)?;
            }
        }
        // The keys the namespace starts with are its early-boot keys: measured under its
        // initial policy (engine/ima/keys.rs).
        if !self.keys.is_empty() || !self.key_blobs.is_empty() {
            ima.measure_keyring();
        }
        Ok(ima)
    }

    /// Apply what the parent namespace staged with `*_for_children` (handed over when this
    /// daemon registered as its child): the kcmd options override the matching engine
    /// options, the policy replaces `--policy`, the certificate joins `--keys`.
    pub fn apply_child_config(&mut self, cfg: &ChildConfig) -> Result<(), String> {
        for (name, value) in &cfg.kcmd {
            match name.as_str() {
                "ima_appraise" => self.appraise = value.clone(),
                "ima_policy" => self.policy_builtin = value.clone(),
                "ima_template" | "ima_template_fmt" => self.template = value.clone(),
                "ima_hash" => self.hash = value.clone(),
                other => return Err(format!("kcmd_for_children: {other}: unknown option")),
            }
        }
        if let Some(policy) = &cfg.policy {
            self.policy_text = Some(policy.clone());
        }
        self.key_blobs.extend(cfg.x509.iter().cloned());
        // Fail now, not after the mounts, if the result is not a valid configuration.
        self.to_config().map(|_| ())
    }

    /// Register as a child of the namespace serving this container, if any (unless
    /// `--no-nest`), and apply what the parent staged for its next child.
    pub fn join_parent(&mut self) -> Result<Option<std::sync::Arc<ParentLink>>, String> {
        if self.no_nest {
            return Ok(None);
        }
        let detected = ParentLink::detect().map_err(|e| match e {
            NestError::Register(_) => format!(
                "{e} (run as the container's root, or pass --no-nest to be measured as a \
                 plain process of the container)"
            ),
            e => e.to_string(),
        })?;
        match detected {
            Some((link, staged)) => {
                // A child must not be able to exhaust its parent's daemon.
                self.max_rules.get_or_insert(CHILD_MAX_RULES);
                self.max_list_bytes.get_or_insert(CHILD_MAX_LIST_BYTES);
                self.apply_child_config(&staged)
                    .map_err(|e| format!("configuration staged by the parent: {e}"))?;
                Ok(Some(std::sync::Arc::new(link)))
            }
            None => Ok(None),
        }
    }

    /// Open `--state` (reporting a cut torn tail on stderr) and `--tpm`.
    pub fn backing(&self) -> Result<Backing, String> {
        let mut backing = Backing::default();
        if let Some(dir) = &self.state {
            let (journal, recovery) =
                Journal::open(dir, self.state_sync).map_err(|e| e.to_string())?;
            if let Some(torn) = &recovery.torn {
                eprintln!(
                    "imafs: journal {}: torn tail at offset {}: {} bytes cut ({}); {} entries kept",
                    recovery.path.display(),
                    torn.offset,
                    torn.bytes,
                    torn.reason,
                    recovery.entries.len()
                );
            }
            backing.journal = Some(journal);
            backing.replay = recovery.entries;
        }
        if let Some(spec) = &self.tpm {
            // The engine names the TPM; the user knows it as the option.
            let tpm = Tpm::open(spec).map_err(|e| format!("--tpm {}: {}", e.spec, e.reason))?;
            if let Some(spec) = &self.tpm_share {
                use crate::engine::tpm_share;
                tpm_share::ShareAddr::parse(spec)
                    .and_then(|addr| tpm_share::serve(&addr, tpm.link(), self.pcr))
                    .map_err(|e| format!("--tpm-share {e}"))?;
            }
            backing.tpm = Some(tpm);
        }
        Ok(backing)
    }
}

/// Add the certificate at `path`, or every certificate in the directory `path`.
fn add_keys_from(ima: &Ima, path: &Path) -> Result<(), String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("--keys {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| format!("--keys {}: {e}", file.display()))?;
        ima.add_keys(&bytes, &Subject::default())
            .map_err(|e| format!("--keys {}: {e}", file.display()))?;
    }
    Ok(())
}

/// Load a policy text as a write session of the `policy` file would (the first custom
/// policy replaces the built-in rules). Errors name the first bad line and its reason, as
/// `imafs policy check` does.
pub fn load_policy(ima: &Ima, text: &str) -> Result<(), String> {
    crate::engine::policy::parse_text(text)
        .map_err(|(line, e)| format!("policy line {line}: {e}"))?;
    let no_files = |path: &str| -> io::Result<Vec<u8>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{path}: give the policy file itself to --policy"),
        ))
    };
    ima.load_policy_text(text, &no_files)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        e: EngineArgs,
    }

    #[test]
    fn defaults_match_the_kernel_defaults_we_model() {
        let cfg = T::parse_from(["t"]).e.to_config().expect("config");
        assert_eq!(cfg.hash, HashAlgo::Sha256);
        assert_eq!(cfg.banks, [HashAlgo::Sha1, HashAlgo::Sha256]);
        assert_eq!(cfg.builtin_policy, ["tcb"]);
        assert!(cfg.read_policy && cfg.write_policy);
        assert_eq!(cfg.appraise, AppraiseMode::Off);
    }

    #[test]
    fn options_map_to_config() {
        let t = T::parse_from([
            "t",
            "--hash",
            "sha512",
            "--banks",
            "sha256",
            "--policy-builtin",
            "tcb|critical_data",
            "--appraise",
            "log",
            "--no-read-policy",
            "--single-policy-write",
            "--pcr",
            "11",
        ]);
        let cfg = t.e.to_config().expect("config");
        assert_eq!(cfg.hash, HashAlgo::Sha512);
        assert_eq!(cfg.banks, [HashAlgo::Sha256]);
        assert_eq!(cfg.builtin_policy, ["tcb", "critical_data"]);
        assert_eq!(cfg.appraise, AppraiseMode::Log);
        assert_eq!(cfg.pcr, 11);
        assert!(!cfg.read_policy && !cfg.write_policy);
        let bad = T::parse_from(["t", "--appraise", "sometimes"])
            .e
            .to_config();
        assert!(bad.is_err());
        let bad = T::parse_from(["t", "--banks", "sha1,nope"]).e.to_config();
        assert!(bad.is_err());
    }

    #[test]
    fn child_config_overrides_the_child_options() {
        let mut args = T::parse_from(["t", "--hash", "sha1", "--appraise", "off"]).e;
        let staged = ChildConfig {
            policy: Some("measure func=BPRM_CHECK\n".into()),
            x509: Vec::new(),
            kcmd: crate::engine::children::parse_kcmd(
                "ima_hash=sha512 ima_appraise=log ima_template=ima-sig ima_policy=critical_data",
            )
            .expect("kcmd"),
        };
        args.apply_child_config(&staged).expect("apply");
        let cfg = args.to_config().expect("config");
        assert_eq!(cfg.hash, HashAlgo::Sha512);
        assert_eq!(cfg.appraise, AppraiseMode::Log);
        assert_eq!(cfg.template, "ima-sig");
        assert_eq!(cfg.builtin_policy, ["critical_data"]);
        let ima = args.build().expect("engine");
        assert_eq!(ima.policy_text(), "measure func=BPRM_CHECK \n");
        let bad_cert = ChildConfig {
            x509: vec![b"not a certificate".to_vec()],
            ..ChildConfig::default()
        };
        let mut args = T::parse_from(["t"]).e;
        args.apply_child_config(&bad_cert)
            .expect("staged bytes are checked at build");
        assert!(args.build().is_err());
        let inactive = T::parse_from(["t", "--inactive"])
            .e
            .to_config()
            .expect("config");
        assert!(!inactive.active);
    }
}
