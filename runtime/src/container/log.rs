//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"…"}`, so `logs --since`, `-t` and `--tail` work
//! and the file reads the same as Docker's.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One log record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The text, with its newline.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it was written.
    pub time: DateTime<Utc>,
}

/// Appends one stream's output to the log, a line per record.
pub struct LogWriter {
    file: File,
    stream: &'static str,
    partial: Vec<u8>,
}

impl LogWriter {
    /// Opens (creating) the log at `path` for `stream` (`stdout` or `stderr`).
    pub fn open(path: &Path, stream: &'static str) -> io::Result<LogWriter> {
        Ok(LogWriter {
            file: OpenOptions::new().create(true).append(true).open(path)?,
            stream,
            partial: Vec::new(),
        })
    }

    /// Records `data`; complete lines are written at once, a partial line waits for its end.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            self.record(&line)?;
        }
        // A very long line without a newline is cut into records, as Docker does at 16 KiB.
        if self.partial.len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.partial);
            self.record(&line)?;
        }
        Ok(())
    }

    /// Writes what is left of a partial line.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.record(&line)?;
        }
        Ok(())
    }

    fn record(&mut self, line: &[u8]) -> io::Result<()> {
        let r = Record {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: self.stream.to_string(),
            time: Utc::now(),
        };
        let mut bytes = serde_json::to_vec(&r).expect("a record serializes");
        bytes.push(b'\n');
        // One write per record on an O_APPEND file: stdout's and stderr's writers never
        // interleave within a line.
        self.file.write_all(&bytes)
    }
}

/// Which records to show.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last N records.
    pub tail: Option<usize>,
    /// Only records from this time on.
    pub since: Option<DateTime<Utc>>,
    /// Only records before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Reads the records at `path` that match `opts`, and the offset where reading stopped.
pub fn read(path: &Path, opts: &ReadOptions) -> io::Result<(Vec<Record>, u64)> {
    let (mut records, offset) = match read_from(path, 0) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    records.retain(|r| {
        opts.since.is_none_or(|s| r.time >= s) && opts.until.is_none_or(|u| r.time < u)
    });
    if let Some(n) = opts.tail {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    Ok((records, offset))
}

/// Reads complete records appended after `offset`; returns them and the new offset. A line
/// still being written is left for the next read.
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<Record>, u64)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut pos = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            records.push(r);
        }
    }
    Ok((records, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.json");
        let mut out = LogWriter::open(&p, "stdout").unwrap();
        let mut err = LogWriter::open(&p, "stderr").unwrap();
        out.write(b"hel").unwrap();
        err.write(b"oops\n").unwrap();
        out.write(b"lo\nworld").unwrap();
        out.flush().unwrap();
        let (r, _) = read(&p, &ReadOptions::default()).unwrap();
        let texts: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.stream.as_str(), r.log.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("stderr", "oops\n"),
                ("stdout", "hello\n"),
                ("stdout", "world")
            ]
        );
        let (r, _) = read(
            &p,
            &ReadOptions {
                tail: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.len(), 1);
    }
}
