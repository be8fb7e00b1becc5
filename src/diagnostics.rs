//! Turns diagnostics into the text users read: miette's graphical report with the
//! file:line:column header, a snippet, a caret and the help line.
//!
//! Whether that text is colored is not decided here but by `--color`, which `main` resolves
//! once per process and passes to [`use_color`]. It is process state rather than a
//! parameter because warnings are rendered deep inside the commands, which write to a plain
//! `dyn Write` that cannot carry it. Until told, reports are plain: tests and library
//! users get the same bytes on a terminal as in a pipe.

use std::sync::atomic::{AtomicBool, Ordering};

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

static COLORED: AtomicBool = AtomicBool::new(false);

/// Colors every report rendered from now on, or stops coloring them.
pub fn use_color(colored: bool) {
    COLORED.store(colored, Ordering::Relaxed);
}

/// Renders one diagnostic. Lines are never wrapped, so messages stay greppable.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let theme = if COLORED.load(Ordering::Relaxed) {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
    let mut text = String::new();
    if handler.render_report(&mut text, diagnostic).is_err() {
        text = format!("{diagnostic}\n");
    }
    text
}
