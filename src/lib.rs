//! imafs: a per-container Linux IMA in user space.
//!
//! - [`engine`]: IMA semantics (policy, templates, measurement list, PCR banks, appraisal,
//!   audit) with no FUSE and no syscalls beyond reading files it is handed.
//! - [`fs`]: the two FUSE file systems: the measuring overlay and the securityfs view.
//! - [`sys`]: the small set of `unsafe` system-call wrappers the rest builds on.
//! - [`cli`]: the `imafs` command line.

pub mod cli;
pub mod engine;
pub mod fs;
pub mod sys;
