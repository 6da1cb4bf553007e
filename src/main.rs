// Input from a container, a policy writer or a file never panics the daemon: no unwrap,
// expect or panic outside tests (errors are returned and logged with context).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// `unsafe` lives only in the library's `sys` module.
#![deny(unsafe_code)]
fn main() -> std::process::ExitCode {
    imafs::sys::malloc::fix_mmap_threshold();
    imafs::cli::main()
}
