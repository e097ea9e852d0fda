//! The `sdp` binary: parse the command line, run the command, exit with the contract's code.

fn main() -> std::process::ExitCode {
    sdp::run(std::env::args_os())
}
