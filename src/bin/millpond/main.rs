//! `millpond`: Kafka's operator tools for one millpond broker directory.
//!
//! `topics`, `describe`, `consume`, `produce`, `groups`, `group
//! reset-offsets`, `dump` and `verify`, built on the crate's public API
//! only. Tables for people, `--json` for scripts, and exit codes scripts
//! can rely on (`millpond --help`, and the README's "The millpond
//! command-line tool"). Each subcommand lives in a file of its own; the
//! exit codes and the messages of failures in `exit.rs`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod cli;
mod consume;
mod describe;
mod dump;
mod exit;
mod groups;
mod json_bytes;
mod open;
mod output;
mod position;
mod produce;
mod progress;
mod reset_offsets;
mod signals;
mod time;
mod topics;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, GroupCommand};
use crate::exit::{CliError, Exit};
use crate::output::Out;

/// Tells the user something on stderr that is not an error (a summary).
pub(crate) fn note(message: &str) {
    eprintln!("millpond: {message}");
}

/// Warns on stderr; the command goes on.
pub(crate) fn warn(message: &str) {
    eprintln!("millpond: warning: {message}");
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors: clap prints them and exits with 2
    let mut out = Out::stdout();
    let result = run(&cli, &mut out).and_then(|()| out.flush());
    match result {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            // Whatever was printed before the failure goes out first.
            let flushed = out.flush();
            let e = match flushed {
                Err(CliError::BrokenPipe) | Ok(()) => e,
                Err(other) if matches!(e, CliError::BrokenPipe) => other,
                Err(_) => e,
            };
            if let Some(message) = e.message() {
                eprintln!("millpond: error: {message}");
            }
            e.exit().into()
        }
    }
}

/// The broker directory from `--dir` or `MILLPOND_DIR`.
fn dir(cli: &Cli) -> Result<&Path, CliError> {
    cli.dir.as_deref().filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| {
        CliError::Usage("this command needs a broker directory: pass --dir DIR or set MILLPOND_DIR".into())
    })
}

fn run(cli: &Cli, out: &mut Out) -> Result<(), CliError> {
    let json = cli.json;
    match &cli.command {
        Command::Topics => topics::run(&open::open_for_reading(dir(cli)?)?, json, out),
        Command::Describe { topic } => describe::run(&open::open_for_reading(dir(cli)?)?, topic, json, out),
        Command::Consume(args) => consume::run(&open::open_for_reading(dir(cli)?)?, args, json, out),
        Command::Produce(args) => produce::run(dir(cli)?, args, std::io::stdin().lock(), json, out),
        Command::Groups(args) => groups::run(&open::open_for_reading(dir(cli)?)?, args, json, out),
        Command::Group { command: GroupCommand::ResetOffsets(args) } => reset_offsets::run(dir(cli)?, args, json, out),
        Command::Dump(args) => dump::run(args, json, out),
        Command::Verify => verify::run(&open::open_for_reading(dir(cli)?)?, json, out),
    }
}
