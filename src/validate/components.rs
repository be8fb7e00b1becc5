//! `controllerManager:` and `scheduler:`: whether each runs on the masters, its extraArgs
//! (checked like the apiserver's, against its own version table) and the binary to ship.

use super::Checker;
use super::extra_args::{CONTROLLER_MANAGER, FlagTable, SCHEDULER, check_extra_args};
use crate::config::{RawComponent, Text};
use crate::model::Component;
use crate::values::KubeVersion;

pub(super) fn check_controller_manager(
    c: &mut Checker<'_>,
    raw: Option<&RawComponent>,
    binary: Option<&Text>,
    version: Option<&KubeVersion>,
) -> Option<Component> {
    check_component(
        c,
        &CONTROLLER_MANAGER,
        "kubeControllerManager",
        raw,
        binary,
        version,
    )
}

pub(super) fn check_scheduler(
    c: &mut Checker<'_>,
    raw: Option<&RawComponent>,
    binary: Option<&Text>,
    version: Option<&KubeVersion>,
) -> Option<Component> {
    check_component(c, &SCHEDULER, "kubeScheduler", raw, binary, version)
}

/// The component as configured, or None when it does not run: its section is absent (so a
/// cluster.yaml written before the component existed keeps an apiserver-only bundle) or
/// says `enabled: false`. A binary to ship for a component that does not run is an error.
fn check_component(
    c: &mut Checker<'_>,
    table: &FlagTable,
    binary_key: &str,
    raw: Option<&RawComponent>,
    binary: Option<&Text>,
    version: Option<&KubeVersion>,
) -> Option<Component> {
    let enabled = raw.is_some_and(|raw| raw.enabled.as_ref().is_none_or(|e| e.value));
    let binary_field = format!("binaries.{binary_key}");
    if !enabled {
        if let Some(value) = binary {
            c.error(
                value.referenced,
                &binary_field,
                format!(
                    "a {} binary to ship, but {} does not run",
                    table.binary, table.section
                ),
                &format!(
                    "add `{}: {{ enabled: true }}`, or remove {binary_field}",
                    table.section
                ),
            );
        }
        return None;
    }
    let extra_args = check_extra_args(
        c,
        table,
        raw.and_then(|raw| raw.extra_args.as_ref()),
        version,
    );
    let binary = binary.and_then(|value| c.input_file(&binary_field, value));
    Some(Component { extra_args, binary })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::validate::ValidateOptions;

    fn with_sections(sections: &str) -> String {
        example_with_sections(sections)
    }

    #[track_caller]
    fn rejects_sections(sections: &str, fragments: &[&str]) {
        rejects_yaml(&with_sections(sections), fragments);
    }

    #[test]
    fn an_absent_section_runs_nothing_and_a_written_one_runs_the_component() {
        let yaml = with_sections("controllerManager: {}\nscheduler: { enabled: false }");
        let cluster = run(&yaml, ValidateOptions::default()).unwrap().cluster;
        assert!(cluster.controller_manager.is_some());
        assert!(cluster.scheduler.is_none());
        let plain = with_sections("");
        let cluster = run(&plain, ValidateOptions::default()).unwrap().cluster;
        assert!(cluster.controller_manager.is_none() && cluster.scheduler.is_none());
    }

    #[test]
    fn component_extra_args_are_checked_against_their_own_table() {
        rejects_sections(
            "controllerManager:\n  extraArgs: { Bad_Flag: x }",
            &[
                "controllerManager.extraArgs.Bad_Flag",
                "not a kube-controller-manager flag name",
            ],
        );
        // Removed in 1.24: refused by a 1.37 controller manager.
        rejects_sections(
            "controllerManager:\n  extraArgs: { port: \"0\" }",
            &["--port is not accepted by v1.37.2"],
        );
        let yaml = with_sections("scheduler:\n  extraArgs: { profiling: \"true\" }");
        let validated = run(&yaml, ValidateOptions::default()).unwrap();
        assert!(
            validated
                .warnings
                .iter()
                .any(|w| w.message.contains("weakens the scheduler")),
            "{:?}",
            validated
                .warnings
                .iter()
                .map(|w| &w.message)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_signing_files_are_kube_bundles() {
        for key in [
            "cluster-signing-cert-file",
            "cluster-signing-key-file",
            "cluster-signing-kubelet-serving-cert-file",
            "cluster-signing-kube-apiserver-client-key-file",
        ] {
            rejects_sections(
                &format!(
                    "controllerManager:\n  extraArgs: {{ {key}: /etc/kubernetes/pki/ca.key }}"
                ),
                &[
                    key,
                    "is set by kube-bundle",
                    "root CA key never reaches a master",
                ],
            );
        }
        // The signing duration is the operator's to choose.
        let yaml =
            with_sections("controllerManager:\n  extraArgs: { cluster-signing-duration: 720h }");
        assert!(run(&yaml, ValidateOptions::default()).is_ok());
    }

    #[test]
    fn a_binary_for_a_component_that_does_not_run_is_refused() {
        let yaml = with_sections("scheduler: { enabled: false }").replacen(
            "kubeScheduler: null",
            "kubeScheduler: cluster.yaml",
            1,
        );
        rejects_yaml(&yaml, &["binaries.kubeScheduler", "scheduler does not run"]);
    }
}
