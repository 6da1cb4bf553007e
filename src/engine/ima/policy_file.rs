//! The `policy` file: `security/integrity/ima/ima_fs.c` (`ima_open_policy`,
//! `ima_write_policy`, `ima_read_policy` for a `/path` write, `ima_release_policy`) and
//! `ima_policy.c` (`ima_parse_add_rule`, `ima_check_policy`, `ima_update_policy`).

use std::sync::Arc;

use crate::engine::audit::{AuditTask, AUDIT_INTEGRITY_POLICY_RULE, AUDIT_INTEGRITY_STATUS};
use crate::engine::journal::Entry;
use crate::engine::policy::{self, Func, Policy, Rule, Subject};
use crate::engine::Errno;

use super::*;

/// Whether the `policy` file exists and can be written (`ima_fs.c`: `ima_release_policy` removes it or clears `S_IWUSR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyFileState {
    /// Mode 0600 (0200 without READ_POLICY).
    Writable,
    /// Mode 0400: loaded once, WRITE_POLICY off, READ_POLICY on.
    ReadOnly,
    /// Gone from the directory: loaded once, neither WRITE_POLICY nor READ_POLICY.
    Removed,
}

/// How the `policy` file is opened (O_RDONLY, O_WRONLY, O_RDWR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAccess {
    Read,
    Write,
    ReadWrite,
}

/// An open `policy` file. A write session collects rules until [`Ima::policy_release`].
#[derive(Debug)]
pub struct PolicyHandle {
    write: bool,
    /// Rules parsed in this session (the kernel's `ima_temp_rules`).
    rules: Vec<Rule>,
    /// No write in this session failed (the kernel's `valid_policy`).
    valid: bool,
    /// The accepted rule lines, as written (what the journal keeps of a committed load).
    lines: Vec<String>,
    /// The writing process, for audit records (set by the file system after open).
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
}

impl PolicyHandle {
    /// Whether this is a write session.
    pub fn is_write(&self) -> bool {
        self.write
    }

    /// Whether every write so far succeeded.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Rules collected so far.
    pub fn pending_rules(&self) -> &[Rule] {
        &self.rules
    }

    pub(super) fn task(&self) -> AuditTask<'_> {
        AuditTask {
            pid: self.pid,
            uid: self.uid,
            euid: self.uid,
            suid: self.uid,
            fsuid: self.uid,
            comm: self.comm.as_bytes(),
            ..AuditTask::default()
        }
    }
}

/// A policy file read for a `/path` write to the policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFile {
    pub content: Vec<u8>,
    /// Its `security.ima`, if any.
    pub ima_xattr: Option<Vec<u8>>,
}

/// Why [`Ima::load_policy_text`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyLoadError {
    /// 1-based line of the first rejected rule; 0 when no line is to blame (the policy
    /// file is busy or gone, or the text held no rule).
    pub line: usize,
    pub errno: Errno,
}

impl std::fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "policy not loaded: {}", self.errno)
        } else {
            write!(f, "policy line {}: {}", self.line, self.errno)
        }
    }
}

impl std::error::Error for PolicyLoadError {}

impl Ima {
    /// `ima_open_policy`.
    pub fn open_policy(
        &self,
        access: PolicyAccess,
        caller_has_cap_sys_admin: bool,
    ) -> Result<PolicyHandle, Errno> {
        let mut st = self.policy.write();
        if st.file == PolicyFileState::Removed {
            return Err(Errno::ENOENT);
        }
        let write = match access {
            PolicyAccess::Write => true,
            PolicyAccess::Read | PolicyAccess::ReadWrite => {
                if !self.cfg.read_policy || access == PolicyAccess::ReadWrite {
                    return Err(Errno::EACCES);
                }
                if !caller_has_cap_sys_admin {
                    return Err(Errno::EPERM);
                }
                false
            }
        };
        if write {
            if st.busy {
                return Err(Errno::EBUSY);
            }
            st.busy = true;
        }
        Ok(PolicyHandle {
            write,
            rules: Vec::new(),
            lines: Vec::new(),
            valid: true,
            pid: 0,
            uid: 0,
            comm: String::new(),
        })
    }

    /// `ima_write_policy`: one write(2) on the policy file at `offset`. Returns the number
    /// of bytes the kernel reports consumed (`ima_fs.c`: `ima_write_policy`; `ima_policy.c`: `ima_parse_add_rule` returns the first line's length + 1). `loader` reads
    /// the file named by a `/path` write (seen without `security.ima`: use
    /// [`Ima::policy_write_file`] when signed policies must verify).
    pub fn policy_write(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<usize, Errno> {
        self.policy_write_file(h, offset, data, &|path| {
            loader(path).map(|content| PolicyFile {
                content,
                ima_xattr: None,
            })
        })
    }

    /// [`Ima::policy_write`] with a loader that also returns the policy file's
    /// `security.ima`, so `appraise func=POLICY_CHECK` rules can verify its signature.
    pub fn policy_write_file(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        if !h.write {
            return Err(Errno(libc::EBADF));
        }
        let result = self.policy_write_inner(h, offset, data, loader);
        if result.is_err() {
            h.valid = false;
        }
        result
    }

    fn policy_write_inner(
        &self,
        h: &mut PolicyHandle,
        offset: u64,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        // No partial writes.
        if offset != 0 {
            return Err(Errno::EINVAL);
        }
        // PAGE_SIZE - 1 bytes at most, then treated as a NUL-terminated string.
        let data = &data[..data.len().min(4095)];
        let data = match data.iter().position(|&b| b == 0) {
            Some(n) => &data[..n],
            None => data,
        };
        if data.first() == Some(&b'/') {
            return self.load_policy_file(h, data, loader);
        }
        if self.policy.read().signed_policy_required {
            log::error!("signed policy file (specified as an absolute pathname) required");
            self.audit.integrity(
                AUDIT_INTEGRITY_STATUS,
                &|| h.task(),
                "policy_update",
                "signed policy required",
                None,
                None,
                1,
                false,
            );
            return Err(Errno::EACCES);
        }
        let line = match data.iter().position(|&b| b == b'\n') {
            Some(n) => &data[..n],
            None => data,
        };
        self.parse_add_rule(h, line)
    }

    /// `ima_parse_add_rule` for one line (without its newline): returns `len + 1`.
    fn parse_add_rule(&self, h: &mut PolicyHandle, line: &[u8]) -> Result<usize, Errno> {
        let len = line.len() + 1;
        let text = String::from_utf8_lossy(line);
        let trimmed = text.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(len);
        }
        // Unresolvable LSM labels are accepted (never matching) once a custom policy is active.
        let ctx = policy::ParseContext {
            custom_policy_active: self.policy.read().custom_loaded,
        };
        let parsed = policy::parse_line_in(trimmed, ctx);
        if let Some(body) = &parsed.audit {
            self.audit.emit(AUDIT_INTEGRITY_POLICY_RULE, body);
        }
        match parsed.result {
            Ok(Some(rule)) => {
                if let Some(max) = self.cfg.max_rules {
                    let st = self.policy.read();
                    let in_force = if st.custom_loaded {
                        st.active.rules().len()
                    } else {
                        0
                    };
                    drop(st);
                    if in_force + h.rules.len() >= max {
                        log::warn!("ima: policy rule refused: the namespace holds {max} rules");
                        self.audit.integrity(
                            AUDIT_INTEGRITY_STATUS,
                            &|| h.task(),
                            "update_policy",
                            "-ENOMEM",
                            None,
                            None,
                            -libc::ENOMEM,
                            false,
                        );
                        h.valid = false;
                        return Err(Errno::ENOMEM);
                    }
                }
                h.rules.push(rule);
                h.lines.push(trimmed.to_string());
                Ok(len)
            }
            Ok(None) => Ok(len),
            Err(e) => {
                log::debug!("policy rule rejected: {}", e.reason);
                self.audit.integrity(
                    AUDIT_INTEGRITY_STATUS,
                    &|| h.task(),
                    "update_policy",
                    "invalid-policy",
                    None,
                    None,
                    -e.errno.0,
                    false,
                );
                Err(e.errno)
            }
        }
    }

    /// `ima_read_policy`: a write starting with `/` names a policy file to load.
    fn load_policy_file(
        &self,
        h: &mut PolicyHandle,
        data: &[u8],
        loader: &dyn Fn(&str) -> std::io::Result<PolicyFile>,
    ) -> Result<usize, Errno> {
        let written = data.len();
        let path_bytes = match data.iter().position(|&b| b == b'\n') {
            Some(n) => &data[..n],
            None => data,
        };
        let path = String::from_utf8_lossy(path_bytes).into_owned();
        let file = loader(&path).map_err(|e| {
            log::error!("Unable to open file: {path} ({})", -errno_of(&e).0);
            errno_of(&e)
        })?;
        // The kernel measures and appraises the file as it reads it (READING_POLICY).
        let subject = Subject {
            uid: h.uid,
            euid: h.uid,
            suid: h.uid,
            ..Subject::default()
        };
        self.process_read_buffer(
            Func::PolicyCheck,
            path.as_bytes(),
            &file,
            &subject,
            &h.task(),
        )
        .inspect_err(|e| log::error!("Unable to open file: {path} ({})", -e.0))?;
        let content = file.content;

        // Every line's `len + 1` is subtracted from the size; anything left is EINVAL.
        let mut remaining = content.len() as i64;
        let mut rest: &[u8] = &content;
        while remaining > 0 {
            let (line, next, last) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => (&rest[..n], &rest[n + 1..], false),
                None => (rest, &rest[rest.len()..], true),
            };
            // A NUL inside a line ends the string the kernel sees.
            let line = match line.iter().position(|&b| b == 0) {
                Some(n) => &line[..n],
                None => line,
            };
            let n = self.parse_add_rule(h, line)?;
            remaining -= n as i64;
            rest = next;
            if last {
                break;
            }
        }
        if remaining != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(written)
    }

    /// `ima_release_policy`: commit or discard a write session. Returns whether a write
    /// session's rules were committed (close(2) itself always succeeds).
    pub fn policy_release(&self, h: PolicyHandle) -> bool {
        if !h.write {
            return false;
        }
        let mut valid = h.valid;
        // ima_check_policy: a session that collected no rule fails.
        if valid && h.rules.is_empty() {
            valid = false;
        }
        // Journaled before it is committed; one write session at a time (busy), so journal
        // order is commit order. A load that cannot be journaled fails.
        if valid {
            if let Err(errno) = self.journal(&Entry::Policy(h.lines.join("\n"))) {
                log::error!("ima: policy update cannot be journaled: {errno}");
                valid = false;
            }
        }
        let cause = if valid { "completed" } else { "failed" };
        log::info!("ima: policy update {cause}");
        self.audit.integrity(
            AUDIT_INTEGRITY_STATUS,
            &|| h.task(),
            "policy_update",
            cause,
            None,
            None,
            i32::from(!valid),
            false,
        );
        let mut st = self.policy.write();
        if !valid {
            st.busy = false;
            return false;
        }
        self.commit_rules(&mut st, h.rules);
        true
    }

    /// `ima_update_policy`: the first load replaces the built-in rules, later ones append.
    pub(super) fn commit_rules(&self, st: &mut PolicyState, rules: Vec<Rule>) {
        let mut next = if st.custom_loaded {
            (*st.active).clone()
        } else {
            Policy::new(Vec::new())
        };
        next.extend(rules);
        st.signed_policy_required |= next.requires_signed_policy();
        st.active = Arc::new(next);
        st.custom_loaded = true;
        match (self.cfg.write_policy, self.cfg.read_policy) {
            (true, _) => st.busy = false,
            // The busy flag stays set: later write opens get EBUSY.
            (false, true) => {
                st.busy = true;
                st.file = PolicyFileState::ReadOnly;
            }
            (false, false) => st.file = PolicyFileState::Removed,
        }
    }

    /// Load a whole policy text the way `cat FILE > .../ima/policy` does: one write
    /// session, each write(2) at offset 0 with what the previous one left, committed at
    /// close. Lines starting with `/` load that file through `loader`. On failure nothing is
    /// committed and the error names the first rejected line (1-based; 0 when the session
    /// could not be opened or held no rule).
    pub fn load_policy_text(
        &self,
        text: &str,
        loader: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<(), PolicyLoadError> {
        let mut h = self
            .open_policy(PolicyAccess::Write, true)
            .map_err(|errno| PolicyLoadError { line: 0, errno })?;
        let mut rest = text.as_bytes();
        let mut line = 1;
        let mut first_error = None;
        while !rest.is_empty() {
            match self.policy_write(&mut h, 0, rest, loader) {
                Ok(n) => rest = &rest[n.min(rest.len())..],
                Err(errno) => {
                    first_error.get_or_insert(PolicyLoadError { line, errno });
                    // Skip the bad line as a writer that keeps going would.
                    let n = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                    rest = &rest[n..];
                }
            }
            line += 1;
        }
        let committed = self.policy_release(h);
        match first_error {
            Some(e) => Err(e),
            None if !committed => Err(PolicyLoadError {
                line: 0,
                errno: Errno::EINVAL,
            }),
            None => Ok(()),
        }
    }
}
