fn main() {
    std::process::exit(pmirror_fs::cli::main());
}
