//! Early writeback for large files that will be made durable: the kernel is asked to start
//! writing each few MiB to disk as soon as they are written (Linux's `sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`, which does not wait), so the sync at the end of a pull or a load
//! finds most of the data on disk already instead of writing all of it then. On a machine
//! with plenty of memory the kernel would otherwise start only when gigabytes are dirty.

use std::io::{self, Write};

/// How many written bytes are handed to writeback at a time.
const CHUNK: u64 = 8 << 20;
/// The smallest tail [`Writeback::finish`] hands over: below it, a syscall per small file
/// would cost more than it saves, and the final sync takes it.
const MIN_TAIL: u64 = 1 << 20;

/// A file being written whose writeback starts as it goes (see the module docs).
pub struct Writeback<W: Write> {
    inner: W,
    /// The file's descriptor, for `sync_file_range`.
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    /// Where the writes are up to in the file.
    written: u64,
    /// Where writeback was started up to.
    started: u64,
}

impl<W: Write> Writeback<W> {
    /// Writes through `inner`, a file whose writes start at offset `at` (what is before it is
    /// left alone).
    #[cfg(target_os = "linux")]
    pub fn new(inner: W, at: u64) -> Writeback<W>
    where
        W: std::os::fd::AsFd,
    {
        use std::os::fd::AsRawFd;
        Writeback {
            fd: inner.as_fd().as_raw_fd(),
            inner,
            written: at,
            started: at,
        }
    }

    /// Writes through `inner`; elsewhere than Linux the kernel decides when to write back.
    #[cfg(not(target_os = "linux"))]
    pub fn new(inner: W, at: u64) -> Writeback<W> {
        Writeback {
            inner,
            written: at,
            started: at,
        }
    }

    /// Starts writeback of what is written and not started yet (a file's tail), if it is
    /// large enough to be worth a syscall.
    pub fn finish(&mut self) {
        if self.written - self.started >= MIN_TAIL {
            self.start();
        }
    }

    fn start(&mut self) {
        if self.written <= self.started {
            return;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: a plain syscall on the descriptor `inner` holds open; a failure only means
        // the final sync does all the work, so it is ignored.
        unsafe {
            libc::sync_file_range(
                self.fd,
                self.started as libc::off64_t,
                (self.written - self.started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }
}

impl<W: Write> Write for Writeback<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= CHUNK {
            self.start();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
