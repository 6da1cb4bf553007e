//! The C allocator's one setting the daemon needs (glibc `mallopt(3)`).

/// Allocations of at least this many bytes are mapped on their own (`mmap`), so their pages
/// cost memory only once touched, and go back to the system when freed.
const MMAP_THRESHOLD: i32 = 2 << 20;

/// Fix glibc's mmap threshold at [`MMAP_THRESHOLD`] (2 MiB). By default glibc raises it to
/// the size of the largest mapped chunk ever freed (up to 32 MiB): once fuser's 16 MiB
/// read buffer of the INIT handshake is freed, every FUSE worker's 16 MiB read buffer comes
/// from the heap instead, and one was resident in an idle `imafs run` (23.4 MB RSS, 16.5 MB
/// of it heap; 6.1 MB with the threshold fixed). Buffers up to 2 MiB (a FUSE request is at
/// most 1 MiB) stay on the heap. A no-op where the C library is not glibc.
pub fn fix_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets a number in the allocator's state; no pointer is passed
        // and nothing of ours depends on the previous value. It runs first in `main`. A
        // refusal (0) leaves glibc's default, which is only more memory.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    }
}
