//! The IMA engine: everything the kernel's `security/integrity/ima/` does, in-process.

pub mod hash;
pub mod log;
pub mod pcr;
pub mod policy;
pub mod template;
