//! Stage 3: what every node gets, decided before any byte is produced.
//!
//! In: a validated [`Cluster`]. Out: a [`Plan`] with one [`NodePlan`] per master: its
//! addresses, the SANs of its serving certificate, and every file it receives with target
//! path and mode. No crypto and no I/O happen here, so `plan` is cheap and its JSON form
//! is the most stable snapshot of what kube-bundle will do.
//!
//! This module decides the nodes and their files; `credentials` the certificates each node
//! needs, `flags` the kube-apiserver command line, `components` the controller manager's and
//! the scheduler's, `layout` where every file lives.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Cluster, EtcdCa, Master};
use crate::versions;

/// Bumped whenever the JSON shape of the plan changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

mod components;
mod credentials;
mod flags;
pub mod layout;

pub use components::{controller_manager_flags, scheduler_flags};
pub use credentials::{
    ADMIN_CN, CLUSTER_ADMINS_GROUP, CONTROLLER_MANAGER_CN, CaName, CertSpec, INSTALLER_USER,
    KUBELET_CLIENT_CN, LeafName, Purpose, SCHEDULER_CN, SUPERUSER_GROUP, Sans, admin_group,
    serving_cert_sans,
};
pub use flags::{DroppedFlag, FlagReason, PlannedFlag, SEED_UNIT_FLAGS, apiserver_flags};
pub use layout::{CONTROLLER_MANAGER_UNIT, NodeLayout, SCHEDULER_UNIT};

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
    /// The kube-controller-manager command line; empty when it does not run.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub controller_manager_flags: BTreeMap<String, PlannedFlag>,
    /// The kube-scheduler command line; empty when it does not run.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub scheduler_flags: BTreeMap<String, PlannedFlag>,
}

impl NodePlan {
    /// The units install.sh restarts when the file at `path` changes, sorted: its owner's,
    /// and every component's whose command line names it (a CA, the front-proxy CA, the
    /// service-account key and the client-CA bundle are read by several). Empty for a path
    /// this node does not install.
    pub fn restart_units(
        &self,
        path: &str,
        front: Option<&crate::model::HaFront>,
    ) -> Vec<&'static str> {
        let Some(file) = self.files.get(path) else {
            return Vec::new();
        };
        let readers = Component::ALL.into_iter().filter(|component| {
            self.component_flags(*component)
                .values()
                .any(|flag| flag.value.split(',').any(|value| value == path))
        });
        let units: std::collections::BTreeSet<&'static str> =
            std::iter::once(file.artifact.unit(front))
                .chain(readers.map(Component::unit))
                .collect();
        units.into_iter().collect()
    }

    /// Where install.sh asks `component` whether it is healthy, as its command line has it:
    /// the secure port on the address it binds (loopback when it binds every address), or,
    /// for a scheduler without a secure port, the HTTP port its config file binds to loopback.
    pub fn healthz_url(&self, component: Component, minor: u64) -> String {
        use crate::values::Host;
        use versions::{controller_manager, scheduler};
        let default_port = match component {
            Component::Apiserver => crate::values::SECURE_PORT,
            Component::ControllerManager => controller_manager::SECURE_PORT,
            Component::Scheduler if minor < scheduler::SECURE_PORT_FROM => {
                return format!("http://127.0.0.1:{}/healthz", scheduler::INSECURE_PORT);
            }
            Component::Scheduler => scheduler::SECURE_PORT,
        };
        let flags = self.component_flags(component);
        let port = flags
            .get("secure-port")
            .and_then(|flag| flag.value.parse().ok())
            .unwrap_or(default_port);
        let host = match component {
            Component::Apiserver => self.ip,
            _ => flags
                .get("bind-address")
                .and_then(|flag| flag.value.parse::<IpAddr>().ok())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        };
        format!("{}/healthz", Host::Ip(host).https_url(port))
    }

    /// The command line of `component`'s unit; empty for a component this node does not run.
    pub fn component_flags(&self, component: Component) -> &BTreeMap<String, PlannedFlag> {
        match component {
            Component::Apiserver => &self.flags,
            Component::ControllerManager => &self.controller_manager_flags,
            Component::Scheduler => &self.scheduler_flags,
        }
    }
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

/// A control-plane program a master runs: each has its own unit, binary and command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Apiserver,
    ControllerManager,
    Scheduler,
}

impl Component {
    pub const ALL: [Component; 3] = [
        Component::Apiserver,
        Component::ControllerManager,
        Component::Scheduler,
    ];

    /// The name artifacts are shown with: `apiserver-unit`, `scheduler-kubeconfig`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apiserver => "apiserver",
            Self::ControllerManager => "controller-manager",
            Self::Scheduler => "scheduler",
        }
    }

    /// The program's name, which is also its binary's file name.
    pub fn program(self) -> &'static str {
        match self {
            Self::Apiserver => "kube-apiserver",
            Self::ControllerManager => "kube-controller-manager",
            Self::Scheduler => "kube-scheduler",
        }
    }

    /// The systemd unit that runs it.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Apiserver => APISERVER_UNIT,
            Self::ControllerManager => CONTROLLER_MANAGER_UNIT,
            Self::Scheduler => SCHEDULER_UNIT,
        }
    }

    /// Whether the cluster runs it on its masters: the apiserver always, the others when
    /// their cluster.yaml section says so.
    pub fn runs_in(self, cluster: &Cluster) -> bool {
        self.config(cluster).is_some() || self == Self::Apiserver
    }

    /// Its cluster.yaml section; None for the apiserver (whose section has more) and for a
    /// component that does not run.
    pub fn config(self, cluster: &Cluster) -> Option<&crate::model::Component> {
        match self {
            Self::Apiserver => None,
            Self::ControllerManager => cluster.controller_manager.as_ref(),
            Self::Scheduler => cluster.scheduler.as_ref(),
        }
    }

    /// The binary cluster.yaml ships for it, if any.
    pub fn shipped_binary(self, cluster: &Cluster) -> Option<&std::path::PathBuf> {
        match self {
            Self::Apiserver => cluster.kube_apiserver_binary.as_ref(),
            Self::ControllerManager | Self::Scheduler => self.config(cluster)?.binary.as_ref(),
        }
    }
}

/// What produces a file's bytes; later stages dispatch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    /// A CA's certificate (never its key: CA keys stay in secrets/, but for the signer's).
    CaCert(CaName),
    /// A leaf's certificate, and its private key.
    Cert(LeafName),
    Key(LeafName),
    ServiceAccountKey,
    ServiceAccountPub,
    EncryptionConfig,
    AuditPolicy,
    AdminKubeconfig,
    /// A component's systemd unit and its shipped binary.
    Unit(Component),
    Binary(Component),
    /// The credential a component reaches the apiserver with; the apiserver has none.
    Kubeconfig(Component),
    /// The KubeSchedulerConfiguration file.
    SchedulerConfig,
    /// The cluster CA and the CSR signer in one file: the client CAs every component trusts.
    ClientCaBundle,
    /// The CSR signer's private key: the one CA key a bundle carries.
    ClusterSignerKey,
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
            Self::Unit(component) => {
                return serializer.collect_str(&format_args!("{}-unit", component.as_str()));
            }
            Self::Binary(component) => {
                return serializer.collect_str(&format_args!("{}-binary", component.as_str()));
            }
            Self::Kubeconfig(component) => {
                return serializer.collect_str(&format_args!("{}-kubeconfig", component.as_str()));
            }
            Self::SchedulerConfig => "scheduler-config",
            Self::ClientCaBundle => "client-ca-bundle",
            Self::ClusterSignerKey => "cluster-signer-key",
            Self::FrontConfig => "front-config",
            Self::FrontUnit => "front-unit",
            Self::FrontBinary => "front-binary",
            Self::KeepalivedConfig => "keepalived-config",
        };
        serializer.serialize_str(name)
    }
}

impl Artifact {
    /// The systemd unit that must restart when this file changes: its owner's. A file
    /// several components read (the CAs, the service-account key, the client-CA bundle)
    /// belongs to the apiserver.
    pub fn unit(self, front: Option<&crate::model::HaFront>) -> &'static str {
        match (self, front) {
            (Self::FrontConfig | Self::FrontUnit | Self::FrontBinary, Some(front)) => {
                front_unit_name(front)
            }
            (Self::KeepalivedConfig, _) => KEEPALIVED_UNIT,
            _ => self.owner().unit(),
        }
    }

    /// The component whose unit restarts when this file changes (the apiserver for the
    /// front's and keepalived's files, which `unit` maps to their own units).
    pub fn owner(self) -> Component {
        use Component::*;
        match self {
            Self::Unit(component) | Self::Binary(component) | Self::Kubeconfig(component) => {
                component
            }
            Self::SchedulerConfig
            | Self::Cert(LeafName::Scheduler | LeafName::SchedulerServer)
            | Self::Key(LeafName::Scheduler | LeafName::SchedulerServer) => Scheduler,
            Self::CaCert(CaName::ClusterSigner)
            | Self::ClusterSignerKey
            | Self::Cert(LeafName::ControllerManager | LeafName::ControllerManagerServer)
            | Self::Key(LeafName::ControllerManager | LeafName::ControllerManagerServer) => {
                ControllerManager
            }
            _ => Apiserver,
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
    let layout = NodeLayout::new(cluster);
    let mut installed = master_files(cluster);
    installed.extend(component_files(cluster));
    let files = planned_files(&layout, &installed);
    let mut directories = vec![working_directory(cluster)];
    if cluster.ha_front.is_some() {
        directories.push(front_prefix(cluster));
    }
    let sans = serving_cert_sans(cluster, master);
    let (flags, dropped_seed_flags) = apiserver_flags(cluster, master, &layout);
    NodePlan {
        flags,
        dropped_seed_flags,
        controller_manager_flags: controller_manager_flags(cluster, master, &layout),
        scheduler_flags: scheduler_flags(cluster, master, &layout),
        layout,
        name: master.name.to_string(),
        ip: master.ip,
        role: Role::Master,
        certificates: credentials::certificates(cluster, master, &sans),
        serving_cert_sans: sans,
        directories,
        files,
    }
}

/// A file of a node (artifact, mode) and whether this cluster ships it.
type Installed = (Artifact, u32, bool);

/// What every master installs: the apiserver's files, the front's and keepalived's.
fn master_files(cluster: &Cluster) -> Vec<Installed> {
    use Artifact::*;
    // With `ca: cluster` etcd trusts the cluster CA (the seed's layout): no separate file.
    let separate_etcd_ca = !matches!(cluster.etcd.ca, EtcdCa::Cluster);
    vec![
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
        (Unit(Component::Apiserver), PUBLIC, true),
        (
            Binary(Component::Apiserver),
            EXECUTABLE,
            cluster.kube_apiserver_binary.is_some(),
        ),
        (KeepalivedConfig, PUBLIC, cluster.keepalived.is_some()),
        (FrontConfig, PUBLIC, true),
        (FrontUnit, PUBLIC, true),
        (FrontBinary, EXECUTABLE, cluster.front_binary.is_some()),
    ]
}

/// The controller manager's and the scheduler's files, where they run. Their client
/// identities travel only inside their kubeconfigs (nothing else reads them); their serving
/// certificates are files, named by --tls-cert-file.
fn component_files(cluster: &Cluster) -> Vec<Installed> {
    use Artifact::*;
    use Component::{ControllerManager, Scheduler};
    let manager = cluster.controller_manager.is_some();
    let scheduler = cluster.scheduler.is_some();
    // The 1.12 scheduler has no secure port, so no serving certificate to read.
    let scheduler_serves =
        scheduler && cluster.kubernetes_version.minor() >= versions::scheduler::SECURE_PORT_FROM;
    let mut files = vec![
        // The signer exists only where the controller manager runs to sign with it.
        (CaCert(CaName::ClusterSigner), PUBLIC, manager),
        (ClusterSignerKey, PRIVATE, manager),
        (ClientCaBundle, PUBLIC, manager),
        (Cert(LeafName::ControllerManagerServer), PUBLIC, manager),
        (Key(LeafName::ControllerManagerServer), PRIVATE, manager),
        (Cert(LeafName::SchedulerServer), PUBLIC, scheduler_serves),
        (Key(LeafName::SchedulerServer), PRIVATE, scheduler_serves),
        (SchedulerConfig, PUBLIC, scheduler),
    ];
    for component in [ControllerManager, Scheduler] {
        let runs = component.runs_in(cluster);
        let shipped = component.shipped_binary(cluster).is_some();
        files.extend([
            (Kubeconfig(component), PRIVATE, runs),
            (Unit(component), PUBLIC, runs),
            (Binary(component), EXECUTABLE, runs && shipped),
        ]);
    }
    files
}

/// The files of `installed` (artifact, mode, whether this cluster ships it) at their
/// layout paths; front files only when the cluster has a front.
fn planned_files(layout: &NodeLayout, installed: &[Installed]) -> BTreeMap<String, PlannedFile> {
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
        controller_manager_flags: BTreeMap::new(),
        scheduler_flags: BTreeMap::new(),
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
