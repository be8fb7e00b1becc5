//! Stage 3, the controller manager's and the scheduler's part: every flag of their units
//! with the reason it is there, for a master whose cluster runs them. Which flags a minor
//! accepts comes from each component's version table (`versions::controller_manager`,
//! `versions::scheduler`); the rule machinery is the apiserver's (`flags`).
//!
//! Both are hardened alike: only the secure port, on loopback, with a serving certificate
//! from the cluster CA; the master's own apiserver through their kubeconfig; delegated
//! authentication that never needs the in-cluster lookup (both client CA files given);
//! leader election on a Lease wherever one exists. The scheduler takes its kubeconfig,
//! leader election and profiling only from its config file (render writes it), so its flags
//! are the ones no field of that file covers.
//!
//! Left out on purpose: `--cluster-cidr` and `--allocate-node-cidrs`, which need a pod CIDR
//! cluster.yaml does not have (the network plugin allocates pod addresses); the scheduler's
//! `--leader-elect*`, `--profiling` and `--kubeconfig`, which it ignores beside `--config`.

use std::collections::BTreeMap;

use super::flags::{
    FlagContext, Gate, OWN_FILE, Rule, kube_bundle, kubeadm, rendered_flags, seed, translated,
};
use super::layout::CredentialPaths;
use super::{Component, NodeLayout, PlannedFlag};
use crate::model::{Cluster, Master};
use crate::versions::{self, controller_manager, leader_election, scheduler};

/// The kube-controller-manager command line for one master; empty when it does not run.
pub fn controller_manager_flags(
    cluster: &Cluster,
    master: &Master,
    layout: &NodeLayout,
) -> BTreeMap<String, PlannedFlag> {
    let Some(config) = &cluster.controller_manager else {
        return BTreeMap::new();
    };
    let context = context(cluster, master, layout, Component::ControllerManager);
    rendered_flags(
        CONTROLLER_MANAGER_RULES,
        controller_manager::flag,
        &context,
        &config.extra_args,
    )
}

/// The kube-scheduler command line for one master; empty when it does not run.
pub fn scheduler_flags(
    cluster: &Cluster,
    master: &Master,
    layout: &NodeLayout,
) -> BTreeMap<String, PlannedFlag> {
    let Some(config) = &cluster.scheduler else {
        return BTreeMap::new();
    };
    let context = context(cluster, master, layout, Component::Scheduler);
    rendered_flags(
        SCHEDULER_RULES,
        scheduler::flag,
        &context,
        &config.extra_args,
    )
}

fn context<'a>(
    cluster: &'a Cluster,
    master: &'a Master,
    layout: &'a NodeLayout,
    component: Component,
) -> FlagContext<'a> {
    FlagContext {
        cluster,
        master,
        layout,
        minor: cluster.kubernetes_version.minor(),
        component,
    }
}

/// The component's own kubeconfig: its client identity toward the master's apiserver.
fn own_kubeconfig(context: &FlagContext) -> Option<PlannedFlag> {
    let path = context.layout.kubeconfig(context.component)?;
    translated(
        path,
        "this bundle's own file: the component's client certificate, toward this master's \
         own apiserver",
    )
}

/// The component's serving certificate and key.
fn serving<'a>(context: &FlagContext<'a>) -> &'a CredentialPaths {
    match context.component {
        Component::Scheduler => &context.layout.scheduler_server,
        Component::Apiserver | Component::ControllerManager | Component::Etcd => {
            &context.layout.controller_manager_server
        }
    }
}

fn tls_cert_file(context: &FlagContext) -> Option<PlannedFlag> {
    translated(
        &serving(context).cert,
        "a serving certificate per node from the cluster CA (SANs localhost, 127.0.0.1, the \
         node's name and address) instead of a self-signed one, so its health can be checked \
         with TLS verified",
    )
}

fn tls_private_key_file(context: &FlagContext) -> Option<PlannedFlag> {
    translated(&serving(context).key, "the serving certificate's key")
}

fn bind_address(_: &FlagContext) -> Option<PlannedFlag> {
    kube_bundle(
        "127.0.0.1",
        "loopback only: nothing off the node needs the secure port, and install.sh checks \
         /healthz there",
    )
}

fn client_ca_file(context: &FlagContext) -> Option<PlannedFlag> {
    translated(
        context.client_ca(),
        "the client CAs the apiserver trusts; with --requestheader-client-ca-file, spares \
         the in-cluster lookup (which 1.12 and 1.13 are not authorized for)",
    )
}

fn requestheader_client_ca_file(context: &FlagContext) -> Option<PlannedFlag> {
    translated(
        &context.layout.front_proxy_ca_cert,
        "the front-proxy CA instead of the cluster CA: with the cluster CA, any client \
         certificate it signed could assert any user through headers",
    )
}

fn requestheader_allowed_names(_: &FlagContext) -> Option<PlannedFlag> {
    kube_bundle(
        "front-proxy-client",
        "only the apiserver's front-proxy client may assert users through headers, as on \
         the apiserver",
    )
}

fn profiling(_: &FlagContext) -> Option<PlannedFlag> {
    kube_bundle(
        "false",
        "CIS controller-manager item: profiling exposes program internals over HTTP; \
         `profiling: \"true\"` in extraArgs turns it back on",
    )
}

fn tls_min_version(_: &FlagContext) -> Option<PlannedFlag> {
    kube_bundle(
        "VersionTLS12",
        "as on the apiserver: TLS 1.0 and 1.1 are refused explicitly",
    )
}

fn tls_cipher_suites(context: &FlagContext) -> Option<PlannedFlag> {
    kube_bundle(
        versions::strong_tls_cipher_suites(context.minor).join(","),
        "as on the apiserver: TLS 1.2 only with ECDHE key exchange and AES-GCM or \
         ChaCha20-Poly1305, named as this minor accepts them",
    )
}

fn leader_elect_resource_lock(context: &FlagContext) -> Option<PlannedFlag> {
    if context.minor < leader_election::LEASES_FROM {
        return None;
    }
    kube_bundle(
        leader_election::rendered_lock(context.minor),
        format!(
            "a Lease from 1.{}, where Leases exist, and in every later minor: an upgrade that \
             changed the lock type could run two leaders at once",
            leader_election::LEASES_FROM
        ),
    )
}

/// Every flag kube-bundle renders for the controller manager, sorted by name.
const CONTROLLER_MANAGER_RULES: &[Rule] = &[
    Rule::new("authentication-kubeconfig", own_kubeconfig),
    Rule::new("authorization-kubeconfig", own_kubeconfig),
    Rule::new("bind-address", |_| seed("127.0.0.1")),
    Rule::new("client-ca-file", client_ca_file),
    Rule::new("cluster-name", |c| {
        translated(
            c.cluster.name.as_str(),
            "cluster.yaml's name instead of the seed's `kubernetes`",
        )
    }),
    Rule::new("cluster-signing-cert-file", |c| {
        translated(
            &c.layout.cluster_signer.cert,
            "a signer CA of its own under the cluster CA instead of the root CA: the root \
             key stays on the build host",
        )
    }),
    Rule::new("cluster-signing-key-file", |c| {
        translated(
            &c.layout.cluster_signer.key,
            "the signer CA's key, the one CA key a bundle carries",
        )
    }),
    Rule::new("controllers", |_| seed("*,bootstrapsigner,tokencleaner")),
    Rule::new("kubeconfig", own_kubeconfig),
    Rule::new("leader-elect", |_| seed("true")),
    Rule::new("leader-elect-resource-lock", leader_elect_resource_lock),
    Rule::new("logtostderr", |_| seed("true")),
    // Up to 1.21 the insecure port (10252) serves on every address unless closed.
    Rule::new("port", |_| seed("0")),
    Rule::new("profiling", profiling).gated(Gate::Hardened),
    Rule::new("requestheader-allowed-names", requestheader_allowed_names),
    Rule::new("requestheader-client-ca-file", requestheader_client_ca_file),
    Rule::new("root-ca-file", |c| {
        translated(
            &c.layout.ca_cert,
            "this bundle's cluster CA, the issuer of the apiserver's serving certificate that \
             pods are given to trust (never the CSR signer)",
        )
    }),
    Rule::new("secure-port", |_| {
        translated(
            controller_manager::SECURE_PORT.to_string(),
            "the default port instead of the seed's 10252, which older releases use for the \
             insecure port",
        )
    }),
    Rule::new("service-account-private-key-file", |c| {
        translated(
            &c.layout.service_account_key,
            "the service-account key the apiserver verifies tokens with, instead of the CA key",
        )
    }),
    Rule::new("service-cluster-ip-range", |c| {
        seed(c.cluster.network.service_cidr.to_string())
    }),
    Rule::new("tls-cert-file", tls_cert_file),
    Rule::new("tls-cipher-suites", tls_cipher_suites).gated(Gate::Hardened),
    Rule::new("tls-min-version", tls_min_version).gated(Gate::Hardened),
    Rule::new("tls-private-key-file", tls_private_key_file),
    Rule::new("use-service-account-credentials", |_| seed("true")),
    Rule::new("v", |_| seed("2")),
];

/// Every flag kube-bundle renders for the scheduler, sorted by name. The serving and
/// delegated-auth flags start with the secure port in 1.13; the table keeps them off 1.12.
const SCHEDULER_RULES: &[Rule] = &[
    Rule::new("authentication-kubeconfig", own_kubeconfig),
    Rule::new("authorization-kubeconfig", own_kubeconfig),
    Rule::new("bind-address", bind_address),
    Rule::new("client-ca-file", client_ca_file),
    Rule::new("config", |c| {
        translated(
            &c.layout.scheduler_config,
            format!(
                "{OWN_FILE} ({}): its kubeconfig, leader election and profiling, which the \
                 scheduler takes only from the file",
                scheduler::config_api_version(c.minor).api_version()
            ),
        )
    }),
    Rule::new("logtostderr", |_| seed("true")),
    Rule::new("requestheader-allowed-names", requestheader_allowed_names),
    Rule::new("requestheader-client-ca-file", requestheader_client_ca_file),
    Rule::new("secure-port", |_| {
        kubeadm(scheduler::SECURE_PORT.to_string())
    }),
    Rule::new("tls-cert-file", tls_cert_file),
    Rule::new("tls-cipher-suites", tls_cipher_suites).gated(Gate::Hardened),
    Rule::new("tls-min-version", tls_min_version).gated(Gate::Hardened),
    Rule::new("tls-private-key-file", tls_private_key_file),
    Rule::new("v", |_| seed("2")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::{NEWEST_MINOR, OLDEST_MINOR};

    #[test]
    fn rules_are_sorted_unique_and_in_their_tables() {
        use super::super::flags::assert_rules_sorted_and_known;
        assert_rules_sorted_and_known(
            "kube-controller-manager",
            CONTROLLER_MANAGER_RULES,
            controller_manager::flag,
        );
        assert_rules_sorted_and_known("kube-scheduler", SCHEDULER_RULES, scheduler::flag);
    }

    #[test]
    fn the_insecure_ports_are_closed_or_gone_in_every_minor() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let port = CONTROLLER_MANAGER_RULES
                .iter()
                .find(|rule| rule.name == "port")
                .unwrap();
            assert_eq!(
                port.admitted(controller_manager::flag, minor),
                minor <= controller_manager::INSECURE_PORT_SERVES_LAST,
                "1.{minor}"
            );
            // The scheduler's is pinned to loopback in its config file instead.
            assert!(SCHEDULER_RULES.iter().all(|rule| rule.name != "port"));
        }
    }

    /// install.sh's gates ask each component where its command line says it listens: the
    /// seed's scheduler only on its loopback HTTP port, a moved secure port where it moved.
    #[test]
    fn health_gates_follow_the_command_line() {
        use crate::plan::{Component, plan};
        use crate::validate::testing::{EXAMPLE_CLUSTER_YAML, example_with_sections, run};
        let version_line = EXAMPLE_CLUSTER_YAML
            .lines()
            .find(|line| line.starts_with("kubernetesVersion:"))
            .unwrap();
        let gates = |version: &str, sections: &str| {
            let yaml = example_with_sections(sections).replacen(
                version_line,
                &format!("kubernetesVersion: {version}"),
                1,
            );
            let cluster = run(&yaml, Default::default()).unwrap().cluster;
            let minor = cluster.kubernetes_version.minor();
            let plan = plan(&cluster);
            let node = plan.nodes.values().next().unwrap();
            Component::ALL.map(|component| node.healthz_url(component, minor))
        };
        let [etcd, apiserver, controller_manager, scheduler] =
            gates("v1.12.3", "controllerManager: {}\nscheduler: {}\n");
        assert_eq!(etcd, None, "etcdctl's gate, not a /healthz");
        let apiserver = apiserver.unwrap();
        assert!(apiserver.starts_with("https://") && apiserver.ends_with(":6443/healthz"));
        assert_eq!(
            controller_manager.unwrap(),
            "https://127.0.0.1:10257/healthz"
        );
        assert_eq!(scheduler.unwrap(), "http://127.0.0.1:10251/healthz");
        let [_, _, controller_manager, scheduler] = gates(
            "v1.37.2",
            "controllerManager: { extraArgs: { secure-port: \"10300\" } }\nscheduler: {}\n",
        );
        assert_eq!(
            controller_manager.unwrap(),
            "https://127.0.0.1:10300/healthz"
        );
        assert_eq!(scheduler.unwrap(), "https://127.0.0.1:10259/healthz");
    }
}
