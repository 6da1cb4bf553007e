fn main() {
    eprintln!("mount-helper: no subcommand yet");
    std::process::exit(2);
}
