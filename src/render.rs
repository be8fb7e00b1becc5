//! Stage 5: the bytes of every file a master receives.
//!
//! In: the [`Cluster`], one [`NodePlan`] (which files, which flags), the [`Pki`] and the
//! [`EncryptionKeys`]. Out: a [`RenderedNode`]: rootfs files keyed by target path with
//! their modes, and the RBAC manifests applied once the apiserver is healthy. Templates
//! live in templates/ (askama, checked at compile time); every value that reaches a unit
//! or YAML file was validated upstream or is quoted here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::encryption::{EncryptionKey, EncryptionKeys};
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::Pki;
use crate::plan::{Artifact, CaName, KUBELET_CLIENT_CN, NodePlan, Role, cert_names};
use crate::values::{Host, SECURE_PORT};
use crate::versions;

/// A file's content: bytes made here, or a file (the apiserver binary) streamed later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub mode: u32,
    pub content: Content,
}

/// Everything one master's bundle carries besides the installer.
#[derive(Debug)]
pub struct RenderedNode {
    /// Keyed by absolute target path.
    pub rootfs: BTreeMap<String, RenderedFile>,
    /// Keyed by file name; applied in name order.
    pub manifests: BTreeMap<String, Vec<u8>>,
}

pub const KUBELET_APIS_MANIFEST: &str = "kube-apiserver-kubelet-apis.yaml";
/// From `versions::REVOCABLE_ADMIN_GROUP_FROM`: cluster-admin for the admin credential's group.
pub const CLUSTER_ADMINS_MANIFEST: &str = "kube-bundle-cluster-admins.yaml";

#[derive(Template)]
#[template(path = "systemd/kube-apiserver.service", escape = "none")]
struct ApiserverUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    version: String,
    working_directory: String,
    binary: String,
    args: Vec<String>,
}

#[derive(Template)]
#[template(path = "config/encryption-config.yaml", escape = "none")]
struct EncryptionConfig<'a> {
    cluster: &'a str,
    kind: &'a str,
    api_version: &'a str,
    blocks: Vec<ProviderBlock<'a>>,
}

/// One provider entry of the encryption config with its keys, in order.
struct ProviderBlock<'a> {
    provider: &'static str,
    keys: Vec<&'a EncryptionKey>,
}

#[derive(Template)]
#[template(path = "config/audit-policy.yaml", escape = "none")]
struct AuditPolicy<'a> {
    api_version: &'a str,
}

#[derive(Template)]
#[template(path = "config/admin.kubeconfig", escape = "none")]
struct AdminKubeconfig<'a> {
    cluster: &'a str,
    server: String,
    ca_data: String,
    client_cert_data: String,
    client_key_data: String,
}

#[derive(Template)]
#[template(path = "front/kube-nginx.conf", escape = "none")]
struct NginxConfig<'a> {
    cluster: &'a str,
    listen: String,
    prefix: String,
    modules: Vec<String>,
    masters: Vec<String>,
}

#[derive(Template)]
#[template(path = "front/kube-haproxy.cfg", escape = "none")]
struct HaproxyConfig<'a> {
    cluster: &'a str,
    listen: String,
    masters: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "systemd/kube-nginx.service", escape = "none")]
struct NginxUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    listen: String,
    prefix: String,
    binary: String,
    config: String,
}

#[derive(Template)]
#[template(path = "keepalived/keepalived.conf", escape = "none")]
struct KeepalivedConfig<'a> {
    cluster: &'a str,
    node: &'a str,
    node_ip: String,
    vip: String,
    prefix_length: u8,
    interface: &'a str,
    virtual_router_id: u8,
    priority: usize,
    peers: Vec<String>,
    ca_cert: String,
    healthz_url: String,
}

#[derive(Template)]
#[template(path = "systemd/kube-haproxy.service", escape = "none")]
struct HaproxyUnit<'a> {
    cluster: &'a str,
    node: &'a str,
    listen: String,
    binary: String,
    config: String,
}

#[derive(Template)]
#[template(path = "manifests/kube-apiserver-kubelet-apis.yaml", escape = "none")]
struct KubeletApisBinding<'a> {
    user: &'a str,
}

#[derive(Template)]
#[template(path = "manifests/kube-bundle-cluster-admins.yaml", escape = "none")]
struct ClusterAdminsBinding<'a> {
    group: &'a str,
    installer: &'a str,
}

/// Renders one node's files.
pub fn render_node(
    cluster: &Cluster,
    node: &NodePlan,
    pki: &Pki,
    encryption: &EncryptionKeys,
) -> Result<RenderedNode, Error> {
    let leaves = pki
        .nodes
        .get(&node.name)
        .ok_or_else(|| Error::Internal(format!("no certificates for {}", node.name)))?;
    let leaf = |name: &str| {
        leaves
            .get(name)
            .ok_or_else(|| Error::Internal(format!("{} lacks {name}", node.name)))
    };
    let mut rootfs = BTreeMap::new();
    for (path, planned) in &node.files {
        let bytes = match planned.artifact {
            Artifact::CaCert => pki.ca_cert_pem.clone().into_bytes(),
            Artifact::FrontProxyCaCert => pki.front_proxy_ca_cert_pem.clone().into_bytes(),
            Artifact::EtcdCaCert => pki
                .ca_cert_pem(CaName::Etcd)
                .ok_or_else(|| Error::Internal("no etcd CA".into()))?
                .as_bytes()
                .to_vec(),
            Artifact::ApiserverCert => leaf(cert_names::APISERVER)?.cert_pem.clone().into_bytes(),
            Artifact::ApiserverKey => leaf(cert_names::APISERVER)?.key.to_pem().into_bytes(),
            Artifact::ApiserverKubeletClientCert => leaf(cert_names::KUBELET_CLIENT)?
                .cert_pem
                .clone()
                .into_bytes(),
            Artifact::ApiserverKubeletClientKey => {
                leaf(cert_names::KUBELET_CLIENT)?.key.to_pem().into_bytes()
            }
            Artifact::ApiserverEtcdClientCert => {
                leaf(cert_names::ETCD_CLIENT)?.cert_pem.clone().into_bytes()
            }
            Artifact::ApiserverEtcdClientKey => {
                leaf(cert_names::ETCD_CLIENT)?.key.to_pem().into_bytes()
            }
            Artifact::FrontProxyClientCert => leaf(cert_names::FRONT_PROXY_CLIENT)?
                .cert_pem
                .clone()
                .into_bytes(),
            Artifact::FrontProxyClientKey => leaf(cert_names::FRONT_PROXY_CLIENT)?
                .key
                .to_pem()
                .into_bytes(),
            Artifact::AdminCert => leaf(cert_names::ADMIN)?.cert_pem.clone().into_bytes(),
            Artifact::AdminKey => leaf(cert_names::ADMIN)?.key.to_pem().into_bytes(),
            Artifact::ServiceAccountKey => pki.service_account_key_pem.clone().into_bytes(),
            Artifact::ServiceAccountPub => pki.service_account_pub_pem.clone().into_bytes(),
            Artifact::EncryptionConfig => encryption_config(cluster, encryption)?.into_bytes(),
            Artifact::AuditPolicy => audit_policy(cluster)?.into_bytes(),
            Artifact::AdminKubeconfig => {
                let admin = leaf(cert_names::ADMIN)?;
                let kubeconfig = AdminKubeconfig {
                    cluster: cluster.name.as_str(),
                    server: kubeconfig_server(cluster, node.ip),
                    ca_data: BASE64.encode(&pki.ca_cert_pem),
                    client_cert_data: BASE64.encode(&admin.cert_pem),
                    client_key_data: BASE64.encode(admin.key.to_pem()),
                };
                render(&kubeconfig)?.into_bytes()
            }
            Artifact::ApiserverUnit => apiserver_unit(cluster, node)?.into_bytes(),
            Artifact::FrontConfig => front_config(cluster)?.into_bytes(),
            Artifact::FrontUnit => front_unit(cluster, node)?.into_bytes(),
            Artifact::KeepalivedConfig => keepalived_config(cluster, node)?.into_bytes(),
            Artifact::ApiserverBinary | Artifact::FrontBinary => {
                let shipped = match planned.artifact {
                    Artifact::ApiserverBinary => &cluster.kube_apiserver_binary,
                    _ => &cluster.front_binary,
                };
                let binary = shipped
                    .clone()
                    .ok_or_else(|| Error::Internal("binary planned but not configured".into()))?;
                rootfs.insert(
                    path.clone(),
                    RenderedFile {
                        mode: planned.mode,
                        content: Content::File(binary),
                    },
                );
                continue;
            }
        };
        rootfs.insert(
            path.clone(),
            RenderedFile {
                mode: planned.mode,
                content: Content::Bytes(bytes),
            },
        );
    }
    let mut manifests = BTreeMap::new();
    if node.role == Role::Client {
        return Ok(RenderedNode { rootfs, manifests });
    }
    manifests.insert(
        KUBELET_APIS_MANIFEST.to_owned(),
        render(&KubeletApisBinding {
            user: KUBELET_CLIENT_CN,
        })?
        .into_bytes(),
    );
    let admin_group = crate::plan::admin_group(cluster.kubernetes_version.minor());
    if admin_group != crate::plan::SUPERUSER_GROUP {
        manifests.insert(
            CLUSTER_ADMINS_MANIFEST.to_owned(),
            render(&ClusterAdminsBinding {
                group: admin_group,
                installer: crate::plan::INSTALLER_USER,
            })?
            .into_bytes(),
        );
    }
    Ok(RenderedNode { rootfs, manifests })
}

/// Where Debian and RHEL install keepalived.
const KEEPALIVED_PROGRAM: &str = "/usr/sbin/keepalived";

/// keepalived.conf for one master: the masters' order in cluster.yaml is their priority.
pub fn keepalived_config(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let keepalived = cluster
        .keepalived
        .as_ref()
        .ok_or_else(|| Error::Internal("keepalived planned but not configured".into()))?;
    let index = cluster
        .masters
        .iter()
        .position(|m| m.name.as_str() == node.name)
        .ok_or_else(|| Error::Internal(format!("{} is not a master", node.name)))?;
    render(&KeepalivedConfig {
        cluster: cluster.name.as_str(),
        node: &node.name,
        node_ip: node.ip.to_string(),
        vip: keepalived.vip.to_string(),
        prefix_length: keepalived.prefix_length,
        interface: &keepalived.interface,
        virtual_router_id: keepalived.virtual_router_id,
        priority: 200usize.saturating_sub(index).max(101),
        peers: cluster
            .masters
            .iter()
            .filter(|m| m.ip != node.ip)
            .map(|m| m.ip.to_string())
            .collect(),
        ca_cert: node.layout.ca_cert.clone(),
        healthz_url: format!("{}/healthz", node_api_url(node.ip)),
    })
}

/// The kube-apiserver unit for one node.
pub fn apiserver_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let args = node
        .flags
        .iter()
        .map(|(name, flag)| systemd_word(&format!("--{name}={}", flag.value)))
        .collect();
    render(&ApiserverUnit {
        cluster: cluster.name.as_str(),
        node: &node.name,
        version: cluster.kubernetes_version.to_string(),
        working_directory: crate::plan::working_directory(cluster),
        binary: cluster.paths.bin_dir.join("kube-apiserver"),
        args,
    })
}

fn no_front() -> Error {
    Error::Internal("a front file was planned without haFront".into())
}

/// The node-local proxy's config: every master's secure port as an upstream.
pub fn front_config(cluster: &Cluster) -> Result<String, Error> {
    let front = cluster.ha_front.as_ref().ok_or_else(no_front)?;
    let upstream = |ip: IpAddr| SocketAddr::new(ip, SECURE_PORT).to_string();
    match front.kind {
        crate::model::FrontKind::Haproxy => render(&HaproxyConfig {
            cluster: cluster.name.as_str(),
            listen: front.listen(),
            masters: cluster
                .masters
                .iter()
                .map(|m| (m.name.to_string(), upstream(m.ip)))
                .collect(),
        }),
        crate::model::FrontKind::Nginx => render(&NginxConfig {
            cluster: cluster.name.as_str(),
            listen: front.listen(),
            prefix: crate::plan::front_prefix(cluster),
            modules: front
                .nginx_modules
                .iter()
                .map(ToString::to_string)
                .collect(),
            masters: cluster.masters.iter().map(|m| upstream(m.ip)).collect(),
        }),
    }
}

pub fn front_unit(cluster: &Cluster, node: &NodePlan) -> Result<String, Error> {
    let front = cluster.ha_front.as_ref().ok_or_else(no_front)?;
    let config = node
        .layout
        .front
        .as_ref()
        .map(|paths| paths.config.clone())
        .ok_or_else(no_front)?;
    match front.kind {
        crate::model::FrontKind::Haproxy => render(&HaproxyUnit {
            cluster: cluster.name.as_str(),
            node: &node.name,
            listen: front.listen(),
            binary: front.binary.to_string(),
            config,
        }),
        crate::model::FrontKind::Nginx => render(&NginxUnit {
            cluster: cluster.name.as_str(),
            node: &node.name,
            listen: front.listen(),
            prefix: crate::plan::front_prefix(cluster),
            binary: front.binary.to_string(),
            config,
        }),
    }
}

pub fn encryption_config(cluster: &Cluster, encryption: &EncryptionKeys) -> Result<String, Error> {
    let minor = cluster.kubernetes_version.minor();
    let (api_version, kind) = versions::encryption_config_format(minor);
    let blocks = encryption
        .provider_blocks()
        .into_iter()
        .map(|(provider, keys)| ProviderBlock {
            provider: match provider {
                crate::config::EncryptionProvider::Secretbox => "secretbox",
                crate::config::EncryptionProvider::Aescbc => "aescbc",
                crate::config::EncryptionProvider::Aesgcm => "aesgcm",
            },
            keys,
        })
        .collect();
    render(&EncryptionConfig {
        cluster: cluster.name.as_str(),
        kind,
        api_version,
        blocks,
    })
}

pub fn audit_policy(cluster: &Cluster) -> Result<String, Error> {
    let api_version = versions::audit_policy_api_version(cluster.kubernetes_version.minor());
    render(&AuditPolicy { api_version })
}

/// The admin kubeconfig's server: the node-local proxy when there is one (as the seed's
/// `kubectl cluster-info` shows https://127.0.0.1:8443), else the control-plane
/// endpoint, else the node's own apiserver.
pub fn kubeconfig_server(cluster: &Cluster, node_ip: IpAddr) -> String {
    let (host, port) = match (&cluster.ha_front, &cluster.control_plane_endpoint) {
        (Some(front), _) => (Host::Ip(front.listen_ip), front.listen_port),
        (None, Some(endpoint)) => (endpoint.host.clone(), endpoint.port.unwrap_or(SECURE_PORT)),
        (None, None) => (Host::Ip(node_ip), SECURE_PORT),
    };
    match host {
        Host::Ip(ip) => format!("https://{}", SocketAddr::new(ip, port)),
        host => format!("https://{host}:{port}"),
    }
}

fn render(template: &impl Template) -> Result<String, Error> {
    let mut text = template
        .render()
        .map_err(|e| Error::Internal(format!("template: {e}")))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Quotes one word of a systemd ExecStart= line (systemd.service(5), "Command lines"):
/// `%` and `$` would be expanded, `\` and `"` are escapes, whitespace splits words.
pub fn systemd_word(word: &str) -> String {
    let mut escaped = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' => escaped.push_str("$$"),
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    let needs_quotes = word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == ';');
    if needs_quotes {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::systemd_word;

    #[test]
    fn systemd_words_are_quoted_and_escaped() {
        assert_eq!(systemd_word("--v=2"), "--v=2");
        assert_eq!(systemd_word("--x=a b"), "\"--x=a b\"");
        assert_eq!(systemd_word("--x=$(id)"), "--x=$$(id)");
        assert_eq!(systemd_word("--x=100%"), "--x=100%%");
        assert_eq!(systemd_word("--x=\"q\""), "--x=\\\"q\\\"");
        assert_eq!(systemd_word("--x=a\\b"), "--x=a\\\\b");
        assert_eq!(systemd_word("--x=;"), "\"--x=;\"");
    }
}

// ---------------------------------------------------------------------------------------
// The installer and the documents that travel with the bundle

/// What the installer, README and provenance need to know about one node's bundle.
#[derive(Debug)]
/// The documents of a node's bundle, rendered once its contents have an id.
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
    healthz_url: String,
    api_url: String,
    front_healthz_url: String,
    programs: Vec<String>,
    apiserver_port: String,
    units: Vec<String>,
    files: Vec<String>,
    directories: Vec<String>,
    etcd_endpoints: Vec<String>,
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

/// Where the manifests are POSTed, relative to the API root: every manifest kube-bundle
/// renders is a ClusterRoleBinding.
pub const MANIFEST_COLLECTION: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";

/// The node's own apiserver, which install.sh checks: never the load balancer, so a
/// healthy peer cannot hide a broken node.
pub fn node_api_url(ip: IpAddr) -> String {
    format!("https://{}", SocketAddr::new(ip, SECURE_PORT))
}

pub fn installer(facts: &BundleFacts<'_>) -> Result<String, Error> {
    let cluster = facts.cluster;
    let node = facts.node;
    let api_url = node_api_url(node.ip);
    let q = |s: &str| shell_quote(s);
    let etcd_endpoints = cluster
        .etcd
        .endpoints
        .iter()
        .map(|url| {
            // host_str keeps IPv6 in brackets: `[fd00::11]:2379` is unambiguous to read,
            // and install.sh strips the brackets before connecting.
            q(&format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(2379)
            ))
        })
        .collect();
    let front = cluster.ha_front.as_ref();
    let front_unit = front.map(crate::plan::front_unit_name);
    let front_healthz_url = front
        .map(|front| format!("https://{}/healthz", front.listen()))
        .unwrap_or_default();
    let files = node
        .files
        .iter()
        .map(|(path, file)| {
            q(&format!(
                "{:04o} {path} {}",
                file.mode,
                file.artifact.unit(front)
            ))
        })
        .collect();
    let directories = node.directories.iter().map(|d| q(d)).collect();
    let front_program = front.map(|f| format!("front-proxy {}", f.binary));
    let common = Installer {
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
        programs: front_program.iter().map(|p| q(p)).collect(),
        front_healthz_url: q(&front_healthz_url),
        files,
        directories,
        binary: q(""),
        admin_cert: q(""),
        admin_key: q(""),
        admin_kubeconfig: q(""),
        healthz_url: q(""),
        api_url: q(""),
        apiserver_port: q(""),
        units: front_unit.into_iter().map(q).collect(),
        etcd_endpoints: Vec::new(),
        manifest_cert: q(""),
        manifest_key: q(""),
        manifest_user: q(""),
        manifest_group: q(""),
        manifests: Vec::new(),
    };
    if node.role == Role::Client {
        // No credentials and no apiserver: the front, checked through to the masters.
        return render(&common);
    }
    let keepalived = cluster.keepalived.is_some();
    let admin_group = crate::plan::admin_group(cluster.kubernetes_version.minor());
    let layout = &node.layout;
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
    render(&Installer {
        binary: q(&layout.apiserver_binary),
        admin_cert: q(&layout.admin.cert),
        admin_key: q(&layout.admin.key),
        admin_kubeconfig: q(&layout.admin_kubeconfig),
        healthz_url: q(&format!("{api_url}/healthz")),
        api_url: q(&api_url),
        apiserver_port: q(&SECURE_PORT.to_string()),
        units: std::iter::once(crate::plan::APISERVER_UNIT)
            .chain(front_unit)
            .chain(keepalived.then_some(crate::plan::KEEPALIVED_UNIT))
            .map(q)
            .collect(),
        programs: front_program
            .into_iter()
            .chain(keepalived.then(|| format!("keepalived {KEEPALIVED_PROGRAM}")))
            .map(|p| q(&p))
            .collect(),
        etcd_endpoints,
        manifest_cert: q(&manifest_identity.cert),
        manifest_key: q(&manifest_identity.key),
        manifest_user: q(manifest_user),
        manifest_group: q(manifest_group),
        manifests: facts
            .manifests
            .iter()
            .map(|name| q(&format!("{name} {MANIFEST_COLLECTION}")))
            .collect(),
        ..common
    })
}

pub fn node_readme(facts: &BundleFacts<'_>) -> Result<String, Error> {
    let cluster = facts.cluster;
    let node = facts.node;
    let files = node
        .files
        .iter()
        .map(|(path, file)| (format!("{:04o}", file.mode), path.clone()))
        .collect();
    if node.role == Role::Client {
        let front = cluster.ha_front.as_ref();
        return render(&ClientReadme {
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
            files,
        });
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
        cert_dir: cluster.paths.cert_dir.to_string(),
        kubelet_ca: flag("kubelet-certificate-authority"),
        files,
    })
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

/// Quotes a word for bash: safe words as they are, anything else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod quoting_tests {
    use super::shell_quote;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_quote("/etc/kubernetes"), "/etc/kubernetes");
        assert_eq!(shell_quote("0644 /etc/a"), "'0644 /etc/a'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
