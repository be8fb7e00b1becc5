//! kube-scheduler against `versions::scheduler` and `versions::leader_election`: its flags
//! through `--help`, and its config loader through `--config FILE --write-config-to OUT`,
//! which loads, validates and defaults the file, builds the leader-election lock and exits
//! before it contacts the apiserver (the file's kubeconfig names one that cannot answer).
//! - every KubeSchedulerConfiguration version the table says the minor loads must load, and
//!   every other one must be refused as an unregistered version;
//! - the lock it writes when the file names none must be the table's default;
//! - every lock type the table says the minor accepts must load, every other be refused.

use std::fs;
use std::path::Path;

use kube_bundle::versions::leader_election::{LOCK_TYPES, default_lock};
use kube_bundle::versions::scheduler::{
    CONFIG_API_VERSIONS, CONFIG_GROUP, CONFIG_KIND, FLAGS, SECURE_PORT_FROM, config_api_version,
};

use super::{
    Target, check_flag_table, help_flags, kube_binary, minor_of, report, run, text,
    unreachable_kubeconfig,
};

pub(super) fn check(version: &str) {
    let minor = minor_of(version);
    let binary = kube_binary(version, "kube-scheduler");
    let help = help_flags(&binary, "config");
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    check_flag_table(
        &Target::kube(&binary, minor),
        FLAGS,
        &help,
        &mut problems,
        &mut notes,
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let load = |api_version: &str, lock: Option<&str>| {
        load_config(&binary, minor, dir.path(), &kubeconfig, api_version, lock)
    };

    for row in CONFIG_API_VERSIONS {
        let api_version = row.api_version();
        let loaded = load(&api_version, None);
        // klog escapes the quotes of the error it logs: match around them.
        let unregistered = |stderr: &str| {
            stderr.contains(CONFIG_KIND)
                && stderr.contains("is registered for version")
                && stderr.contains(&api_version)
        };
        match (row.accepted_in(minor), &loaded) {
            (true, Ok(_)) => {}
            (false, Err(stderr)) if unregistered(stderr) => {}
            (accepted, _) => problems.push(format!(
                "{api_version}: the table says 1.{minor} loads it: {accepted} ({}), but the \
                 binary {}",
                row.note,
                match loaded {
                    Ok(_) => "loads it".to_owned(),
                    Err(stderr) => format!("refuses it: {stderr}"),
                }
            )),
        }
    }

    let written = config_api_version(minor).api_version();
    match load(&written, None) {
        Ok(config) => {
            let lock = config
                .lines()
                .find_map(|line| line.trim().strip_prefix("resourceLock:"))
                .map(str::trim);
            if lock != Some(default_lock(minor)) {
                problems.push(format!(
                    "the default lock of 1.{minor} is {:?} in the table, {lock:?} in the \
                     binary's written configuration",
                    default_lock(minor)
                ));
            }
        }
        Err(stderr) => problems.push(format!(
            "{written}, the version kube-bundle writes for 1.{minor}, does not load: {stderr}"
        )),
    }
    for lock in LOCK_TYPES {
        let loaded = load(&written, Some(lock.name));
        match (lock.accepted_in(minor), &loaded) {
            (true, Ok(_)) => {}
            (false, Err(stderr)) if stderr.to_lowercase().contains("lock") => {}
            (accepted, _) => problems.push(format!(
                "leaderElection.resourceLock: {}: the table says 1.{minor} accepts it: \
                 {accepted} ({}), but the binary {}",
                lock.name,
                lock.note,
                match loaded {
                    Ok(_) => "loads it".to_owned(),
                    Err(stderr) => format!("refuses it: {stderr}"),
                }
            )),
        }
    }

    eprintln!(
        "oracle {version}: kube-scheduler: {} table rows, {} flags in --help, {} config \
         versions, {} lock types",
        FLAGS.len(),
        help.len(),
        CONFIG_API_VERSIONS.len(),
        LOCK_TYPES.len()
    );
    report(&format!("kube-scheduler {version}"), &problems, &notes);
}

/// Loads a minimal KubeSchedulerConfiguration of `api_version` (with `lock` as its
/// leader-election lock, if given) through `--write-config-to`: `Ok(the written, defaulted
/// configuration)`, or `Err(stderr)`.
fn load_config(
    binary: &Path,
    minor: u64,
    dir: &Path,
    kubeconfig: &Path,
    api_version: &str,
    lock: Option<&str>,
) -> Result<String, String> {
    let lock = lock.map_or(String::new(), |lock| format!("  resourceLock: {lock}\n"));
    let input = dir.join("scheduler.yaml");
    let output = dir.join("written.yaml");
    let _ = fs::remove_file(&output);
    fs::write(
        &input,
        format!(
            "apiVersion: {api_version}\nkind: {CONFIG_KIND}\nclientConnection:\n  kubeconfig: \
             {}\nleaderElection:\n  leaderElect: true\n{lock}",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let mut args = vec![
        format!("--config={}", input.display()),
        format!("--write-config-to={}", output.display()),
    ];
    if minor >= SECURE_PORT_FROM {
        // No serving: two releases' tests may run at once.
        args.push("--secure-port=0".to_owned());
    }
    let out = run(binary, &args);
    let stderr = text(&out.stderr);
    match fs::read_to_string(&output) {
        Ok(config) if out.status.success() && config.contains(CONFIG_GROUP) => Ok(config),
        _ => Err(format!("exit {:?}: {}", out.status.code(), stderr.trim())),
    }
}
