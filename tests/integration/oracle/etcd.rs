//! etcd against `versions::etcd`: the pinned etcd build the end-to-end tests run
//! (tests/e2e/build-etcd.sh's default) and the distribution's etcd that `.ci/run` installs,
//! each through `--help` in its own minor. Two etcd minors, no cluster.

use std::path::Path;
use std::process::Command;

use kube_bundle::versions::etcd::{FLAGS, MAJOR, NEWEST_MINOR, OLDEST_MINOR};

use super::{Target, check_flag_table, help_flags, report, text};
use crate::harness::{binary_cache, pinned_etcd_version};

/// What etcd's flag parser (Go's `flag`) prints for a flag it does not know.
const ETCD_UNKNOWN_FLAG: &str = "flag provided but not defined";

#[test]
fn pinned_build() {
    let version = pinned_etcd_version();
    let binary = binary_cache().join("etcd").join(&version).join("etcd");
    assert!(
        binary.is_file(),
        "{} is missing: run tests/e2e/build-etcd.sh {version}. This test never skips.",
        binary.display()
    );
    check(&binary);
}

/// The etcd unit rendered for tests/fixtures/stacked.yaml at the Kubernetes minor the pinned
/// etcd's minor pairs with: every flag is in the binary's `--help`, and the whole command
/// line parses (`etcd ARGS --version` parses every flag before it prints the version).
#[test]
fn pinned_build_accepts_the_rendered_stacked_unit() {
    let version = pinned_etcd_version();
    let binary = binary_cache().join("etcd").join(&version).join("etcd");
    assert!(
        binary.is_file(),
        "{} is missing: run tests/e2e/build-etcd.sh {version}. This test never skips.",
        binary.display()
    );
    let etcd_minor: u64 = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("etcd {version}: no minor"));
    let kube_minor = (kube_bundle::versions::OLDEST_MINOR..=kube_bundle::versions::NEWEST_MINOR)
        .rev()
        .find(|minor| kube_bundle::versions::etcd::paired_minor(*minor) == etcd_minor)
        .unwrap_or_else(|| panic!("no Kubernetes minor pairs with etcd {version}"));
    let cluster = crate::stacked::load_stacked(&format!("v1.{kube_minor}.0"));
    let node = crate::render::first_node(&cluster);
    let unit = kube_bundle::render::etcd_unit(&cluster, &node).unwrap();
    let args = super::exec_start_args(&unit);
    let help = help_flags(&binary, "initial-cluster");
    let unknown: Vec<&String> = args
        .iter()
        .filter(|arg| {
            let name = arg
                .trim_start_matches('-')
                .split('=')
                .next()
                .unwrap_or_default();
            !help.contains_key(name)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "etcd {version} --help lacks {unknown:?}"
    );
    let out = Command::new(&binary)
        .args(&args)
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains(version.trim_start_matches('v')),
        "etcd {version} refuses the rendered command line: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn distribution_package() {
    // .ci/run installs the distribution's etcd (etcd-server on Debian) on PATH.
    check(Path::new("etcd"));
}

fn check(binary: &Path) {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} does not run: {e} (.ci/run installs it)",
                binary.display()
            )
        });
    let said = text(&out.stdout);
    let version = said
        .lines()
        .find_map(|line| line.strip_prefix("etcd Version: "))
        .unwrap_or_else(|| panic!("{} --version says {said:?}", binary.display()))
        .trim()
        .to_owned();
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    assert_eq!(major, Some(MAJOR), "{}: etcd {version}", binary.display());
    let minor = minor.unwrap_or_else(|| panic!("etcd {version}: no minor"));
    assert!(
        (OLDEST_MINOR..=NEWEST_MINOR).contains(&minor),
        "{}: etcd {version} is outside the table ({MAJOR}.{OLDEST_MINOR}–{MAJOR}.{NEWEST_MINOR})",
        binary.display()
    );

    let help = help_flags(binary, "initial-cluster");
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let target = Target {
        binary,
        major: MAJOR,
        minor,
        unknown: ETCD_UNKNOWN_FLAG,
    };
    check_flag_table(&target, FLAGS, &help, &mut problems, &mut notes);
    eprintln!(
        "oracle etcd {version}: {} table rows, {} flags in --help",
        FLAGS.len(),
        help.len()
    );
    report(
        &format!("etcd {version} ({})", binary.display()),
        &problems,
        &notes,
    );
}
