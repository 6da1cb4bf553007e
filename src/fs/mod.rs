//! FUSE file systems served by the daemon.
pub mod caller;
pub mod elf;
pub mod ima_hooks;
pub mod mappings;
pub mod nest;
pub mod overlay;
pub mod securityfs;
pub mod session;
pub mod static_tree;
pub mod tpm_sysfs;

impl From<crate::engine::Errno> for fuser::Errno {
    /// The engine's errno as a FUSE reply's: the one conversion at the FUSE boundary.
    fn from(e: crate::engine::Errno) -> fuser::Errno {
        fuser::Errno::from_i32(e.0)
    }
}
