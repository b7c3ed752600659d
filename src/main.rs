//! The `sluice` binary: parses the command line and hands it to [`sluice::cli`].

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
