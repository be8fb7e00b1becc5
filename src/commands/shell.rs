//! `completions` and `man`: the command line described for shells and for man(1).
//!
//! Both are generated from the clap definition in `cli`, the one description `--help`
//! shows too, so a new option reaches the completions and the man pages without an edit
//! here.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;

use super::{write_err, write_out};
use crate::cli::{Cli, Shell};
use crate::error::Error;

const BINARY: &str = "kube-bundle";

/// Writes the completion script of `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<(), Error> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::PowerShell => clap_complete::Shell::PowerShell,
    };
    // Into memory first: clap_complete panics when its writer fails (a closed pipe), and
    // a failed write is an error like any other here.
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), BINARY, &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if shell == Shell::Bash {
        script = respell_bash_states(&script);
    }
    write_out(out, &script)
}

/// For a binary whose name has a hyphen, clap_complete's bash script spells each
/// subcommand's `case` label (`kube__subcmd__bundle__subcmd__plan`) unlike the state its
/// own loop over the words computes (`kube__bundle__subcmd__plan`): no label matches, and
/// nothing after a subcommand would complete. The labels take the loop's spelling; once
/// clap_complete agrees with itself this changes nothing, and the bash test proves that
/// options and values complete either way.
fn respell_bash_states(script: &str) -> String {
    let label_spelling = BINARY.replace('-', "__subcmd__");
    let loop_spelling = BINARY.replace('-', "__");
    script.replace(&label_spelling, &loop_spelling)
}

/// With a folder: one page per command written into it (created if missing), each path
/// printed. Without: the top page on `out`.
pub fn man(dir: Option<&Path>, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let mut pages = pages();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        render(&pages.remove(0), &mut page)?;
        return out
            .write_all(&page)
            .map_err(|e| Error::io(Path::new("<stdout>"), e));
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for page in &pages {
        let path = dir.join(page.get_filename());
        let mut text = Vec::new();
        render(page, &mut text)?;
        // Through a temp file and a rename: a link planted under a page's name is replaced,
        // never followed to overwrite whatever it points at.
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        temp.write_all(&text).map_err(|e| Error::io(&path, e))?;
        temp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        write_out(out, &format!("{}\n", path.display()))?;
    }
    write_err(
        err,
        &format!("{} man pages; read one with `man -l FILE`\n", pages.len()),
    )
}

/// One page per command and subcommand, the top command's first, each titled with its
/// command line (`kube-bundle-certs-expiry`). No date: the pages are as reproducible as
/// the bundles.
fn pages() -> Vec<Man> {
    // `help` is a way to reach the other pages, not a page of its own.
    let mut definition = Cli::command().disable_help_subcommand(true);
    // Building gives every subcommand its full name (`kube-bundle-certs-expiry`).
    definition.build();
    let source = format!("{BINARY} {}", env!("CARGO_PKG_VERSION"));
    let mut pages = Vec::new();
    add_pages(definition, &source, &mut pages);
    pages
}

/// `command`'s page, then its subcommands' pages, depth first.
fn add_pages(command: clap::Command, source: &str, pages: &mut Vec<Man>) {
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    pages.push(
        Man::new(command)
            .source(source)
            .manual("kube-bundle manual"),
    );
    for subcommand in subcommands {
        add_pages(subcommand, source, pages);
    }
}

fn render(page: &Man, into: &mut Vec<u8>) -> Result<(), Error> {
    page.render(into)
        .map_err(|e| Error::Internal(format!("cannot render a man page: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_page_per_command_named_by_its_command_line() {
        let names: Vec<String> = pages().iter().map(Man::get_filename).collect();
        assert_eq!(names[0], "kube-bundle.1", "the top page first");
        for name in [
            "kube-bundle-build.1",
            "kube-bundle-certs.1",
            "kube-bundle-certs-expiry.1",
            "kube-bundle-certs-renew.1",
            "kube-bundle-encryption-rotate.1",
            "kube-bundle-man.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
