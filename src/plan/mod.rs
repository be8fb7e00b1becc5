//! Stage 3: what every node gets, decided before any byte is produced.
//!
//! In: a validated [`Cluster`]. Out: a [`Plan`] with one [`NodePlan`] per master: its
//! addresses, the SANs of its serving certificate, and every file it receives with target
//! path and mode. No crypto and no I/O happen here, so `plan` is cheap and its JSON form
//! is the most stable snapshot of what kube-bundle will do.
//!
//! This module decides the nodes and their files; `credentials` the certificates each node
//! needs, `flags` the kube-apiserver command line, `layout` where every file lives.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Cluster, EtcdCa, Master};

/// Bumped whenever the JSON shape of the plan changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

mod credentials;
mod flags;
pub mod layout;

pub use credentials::{
    ADMIN_CN, CLUSTER_ADMINS_GROUP, CaName, CertSpec, INSTALLER_USER, KUBELET_CLIENT_CN, LeafName,
    Purpose, SUPERUSER_GROUP, Sans, admin_group, serving_cert_sans,
};
pub use flags::{DroppedFlag, FlagReason, PlannedFlag, SEED_UNIT_FLAGS, apiserver_flags};
pub use layout::NodeLayout;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format_version: u32,
    pub cluster: String,
    pub kubernetes_version: String,
    /// The `kubernetes` service IP: first address of the primary service CIDR.
    pub kubernetes_service_ip: IpAddr,
    pub nodes: BTreeMap<String, NodePlan>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    /// Every on-node path, computed once; the plan's JSON shows them in `files`.
    #[serde(skip)]
    pub layout: NodeLayout,
    pub name: String,
    pub ip: IpAddr,
    pub role: Role,
    pub serving_cert_sans: Sans,
    /// Directories install.sh creates (the seed notes the working directory must exist).
    pub directories: Vec<String>,
    /// Every file the bundle installs, keyed by its absolute target path.
    pub files: BTreeMap<String, PlannedFile>,
    /// Every certificate this node needs, keyed by its kubeadm-like name.
    pub certificates: BTreeMap<LeafName, CertSpec>,
    /// The kube-apiserver command line, flag name (without dashes) to value and reason.
    pub flags: BTreeMap<String, PlannedFlag>,
    /// The seed unit's flags this version's unit leaves out, and why.
    pub dropped_seed_flags: BTreeMap<String, DroppedFlag>,
}

/// A master runs an apiserver (and the front); a client runs only the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Master,
    Client,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFile {
    /// Unix permission bits, shown in octal in text and JSON output.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub artifact: Artifact,
}

/// What produces a file's bytes; later stages dispatch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    /// A CA's certificate (never its key: CA keys stay in secrets/).
    CaCert(CaName),
    /// A leaf's certificate, and its private key.
    Cert(LeafName),
    Key(LeafName),
    ServiceAccountKey,
    ServiceAccountPub,
    EncryptionConfig,
    AuditPolicy,
    AdminKubeconfig,
    ApiserverUnit,
    ApiserverBinary,
    FrontConfig,
    FrontUnit,
    FrontBinary,
    KeepalivedConfig,
}

/// Shown as one word in plan output: `apiserver-cert`, `front-proxy-ca-cert`, `audit-policy`.
impl Serialize for Artifact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let name = match self {
            Self::CaCert(ca) => {
                return serializer.collect_str(&format_args!("{}-cert", ca.file_stem()));
            }
            Self::Cert(leaf) => return serializer.collect_str(&format_args!("{leaf}-cert")),
            Self::Key(leaf) => return serializer.collect_str(&format_args!("{leaf}-key")),
            Self::ServiceAccountKey => "service-account-key",
            Self::ServiceAccountPub => "service-account-pub",
            Self::EncryptionConfig => "encryption-config",
            Self::AuditPolicy => "audit-policy",
            Self::AdminKubeconfig => "admin-kubeconfig",
            Self::ApiserverUnit => "apiserver-unit",
            Self::ApiserverBinary => "apiserver-binary",
            Self::FrontConfig => "front-config",
            Self::FrontUnit => "front-unit",
            Self::FrontBinary => "front-binary",
            Self::KeepalivedConfig => "keepalived-config",
        };
        serializer.serialize_str(name)
    }
}

impl Artifact {
    /// The systemd unit that must restart when this file changes.
    pub fn unit(self, front: Option<&crate::model::HaFront>) -> &'static str {
        match (self, front) {
            (Self::FrontConfig | Self::FrontUnit | Self::FrontBinary, Some(front)) => {
                front_unit_name(front)
            }
            (Self::KeepalivedConfig, _) => KEEPALIVED_UNIT,
            _ => APISERVER_UNIT,
        }
    }
}

pub const APISERVER_UNIT: &str = crate::bundle::format::APISERVER_UNIT;
/// The distribution's keepalived unit (Debian, RHEL): kube-bundle ships only its config.
pub const KEEPALIVED_UNIT: &str = "keepalived.service";
pub const KEEPALIVED_CONFIG_PATH: &str = "/etc/keepalived/keepalived.conf";

pub fn front_unit_name(front: &crate::model::HaFront) -> &'static str {
    match front.kind {
        crate::model::FrontKind::Haproxy => "kube-haproxy.service",
        crate::model::FrontKind::Nginx => "kube-nginx.service",
    }
}

fn octal<S: serde::Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:04o}"))
}

const PUBLIC: u32 = 0o644;
const PRIVATE: u32 = 0o600;
const EXECUTABLE: u32 = 0o755;

/// Decides every node's files and SANs.
pub fn plan(cluster: &Cluster) -> Plan {
    let masters = cluster
        .masters
        .iter()
        .map(|master| (master.name.to_string(), plan_node(cluster, master)));
    let clients = cluster
        .clients
        .iter()
        .map(|client| (client.name.to_string(), plan_client(cluster, client)));
    let nodes = masters.chain(clients).collect();
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        cluster: cluster.name.to_string(),
        kubernetes_version: cluster.kubernetes_version.to_string(),
        kubernetes_service_ip: cluster.network.service_cidr.kubernetes_service_ip(),
        nodes,
    }
}

fn plan_node(cluster: &Cluster, master: &Master) -> NodePlan {
    use Artifact::*;
    let layout = NodeLayout::new(cluster);
    // With `ca: cluster` etcd trusts the cluster CA (the seed's layout): no separate file.
    let separate_etcd_ca = !matches!(cluster.etcd.ca, EtcdCa::Cluster);
    let installed = [
        (CaCert(CaName::Cluster), PUBLIC, true),
        (CaCert(CaName::FrontProxy), PUBLIC, true),
        (CaCert(CaName::Etcd), PUBLIC, separate_etcd_ca),
        (Cert(LeafName::Apiserver), PUBLIC, true),
        (Key(LeafName::Apiserver), PRIVATE, true),
        (Cert(LeafName::ApiserverKubeletClient), PUBLIC, true),
        (Key(LeafName::ApiserverKubeletClient), PRIVATE, true),
        (Cert(LeafName::ApiserverEtcdClient), PUBLIC, true),
        (Key(LeafName::ApiserverEtcdClient), PRIVATE, true),
        (Cert(LeafName::FrontProxyClient), PUBLIC, true),
        (Key(LeafName::FrontProxyClient), PRIVATE, true),
        // The admin identity as files too: install.sh checks /healthz and applies the RBAC
        // manifests with curl, which cannot read a kubeconfig.
        (Cert(LeafName::Admin), PUBLIC, true),
        (Key(LeafName::Admin), PRIVATE, true),
        // kubeadm writes sa.pub 0600 too.
        (ServiceAccountKey, PRIVATE, true),
        (ServiceAccountPub, PRIVATE, true),
        (EncryptionConfig, PRIVATE, true),
        (AuditPolicy, PUBLIC, cluster.apiserver.audit.enabled),
        (AdminKubeconfig, PRIVATE, true),
        (ApiserverUnit, PUBLIC, true),
        (
            ApiserverBinary,
            EXECUTABLE,
            cluster.kube_apiserver_binary.is_some(),
        ),
        (KeepalivedConfig, PUBLIC, cluster.keepalived.is_some()),
        (FrontConfig, PUBLIC, true),
        (FrontUnit, PUBLIC, true),
        (FrontBinary, EXECUTABLE, cluster.front_binary.is_some()),
    ];
    let files = planned_files(&layout, &installed);
    let mut directories = vec![working_directory(cluster)];
    if cluster.ha_front.is_some() {
        directories.push(front_prefix(cluster));
    }
    let sans = serving_cert_sans(cluster, master);
    let (flags, dropped_seed_flags) = apiserver_flags(cluster, master, &layout);
    NodePlan {
        layout,
        flags,
        dropped_seed_flags,
        name: master.name.to_string(),
        ip: master.ip,
        role: Role::Master,
        certificates: credentials::certificates(cluster, master, &sans),
        serving_cert_sans: sans,
        directories,
        files,
    }
}

/// The files of `installed` (artifact, mode, whether this cluster ships it) at their
/// layout paths; front files only when the cluster has a front.
fn planned_files(
    layout: &NodeLayout,
    installed: &[(Artifact, u32, bool)],
) -> BTreeMap<String, PlannedFile> {
    installed
        .iter()
        .filter(|(_, _, shipped)| *shipped)
        .filter_map(|&(artifact, mode, _)| {
            let path = layout.path(artifact)?;
            Some((path.to_owned(), PlannedFile { mode, artifact }))
        })
        .collect()
}

/// A client node: the front and the CA it checks the apiservers with, nothing else; it
/// holds no key and no credential.
fn plan_client(cluster: &Cluster, client: &Master) -> NodePlan {
    use Artifact::*;
    let layout = NodeLayout::new(cluster);
    let files = planned_files(
        &layout,
        &[
            (CaCert(CaName::Cluster), PUBLIC, true),
            (FrontConfig, PUBLIC, true),
            (FrontUnit, PUBLIC, true),
            (FrontBinary, EXECUTABLE, cluster.front_binary.is_some()),
        ],
    );
    let directories = if cluster.ha_front.is_some() {
        vec![front_prefix(cluster)]
    } else {
        Vec::new()
    };
    NodePlan {
        layout,
        name: client.name.to_string(),
        ip: client.ip,
        role: Role::Client,
        serving_cert_sans: Sans {
            dns: Vec::new(),
            ips: Vec::new(),
        },
        directories,
        files,
        certificates: BTreeMap::new(),
        flags: BTreeMap::new(),
        dropped_seed_flags: BTreeMap::new(),
    }
}

/// nginx's prefix (temp files, pid) under dataDir, like the seed's /opt/k8s/kube-nginx.
pub fn front_prefix(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("kube-nginx")
}

/// The apiserver's WorkingDirectory, where the seed also keeps its audit log.
pub fn working_directory(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("kube-apiserver")
}
