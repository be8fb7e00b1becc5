//! The binary: parses the command line, settles `--color`, runs the command and maps its
//! error to an exit code, printing every pointed report of a cluster.yaml that failed.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use kube_bundle::cli::{Cli, ColorWhen};
use kube_bundle::commands;
use kube_bundle::diagnostics;
use kube_bundle::error::Error;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // clap prints --help and usage errors (exit 2) itself while parsing, so it learns the
    // color choice before it parses.
    let mut definition = Cli::command().color(ColorWhen::in_raw_args(&args).for_clap());
    let cli = definition
        .try_get_matches_from_mut(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|e| e.format(&mut definition).exit());
    diagnostics::use_color(cli.color.colors_stderr());

    let result = match cli.command {
        Some(command) => {
            let mut stdout = std::io::stdout().lock();
            commands::run(command, cli.verbosity, &mut stdout, &mut std::io::stderr())
        }
        // As kubectl does: asking for nothing is not a usage error, and help on stdout can
        // be paged or searched.
        None => definition
            .print_help()
            .map_err(|e| Error::io(Path::new("<stdout>"), e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Error::InvalidConfig(reports) = &error {
                for report in reports {
                    eprint!("{}", diagnostics::render(report.as_ref()));
                }
            }
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
