//! Turns diagnostics into the text users read: miette's graphical report with the
//! file:line:column header, a snippet, a caret and the help line.

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// Renders one diagnostic. Lines are never wrapped, so messages stay greppable.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let theme = if std::env::var_os("NO_COLOR").is_some()
        || !std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        GraphicalTheme::unicode_nocolor()
    } else {
        GraphicalTheme::unicode()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
    let mut text = String::new();
    if handler.render_report(&mut text, diagnostic).is_err() {
        text = format!("{diagnostic}\n");
    }
    text
}
