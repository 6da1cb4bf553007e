//! System-call wrappers: the only place `unsafe` and raw `libc` calls live.

pub mod fd;
pub mod fsuuid;
pub mod xattr;
