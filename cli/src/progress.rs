//! Progress of pulls and pushes: a bar per blob with size and speed on a terminal, one plain
//! line per finished blob otherwise, nothing with `-q`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use berth_runtime::registry::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (`pull`, `push`, as Docker's).
    Stdout,
    /// Standard error (a pull inside `run` or `build`).
    Stderr,
}

impl Stream {
    /// Writes one line.
    pub fn line(self, s: &str) {
        match self {
            Stream::Stdout => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}");
                let _ = o.flush();
            }
            Stream::Stderr => eprintln!("{s}"),
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Renders [`Event`]s.
pub struct Bars {
    stream: Stream,
    quiet: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    /// Bars on `stream` when it is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(stream: Stream, quiet: bool) -> Bars {
        let multi = (!quiet && stream.is_terminal()).then(|| {
            MultiProgress::with_draw_target(match stream {
                Stream::Stdout => ProgressDrawTarget::stdout(),
                Stream::Stderr => ProgressDrawTarget::stderr(),
            })
        });
        Bars {
            stream,
            quiet,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// A line above the bars (or plain).
    pub fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => self.stream.line(s),
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

impl Progress for Bars {
    fn event(&self, event: Event) {
        if self.quiet {
            return;
        }
        match event {
            Event::Start {
                digest,
                size,
                action,
            } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new(size));
                    bar.set_style(style());
                    bar.set_prefix(digest.short().to_string());
                    bar.set_message(action);
                    self.bars
                        .lock()
                        .expect("bars lock")
                        .insert(digest.to_string(), bar);
                }
            }
            Event::Progress { digest, done } => {
                if let Some(bar) = self
                    .bars
                    .lock()
                    .expect("bars lock")
                    .get(&digest.to_string())
                {
                    bar.set_position(done);
                }
            }
            Event::Done { digest, status } => {
                let bar = self
                    .bars
                    .lock()
                    .expect("bars lock")
                    .remove(&digest.to_string());
                match bar {
                    Some(bar) => {
                        bar.set_style(
                            ProgressStyle::with_template("{prefix}: {msg}")
                                .expect("a valid template"),
                        );
                        bar.finish_with_message(status);
                    }
                    None => self.line(&format!("{}: {status}", digest.short())),
                }
            }
        }
    }
}
