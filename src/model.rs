//! The validated cluster: what `validate` produces and every later stage reads. Defaults
//! are applied and every value is checked, so the stages after validation never re-check.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::config::{EncryptionProvider, KeyAlgorithm};
use crate::values::{
    AbsPath, DnsLabel, DnsName, Endpoint, Host, KubeVersion, PortRange, ServiceNetwork,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Master {
    pub name: DnsLabel,
    pub ip: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub service_cidr: ServiceNetwork,
    pub node_port_range: PortRange,
    pub dns_domain: DnsName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum EtcdCa {
    Cluster,
    Separate,
    External {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Etcd {
    /// The client URLs the apiservers use: cluster.yaml's, or with stacked etcd every
    /// master's own member (https://<ip>:2379), in the order of the masters.
    pub endpoints: Vec<Url>,
    pub ca: EtcdCa,
    /// One member per master, run by the bundles; None for an external etcd.
    pub stacked: Option<StackedEtcd>,
}

/// Stacked etcd: one member per master, named after it, listening on its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackedEtcd {
    /// The etcd minor (3.x) the members run, which decides the flags rendered: the one
    /// kubeadm pairs with the Kubernetes minor (`versions::etcd::paired_minor`).
    pub minor: u64,
    /// The etcd and etcdctl binaries to ship in every bundle, resolved against the config's
    /// directory; None uses the node's own, in paths.binDir.
    pub binary: Option<PathBuf>,
    pub etcdctl_binary: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pki {
    pub key_algorithm: KeyAlgorithm,
    #[serde(with = "duration_hours")]
    pub cert_validity: Duration,
    #[serde(with = "duration_hours")]
    pub ca_validity: Duration,
    #[serde(rename = "extraSANs")]
    pub extra_sans: Vec<Host>,
    #[serde(rename = "importCA")]
    pub import_ca: Option<ImportCa>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCa {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paths {
    pub bin_dir: AbsPath,
    pub cert_dir: AbsPath,
    pub config_dir: AbsPath,
    pub data_dir: AbsPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub enabled: bool,
    pub max_age: u32,
    pub max_backup: u32,
    pub max_size: u32,
}

/// The seed guide's audit-log rotation: three old files.
pub const SEED_AUDIT_MAX_BACKUP: u32 = 3;
/// The CIS Kubernetes Benchmark's API-server item asks for at least ten old audit logs.
pub const CIS_AUDIT_MAX_BACKUP: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Apiserver {
    pub extra_args: BTreeMap<String, String>,
    pub audit: Audit,
    /// `--runtime-config=api/all=true`: the seed's choice, off after the seed's release.
    pub enable_all_apis: bool,
    /// `--kubelet-certificate-authority`: on unless turned off explicitly.
    pub verify_kubelet_serving_certs: bool,
}

/// A control-plane component beside the apiserver (the controller manager, the scheduler),
/// present when the cluster runs it on every master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Flags merged last, over kube-bundle's, checked against the component's version table.
    pub extra_args: BTreeMap<String, String>,
    /// The binary to ship in every bundle, resolved against the config's directory; None
    /// uses the node's own.
    pub binary: Option<PathBuf>,
}

/// The validated cluster: everything later stages need, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: DnsLabel,
    pub kubernetes_version: KubeVersion,
    pub control_plane_endpoint: Option<Endpoint>,
    pub masters: Vec<Master>,
    pub network: Network,
    pub etcd: Etcd,
    pub pki: Pki,
    pub encryption_provider: EncryptionProvider,
    pub paths: Paths,
    pub apiserver: Apiserver,
    pub controller_manager: Option<Component>,
    pub scheduler: Option<Component>,
    /// The kube-apiserver binary to ship in every bundle, resolved against the config's directory.
    pub kube_apiserver_binary: Option<PathBuf>,
    /// The node-local proxy in front of the apiservers; None when `haFront.kind: none`.
    pub ha_front: Option<HaFront>,
    /// The proxy binary to ship in every bundle (installed at `haFront.binary`).
    pub front_binary: Option<PathBuf>,
    /// Non-master nodes: same shape as masters, but their bundles carry only the front.
    pub clients: Vec<Master>,
    /// The VRRP instance moving controlPlaneEndpoint's address between the masters.
    pub keepalived: Option<Keepalived>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keepalived {
    /// controlPlaneEndpoint's address.
    pub vip: IpAddr,
    pub prefix_length: u8,
    pub interface: String,
    pub virtual_router_id: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HaFront {
    pub kind: FrontKind,
    pub listen_ip: IpAddr,
    pub listen_port: u16,
    pub binary: AbsPath,
    pub nginx_modules: Vec<AbsPath>,
}

/// The proxy `HaFront` runs. cluster.yaml's `haFront.kind: none` is `Cluster::ha_front:
/// None`, so the model has no variant meaning "no proxy" for a match to forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontKind {
    Nginx,
    Haproxy,
}

impl HaFront {
    /// `127.0.0.1:8443`, `[::1]:8443`.
    pub fn listen(&self) -> String {
        SocketAddr::new(self.listen_ip, self.listen_port).to_string()
    }
}

mod duration_hours {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}h", duration.as_secs() / 3600))
    }
}
