//! The documents that travel with a node's bundle: install.sh, the node's README, and the
//! INSTALL.md beside the tarballs. They are rendered last, once the bundle's contents have
//! an id they can name.

use askama::Template;

use super::{node_api_url, render, shell_quote};
use crate::error::Error;
use crate::model::Cluster;
use crate::plan::layout::UNIT_DIR;
use crate::plan::{Component, NodeLayout, NodePlan, Role};
use crate::values::SECURE_PORT;

/// The documents of a node's bundle, rendered once its contents have an id.
#[derive(Debug)]
pub struct Documents {
    pub installer: String,
    pub readme: String,
}

/// The installer and the README for a bundle whose contents `facts` names.
pub fn documents(facts: &BundleFacts<'_>) -> Result<Documents, Error> {
    Ok(Documents {
        installer: installer(facts)?,
        readme: node_readme(facts)?,
    })
}

/// What the installer, README and provenance need to know about one node's bundle.
pub struct BundleFacts<'a> {
    pub cluster: &'a Cluster,
    pub node: &'a NodePlan,
    /// Content id of what the bundle installs (rootfs and manifests).
    pub bundle_id: &'a str,
    pub manifests: Vec<String>,
}

#[derive(Template)]
#[template(path = "install.sh.in", escape = "none")]
struct Installer {
    role: String,
    node: String,
    cluster: String,
    version: String,
    bundle_id: String,
    node_ip: String,
    binary: String,
    ca_cert: String,
    admin_cert: String,
    admin_key: String,
    admin_kubeconfig: String,
    api_url: String,
    front_healthz_url: String,
    /// "unit url" of every unit's health gate, in start order.
    health_gates: Vec<String>,
    programs: Vec<String>,
    apiserver_port: String,
    units: Vec<String>,
    /// Where the units are installed: a changed file there means a daemon-reload.
    unit_dir: String,
    files: Vec<String>,
    /// "mode path" of every directory install.sh creates.
    directories: Vec<String>,
    etcd_endpoints: Vec<String>,
    /// A stacked member's health gate: etcdctl, the endpoint it asks, the health-check
    /// client and the member count; all empty with an external etcd.
    etcdctl: String,
    etcd_health_endpoint: String,
    etcd_health_ca: String,
    etcd_health_cert: String,
    etcd_health_key: String,
    etcd_members: String,
    /// The member's unit, whose gate is the quorum wait; empty with an external etcd.
    etcd_unit: String,
    /// Every stacked member's peer URL.
    etcd_peers: Vec<String>,
    manifest_cert: String,
    manifest_key: String,
    manifest_user: String,
    manifest_group: String,
    manifests: Vec<String>,
}

#[derive(Template)]
#[template(path = "bundle/README.md", escape = "none")]
struct NodeReadme {
    bundle_id: String,
    node: String,
    node_ip: String,
    cluster: String,
    version: String,
    tool_version: &'static str,
    healthz_url: String,
    etcd_servers: String,
    etcd_ca: String,
    etcd_cert: String,
    etcd_key: String,
    admin_kubeconfig: String,
    ca_cert: String,
    admin_cert: String,
    admin_key: String,
    revocable_admin: bool,
    admin_cn: &'static str,
    admin_group: &'static str,
    installer: &'static str,
    cert_dir: String,
    /// The CA kubelets' serving certificates are checked against; empty when unchecked.
    kubelet_ca: String,
    files: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "bundle/INSTALL.md", escape = "none")]
struct InstallGuide<'a> {
    cluster: &'a str,
    fingerprint: &'a str,
    /// name, address, role
    nodes: Vec<(String, String, &'static str)>,
}

#[derive(Template)]
#[template(path = "bundle/CLIENT-README.md", escape = "none")]
struct ClientReadme {
    bundle_id: String,
    node: String,
    node_ip: String,
    cluster: String,
    tool_version: &'static str,
    front_healthz_url: String,
    front_unit: String,
    ca_cert: String,
    masters: Vec<String>,
    files: Vec<(String, String)>,
}

/// Where the manifests are POSTed, relative to the API root: ClusterRoleBindings, but for
/// the kube-system RoleBindings, whose file names start with `kube-system-`.
pub const MANIFEST_COLLECTION: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const KUBE_SYSTEM_ROLE_BINDINGS: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings";

/// The collection a manifest is POSTed to.
fn manifest_collection(name: &str) -> &'static str {
    if name.starts_with("kube-system-") {
        KUBE_SYSTEM_ROLE_BINDINGS
    } else {
        MANIFEST_COLLECTION
    }
}

/// install.sh for one node; its shell variables are every value quoted for bash.
pub fn installer(facts: &BundleFacts<'_>) -> Result<String, Error> {
    let script = Installer::common(facts);
    match facts.node.role {
        // No credentials and no apiserver: the front, checked through to the masters.
        Role::Client => render(&script),
        Role::Master => render(&script.for_master(facts)),
    }
}

impl Installer {
    /// What every node's installer says: who it is, what it installs, and the front it
    /// checks. The apiserver's settings are empty.
    fn common(facts: &BundleFacts<'_>) -> Self {
        let cluster = facts.cluster;
        let node = facts.node;
        let q = shell_quote;
        let front = cluster.ha_front.as_ref();
        let front_healthz_url = front
            .map(|front| format!("https://{}/healthz", front.listen()))
            .unwrap_or_default();
        let files = node
            .files
            .iter()
            .map(|(path, file)| {
                let units = node.restart_units(path, front).join(",");
                q(&format!("{:04o} {path} {units}", file.mode))
            })
            .collect();
        Self {
            role: q(match node.role {
                Role::Master => "master",
                Role::Client => "client",
            }),
            node: q(&node.name),
            cluster: cluster.name.to_string(),
            version: q(&cluster.kubernetes_version.to_string()),
            bundle_id: q(facts.bundle_id),
            node_ip: q(&node.ip.to_string()),
            ca_cert: q(&node.layout.ca_cert),
            programs: front_program(&node.layout).iter().map(|p| q(p)).collect(),
            front_healthz_url: q(&front_healthz_url),
            files,
            unit_dir: q(UNIT_DIR),
            directories: node
                .directories
                .iter()
                .map(|directory| {
                    let private = node.private_directories.contains(directory);
                    let mode = if private { "0700" } else { "0755" };
                    q(&format!("{mode} {directory}"))
                })
                .collect(),
            binary: q(""),
            admin_cert: q(""),
            admin_key: q(""),
            admin_kubeconfig: q(""),
            health_gates: Vec::new(),
            api_url: q(""),
            apiserver_port: q(""),
            units: front
                .map(crate::plan::front_unit_name)
                .into_iter()
                .map(q)
                .collect(),
            etcd_endpoints: Vec::new(),
            etcdctl: q(""),
            etcd_health_endpoint: q(""),
            etcd_health_ca: q(""),
            etcd_health_cert: q(""),
            etcd_health_key: q(""),
            etcd_members: q(""),
            etcd_unit: q(""),
            etcd_peers: Vec::new(),
            manifest_cert: q(""),
            manifest_key: q(""),
            manifest_user: q(""),
            manifest_group: q(""),
            manifests: Vec::new(),
        }
    }

    /// Adds what a master's installer needs: the apiserver and its units, the admin
    /// credential it checks with, etcd, and the identity that applies the manifests.
    fn for_master(self, facts: &BundleFacts<'_>) -> Self {
        let cluster = facts.cluster;
        let layout = &facts.node.layout;
        let q = shell_quote;
        let api_url = node_api_url(facts.node.ip);
        let keepalived = cluster.keepalived.is_some();
        let front_unit = cluster.ha_front.as_ref().map(crate::plan::front_unit_name);
        let admin_group = crate::plan::admin_group(cluster.kubernetes_version.minor());
        let (manifest_identity, manifest_user, manifest_group) =
            if admin_group == crate::plan::SUPERUSER_GROUP {
                (&layout.admin, "", "")
            } else {
                (
                    &layout.front_proxy_client,
                    crate::plan::INSTALLER_USER,
                    crate::plan::SUPERUSER_GROUP,
                )
            };
        Self {
            binary: q(&layout.apiserver_binary),
            admin_cert: q(&layout.admin.cert),
            admin_key: q(&layout.admin.key),
            admin_kubeconfig: q(&layout.admin_kubeconfig),
            health_gates: running_components(cluster)
                .filter_map(|component| {
                    let minor = cluster.kubernetes_version.minor();
                    let url = facts.node.healthz_url(component, minor)?;
                    Some(q(&format!("{} {url}", component.unit())))
                })
                .collect(),
            api_url: q(&api_url),
            apiserver_port: q(&SECURE_PORT.to_string()),
            // The apiserver first, then what needs it, then the front and keepalived.
            units: running_components(cluster)
                .map(Component::unit)
                .chain(front_unit)
                .chain(keepalived.then_some(crate::plan::KEEPALIVED_UNIT))
                .map(q)
                .collect(),
            programs: component_programs(cluster, layout)
                .chain(
                    cluster
                        .etcd
                        .stacked
                        .is_some()
                        .then(|| format!("etcdctl {}", layout.etcdctl_binary)),
                )
                .chain(front_program(layout))
                .chain(keepalived.then(|| format!("keepalived {}", layout.keepalived_program)))
                .map(|p| q(&p))
                .collect(),
            etcd_endpoints: etcd_endpoints(cluster),
            manifest_cert: q(&manifest_identity.cert),
            manifest_key: q(&manifest_identity.key),
            manifest_user: q(manifest_user),
            manifest_group: q(manifest_group),
            manifests: facts
                .manifests
                .iter()
                .map(|name| q(&format!("{name} {}", manifest_collection(name))))
                .collect(),
            ..self
        }
        .with_etcd_health(facts)
    }

    /// A stacked member's health gate inputs: this master's own member on loopback, asked
    /// with the health-check client. Unchanged with an external etcd.
    fn with_etcd_health(self, facts: &BundleFacts<'_>) -> Self {
        let cluster = facts.cluster;
        let layout = &facts.node.layout;
        if cluster.etcd.stacked.is_none() {
            return self;
        }
        let q = shell_quote;
        let ca = match cluster.etcd.ca {
            crate::model::EtcdCa::Cluster => &layout.ca_cert,
            _ => &layout.etcd_ca_cert,
        };
        let loopback = crate::values::Host::Ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Self {
            etcdctl: q(&layout.etcdctl_binary),
            etcd_health_endpoint: q(&loopback.https_url(crate::versions::etcd::CLIENT_PORT)),
            etcd_health_ca: q(ca),
            etcd_health_cert: q(&layout.etcd_healthcheck_client.cert),
            etcd_health_key: q(&layout.etcd_healthcheck_client.key),
            etcd_members: q(&cluster.masters.len().to_string()),
            etcd_unit: q(crate::plan::ETCD_UNIT),
            etcd_peers: cluster
                .masters
                .iter()
                .map(|master| {
                    let peer = crate::values::Host::Ip(master.ip);
                    q(&peer.https_url(crate::versions::etcd::PEER_PORT))
                })
                .collect(),
            ..self
        }
    }
}

/// The control-plane components the masters run, in the order install.sh starts them:
/// a stacked etcd member first, then the apiserver, then what talks to it.
fn running_components(cluster: &Cluster) -> impl Iterator<Item = Component> + '_ {
    Component::ALL
        .into_iter()
        .filter(|component| component.runs_in(cluster))
}

/// The controller manager's and the scheduler's programs as install.sh's pre-flight names
/// them (the apiserver's binary has a check of its own, with its version).
fn component_programs<'a>(
    cluster: &'a Cluster,
    layout: &'a NodeLayout,
) -> impl Iterator<Item = String> + 'a {
    running_components(cluster)
        .filter(|component| *component != Component::Apiserver)
        .map(|component| format!("{} {}", component.program(), layout.binary(component)))
}

/// The front's program as install.sh's pre-flight names it, when the cluster has a front.
fn front_program(layout: &NodeLayout) -> Option<String> {
    let front = layout.front.as_ref()?;
    Some(format!("front-proxy {}", front.binary))
}

/// etcd's endpoints as `host:port`, quoted, for install.sh's reachability check; none for
/// stacked etcd, whose members are the masters: installed one after another, the others
/// are not up yet, and this one's is installed by this very run.
fn etcd_endpoints(cluster: &Cluster) -> Vec<String> {
    if cluster.etcd.stacked.is_some() {
        return Vec::new();
    }
    cluster
        .etcd
        .endpoints
        .iter()
        .map(|url| {
            // host_str keeps IPv6 in brackets: `[fd00::11]:2379` is unambiguous to read,
            // and install.sh strips the brackets before connecting.
            shell_quote(&format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(2379)
            ))
        })
        .collect()
}

/// README.md for one node: how to install the bundle, the checks to run, and its files.
pub fn node_readme(facts: &BundleFacts<'_>) -> Result<String, Error> {
    let cluster = facts.cluster;
    let node = facts.node;
    if node.role == Role::Client {
        return client_readme(facts);
    }
    let flag = |name: &str| {
        node.flags
            .get(name)
            .map(|f| f.value.clone())
            .unwrap_or_default()
    };
    let admin_group = crate::plan::admin_group(cluster.kubernetes_version.minor());
    render(&NodeReadme {
        bundle_id: facts.bundle_id.to_owned(),
        node: node.name.clone(),
        node_ip: node.ip.to_string(),
        cluster: cluster.name.to_string(),
        version: cluster.kubernetes_version.to_string(),
        tool_version: env!("CARGO_PKG_VERSION"),
        healthz_url: format!("{}/healthz", node_api_url(node.ip)),
        etcd_servers: flag("etcd-servers"),
        etcd_ca: flag("etcd-cafile"),
        etcd_cert: flag("etcd-certfile"),
        etcd_key: flag("etcd-keyfile"),
        admin_kubeconfig: node.layout.admin_kubeconfig.clone(),
        ca_cert: node.layout.ca_cert.clone(),
        admin_cert: node.layout.admin.cert.clone(),
        admin_key: node.layout.admin.key.clone(),
        revocable_admin: admin_group != crate::plan::SUPERUSER_GROUP,
        admin_cn: crate::plan::ADMIN_CN,
        admin_group,
        installer: crate::plan::INSTALLER_USER,
        cert_dir: node.layout.cert_dir.clone(),
        kubelet_ca: flag("kubelet-certificate-authority"),
        files: readme_files(node),
    })
}

/// A client's README: the front, and the masters it balances over.
fn client_readme(facts: &BundleFacts<'_>) -> Result<String, Error> {
    let cluster = facts.cluster;
    let node = facts.node;
    let front = cluster.ha_front.as_ref();
    render(&ClientReadme {
        bundle_id: facts.bundle_id.to_owned(),
        node: node.name.clone(),
        node_ip: node.ip.to_string(),
        cluster: cluster.name.to_string(),
        tool_version: env!("CARGO_PKG_VERSION"),
        front_healthz_url: front
            .map(|f| format!("https://{}/healthz", f.listen()))
            .unwrap_or_default(),
        front_unit: front
            .map(crate::plan::front_unit_name)
            .unwrap_or_default()
            .to_owned(),
        ca_cert: node.layout.ca_cert.clone(),
        masters: cluster
            .masters
            .iter()
            .map(|m| format!("{} ({})", m.name, m.ip))
            .collect(),
        files: readme_files(node),
    })
}

/// The README's file table: mode, path.
fn readme_files(node: &NodePlan) -> Vec<(String, String)> {
    node.files
        .iter()
        .map(|(path, file)| (format!("{:04o}", file.mode), path.clone()))
        .collect()
}

pub fn install_guide(cluster: &Cluster, fingerprint: &str) -> Result<String, Error> {
    render(&InstallGuide {
        cluster: cluster.name.as_str(),
        fingerprint,
        nodes: cluster
            .masters
            .iter()
            .map(|m| (m, "master"))
            .chain(cluster.clients.iter().map(|c| (c, "client")))
            .map(|(node, role)| (node.name.to_string(), node.ip.to_string(), role))
            .collect(),
    })
}
