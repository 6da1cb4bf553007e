fn main() -> std::process::ExitCode {
    imafs::cli::main()
}
