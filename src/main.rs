use std::process::ExitCode;

use clap::Parser;
use kube_bundle::cli::Cli;
use kube_bundle::commands;
use kube_bundle::diagnostics;
use kube_bundle::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    match commands::run(cli, &mut stdout, &mut stderr) {
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
