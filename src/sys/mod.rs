//! System-call wrappers: the only place `unsafe` and raw `libc` calls live.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fd;
pub mod fsuuid;
pub mod malloc;
pub mod xattr;
