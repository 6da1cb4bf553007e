//! FUSE file systems served by the daemon.
pub mod ima_hooks;
pub mod overlay;
