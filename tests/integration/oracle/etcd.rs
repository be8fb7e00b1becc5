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
