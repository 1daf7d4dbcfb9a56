//! Build output: Docker-like step lines (`[2/5] RUN make`, `CACHED`) on stdout, nothing but the
//! image id with `-q`, or [`Event`]s for a live display (the CLI's terminal view) that also
//! gets each RUN step's output.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_runtime::container::monitor::Attach;

/// How a build shows its progress.
#[derive(Clone)]
pub enum Mode {
    /// Step lines on stdout; RUN output straight to stdout and stderr.
    Plain,
    /// Nothing (`-q`, `--progress quiet`); RUN output only in the step container's log.
    Quiet,
    /// Events for a renderer, RUN output included.
    Live(Arc<dyn Renderer>),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Plain => "Plain",
            Mode::Quiet => "Quiet",
            Mode::Live(_) => "Live",
        })
    }
}

/// Something that happened in a build. Steps are named by their `N/TOTAL` label, unique in a
/// build: stages building in parallel have steps running at the same time.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step started.
    Step {
        /// `N/TOTAL`.
        label: &'a str,
        /// The instruction's first line, shortened.
        text: &'a str,
    },
    /// The step's result came from the cache.
    Cached {
        /// `N/TOTAL`.
        label: &'a str,
    },
    /// Output of the step's command, stdout and stderr alike, in chunks as they come (not
    /// whole lines).
    Output {
        /// `N/TOTAL`.
        label: &'a str,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The step finished well.
    Done {
        /// `N/TOTAL`.
        label: &'a str,
    },
    /// The step failed; the build stops with its error.
    Failed {
        /// `N/TOTAL`.
        label: &'a str,
    },
}

/// Shows a build's [`Event`]s; called from every thread a build runs steps on.
pub trait Renderer: Send + Sync {
    /// Takes one event.
    fn event(&self, event: Event<'_>);
}

/// Where step lines go.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    total: usize,
    /// Steps started so far (stages may run in parallel threads).
    step: AtomicUsize,
}

impl Progress {
    /// Progress over `total` steps, shown as `mode` says.
    pub fn new(total: usize, mode: Mode) -> Progress {
        Progress {
            mode,
            total,
            step: AtomicUsize::new(0),
        }
    }

    /// Whether nothing is shown.
    pub fn quiet(&self) -> bool {
        matches!(self.mode, Mode::Quiet)
    }

    /// Starts the next step and returns its `N/TOTAL` label.
    pub fn step(&self, text: &str) -> String {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let label = format!("{n}/{}", self.total);
        match &self.mode {
            Mode::Plain => line(&format!("[{label}] {}", one_line(text))),
            Mode::Quiet => {}
            Mode::Live(r) => r.event(Event::Step {
                label: &label,
                text: &one_line(text),
            }),
        }
        label
    }

    /// Notes that step `label` came from the cache.
    pub fn cached(&self, label: &str) {
        match &self.mode {
            Mode::Plain => line(" ---> CACHED"),
            Mode::Quiet => {}
            Mode::Live(r) => r.event(Event::Cached { label }),
        }
    }

    /// Notes that step `label` ended, well or not (plain lines say nothing of it: the next
    /// step's line, or the error, does).
    pub fn end(&self, label: &str, ok: bool) {
        if let Mode::Live(r) = &self.mode {
            r.event(if ok {
                Event::Done { label }
            } else {
                Event::Failed { label }
            });
        }
    }

    /// How a RUN container of step `label` is attached: its output straight to ours when
    /// plain, to the log only when quiet, to the renderer when live.
    pub fn attach(&self, label: &str) -> Attach {
        match &self.mode {
            Mode::Plain => Attach::Foreground,
            Mode::Quiet => Attach::Detached,
            Mode::Live(r) => {
                let (r, label) = (r.clone(), label.to_string());
                Attach::Captured(Arc::new(move |bytes: &[u8]| {
                    r.event(Event::Output {
                        label: &label,
                        bytes,
                    })
                }))
            }
        }
    }
}

/// Prints a line on stdout.
fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
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
