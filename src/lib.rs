//! imafs: a per-container Linux IMA in user space.
//!
//! - [`engine`]: IMA semantics (policy, templates, measurement list, PCR banks, appraisal,
//!   audit) with no FUSE and no syscalls beyond reading files it is handed.
//! - [`fs`]: the two FUSE file systems: the measuring overlay and the securityfs view.
//! - [`sys`]: the small set of `unsafe` system-call wrappers the rest builds on.
//! - [`cli`]: the `imafs` command line.
// Input from a container, a policy writer or a file never panics the daemon: no unwrap,
// expect or panic outside tests (errors are returned and logged with context).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// `unsafe` lives only in `sys`, which allows it (and requires a `// SAFETY:` comment on
// every block).
#![deny(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod fs;
#[allow(unsafe_code)]
pub mod sys;
