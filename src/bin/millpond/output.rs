//! Standard output: a buffered writer whose failures end the command (a
//! closed pipe quietly), tables for people and JSON documents for scripts.

use std::io::{BufWriter, Stdout, Write};

use crate::exit::CliError;

/// The command's standard output.
pub(crate) struct Out {
    w: BufWriter<Stdout>,
}

impl Out {
    /// Standard output, buffered.
    pub(crate) fn stdout() -> Out {
        Out { w: BufWriter::with_capacity(64 * 1024, std::io::stdout()) }
    }

    /// Writes `text` as it is.
    pub(crate) fn write(&mut self, text: &str) -> Result<(), CliError> {
        self.bytes(text.as_bytes())
    }

    /// Writes `text` and a newline.
    pub(crate) fn line(&mut self, text: &str) -> Result<(), CliError> {
        self.bytes(text.as_bytes())?;
        self.bytes(b"\n")
    }

    /// Writes raw bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), CliError> {
        self.w.write_all(b).map_err(CliError::output)
    }

    /// Writes `value` as compact JSON on one line.
    pub(crate) fn json(&mut self, value: &serde_json::Value) -> Result<(), CliError> {
        serde_json::to_writer(&mut self.w, value).map_err(|e| CliError::output(e.into()))?;
        self.bytes(b"\n")
    }

    /// Pushes everything written so far to the reader (a pipe sees it now).
    pub(crate) fn flush(&mut self) -> Result<(), CliError> {
        self.w.flush().map_err(CliError::output)
    }
}

/// `n` and the noun, singular for 1 (`1 record`, `2 records`).
pub(crate) fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A table with hand-aligned columns: two spaces between columns; a
/// column whose cells are all numbers (or `-`) is aligned right.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (one cell per column).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table's lines, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let n = self.headers.len();
        let width: Vec<usize> = (0..n)
            .map(|c| self.rows.iter().map(|r| r[c].chars().count()).chain([self.headers[c].len()]).max().unwrap_or(0))
            .collect();
        let numeric: Vec<bool> = (0..n)
            .map(|c| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| r[c] == "-" || (!r[c].is_empty() && r[c].parse::<i128>().is_ok()))
            })
            .collect();
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for cells in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (c, cell) in cells.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = width[c] - cell.chars().count();
                if numeric[c] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if c + 1 < n {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(count(1u64, "record", "records"), "1 record");
        assert_eq!(count(0u64, "record", "records"), "0 records");
        assert_eq!(count(2u32, "damaged place", "damaged places"), "2 damaged places");
    }

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let mut t = Table::new(&["TOPIC", "RECORDS", "NOTE"]);
        t.row(vec!["orders".into(), "5".into(), "x".into()]);
        t.row(vec!["t".into(), "1200".into(), "".into()]);
        assert_eq!(t.render(), "TOPIC   RECORDS  NOTE\norders        5  x\nt          1200\n");
    }
}
