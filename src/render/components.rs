//! The controller manager's and the scheduler's files: their systemd units, their
//! kubeconfigs, the scheduler's config file, and the client-CA bundle every component
//! trusts once the controller manager signs certificates with its own CA.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use askama::Template;

use super::{client_kubeconfig, node_api_url, render, systemd_word};
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::Credential;
use crate::plan::{CONTROLLER_MANAGER_CN, Component, NodePlan, SCHEDULER_CN};
use crate::versions::{self, leader_election, scheduler};

#[derive(Template)]
#[template(path = "systemd/kube-controller-manager.service", escape = "none")]
struct ControllerManagerUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    version: String,
    apiserver_unit: &'static str,
    binary: &'a str,
    args: Vec<String>,
}

#[derive(Template)]
#[template(path = "systemd/kube-scheduler.service", escape = "none")]
struct SchedulerUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    version: String,
    apiserver_unit: &'static str,
    binary: &'a str,
    config: &'a str,
    args: Vec<String>,
}

#[derive(Template)]
#[template(path = "systemd/etcd.service", escape = "none")]
struct EtcdUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    version: String,
    etcd_minor: u64,
    timeout_start: &'static str,
    binary: &'a str,
    args: Vec<String>,
}

/// The stacked member's TimeoutStartSec: none. etcd signals READY only after joining a
/// quorum, and the first master of a new cluster waits for the second to be installed,
/// for as long as the operator takes; a timeout would kill it and restart it in a loop
/// that changes nothing.
pub const ETCD_TIMEOUT_START: &str = "infinity";

#[derive(Template)]
#[template(path = "config/kube-scheduler.yaml", escape = "none")]
struct SchedulerConfig<'a> {
    cluster: &'a str,
    node: &'a str,
    version: String,
    api_version: String,
    kubeconfig: &'a str,
    /// The Lease lock where one exists; the release's default lock before.
    resource_lock: Option<&'static str>,
    /// Where the insecure HTTP server listens, in the releases that run one.
    insecure_address: Option<String>,
    /// `enableProfiling: false`: kube-bundle's hardened defaults.
    hardened: bool,
}

/// The command line of `component`'s unit, each word quoted for systemd.
fn unit_args(node: &NodePlan, component: Component) -> Vec<String> {
    node.component_flags(component)
        .iter()
        .map(|(name, flag)| systemd_word(&format!("--{name}={}", flag.value)))
        .collect()
}

/// The kube-controller-manager unit for one node.
pub fn controller_manager_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let component = Component::ControllerManager;
    render(&ControllerManagerUnit {
        cluster: cluster.name.as_str(),
        node: &node.name,
        version: cluster.kubernetes_version.to_string(),
        apiserver_unit: Component::Apiserver.unit(),
        binary: node.layout.binary(component),
        args: unit_args(node, component),
    })
}

/// The kube-scheduler unit for one node.
pub fn scheduler_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let component = Component::Scheduler;
    render(&SchedulerUnit {
        cluster: cluster.name.as_str(),
        node: &node.name,
        version: cluster.kubernetes_version.to_string(),
        apiserver_unit: Component::Apiserver.unit(),
        binary: node.layout.binary(component),
        config: &node.layout.scheduler_config,
        args: unit_args(node, component),
    })
}

/// A stacked etcd member's unit for one node.
pub fn etcd_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let component = Component::Etcd;
    let stacked = cluster
        .etcd
        .stacked
        .as_ref()
        .ok_or_else(|| Error::Internal("an etcd unit for an external etcd".into()))?;
    render(&EtcdUnit {
        cluster: cluster.name.as_str(),
        node: &node.name,
        version: cluster.kubernetes_version.to_string(),
        etcd_minor: stacked.minor,
        timeout_start: ETCD_TIMEOUT_START,
        binary: node.layout.binary(component),
        args: unit_args(node, component),
    })
}

/// The KubeSchedulerConfiguration, in the API version the release loads: the kubeconfig,
/// leader election (on a Lease where one exists, like the controller manager), profiling
/// off, and up to 1.22 the insecure server on loopback (a zero port there fails validation
/// from 1.18, and unset it listens on every address).
pub fn scheduler_config(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let minor = cluster.kubernetes_version.minor();
    let kubeconfig = node
        .layout
        .kubeconfig(Component::Scheduler)
        .ok_or_else(|| Error::Internal("the scheduler has no kubeconfig path".into()))?;
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), scheduler::INSECURE_PORT);
    render(&SchedulerConfig {
        cluster: cluster.name.as_str(),
        node: &node.name,
        version: cluster.kubernetes_version.to_string(),
        api_version: scheduler::config_api_version(minor).api_version(),
        kubeconfig,
        resource_lock: (minor >= leader_election::LEASES_FROM)
            .then(|| leader_election::rendered_lock(minor)),
        insecure_address: (minor <= scheduler::INSECURE_PORT_SERVES_LAST)
            .then(|| loopback.to_string()),
        hardened: versions::hardened_defaults(minor),
    })
}

/// A component's kubeconfig: its client credential, toward this master's own apiserver
/// (never the load balancer: the leader of a master whose apiserver is down should lose its
/// lease, not keep it through a peer), checked against the cluster CA.
pub fn component_kubeconfig(
    cluster: &Cluster,
    node: &NodePlan,
    component: Component,
    cluster_ca_pem: &str,
    credential: &Credential,
) -> Result<String, Error> {
    let user = match component {
        Component::ControllerManager => CONTROLLER_MANAGER_CN,
        Component::Scheduler => SCHEDULER_CN,
        Component::Apiserver | Component::Etcd => {
            return Err(Error::Internal(format!(
                "{} has no kubeconfig",
                component.program()
            )));
        }
    };
    client_kubeconfig(
        cluster.name.as_str(),
        &node_api_url(node.ip),
        cluster_ca_pem,
        user,
        credential,
    )
}

/// The cluster CA and the CSR signer, one PEM after the other.
pub fn client_ca_bundle(cluster_ca_pem: &str, signer_pem: &str) -> String {
    let mut bundle = cluster_ca_pem.to_owned();
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(signer_pem);
    bundle
}
