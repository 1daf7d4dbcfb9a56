//! Build output: Docker-like step lines (`[2/5] RUN make`, `CACHED`) on stdout, or nothing
//! but the image id with `-q`.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where step lines go.
#[derive(Debug)]
pub struct Progress {
    quiet: bool,
    total: usize,
    /// Steps started so far (stages may run in parallel threads).
    step: AtomicUsize,
}

impl Progress {
    /// Progress over `total` steps; `quiet` prints nothing.
    pub fn new(total: usize, quiet: bool) -> Progress {
        Progress {
            quiet,
            total,
            step: AtomicUsize::new(0),
        }
    }

    /// Whether step output (and RUN output) is hidden.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Starts the next step and returns its `N/TOTAL` label.
    pub fn step(&self, text: &str) -> String {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let label = format!("{n}/{}", self.total);
        self.line(&format!("[{label}] {}", one_line(text)));
        label
    }

    /// Notes that the current step came from the cache.
    pub fn cached(&self) {
        self.line(" ---> CACHED");
    }

    /// Prints a line unless quiet.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

/// The first line of an instruction, shortened for display.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() > 120 {
        let cut: String = first.chars().take(117).collect();
        format!("{cut}...")
    } else {
        first.to_string()
    }
}
