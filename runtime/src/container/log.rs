//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"…"}`, so `logs --since`, `-t` and `--tail` work
//! and the file reads the same as Docker's.
//!
//! Logs are rotated as the json-file driver's `max-size` and `max-file` options say: once
//! `log.json` would grow past `max-size`, it becomes `log.json.1` (the one before becomes
//! `.2`, and so on; the oldest beyond `max-file` files goes), and a new `log.json` starts.
//! Readers go through the files oldest first, `--tail` reads them from their ends backward in
//! blocks (never a whole file), and a follower moves on to the next file when its own is
//! rotated away.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The name of a container's current log file in its folder.
pub const FILE_NAME: &str = "log.json";

/// The default `max-size`: Docker's `local` driver's, 20 MB.
pub const DEFAULT_MAX_SIZE: u64 = 20_000_000;
/// The default `max-file`: Docker's `local` driver's. With [`DEFAULT_MAX_SIZE`], a container's
/// log never takes more than 100 MB (and one record), whatever it writes.
pub const DEFAULT_MAX_FILE: u32 = 5;

/// No record berth writes is longer (a line is cut at 16 KiB, which JSON escaping can make six
/// times longer): a longer line in a log file is not one of berth's records, and is skipped
/// rather than read into memory.
const MAX_LINE: usize = 1 << 20;
/// The block `--tail` reads backward.
const BLOCK: usize = 64 * 1024;

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

/// Where a container's output goes (`--log-driver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// Docker's json-file format, in the container's folder.
    #[default]
    JsonFile,
    /// Nowhere.
    None,
}

impl LogDriver {
    /// The name Docker gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::None => "none",
        }
    }
}

/// A container's logging: `--log-driver` and `--log-opt`, as `inspect` shows in
/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Where the output goes.
    pub driver: LogDriver,
    /// `max-size`: the bytes past which `log.json` is rotated.
    pub max_size: u64,
    /// `max-file`: how many files (`log.json` and rotated ones) are kept.
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: LogDriver::JsonFile,
            max_size: DEFAULT_MAX_SIZE,
            max_file: DEFAULT_MAX_FILE,
        }
    }
}

/// A `--log-driver` or `--log-opt` that was refused; the message names the flag and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLogOption(String);

impl LogConfig {
    /// Parses `--log-driver` (json-file when `None`) and `--log-opt KEY=VALUE` as Docker's
    /// json-file driver does: `max-size` a positive size in bytes with an optional unit k, m
    /// or g (powers of 1000, as Docker's), `max-file` a count of at least 1.
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig, InvalidLogOption> {
        let mut config = LogConfig {
            driver: match driver {
                None | Some("json-file") => LogDriver::JsonFile,
                Some("none") => LogDriver::None,
                Some(other) => {
                    return Err(InvalidLogOption(format!(
                        "invalid --log-driver {other:?}: berth writes json-file logs, or none (--log-driver none)"
                    )));
                }
            },
            ..LogConfig::default()
        };
        for opt in opts {
            let bad = |why: &str| InvalidLogOption(format!("invalid --log-opt {opt:?}: {why}"));
            let Some((key, value)) = opt.split_once('=') else {
                return Err(bad("expected KEY=VALUE, e.g. --log-opt max-size=10m"));
            };
            if config.driver == LogDriver::None {
                return Err(bad(
                    "--log-driver none keeps no log to size; drop the option or the driver",
                ));
            }
            match key {
                "max-size" => {
                    config.max_size = parse_size::Config::new()
                        .parse_size(value)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            bad("max-size is a positive size with an optional unit k, m or g, e.g. max-size=10m")
                        })?;
                }
                "max-file" => {
                    config.max_file = value.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                        bad("max-file is a whole number of files of at least 1, e.g. max-file=3")
                    })?;
                }
                other => {
                    return Err(bad(&format!(
                        "unknown log option {other:?} for the json-file driver; berth knows max-size and max-file"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The options as `docker inspect` shows them in `HostConfig.LogConfig.Config`.
    pub fn options(&self) -> BTreeMap<&'static str, String> {
        if self.driver == LogDriver::None {
            return BTreeMap::new();
        }
        let size = [(1_000_000_000, "g"), (1_000_000, "m"), (1_000, "k")]
            .into_iter()
            .find(|(unit, _)| self.max_size.is_multiple_of(*unit))
            .map_or_else(
                || self.max_size.to_string(),
                |(unit, suffix)| format!("{}{suffix}", self.max_size / unit),
            );
        BTreeMap::from([("max-size", size), ("max-file", self.max_file.to_string())])
    }
}

/// A container's log, open for writing: its stdout's and stderr's [`LogWriter`]s share it, so
/// their records never interleave within a line and a rotation happens between two records.
#[derive(Clone)]
pub struct Log {
    /// `None` with `--log-driver none`.
    sink: Option<Arc<Mutex<Sink>>>,
}

/// The current file and what rotating it takes.
struct Sink {
    path: PathBuf,
    file: File,
    /// Bytes in `file`.
    size: u64,
    max_size: u64,
    max_file: u32,
}

impl Log {
    /// Opens (creating) the log at `path` (a container folder's `log.json`).
    pub fn open(path: &Path, config: &LogConfig) -> io::Result<Log> {
        if config.driver == LogDriver::None {
            return Ok(Log { sink: None });
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Log {
            sink: Some(Arc::new(Mutex::new(Sink {
                path: path.to_path_buf(),
                file,
                size,
                max_size: config.max_size.max(1),
                max_file: config.max_file.max(1),
            }))),
        })
    }

    /// A writer of one stream (`stdout` or `stderr`) into this log.
    pub fn writer(&self, stream: &'static str) -> LogWriter {
        LogWriter {
            log: self.clone(),
            stream,
            partial: Vec::new(),
        }
    }
}

impl Sink {
    /// Writes one record, rotating first when it would take the file past `max_size` (a file
    /// holds at least one record, so one longer than `max_size` still goes in whole).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// `log.json.N-1` … `log.json.1` move one up (the last one over the oldest), `log.json`
    /// becomes `log.json.1` and a new `log.json` starts. Renames only, so a record is never
    /// lost or copied twice, and a follower holding the old file reads it to its end.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file <= 1 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.max_file - 1).rev() {
                match std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The `n`th rotated file of the log at `path`: `log.json.n`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The files of the log at `path` that exist, oldest first: `log.json.N` … `log.json.1`,
/// `log.json`.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut numbered: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix(&prefix)?
                .parse::<u32>()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut out: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Appends one stream's output to the log, a line per record.
pub struct LogWriter {
    log: Log,
    stream: &'static str,
    partial: Vec<u8>,
}

impl LogWriter {
    /// Records `data`; complete lines are written at once, a partial line waits for its end.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.log.sink.is_none() {
            return Ok(());
        }
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            let line = self.partial[start..end].to_vec();
            start = end;
            self.record(&line)?;
        }
        self.partial.drain(..start);
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
        let Some(sink) = &self.log.sink else {
            return Ok(());
        };
        let r = Record {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: self.stream.to_string(),
            time: Utc::now(),
        };
        let mut bytes = serde_json::to_vec(&r).expect("a record serializes");
        bytes.push(b'\n');
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&bytes)
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

impl ReadOptions {
    fn wants(&self, r: &Record) -> bool {
        self.since.is_none_or(|s| r.time >= s) && self.until.is_none_or(|u| r.time < u)
    }
}

/// Reads the records of the log at `path` (and its rotated files) that match `opts`, oldest
/// first, handing each to `emit`; returns where a [`Follower`] goes on from. Memory stays
/// bounded: without a tail the files are streamed, with one they are read from their ends.
pub fn read(
    path: &Path,
    opts: &ReadOptions,
    mut emit: impl FnMut(Record) -> io::Result<()>,
) -> io::Result<Follower> {
    let files = files(path);
    let mut follower = Follower::new(path);
    if let Some(n) = opts.tail {
        let mut newest_first: Vec<Record> = Vec::new();
        for (i, p) in files.iter().enumerate().rev() {
            let Some(file) = open_existing(p)? else {
                continue;
            };
            let end = file.metadata()?.len();
            let complete = each_line_backward(&file, end, |line| {
                if newest_first.len() >= n {
                    return false;
                }
                if let Some(r) = parse(line).filter(|r| opts.wants(r)) {
                    newest_first.push(r);
                }
                newest_first.len() < n
            })?;
            if i == files.len() - 1 {
                follower.set(file, complete);
            }
            if newest_first.len() >= n {
                break;
            }
        }
        for r in newest_first.into_iter().rev() {
            emit(r)?;
        }
        return Ok(follower);
    }
    for (i, p) in files.iter().enumerate() {
        let Some(mut file) = open_existing(p)? else {
            continue;
        };
        let consumed = each_line(&mut file, 0, |line| match parse(line) {
            Some(r) if opts.wants(&r) => emit(r),
            _ => Ok(()),
        })?;
        if i == files.len() - 1 {
            follower.set(file, consumed);
        }
    }
    Ok(follower)
}

/// Goes on reading a log where [`read`] stopped, into the files that rotation makes.
pub struct Follower {
    path: PathBuf,
    /// The file being read and the offset after its last complete line read.
    current: Option<(File, u64)>,
}

impl Follower {
    fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            current: None,
        }
    }

    fn set(&mut self, file: File, offset: u64) {
        self.current = Some((file, offset));
    }

    /// Hands the records written since the last call to `emit`; returns how many there were.
    pub fn poll(&mut self, mut emit: impl FnMut(Record) -> io::Result<()>) -> io::Result<usize> {
        let mut count = 0;
        let mut each = |line: &[u8]| -> io::Result<()> {
            if let Some(r) = parse(line) {
                count += 1;
                emit(r)?;
            }
            Ok(())
        };
        // Each turn finishes one file; a rotation makes at most `max-file` of them, so a few
        // turns always reach the current one.
        for _ in 0..64 {
            let Some((file, offset)) = &mut self.current else {
                // Not made yet (the container never started): from its start once it is.
                match open_existing(&self.path)? {
                    Some(f) => self.current = Some((f, 0)),
                    None => break,
                }
                continue;
            };
            *offset += each_line(file, *offset, &mut each)?;
            let mine = identity(&file.metadata()?);
            let now = std::fs::metadata(&self.path).ok().map(|m| identity(&m));
            if now.is_none() || now == Some(mine) {
                break;
            }
            // Rotated away: what was written before the rotation is read now (above, or here
            // if it came in meanwhile), then the next newer file from its start.
            *offset += each_line(file, *offset, &mut each)?;
            match next_newer(&self.path, mine)? {
                Some(next) => self.current = Some((next, 0)),
                None => break,
            }
        }
        Ok(count)
    }
}

/// A file's identity: device and inode where there are such.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        (m.len(), 0)
    }
}

/// The log file after the one that was `mine` (oldest first), or the oldest one there is if
/// `mine` was rotated out of them all; opened and checked to be the file listed (another
/// rotation may move them meanwhile).
fn next_newer(path: &Path, mine: (u64, u64)) -> io::Result<Option<File>> {
    for _ in 0..16 {
        let files: Vec<(PathBuf, (u64, u64))> = files(path)
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((p, identity(&m)))
            })
            .collect();
        let next = match files.iter().position(|(_, id)| *id == mine) {
            Some(i) => files.get(i + 1),
            None => files.first(),
        };
        let Some((p, id)) = next else {
            return Ok(None);
        };
        if let Some(f) = open_existing(p)?
            && identity(&f.metadata()?) == *id
        {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

fn open_existing(p: &Path) -> io::Result<Option<File>> {
    match File::open(p) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse(line: &[u8]) -> Option<Record> {
    serde_json::from_slice(line).ok()
}

/// Hands each complete line of `file` from `offset` on to `f` (without its newline); returns
/// the bytes taken, which end after the last newline: a line still being written is left for
/// the next read. A line longer than [`MAX_LINE`] is skipped.
fn each_line(
    file: &mut File,
    offset: u64,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(BLOCK, file);
    let (mut consumed, mut taken) = (0u64, 0u64);
    let (mut line, mut overlong) = (Vec::new(), false);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(taken);
        }
        let (used, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let piece = &buf[..used - usize::from(end)];
        if overlong || line.len() + piece.len() > MAX_LINE {
            overlong = true;
            line.clear();
        } else {
            line.extend_from_slice(piece);
        }
        reader.consume(used);
        consumed += used as u64;
        if end {
            if !overlong {
                f(&line)?;
            }
            taken = consumed;
            line.clear();
            overlong = false;
        }
    }
}

/// Hands the complete lines of `file` before `end` to `f`, newest first, until it returns
/// false, reading blocks from the end backward. Returns the offset after the last newline (a
/// partial last line, still being written, is not a record yet).
fn each_line_backward(
    mut file: &File,
    end: u64,
    mut f: impl FnMut(&[u8]) -> bool,
) -> io::Result<u64> {
    let mut pos = end;
    let mut block = vec![0u8; BLOCK];
    // The start of the line being put together: what follows the newline found last.
    let mut carry: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut complete_end = None;
    while pos > 0 {
        let n = BLOCK.min(pos as usize);
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut block[..n])?;
        let mut seg_end = n;
        while let Some(i) = block[..seg_end].iter().rposition(|&b| b == b'\n') {
            if complete_end.is_none() {
                // Whatever follows the last newline is a partial line: dropped.
                complete_end = Some(pos + i as u64 + 1);
            } else if !overlong {
                let mut line = block[i + 1..seg_end].to_vec();
                line.extend_from_slice(&carry);
                if !f(&line) {
                    return Ok(complete_end.unwrap_or(0));
                }
            }
            carry.clear();
            overlong = false;
            seg_end = i;
        }
        if carry.len() + seg_end > MAX_LINE {
            overlong = true;
            carry.clear();
        } else if !overlong {
            let mut joined = block[..seg_end].to_vec();
            joined.extend_from_slice(&carry);
            carry = joined;
        }
    }
    // The first line of the file ends at its first newline: complete.
    if complete_end.is_some() && !overlong && !carry.is_empty() {
        f(&carry);
    }
    Ok(complete_end.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(p: &Path, opts: &ReadOptions) -> Vec<Record> {
        let mut out = Vec::new();
        read(p, opts, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_round_trip_with_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.json");
        let log = Log::open(&p, &LogConfig::default()).unwrap();
        let mut out = log.writer("stdout");
        let mut err = log.writer("stderr");
        out.write(b"hel").unwrap();
        err.write(b"oops\n").unwrap();
        out.write(b"lo\nworld").unwrap();
        out.flush().unwrap();
        let r = read_all(&p, &ReadOptions::default());
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
        let tail = |n| {
            read_all(
                &p,
                &ReadOptions {
                    tail: Some(n),
                    ..Default::default()
                },
            )
            .into_iter()
            .map(|r| r.log)
            .collect::<Vec<_>>()
        };
        assert_eq!(tail(1), ["world"]);
        assert_eq!(tail(2), ["hello\n", "world"]);
        assert_eq!(tail(9), ["oops\n", "hello\n", "world"]);
        assert!(tail(0).is_empty());
    }

    #[test]
    fn rotation_keeps_every_line_once_in_order_within_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.json");
        let config = LogConfig {
            max_size: 4_000,
            max_file: 3,
            ..LogConfig::default()
        };
        let log = Log::open(&p, &config).unwrap();
        let mut out = log.writer("stdout");
        let mut follower = read(&p, &ReadOptions::default(), |_| Ok(())).unwrap();
        let mut followed = Vec::new();
        for i in 0..1000 {
            out.write(format!("line {i}\n").as_bytes()).unwrap();
            if i % 7 == 0 {
                follower
                    .poll(|r| {
                        followed.push(r.log);
                        Ok(())
                    })
                    .unwrap();
            }
        }
        follower
            .poll(|r| {
                followed.push(r.log);
                Ok(())
            })
            .unwrap();
        let names = files(&p);
        assert_eq!(names.len(), 3, "{names:?}");
        for f in &names {
            assert!(std::fs::metadata(f).unwrap().len() <= 4_000, "{f:?}");
        }
        let kept: Vec<String> = read_all(&p, &ReadOptions::default())
            .into_iter()
            .map(|r| r.log)
            .collect();
        let last = kept.last().unwrap().clone();
        assert_eq!(last, "line 999\n");
        let first: usize = kept[0]["line ".len()..].trim().parse().unwrap();
        let expected: Vec<String> = (first..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(kept, expected, "the kept lines are consecutive");
        // The follower saw every line once, in order, across every rotation.
        let all: Vec<String> = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(followed, all);
        let tail: Vec<String> = read_all(
            &p,
            &ReadOptions {
                tail: Some(100),
                ..Default::default()
            },
        )
        .into_iter()
        .map(|r| r.log)
        .collect();
        assert_eq!(tail, expected[expected.len() - 100..]);
    }

    #[test]
    fn backward_reading_spans_blocks_and_skips_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let lines: Vec<String> = (0..5000usize)
            .map(|i| format!("{i:0>width$}", width = (i % 50) + 1))
            .collect();
        let mut text = lines.join("\n");
        text.push_str("\npartial");
        std::fs::write(&p, &text).unwrap();
        let file = File::open(&p).unwrap();
        let mut seen = Vec::new();
        let end = each_line_backward(&file, text.len() as u64, |l| {
            seen.push(String::from_utf8(l.to_vec()).unwrap());
            true
        })
        .unwrap();
        seen.reverse();
        assert_eq!(seen, lines);
        assert_eq!(end, (text.len() - "partial".len()) as u64);
    }

    #[test]
    fn options_parse_as_docker_and_refuse_what_it_refuses() {
        let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = LogConfig::parse(None, &opts(&["max-size=1m", "max-file=3"])).unwrap();
        assert_eq!((c.max_size, c.max_file), (1_000_000, 3));
        assert_eq!(c.options()["max-size"], "1m");
        assert_eq!(LogConfig::parse(None, &[]).unwrap(), LogConfig::default());
        assert_eq!(
            LogConfig::parse(Some("none"), &[]).unwrap().driver,
            LogDriver::None
        );
        for bad in [
            "max-size=abc",
            "max-size=0",
            "max-size=99999999999999g",
            "max-file=0",
            "max-file=-1",
            "max-file=x",
            "compress=true",
            "max-size",
        ] {
            let e = LogConfig::parse(None, &opts(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--log-opt") && e.contains(bad), "{e}");
        }
        let e = LogConfig::parse(Some("syslog"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--log-driver"), "{e}");
    }
}
