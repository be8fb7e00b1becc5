//! The real binaries are the oracle for the version tables.
//!
//! For every release pinned in tests/e2e/kube-versions, the binaries that
//! tests/e2e/build-kube.sh built from the Go module proxy are asked for `--help`, and for
//! kube-apiserver, kube-controller-manager and kube-scheduler alike:
//! - every flag the component's table says that minor accepts must be listed there (a flag
//!   the binary hides because it is deprecated, but still accepts, passes with a note);
//! - every flag the table says that minor does not accept must be neither listed nor accepted
//!   (`--<flag>= --version` must fail with `unknown flag`).
//!
//! For kube-apiserver besides:
//! - a feature gate the table says that minor does not know must be refused, and one it knows
//!   accepted (`--feature-gates=<gate>=true --version`);
//! - the unit kube-bundle renders for examples/cluster.yaml at that release must use only flags
//!   listed in `--help`, and its whole command line must parse (`… --version` exits 0);
//! - its cipher suites must be among the suites `--help` lists as preferred, and its minimum TLS
//!   version among the possible ones (the parser checks those only when the server starts).
//!
//! The units rendered with the controller manager and the scheduler on pass the same
//! checks, and the real scheduler loads the rendered KubeSchedulerConfiguration (strictly
//! decoded) and must keep its settings. The scheduler and controller-manager table checks (leader-election locks, the scheduler's config
//! API versions) are in the submodules; etcd's flags are checked against the pinned etcd build
//! and the distribution's etcd. None of them needs a cluster.
//!
//! A missing binary is a failure, never a skip: run tests/e2e/build-kube.sh.

mod controller_manager;
mod etcd;
mod scheduler;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube_bundle::model::Cluster;
use kube_bundle::plan::{self, Component, NodePlan};
use kube_bundle::render;
use kube_bundle::validate::ValidateOptions;
use kube_bundle::versions::{self, FLAGS, Flag};

use crate::harness::{binary_cache, pinned_kube_versions};

fn minor_of(version: &str) -> u64 {
    version
        .strip_prefix("v1.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("{version} is not v1.Y.Z"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cached `component` (kube-apiserver, kube-controller-manager, kube-scheduler) of
/// `version`; panics, saying how to build it, when it is missing or is another release.
fn kube_binary(version: &str, component: &str) -> PathBuf {
    let path = binary_cache().join("kube").join(version).join(component);
    let fix = format!(
        "\n\n*** The version-table oracle needs a real {component} {version}.\n\
         *** Build it (≈3–7 min a binary cold, cached afterwards):  tests/e2e/build-kube.sh {version}\n\
         *** (cache: $KUBE_BUNDLE_CACHE, default ~/.cache/kube-bundle). This test never skips.\n"
    );
    assert!(path.is_file(), "{} is missing.{fix}", path.display());
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}{fix}", path.display()));
    let said = text(&out.stdout);
    assert!(
        out.status.success() && said.trim() == format!("Kubernetes {version}"),
        "{} --version says {said:?} (stderr {:?}), not \"Kubernetes {version}\".{fix}",
        path.display(),
        text(&out.stderr)
    );
    path
}

/// Flag name (no dashes) → its line in `--help`; `expected` must be among them (proof that
/// the help was read, not some error text).
fn help_flags(binary: &Path, expected: &str) -> BTreeMap<String, String> {
    let out = Command::new(binary).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "{} --help failed: {out:?}",
        binary.display()
    );
    let help = text(&out.stdout);
    let mut flags = BTreeMap::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        // "  -h, --help" and "      --advertise-address ip   The IP address …"
        let long = match trimmed.get(..4) {
            Some(short) if short.starts_with('-') && short.ends_with(", ") => &trimmed[4..],
            _ => trimmed,
        };
        let Some(rest) = long.strip_prefix("--") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() && line.starts_with(' ') {
            flags.insert(name, trimmed.chars().take(160).collect());
        }
    }
    assert!(
        flags.len() > 20 && flags.contains_key(expected),
        "could not read the flags of {} --help:\n{help}",
        binary.display()
    );
    flags
}

/// The names `--help` lists after `label` in the description of `--flag`, e.g. the
/// "Preferred values:" of `--tls-cipher-suites`; the description may span several lines.
fn help_values(binary: &Path, flag: &str, label: &str) -> BTreeSet<String> {
    let out = Command::new(binary).arg("--help").output().unwrap();
    let help = text(&out.stdout);
    let description: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.trim_start().starts_with(&format!("--{flag} ")))
        .enumerate()
        .take_while(|(index, line)| *index == 0 || !line.trim_start().starts_with("--"))
        .map(|(_, line)| line)
        .collect();
    let values: BTreeSet<String> = description
        .iter()
        .filter_map(|line| line.split_once(label))
        .flat_map(|(_, list)| list.split(','))
        .map(|value| value.trim().trim_end_matches('.').to_owned())
        .filter(|value| !value.is_empty())
        .collect();
    assert!(
        !values.is_empty(),
        "{} --help lists no {label:?} for --{flag}:\n{}",
        binary.display(),
        description.join("\n")
    );
    values
}

fn run(binary: &Path, args: &[String]) -> Output {
    Command::new(binary).args(args).output().unwrap()
}

/// What the flag parser makes of `--name=VALUE --version` (`--version` exits before any
/// semantic validation): `Err(unknown-flag line)`, or `Ok(first stderr line)` — a
/// deprecation notice, or nothing. Values are tried until the parser takes one, so that a
/// typed flag shows its deprecation notice instead of an invalid-value complaint.
fn probe(binary: &Path, name: &str) -> Result<String, String> {
    probe_with(binary, name, KUBE_UNKNOWN_FLAG)
}

/// What Kubernetes' flag parser prints for a flag it does not know.
const KUBE_UNKNOWN_FLAG: &str = "unknown flag";

/// [`probe`] for a binary whose parser reports an unknown flag with `unknown`.
fn probe_with(binary: &Path, name: &str, unknown: &str) -> Result<String, String> {
    let mut first = String::new();
    for value in ["", "1", "true", "1s"] {
        let out = run(binary, &[format!("--{name}={value}"), "--version".into()]);
        let stderr = text(&out.stderr);
        if let Some(line) = stderr.lines().find(|l| l.contains(unknown)) {
            return Err(line.trim().to_owned());
        }
        let line = stderr.lines().next().unwrap_or("").trim().to_owned();
        if out.status.success() {
            return Ok(line);
        }
        if first.is_empty() {
            first = line;
        }
    }
    Ok(first)
}

/// A binary whose flags are checked against a table, in one minor of its series.
struct Target<'a> {
    binary: &'a Path,
    /// 1 for Kubernetes, 3 for etcd: the minors in the messages are `major.minor`.
    major: u64,
    minor: u64,
    /// What its flag parser prints for a flag it does not know.
    unknown: &'static str,
}

impl Target<'_> {
    fn kube(binary: &Path, minor: u64) -> Target<'_> {
        Target {
            binary,
            major: 1,
            minor,
            unknown: KUBE_UNKNOWN_FLAG,
        }
    }

    fn probe(&self, name: &str) -> Result<String, String> {
        probe_with(self.binary, name, self.unknown)
    }
}

/// One component's flag table against its binary's `--help`: a flag the table accepts in
/// the target's minor must be listed, or hidden but still accepted (a note); a flag the
/// table refuses must be neither listed nor accepted.
fn check_flag_table(
    target: &Target,
    table: &[Flag],
    help: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let (major, minor) = (target.major, target.minor);
    for row in table {
        let listed = help.get(row.name);
        let range = format!(
            "first {major}.{}, last {}",
            row.first,
            row.last
                .map_or("none".to_owned(), |last| format!("{major}.{last}"))
        );
        if row.accepted_in(minor) {
            if listed.is_some() {
                continue;
            }
            match target.probe(row.name) {
                Ok(stderr) => notes.push(format!(
                    "--{}: accepted but hidden from --help: {stderr:?}",
                    row.name
                )),
                Err(unknown) => problems.push(format!(
                    "--{}: the table says {major}.{minor} accepts it ({range}), but --help does \
                     not list it and the binary refuses it: {unknown:?}",
                    row.name
                )),
            }
        } else if let Some(line) = listed {
            problems.push(format!(
                "--{}: the table says {major}.{minor} does not accept it ({range}; {}), but \
                 --help lists it: {line:?}",
                row.name, row.note
            ));
        } else if let Ok(stderr) = target.probe(row.name) {
            problems.push(format!(
                "--{}: the table says {major}.{minor} does not accept it ({range}; {}); --help \
                 hides it but the binary still accepts it: {stderr:?}",
                row.name, row.note
            ));
        }
    }
}

/// Prints the notes and fails with every problem at once.
fn report(what: &str, problems: &[String], notes: &[String]) {
    for note in notes {
        eprintln!("oracle {what}: note: {note}");
    }
    assert!(
        problems.is_empty(),
        "{what} disagrees with src/versions/ ({} problems):\n  - {}\n",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// A kubeconfig for an apiserver that cannot answer (nothing listens on port 1): enough for
/// a component to load its configuration and start, never to reach a cluster.
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("unreachable.kubeconfig");
    fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: \
         https://127.0.0.1:1\ncontexts:\n- name: none\n  context: {cluster: none, user: none}\n\
         current-context: none\nusers:\n- name: none\n  user: {token: none}\n",
    )
    .unwrap();
    path
}

/// examples/cluster.yaml with kubernetesVersion set to `version`, through the public
/// pipeline: load_cluster → plan → render::apiserver_unit of the first master.
fn rendered_unit(version: &str) -> String {
    let (cluster, node) = planned(version, "");
    render::apiserver_unit(&cluster, &node).unwrap()
}

/// examples/cluster.yaml with kubernetesVersion set to `version` and `appended` added,
/// through load_cluster and plan: the cluster and its first master's plan.
fn planned(version: &str, appended: &str) -> (Cluster, NodePlan) {
    let yaml = crate::harness::apiserver_only_example("cluster.yaml");
    let line = yaml
        .lines()
        .find(|l| l.starts_with("kubernetesVersion:"))
        .expect("examples/cluster.yaml has a kubernetesVersion line");
    let yaml = yaml.replace(line, &format!("kubernetesVersion: {version}")) + appended;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    fs::write(&path, yaml).unwrap();
    let options = ValidateOptions {
        allow_untested_version: minor_of(version) > versions::NEWEST_MINOR,
    };
    let cluster = kube_bundle::load_cluster(&path, options)
        .unwrap_or_else(|e| panic!("examples/cluster.yaml at {version}: {e:?}"))
        .cluster;
    let plan = plan::plan(&cluster);
    let node = plan.nodes[cluster.masters[0].name.as_str()].clone();
    (cluster, node)
}

/// The `--name=value` arguments of the unit's ExecStart, in order.
fn exec_start_args(unit: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut in_exec = false;
    for line in unit.lines() {
        if line.starts_with("ExecStart=") {
            in_exec = true;
        } else if in_exec {
            let arg = line.trim().trim_end_matches('\\').trim();
            if arg.starts_with("--") {
                args.push(arg.to_owned());
            }
        }
        if in_exec && !line.trim_end().ends_with('\\') {
            break;
        }
    }
    assert!(!args.is_empty(), "no flags found in the unit:\n{unit}");
    args
}

fn check(version: &str) {
    let minor = minor_of(version);
    let binary = kube_binary(version, "kube-apiserver");
    let help = help_flags(&binary, "etcd-servers");
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    // 1. The table against --help.
    let target = Target::kube(&binary, minor);
    check_flag_table(&target, FLAGS, &help, &mut problems, &mut notes);

    // The feature gates the table knows: refused exactly where it says they do not exist.
    for gate in versions::CHECKED_FEATURE_GATES {
        let (accepted, gate) = ((gate.known_in)(minor), gate.name);
        let out = run(
            &binary,
            &[format!("--feature-gates={gate}=true"), "--version".into()],
        );
        let refused = text(&out.stderr).contains("unrecognized feature gate");
        if refused == accepted {
            problems.push(format!(
                "feature gate {gate}: the table says 1.{minor} accepts it: {accepted}, but the \
                 binary {}: {:?}",
                if refused { "refuses it" } else { "accepts it" },
                text(&out.stderr)
            ));
        }
    }

    // 2. The rendered unit against --help, then its command line against the parser.
    let unit = rendered_unit(version);
    let args = exec_start_args(&unit);
    let names = rendered_problems(&binary, &help, version, &args, &mut problems, &mut notes);

    eprintln!(
        "oracle {version}: {} table rows, {} flags in --help, {} flags in the rendered unit",
        FLAGS.len(),
        help.len(),
        names
    );
    for note in &notes {
        eprintln!("oracle {version}: note: {note}");
    }
    assert!(
        problems.is_empty(),
        "kube-apiserver {version} disagrees with src/versions/apiserver.rs / the rendered unit \
         ({} problems):\n  - {}\n",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// A rendered command line against the binary: every flag listed in `--help`, the TLS
/// values among those it lists, the whole line parsed (`… --version` exits 0). Returns how
/// many flags the line has.
fn rendered_problems(
    binary: &Path,
    help: &BTreeMap<String, String>,
    version: &str,
    args: &[String],
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> usize {
    let names: BTreeSet<&str> = args
        .iter()
        .map(|a| a[2..].split('=').next().unwrap())
        .collect();
    for name in &names {
        if !help.contains_key(*name) {
            problems.push(format!(
                "rendered unit uses --{name}, which {version} --help does not list ({})",
                match probe(binary, name) {
                    Ok(stderr) => format!("hidden but accepted: {stderr:?}"),
                    Err(unknown) => format!("refused: {unknown:?}"),
                }
            ));
        }
    }
    // Values the parser takes as plain strings and checks only at startup: each cipher
    // suite must be one the binary lists as preferred (not insecure, not unknown), and the
    // minimum TLS version one it lists as possible.
    let value_of = |name: &str| {
        args.iter()
            .find_map(|arg| arg.strip_prefix(&format!("--{name}=")))
            .map(str::to_owned)
    };
    if let Some(suites) = value_of("tls-cipher-suites") {
        let preferred = help_values(binary, "tls-cipher-suites", "Preferred values:");
        for suite in suites.split(',') {
            if !preferred.contains(suite) {
                problems.push(format!(
                    "rendered --tls-cipher-suites names {suite}, which {version} --help does not \
                     list among its preferred suites: {preferred:?}"
                ));
            }
        }
    }
    if let Some(min_version) = value_of("tls-min-version") {
        let possible = help_values(binary, "tls-min-version", "Possible values:");
        if !possible.contains(&min_version) {
            problems.push(format!(
                "rendered --tls-min-version={min_version} is not among {version}'s {possible:?}"
            ));
        }
    }

    let mut parse = args.to_vec();
    parse.push("--version".into());
    let out = run(binary, &parse);
    let stderr = text(&out.stderr);
    if !out.status.success() || text(&out.stdout).trim() != format!("Kubernetes {version}") {
        problems.push(format!(
            "the rendered command line does not parse: exit {:?}, stderr:\n{stderr}",
            out.status.code()
        ));
    }
    for line in stderr.lines().filter(|l| l.contains("deprecated")) {
        notes.push(format!("rendered unit: {}", line.trim()));
    }
    names.len()
}

/// The controller manager's or the scheduler's unit rendered for examples/cluster.yaml with
/// both sections, against the real binary of `version`; the scheduler also loads its
/// rendered KubeSchedulerConfiguration. (Their tables are checked in the submodules.)
fn check_rendered_component(version: &str, component: Component) {
    let minor = minor_of(version);
    let program = component.program();
    let binary = kube_binary(version, program);
    let sentinel = match component {
        Component::ControllerManager => "controllers",
        Component::Scheduler => "config",
        Component::Apiserver => "etcd-servers",
    };
    let help = help_flags(&binary, sentinel);
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let (cluster, node) = planned(version, "controllerManager: {}\nscheduler: {}\n");
    let unit = match component {
        Component::ControllerManager => render::controller_manager_unit(&cluster, &node),
        Component::Scheduler => render::scheduler_unit(&cluster, &node),
        Component::Apiserver => render::apiserver_unit(&cluster, &node),
    }
    .unwrap();
    let args = exec_start_args(&unit);
    let names = rendered_problems(&binary, &help, version, &args, &mut problems, &mut notes);
    if component == Component::Scheduler {
        problems.extend(scheduler_config_problems(&binary, &cluster, &node, minor));
    }
    eprintln!("oracle {version} {program}: {names} flags in the rendered unit");
    report(
        &format!("{program} {version} (rendered unit)"),
        &problems,
        &notes,
    );
}

/// The rendered KubeSchedulerConfiguration through the real scheduler's loader (strict from
/// 1.17: an unknown field fails): `--write-config-to` loads it, validates it and writes back
/// the effective configuration, which must keep kube-bundle's settings. Its kubeconfig is
/// pointed at a stand-in, since the rendered one is only on the node.
fn scheduler_config_problems(
    binary: &Path,
    cluster: &Cluster,
    node: &NodePlan,
    minor: u64,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("scheduler.kubeconfig");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: \
         'https://127.0.0.1:6443' }\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  \
         context: { cluster: c, user: u }\ncurrent-context: x\n",
    )
    .unwrap();
    let rendered = render::scheduler_config(cluster, node).unwrap().replace(
        &node.layout.scheduler_kubeconfig,
        kubeconfig.to_str().unwrap(),
    );
    let config = dir.path().join("kube-scheduler.yaml");
    fs::write(&config, &rendered).unwrap();
    let written = dir.path().join("written.yaml");
    let out = Command::new(binary)
        .arg(format!("--config={}", config.display()))
        .arg(format!("--write-config-to={}", written.display()))
        .output()
        .unwrap();
    let Ok(effective) = fs::read_to_string(&written) else {
        return vec![format!(
            "the rendered KubeSchedulerConfiguration does not load: exit {:?}, stderr:\n{}\n\
             the file:\n{rendered}",
            out.status.code(),
            text(&out.stderr)
        )];
    };
    let lock = versions::leader_election::rendered_lock(minor);
    [
        format!("kubeconfig: {}", kubeconfig.display()),
        "leaderElect: true".to_owned(),
        format!("resourceLock: {lock}"),
        "enableProfiling: false".to_owned(),
    ]
    .into_iter()
    .filter(|setting| !effective.contains(setting.as_str()))
    .map(|setting| {
        format!("the scheduler's effective configuration lacks `{setting}`:\n{effective}")
    })
    .collect()
}

/// One module per pinned release, one test per component in it (`oracle::v1_37_2::
/// kube_scheduler`); `every_pinned_version_has_a_test` keeps the list equal to
/// tests/e2e/kube-versions.
macro_rules! oracle_tests {
    ($($release:ident => $version:literal,)*) => {
        const TESTED: &[&str] = &[$($version),*];
        $(
            mod $release {
                #[test]
                fn kube_apiserver() {
                    super::check($version);
                }

                #[test]
                fn kube_controller_manager() {
                    super::controller_manager::check($version);
                }

                #[test]
                fn kube_scheduler() {
                    super::scheduler::check($version);
                }

                #[test]
                fn kube_controller_manager_rendered_unit() {
                    super::check_rendered_component($version, super::Component::ControllerManager);
                }

                #[test]
                fn kube_scheduler_rendered_unit() {
                    super::check_rendered_component($version, super::Component::Scheduler);
                }
            }
        )*
    };
}

oracle_tests! {
    v1_37_2 => "v1.37.2",
    v1_33_13 => "v1.33.13",
}

#[test]
fn every_pinned_version_has_a_test() {
    let pinned = pinned_kube_versions();
    assert!(
        !pinned.is_empty(),
        "tests/e2e/kube-versions lists no release"
    );
    let tested: Vec<String> = TESTED.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(
        pinned, tested,
        "tests/e2e/kube-versions and oracle_tests! in tests/integration/oracle.rs must list \
         the same releases in the same order"
    );
}
