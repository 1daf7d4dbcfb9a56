//! How berth prints for people (aligned tables, sizes and ages as Docker words them) and for
//! programs (`--format json`).

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use tabwriter::TabWriter;

/// The output format a listing command was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// An aligned table for people.
    #[default]
    Table,
    /// One JSON object per line (per item), for programs.
    Json,
}

/// A table writer with Docker's three-space column gap.
pub fn table() -> TabWriter<io::Stdout> {
    TabWriter::new(io::stdout()).padding(3)
}

/// Writes `rows` (tab-separated cells) under `header` as an aligned table.
pub fn print_table(header: &str, rows: impl IntoIterator<Item = String>) -> io::Result<()> {
    let mut tw = table();
    writeln!(tw, "{header}")?;
    for row in rows {
        writeln!(tw, "{row}")?;
    }
    tw.flush()
}

/// A byte count as Docker prints it: decimal units, three significant digits (`4.26MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    // %g drops trailing zeros.
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[unit])
}

/// How long ago `t` was, as Docker says it (`2 days ago`, `About an hour ago`).
pub fn ago(t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else { return "N/A".into() };
    let secs = (Utc::now() - t).num_seconds().max(0);
    let mins = secs / 60;
    let hours = mins / 60;
    let days = hours / 24;
    let s = match () {
        _ if secs < 1 => "Less than a second".to_string(),
        _ if secs == 1 => "1 second".to_string(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if mins == 1 => "About a minute".to_string(),
        _ if mins < 60 => format!("{mins} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if days < 14 => format!("{days} days"),
        _ if days < 90 => format!("{} weeks", days / 7),
        _ if days < 730 => format!("{} months", days / 30),
        _ => format!("{} years", days / 365),
    };
    format!("{s} ago")
}

/// Shortens `s` to `max` characters with an ellipsis, as Docker's tables do.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Prints `rows` as the format asks: one JSON object per line, or a table under `header`
/// with each row's cells from `cells` (tab-separated).
pub fn print_rows<R: serde::Serialize>(
    format: Format,
    rows: &[R],
    header: &str,
    cells: impl Fn(&R) -> String,
) -> io::Result<()> {
    match format {
        Format::Json => rows.iter().try_for_each(json_line),
        Format::Table => print_table(header, rows.iter().map(cells)),
    }
}

/// Prints a value as one line of JSON.
pub fn json_line(v: &impl serde::Serialize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(124_000_000), "124MB");
        assert_eq!(human_size(1_000_000), "1MB");
    }

    #[test]
    fn ages_as_docker() {
        let now = Utc::now();
        assert_eq!(
            ago(Some(now - chrono::Duration::hours(1))),
            "About an hour ago"
        );
        assert_eq!(ago(Some(now - chrono::Duration::days(3))), "3 days ago");
        assert_eq!(ago(Some(now - chrono::Duration::days(800))), "2 years ago");
    }
}
