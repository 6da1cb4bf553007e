//! FUSE file systems served by the daemon.
