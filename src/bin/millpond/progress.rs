//! A one-line progress display on stderr, shown only when stderr is a
//! terminal (never in a pipe, a file or a test), redrawn at most ten times
//! a second and erased when the work is done.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const EVERY: Duration = Duration::from_millis(100);
/// Characters of the bar.
const BAR: usize = 30;

/// The progress of one long piece of work (verify, dump).
pub(crate) struct Progress {
    label: String,
    shown: bool,
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    /// Progress of the work `label` names; silent unless stderr is a terminal.
    pub(crate) fn new(label: impl Into<String>) -> Progress {
        Progress { label: label.into(), shown: false, enabled: std::io::stderr().is_terminal(), last: None }
    }

    /// `done` of `total` units are done; `unit` names them ("bytes", "topics").
    pub(crate) fn update(&mut self, done: u64, total: u64, unit: &str) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let fraction = if total == 0 { 1.0 } else { (done as f64 / total as f64).clamp(0.0, 1.0) };
        let filled = (fraction * BAR as f64) as usize;
        let line = format!(
            "\r{} [{}{}] {:3.0}% ({done}/{total} {unit})",
            self.label,
            "#".repeat(filled),
            " ".repeat(BAR - filled),
            fraction * 100.0
        );
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be drawn is not worth failing the work for.
        let _ = err.write_all(line.as_bytes()).and_then(|()| err.flush());
        self.shown = true;
    }

    /// Erases the line (before the report is printed).
    pub(crate) fn finish(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[2K").and_then(|()| err.flush()); // as above
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
