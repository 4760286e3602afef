//! Exit codes, and the one place that maps a failure to its code and its
//! message.

use std::path::PathBuf;
use std::process::ExitCode;

use millpond::Error;

/// The exit codes scripts can rely on (listed in `millpond --help` and the
/// README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Success.
    Success = 0,
    /// The operation failed (I/O error, bad state).
    Failed = 1,
    /// Bad arguments (clap exits with 2 for its own usage errors too).
    Usage = 2,
    /// No broker at the path; unknown topic, group or partition.
    NotFound = 3,
    /// Another process holds the writer lock a command needs.
    Locked = 4,
    /// Damaged data found.
    Damage = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The library refused. `writer` says, for a command that needs the
    /// writer lock, what it would do (for the `Locked` message).
    Millpond {
        /// The error.
        error: Error,
        /// What the command does through the writer, if it needs it.
        writer: Option<&'static str>,
    },
    /// A bad argument the parser could not see.
    Usage(String),
    /// Something asked for is not there.
    NotFound(String),
    /// The command ran to its end and found damage (its report is printed).
    Damage(String),
    /// Reading stdin, writing stdout or another I/O outside the library.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Whoever read stdout stopped reading (`| head`): not a failure.
    BrokenPipe,
}

impl From<Error> for CliError {
    fn from(error: Error) -> CliError {
        CliError::Millpond { error, writer: None }
    }
}

impl CliError {
    /// An I/O error writing the output: a closed pipe ends the command quietly.
    pub(crate) fn output(source: std::io::Error) -> CliError {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Io { what: "write to standard output".into(), source }
        }
    }

    /// A `Result` mapper for a command that needs the writer lock to `action`.
    pub(crate) fn needing_writer(action: &'static str) -> impl Fn(Error) -> CliError {
        move |error| CliError::Millpond { error, writer: Some(action) }
    }

    /// The exit code.
    pub(crate) fn exit(&self) -> Exit {
        match self {
            CliError::Millpond { error, .. } => exit_of(error),
            CliError::Usage(_) => Exit::Usage,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Damage(_) => Exit::Damage,
            CliError::Io { .. } => Exit::Failed,
            CliError::BrokenPipe => Exit::Success,
        }
    }

    /// What to tell the user on stderr (`None`: nothing).
    pub(crate) fn message(&self) -> Option<String> {
        Some(match self {
            CliError::Millpond { error: Error::Locked { path }, writer } => locked_message(path, *writer),
            CliError::Millpond { error, .. } => error.to_string(),
            CliError::Usage(m) | CliError::NotFound(m) | CliError::Damage(m) => m.clone(),
            CliError::Io { what, source } => format!("cannot {what}: {source}"),
            CliError::BrokenPipe => return None,
        })
    }
}

/// The exit code of each library error.
pub(crate) fn exit_of(error: &Error) -> Exit {
    match error {
        Error::BrokerNotFound { .. }
        | Error::UnknownTopic { .. }
        | Error::GroupNotFound { .. }
        | Error::InvalidPartition { .. } => Exit::NotFound,
        Error::Locked { .. } => Exit::Locked,
        Error::Corrupt { .. } | Error::CorruptMetadata { .. } | Error::TopicDamaged { .. } => Exit::Damage,
        Error::InvalidName { .. } | Error::InvalidConfig { .. } => Exit::Usage,
        _ => Exit::Failed,
    }
}

/// The message for a directory whose writer lock another process holds.
fn locked_message(lock: &std::path::Path, writer: Option<&'static str>) -> String {
    let path = PathBuf::from(lock);
    match writer {
        Some(action) => {
            format!(
                "another process holds the broker's writer lock ({}); stop it or {action} through it",
                path.display()
            )
        }
        None => format!("another process holds the broker's writer lock ({})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_error_that_scripts_branch_on_has_its_own_code() {
        let path = PathBuf::from("/x");
        assert_eq!(exit_of(&Error::BrokerNotFound { path: path.clone() }), Exit::NotFound);
        assert_eq!(exit_of(&Error::UnknownTopic { topic: "t".into() }), Exit::NotFound);
        assert_eq!(exit_of(&Error::GroupNotFound { topic: "t".into(), group: "g".into() }), Exit::NotFound);
        assert_eq!(exit_of(&Error::Locked { path: path.clone() }), Exit::Locked);
        let corrupt =
            Error::Corrupt { topic: "t".into(), partition: 0, path, position: 64, reason: "frame CRC mismatch".into() };
        assert_eq!(exit_of(&corrupt), Exit::Damage);
        assert_eq!(exit_of(&Error::Closed), Exit::Failed);
    }

    #[test]
    fn the_locked_message_says_who_holds_the_lock_and_what_to_do() {
        let e = CliError::Millpond {
            error: Error::Locked { path: PathBuf::from("/data/millpond.lock") },
            writer: Some("produce"),
        };
        assert_eq!(e.exit(), Exit::Locked);
        assert_eq!(
            e.message().as_deref(),
            Some("another process holds the broker's writer lock (/data/millpond.lock); stop it or produce through it")
        );
        assert_eq!(CliError::BrokenPipe.message(), None);
        assert_eq!(CliError::BrokenPipe.exit(), Exit::Success);
    }
}
