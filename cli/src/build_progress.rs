//! The live view of `berth build` on a terminal (`--progress tty`, or `auto` on one), as
//! BuildKit's: on stderr, a line per running step with a spinner and its time, and the last
//! lines of a RUN step's output under it, redrawn. A finished step leaves one line above the
//! live area (`DONE 0.3s`, `CACHED`); a failed one leaves its whole output too.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_builder::output::{Event, Renderer};
use console::{Term, measure_text_width, style, truncate_str};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Lines of a running step's output shown under it.
const TAIL_LINES: usize = 6;
/// Output kept per running step for the report of a failure: its last 2 MiB (BuildKit clips
/// a step's log at 2 MiB too; the end says more about a failure than the start).
const KEPT_OUTPUT: usize = 2 << 20;
/// What sets a line of output apart under its step.
const TAIL_INDENT: &str = "    ";
/// How far back from the end the live tail looks for its lines: longer lines are cut to the
/// terminal's width anyway.
const TAIL_SCAN: usize = 64 << 10;

/// The live display; the builder's [`Renderer`].
pub struct TtyDisplay {
    multi: MultiProgress,
    steps: Mutex<HashMap<String, Step>>,
}

/// A running step.
struct Step {
    text: String,
    started: Instant,
    cached: bool,
    /// The step's line, and the last lines of its output under it.
    bar: ProgressBar,
    /// Those last lines, ready to draw (each after a newline); the bar's template reads them,
    /// so its steady tick redraws them with the line above.
    tail: Arc<Mutex<String>>,
    /// The output so far, or (at least) its last [`KEPT_OUTPUT`] bytes.
    output: Vec<u8>,
    /// Whether the start of the output was dropped.
    clipped: bool,
}

impl TtyDisplay {
    /// A display on stderr (the caller checked that it is a terminal).
    pub fn new() -> TtyDisplay {
        TtyDisplay {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            steps: Mutex::new(HashMap::new()),
        }
    }

    /// Hides the live area while `f` writes to the terminal itself (a base image's pull, with
    /// its own progress bars), then draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Clears whatever is still drawn, before the build's last words.
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, HashMap<String, Step>> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, label: &str, text: &str) {
        let tail = Arc::new(Mutex::new(String::new()));
        let bar = self.multi.add(
            ProgressBar::new_spinner()
                .with_style(step_style(tail.clone()))
                .with_prefix(label.to_string())
                .with_message(text.to_string()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        self.steps().insert(
            label.to_string(),
            Step {
                text: text.to_string(),
                started: Instant::now(),
                cached: false,
                bar,
                tail,
                output: Vec::new(),
                clipped: false,
            },
        );
    }

    fn output(&self, label: &str, bytes: &[u8]) {
        let mut steps = self.steps();
        let Some(step) = steps.get_mut(label) else {
            return;
        };
        step.output.extend_from_slice(bytes);
        // Cut back only once twice the limit is held, so a chatty step (a chunk per short
        // line) does not move the whole buffer for every chunk.
        if step.output.len() > 2 * KEPT_OUTPUT {
            let cut = step.output.len() - KEPT_OUTPUT;
            step.output.drain(..cut);
            step.clipped = true;
        }
        // Cut to the terminal's width: a wrapped line would throw the redraw off.
        let room = usize::from(Term::stderr().size().1).saturating_sub(TAIL_INDENT.len() + 1);
        let mut tail = String::new();
        for line in last_lines(&step.output, TAIL_LINES) {
            let line = truncate_str(&line, room, "…");
            tail.push_str(&format!(
                "\n{TAIL_INDENT}{}",
                style(line).dim().for_stderr()
            ));
        }
        *step.tail.lock().unwrap_or_else(|e| e.into_inner()) = tail;
        step.bar.tick();
    }

    fn end(&self, label: &str, ok: bool) {
        let Some(step) = self.steps().remove(label) else {
            return;
        };
        self.multi.remove(&step.bar);
        let status = match (ok, step.cached) {
            (false, _) => style(format!("ERROR {}", secs(step.started)))
                .red()
                .for_stderr()
                .to_string(),
            (true, true) => style("CACHED").blue().for_stderr().to_string(),
            (true, false) => style(format!("DONE {}", secs(step.started)))
                .green()
                .for_stderr()
                .to_string(),
        };
        let mut report = finished_line(label, &step.text, &status);
        if !ok && !step.output.is_empty() {
            // As Docker's: the failed step's output in full, between rules.
            report.push_str(&format!("\n------\n > [{label}] {}:\n", step.text));
            let start = step.output.len().saturating_sub(KEPT_OUTPUT);
            if step.clipped || start > 0 {
                report.push_str(&format!(
                    "[output clipped: only its last {} MiB are kept]\n",
                    KEPT_OUTPUT >> 20
                ));
            }
            for line in String::from_utf8_lossy(&step.output[start..]).lines() {
                report.push_str(&clean(line));
                report.push('\n');
            }
            report.push_str("------");
        }
        // Written with the live area put aside, not through `println`, which would pad every
        // line of a long report to the terminal's width.
        self.multi.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{report}");
            let _ = err.flush();
        });
    }
}

impl Renderer for TtyDisplay {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Step { label, text } => self.start(label, text),
            Event::Cached { label } => {
                if let Some(step) = self.steps().get_mut(label) {
                    step.cached = true;
                }
            }
            Event::Output { label, bytes } => self.output(label, bytes),
            Event::Done { label } => self.end(label, true),
            Event::Failed { label } => self.end(label, false),
        }
    }
}

/// A running step: spinner, label, instruction (cut to fit), time so far; then `tail`.
fn step_style(tail: Arc<Mutex<String>>) -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} [{prefix}] {wide_msg} {secs}{tail}")
        .expect("a valid template")
        .with_key("secs", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}s", s.elapsed().as_secs_f64());
        })
        .with_key(
            "tail",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&tail.lock().unwrap_or_else(|e| e.into_inner()));
            },
        )
}

/// Seconds since `t`, as BuildKit shows them: `0.3s`.
fn secs(t: Instant) -> String {
    format!("{:.1}s", t.elapsed().as_secs_f64())
}

/// A finished step's line, its status at the terminal's right edge as the running line had
/// its time.
fn finished_line(label: &str, text: &str, status: &str) -> String {
    let width = usize::from(Term::stderr().size().1);
    let head = format!("  [{label}] ");
    let room = width.saturating_sub(measure_text_width(&head) + measure_text_width(status) + 2);
    let text = truncate_str(text, room, "…");
    let pad = room.saturating_sub(measure_text_width(&text)) + 1;
    format!("{head}{text}{}{status}", " ".repeat(pad))
}

/// The last `n` lines of `output` (a partial last line counts), cleaned for display. Called
/// for every chunk a step prints, so it reads back from the end only as far as it needs.
fn last_lines(output: &[u8], n: usize) -> Vec<String> {
    let end = output
        .iter()
        .rposition(|&b| b != b'\n')
        .map_or(0, |i| i + 1);
    if end == 0 {
        return Vec::new();
    }
    let recent = &output[end.saturating_sub(TAIL_SCAN)..end];
    let mut lines: Vec<String> = recent
        .rsplitn(n + 1, |&b| b == b'\n')
        .take(n)
        .map(|l| clean(&String::from_utf8_lossy(l)))
        .collect();
    lines.reverse();
    lines
}

/// A line of a command's output as a terminal would leave it, safe to draw in the display:
/// only what follows the last carriage return (progress meters redraw their line that way),
/// no escape sequences (colours, cursor moves) and no other control characters.
fn clean(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let line = line.rsplit('\r').next().unwrap_or(line);
    console::strip_ansi_codes(line)
        .chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines_partial_one_included() {
        assert_eq!(last_lines(b"", 3), Vec::<String>::new());
        assert_eq!(last_lines(b"a\nb\nc\nd\n", 3), ["b", "c", "d"]);
        assert_eq!(last_lines(b"a\nb\nhalf", 2), ["b", "half"]);
        assert_eq!(last_lines(b"one\n", 6), ["one"]);
        assert_eq!(last_lines(b"\n\n", 6), Vec::<String>::new());
        assert_eq!(last_lines(b"x\r\ny\r\n", 6), ["x", "y"]);
    }

    #[test]
    fn clean_keeps_what_a_terminal_shows() {
        assert_eq!(clean("10%\r50%\r100%\r"), "100%");
        assert_eq!(clean("\x1b[31mred\x1b[0m\tx"), "red x");
        assert_eq!(clean("bell\x07"), "bell");
    }
}
