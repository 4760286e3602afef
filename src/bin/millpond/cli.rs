//! The command line: every subcommand, option and help text, derived with
//! clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::position::Position;

/// What `millpond --help` says about exit codes (also in the README).
const EXIT_CODES: &str = "\
Exit codes:
  0  success (also when a reader of stdout, such as `head`, closes it early)
  1  the operation failed (I/O error, bad state)
  2  usage error (bad arguments, no --dir, an invalid topic or group name)
  3  not found: no broker at --dir, unknown topic, group or partition
  4  another process holds the broker's writer lock (produce, group reset-offsets)
  5  damaged data found (verify, dump, or any command reading it)

The broker directory comes from --dir or the MILLPOND_DIR environment variable.";

/// Kafka's operator tools for one millpond broker directory.
#[derive(Debug, Parser)]
#[command(name = "millpond", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// The broker directory.
    #[arg(long, global = true, env = "MILLPOND_DIR", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Print JSON for scripts instead of tables for people.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the topics: partitions, records, bytes.
    Topics,
    /// Show one topic: its partitions' offsets, segments and bytes, and its config.
    Describe {
        /// The topic.
        topic: String,
    },
    /// Print a topic's records.
    Consume(ConsumeArgs),
    /// Send the lines of standard input to a topic, one record per line.
    Produce(ProduceArgs),
    /// List consumer groups: committed offset, high watermark and lag per partition.
    Groups(GroupsArgs),
    /// Change a consumer group.
    Group {
        /// What to change.
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Print every frame of one segment file (like kafka-dump-log); needs no --dir.
    Dump(DumpArgs),
    /// Check every frame of every segment of every topic.
    Verify,
}

/// `consume`'s options.
#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// The topic.
    pub(crate) topic: String,
    /// Where to start in each partition: earliest, latest, an offset
    /// (kept within each partition's log), an RFC 3339 time
    /// (2026-12-01T10:00:00Z) or a time before now (-5m, -2h, -1d, -30s).
    #[arg(long, default_value = "earliest", value_name = "POSITION", allow_hyphen_values = true)]
    pub(crate) from: Position,
    /// Read only this partition.
    #[arg(long, value_name = "N")]
    pub(crate) partition: Option<u32>,
    /// Keep printing new records until interrupted (SIGINT, SIGTERM) or --max.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub(crate) max: Option<u64>,
    /// text: partition, offset, timestamp, key, value, tab-separated (lossy
    /// UTF-8); raw: the value's bytes and a newline; json: one object per
    /// record. Default text (json with --json).
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
}

/// How `consume` prints a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// `<partition>\t<offset>\t<timestamp>\t<key>\t<value>`, lossy UTF-8.
    Text,
    /// One JSON object per line.
    Json,
    /// The value's exact bytes, then a newline.
    Raw,
}

/// `produce`'s options.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The topic (it must exist).
    pub(crate) topic: String,
    /// Split each line at the first occurrence of this string: the key
    /// before it, the value after it (a line without it has no key).
    #[arg(long, value_name = "S")]
    pub(crate) key_separator: Option<String>,
    /// Send every record to this partition (default: by key, else one
    /// partition per batch of lines, as the producer picks).
    #[arg(long, value_name = "N")]
    pub(crate) partition: Option<u32>,
}

/// `groups`' options.
#[derive(Debug, Args)]
pub(crate) struct GroupsArgs {
    /// Only this topic's groups.
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// Only this group.
    #[arg(long)]
    pub(crate) group: Option<String>,
}

/// The `group` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Move a group's committed offsets (needs the writer lock: no process
    /// may have the broker open).
    ResetOffsets(ResetArgs),
}

/// `group reset-offsets`' options.
#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// The group.
    pub(crate) group: String,
    /// The topic whose offsets to move.
    #[arg(long)]
    pub(crate) topic: String,
    /// earliest, latest, an offset (kept within each partition's log), an
    /// RFC 3339 time or a time before now (-5m): the first record at or
    /// after it.
    #[arg(long, value_name = "POSITION", allow_hyphen_values = true)]
    pub(crate) to: Position,
    /// Only these partitions (repeat the option; default all).
    #[arg(long, value_name = "N")]
    pub(crate) partition: Vec<u32>,
}

/// `dump`'s options.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The segment file (`<base>.log`).
    pub(crate) file: PathBuf,
    /// Also print each record: offset, timestamp, key and value lengths and
    /// the start of each.
    #[arg(long)]
    pub(crate) records: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
