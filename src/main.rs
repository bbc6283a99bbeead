//! The `jitbot` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    jitbot::cli::run(jitbot::cli::Cli::parse())
}
