//! FUSE file systems served by the daemon.
pub mod caller;
pub mod ima_hooks;
pub mod nest;
pub mod overlay;
pub mod securityfs;
pub mod session;
pub mod static_tree;
pub mod tpm_sysfs;
