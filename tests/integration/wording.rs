//! What users read cites nothing they cannot open: no internal design notes, no section
//! signs, no upstream PR or KEP numbers (those stay in the version table's `source` field,
//! for maintainers), and no advice a library gives its caller rather than the user. Every text the program prints in these runs is checked: every command's
//! help, `plan` in both formats for every minor, and the diagnostics of every bad fixture.

use std::fs;

use crate::harness::{Project, edit_config, kube_bundle, repo_root};

/// Fragments that only make sense inside the project.
const INTERNAL: [&str; 7] = [
    "§",
    "design.md",
    "kubernetes-reference.md",
    "PR ",
    "PRs ",
    "KEP-",
    "Options if acceptable",
];

#[track_caller]
fn assert_cites_nothing_internal(what: &str, text: &str) {
    for fragment in INTERNAL {
        assert!(
            !text.contains(fragment),
            "{what} prints the internal reference {fragment:?}:\n{text}"
        );
    }
}

fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_of_every_command_cites_nothing_internal() {
    let top = kube_bundle(&repo_root(), &["--help"]);
    top.code(0);
    assert_cites_nothing_internal("--help", &top.stdout());
    let commands = subcommands(&top.stdout());
    assert!(commands.len() >= 8, "{commands:?}");
    for command in &commands {
        let help = kube_bundle(&repo_root(), &[command, "--help"]);
        help.code(0);
        assert_cites_nothing_internal(&format!("{command} --help"), &help.stdout());
        for sub in subcommands(&help.stdout()) {
            let help = kube_bundle(&repo_root(), &[command, &sub, "--help"]);
            assert_cites_nothing_internal(&format!("{command} {sub} --help"), &help.stdout());
        }
    }
}

#[test]
fn plan_of_every_minor_cites_nothing_internal() {
    let project = Project::new();
    let mut current = kube_bundle::versions::NEWEST_RELEASE.to_owned();
    for minor in kube_bundle::versions::OLDEST_MINOR..=kube_bundle::versions::NEWEST_MINOR {
        let version = format!("v1.{minor}.0");
        edit_config(
            project.dir.path(),
            &format!("kubernetesVersion: {current}"),
            &format!("kubernetesVersion: {version}"),
        );
        current = version;
        for format in ["text", "json"] {
            let plan = kube_bundle(
                project.dir.path(),
                &["plan", "--output", format, "cluster.yaml"],
            );
            let shown = format!("{}{}", plan.stdout(), plan.stderr());
            assert_cites_nothing_internal(&format!("plan at {current} ({format})"), &shown);
        }
    }
}

#[test]
fn diagnostics_of_every_bad_fixture_cite_nothing_internal() {
    let fixtures = repo_root().join("tests/fixtures/bad");
    for entry in fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let check = kube_bundle(&dir, &["check", "cluster.yaml"]);
        assert_cites_nothing_internal(&dir.display().to_string(), &check.stderr());
    }
}
