//! Progress on stderr for the slow stages of a command (making keys, compressing and
//! signing bundles), so a build that takes seconds does not look hung.
//!
//! On a terminal a stage draws one line, redrawn in place, once it has run for a second:
//! quick work prints nothing extra. `--verbose` prints every stage and step as plain lines
//! with their times, on a terminal or not (CI logs). `--quiet`, or a stderr that is not a
//! terminal without `--verbose`, prints nothing. Progress goes straight to the process's
//! stderr rather than through the command's `err` writer: steps finish on worker threads,
//! and what it says is for the person waiting, never part of a command's result.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Verbosity;

/// How long a stage runs before a terminal shows it: shorter work stays silent.
const LIVE_DELAY: Duration = Duration::from_secs(1);
/// How often the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Silent,
    /// One line per stage on a terminal, redrawn in place.
    Live,
    /// Every stage and step as its own line (`--verbose`).
    Log,
}

/// Where a command reports its slow stages.
pub(super) struct Progress {
    mode: Mode,
    sink: Sink,
    live_delay: Duration,
}

impl Progress {
    /// For the real stderr: live on a terminal, logged with `--verbose`, else silent.
    pub(super) fn new(verbosity: Verbosity) -> Self {
        let mode = if verbosity.quiet {
            Mode::Silent
        } else if verbosity.verbose {
            Mode::Log
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Silent
        };
        Self {
            mode,
            sink: Arc::new(Mutex::new(Box::new(std::io::stderr()))),
            live_delay: LIVE_DELAY,
        }
    }

    /// Whether anyone sees progress: work done only to describe a stage (counting what it
    /// will make) is skipped when no one does.
    pub(super) fn enabled(&self) -> bool {
        self.mode != Mode::Silent
    }

    /// A detail line, shown with `--verbose` only.
    pub(super) fn detail(&self, text: &str) {
        if self.mode == Mode::Log {
            write_line(&self.sink, text);
        }
    }

    /// Starts a stage of `total` counted steps (0 when its steps are not counted).
    /// `what` reads as an ongoing action: "generating 19 rsa-4096 keys".
    pub(super) fn stage(&self, what: String, total: usize) -> Stage {
        let state = Arc::new(StageState {
            what,
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
            drawn: AtomicBool::new(false),
            sink: Arc::clone(&self.sink),
        });
        let ticker = match self.mode {
            Mode::Silent => None,
            Mode::Log => {
                write_line(&state.sink, &format!("{}…", state.what));
                None
            }
            Mode::Live => Some(spawn_ticker(Arc::clone(&state), self.live_delay)),
        };
        Stage {
            state,
            mode: self.mode,
            ticker,
        }
    }
}

/// One slow stage in progress; ends with [`Stage::finish`], or silently when dropped on
/// an error (the error says the rest).
pub(super) struct Stage {
    state: Arc<StageState>,
    mode: Mode,
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

struct StageState {
    what: String,
    total: usize,
    done: AtomicUsize,
    started: Instant,
    /// Whether the terminal line was drawn, so it is cleared and concluded.
    drawn: AtomicBool,
    sink: Sink,
}

impl StageState {
    fn count(&self) -> String {
        if self.total == 0 {
            String::new()
        } else {
            format!(" {}/{}", self.done.load(Ordering::SeqCst), self.total)
        }
    }
}

impl Stage {
    /// One step finished (`item` names it for `--verbose`); callable from any thread.
    pub(super) fn step(&self, item: &str) {
        let done = self.state.done.fetch_add(1, Ordering::SeqCst) + 1;
        if self.mode == Mode::Log {
            let of = if self.state.total == 0 {
                String::new()
            } else {
                format!("{done}/{}, ", self.state.total)
            };
            write_line(
                &self.state.sink,
                &format!("  {item} ({of}{})", seconds(self.state.started.elapsed())),
            );
        }
    }

    /// The stage is done: `--verbose` and a terminal that showed it say how long it took.
    pub(super) fn finish(mut self) {
        self.stop_ticker();
        // Concluded here, so the drop that follows leaves the line alone.
        let drawn = self.state.drawn.swap(false, Ordering::SeqCst);
        let shown = self.mode == Mode::Log || drawn;
        if shown {
            let prefix = if self.mode == Mode::Live {
                CLEAR_LINE
            } else {
                ""
            };
            write_line(
                &self.state.sink,
                &format!(
                    "{prefix}{}: done in {}",
                    self.state.what,
                    seconds(self.state.started.elapsed())
                ),
            );
        }
    }

    fn stop_ticker(&mut self) {
        if let Some((stop, ticker)) = self.ticker.take() {
            drop(stop);
            let _ = ticker.join();
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.stop_ticker();
        if self.mode == Mode::Live && self.state.drawn.swap(false, Ordering::SeqCst) {
            write_raw(&self.state.sink, CLEAR_LINE);
        }
    }
}

/// Carriage return and erase the line (ECMA-48 EL): the live line is redrawn over itself.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// Redraws the stage's line until the stage drops the sender; nothing before `delay`.
fn spawn_ticker(state: Arc<StageState>, delay: Duration) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let ticker = std::thread::spawn(move || {
        // Written only when it changes: a terminal over a slow link gets a few bytes a second.
        let mut shown = String::new();
        loop {
            match stopped.recv_timeout(REDRAW_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let elapsed = state.started.elapsed();
            if elapsed < delay {
                continue;
            }
            let line = format!(
                "{CLEAR_LINE}{}…{} ({})",
                state.what,
                state.count(),
                whole_seconds(elapsed)
            );
            if line != shown {
                state.drawn.store(true, Ordering::SeqCst);
                write_raw(&state.sink, &line);
                shown = line;
            }
        }
    });
    (stop, ticker)
}

fn write_line(sink: &Sink, text: &str) {
    write_raw(sink, &format!("{text}\n"));
}

/// Progress is best effort: a stderr that cannot be written to fails no command.
fn write_raw(sink: &Sink, text: &str) {
    if let Ok(mut sink) = sink.lock() {
        let _ = sink.write_all(text.as_bytes());
        let _ = sink.flush();
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

fn whole_seconds(elapsed: Duration) -> String {
    format!("{} s", elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capturing(mode: Mode, live_delay: Duration) -> (Progress, Captured) {
        let captured = Captured::default();
        let progress = Progress {
            mode,
            sink: Arc::new(Mutex::new(Box::new(captured.clone()))),
            live_delay,
        };
        (progress, captured)
    }

    #[test]
    fn verbose_logs_each_stage_and_step_with_its_count() {
        let (progress, captured) = capturing(Mode::Log, LIVE_DELAY);
        let stage = progress.stage("writing 2 bundles".into(), 2);
        stage.step("cp1");
        stage.step("cp2");
        stage.finish();
        progress.detail("a detail");
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "writing 2 bundles…");
        assert!(lines[1].starts_with("  cp1 (1/2, "), "{text}");
        assert!(lines[2].starts_with("  cp2 (2/2, "), "{text}");
        assert!(
            lines[3].starts_with("writing 2 bundles: done in "),
            "{text}"
        );
        assert_eq!(lines[4], "a detail");
        assert!(!text.contains('\r'), "logs are plain lines: {text:?}");
    }

    #[test]
    fn silent_says_nothing() {
        let (progress, captured) = capturing(Mode::Silent, Duration::ZERO);
        let stage = progress.stage("generating 3 rsa-4096 keys".into(), 0);
        stage.step("x");
        std::thread::sleep(REDRAW_EVERY * 2);
        stage.finish();
        progress.detail("a detail");
        assert!(!progress.enabled());
        assert_eq!(captured.text(), "");
    }

    #[test]
    fn a_terminal_shows_only_stages_slower_than_the_delay() {
        let (progress, captured) = capturing(Mode::Live, Duration::from_secs(3600));
        progress.stage("quick".into(), 1).finish();
        assert_eq!(captured.text(), "", "quick work stays silent");

        let (progress, captured) = capturing(Mode::Live, Duration::ZERO);
        let stage = progress.stage("writing 3 bundles".into(), 3);
        stage.step("cp1");
        std::thread::sleep(REDRAW_EVERY * 3);
        stage.finish();
        let text = captured.text();
        assert!(
            text.contains(&format!("{CLEAR_LINE}writing 3 bundles… 1/3 (")),
            "{text:?}"
        );
        assert!(
            text.ends_with("s\n") && text.contains("writing 3 bundles: done in "),
            "{text:?}"
        );
    }

    #[test]
    fn a_stage_dropped_on_an_error_clears_its_line() {
        let (progress, captured) = capturing(Mode::Live, Duration::ZERO);
        let stage = progress.stage("generating 1 rsa-4096 key".into(), 0);
        std::thread::sleep(REDRAW_EVERY * 3);
        drop(stage);
        let text = captured.text();
        assert!(text.ends_with(CLEAR_LINE), "{text:?}");
        assert!(!text.contains("done"), "{text:?}");
    }
}
