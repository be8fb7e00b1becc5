//! Stage 3: what every node gets, decided before any byte is produced.
//!
//! In: a validated [`Cluster`]. Out: a [`Plan`] with one [`NodePlan`] per master: its
//! addresses, the SANs of its serving certificate, and every file it receives with target
//! path and mode. No crypto and no I/O happen here, so `plan` is cheap and its JSON form
//! is the most stable snapshot of what kube-bundle will do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::validate::{Cluster, EtcdCa, Host, Master};

/// Bumped whenever the JSON shape of the plan changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// Where systemd looks for administrator units.
pub const UNIT_PATH: &str = "/etc/systemd/system/kube-apiserver.service";

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
    pub name: String,
    pub ip: IpAddr,
    pub serving_cert_sans: Sans,
    /// Directories install.sh creates (the seed notes the working directory must exist).
    pub directories: Vec<String>,
    /// Every file the bundle installs, keyed by its absolute target path.
    pub files: BTreeMap<String, PlannedFile>,
    /// Every certificate this node needs, keyed by its kubeadm-like name.
    pub certificates: BTreeMap<String, CertSpec>,
}

/// What a leaf certificate must say. `pki` issues it, or reuses a stored one that says
/// exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertSpec {
    pub common_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    pub purpose: Purpose,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sans: Option<Sans>,
    pub issuer: CaName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Purpose {
    ServerAuth,
    ClientAuth,
}

/// The certificate authorities kube-bundle keeps in secrets/.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaName {
    /// `ca`: signs the serving, kubelet-client and admin certs (and etcd's with `ca: cluster`).
    Cluster,
    FrontProxy,
    Etcd,
}

impl CaName {
    pub const ALL: [CaName; 3] = [CaName::Cluster, CaName::FrontProxy, CaName::Etcd];

    /// kubeadm's name for the CA, which is also its secrets/ file stem.
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Cluster => "ca",
            Self::FrontProxy => "front-proxy-ca",
            Self::Etcd => "etcd-ca",
        }
    }

    /// The subject CN kubeadm gives it.
    pub fn common_name(self) -> &'static str {
        match self {
            Self::Cluster => "kubernetes",
            Self::FrontProxy => "front-proxy-ca",
            Self::Etcd => "etcd-ca",
        }
    }
}

/// Certificate names (kubeadm's), as used in plan output and secrets/nodes/<node>/.
pub mod cert_names {
    pub const APISERVER: &str = "apiserver";
    pub const KUBELET_CLIENT: &str = "apiserver-kubelet-client";
    pub const ETCD_CLIENT: &str = "apiserver-etcd-client";
    pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";
    pub const ADMIN: &str = "admin";
}

/// The identity the apiserver presents to kubelets; bound to system:kubelet-api-admin by
/// the rendered RBAC, never a member of system:masters (kubernetes-reference.md §8).
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// The bundle's admin kubeconfig identity: it applies the RBAC manifests, so it must be
/// authorized before any binding exists.
pub const ADMIN_CN: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// Subject alternative names, ordered as kubeadm orders them: DNS names sorted, IPs in
/// first-seen order (node, loopback, service IP, endpoint, extras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Artifact {
    CaCert,
    FrontProxyCaCert,
    EtcdCaCert,
    ApiserverCert,
    ApiserverKey,
    ApiserverKubeletClientCert,
    ApiserverKubeletClientKey,
    ApiserverEtcdClientCert,
    ApiserverEtcdClientKey,
    FrontProxyClientCert,
    FrontProxyClientKey,
    ServiceAccountKey,
    ServiceAccountPub,
    EncryptionConfig,
    AuditPolicy,
    AdminKubeconfig,
    ApiserverUnit,
    ApiserverBinary,
}

fn octal<S: serde::Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:04o}"))
}

const PUBLIC: u32 = 0o644;
const PRIVATE: u32 = 0o600;
const EXECUTABLE: u32 = 0o755;

/// Decides every node's files and SANs.
pub fn plan(cluster: &Cluster) -> Plan {
    let nodes = cluster
        .masters
        .iter()
        .map(|master| (master.name.to_string(), plan_node(cluster, master)))
        .collect();
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        cluster: cluster.name.to_string(),
        kubernetes_version: cluster.kubernetes_version.to_string(),
        kubernetes_service_ip: cluster.network.service_cidr.kubernetes_service_ip(),
        nodes,
    }
}

fn plan_node(cluster: &Cluster, master: &Master) -> NodePlan {
    let paths = &cluster.paths;
    let cert = |name: &str| paths.cert_dir.join(name);
    let mut files = BTreeMap::new();
    let mut add = |path: String, mode: u32, artifact: Artifact| {
        files.insert(path, PlannedFile { mode, artifact });
    };
    add(cert("ca.crt"), PUBLIC, Artifact::CaCert);
    add(
        cert("front-proxy-ca.crt"),
        PUBLIC,
        Artifact::FrontProxyCaCert,
    );
    // With `ca: cluster` etcd trusts the cluster CA (the seed's layout): no separate file.
    if !matches!(cluster.etcd.ca, EtcdCa::Cluster) {
        add(cert("etcd/ca.crt"), PUBLIC, Artifact::EtcdCaCert);
    }
    add(cert("apiserver.crt"), PUBLIC, Artifact::ApiserverCert);
    add(cert("apiserver.key"), PRIVATE, Artifact::ApiserverKey);
    add(
        cert("apiserver-kubelet-client.crt"),
        PUBLIC,
        Artifact::ApiserverKubeletClientCert,
    );
    add(
        cert("apiserver-kubelet-client.key"),
        PRIVATE,
        Artifact::ApiserverKubeletClientKey,
    );
    add(
        cert("apiserver-etcd-client.crt"),
        PUBLIC,
        Artifact::ApiserverEtcdClientCert,
    );
    add(
        cert("apiserver-etcd-client.key"),
        PRIVATE,
        Artifact::ApiserverEtcdClientKey,
    );
    add(
        cert("front-proxy-client.crt"),
        PUBLIC,
        Artifact::FrontProxyClientCert,
    );
    add(
        cert("front-proxy-client.key"),
        PRIVATE,
        Artifact::FrontProxyClientKey,
    );
    // kubeadm writes sa.pub 0600 too (kubernetes-reference.md §1.3).
    add(cert("sa.key"), PRIVATE, Artifact::ServiceAccountKey);
    add(cert("sa.pub"), PRIVATE, Artifact::ServiceAccountPub);
    add(
        paths.config_dir.join("encryption-config.yaml"),
        PRIVATE,
        Artifact::EncryptionConfig,
    );
    if cluster.apiserver.audit.enabled {
        add(
            paths.config_dir.join("audit-policy.yaml"),
            PUBLIC,
            Artifact::AuditPolicy,
        );
    }
    add(
        paths.config_dir.join("admin.kubeconfig"),
        PRIVATE,
        Artifact::AdminKubeconfig,
    );
    add(UNIT_PATH.to_owned(), PUBLIC, Artifact::ApiserverUnit);
    if cluster.kube_apiserver_binary.is_some() {
        add(
            paths.bin_dir.join("kube-apiserver"),
            EXECUTABLE,
            Artifact::ApiserverBinary,
        );
    }
    let sans = serving_cert_sans(cluster, master);
    NodePlan {
        name: master.name.to_string(),
        ip: master.ip,
        certificates: certificates(cluster, &sans),
        serving_cert_sans: sans,
        directories: vec![working_directory(cluster)],
        files,
    }
}

/// kubeadm's leaf inventory (kubernetes-reference.md §1.1) for one node. With external
/// etcd the user's own client certificate is shipped instead of one kube-bundle issues.
fn certificates(cluster: &Cluster, sans: &Sans) -> BTreeMap<String, CertSpec> {
    let spec = |cn: &str, purpose, issuer| CertSpec {
        common_name: cn.to_owned(),
        organization: None,
        purpose,
        sans: None,
        issuer,
    };
    let mut certs = BTreeMap::new();
    certs.insert(
        cert_names::APISERVER.to_owned(),
        CertSpec {
            sans: Some(sans.clone()),
            ..spec("kube-apiserver", Purpose::ServerAuth, CaName::Cluster)
        },
    );
    certs.insert(
        cert_names::KUBELET_CLIENT.to_owned(),
        spec(KUBELET_CLIENT_CN, Purpose::ClientAuth, CaName::Cluster),
    );
    let etcd_issuer = match cluster.etcd.ca {
        EtcdCa::Cluster => Some(CaName::Cluster),
        EtcdCa::Separate => Some(CaName::Etcd),
        EtcdCa::External { .. } => None,
    };
    if let Some(issuer) = etcd_issuer {
        certs.insert(
            cert_names::ETCD_CLIENT.to_owned(),
            spec("kube-apiserver-etcd-client", Purpose::ClientAuth, issuer),
        );
    }
    certs.insert(
        cert_names::FRONT_PROXY_CLIENT.to_owned(),
        spec(
            "front-proxy-client",
            Purpose::ClientAuth,
            CaName::FrontProxy,
        ),
    );
    certs.insert(
        cert_names::ADMIN.to_owned(),
        CertSpec {
            organization: Some(ADMIN_GROUP.to_owned()),
            ..spec(ADMIN_CN, Purpose::ClientAuth, CaName::Cluster)
        },
    );
    certs
}

/// The apiserver's WorkingDirectory, where the seed also keeps its audit log.
pub fn working_directory(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("kube-apiserver")
}

/// kubeadm's apiserver SANs (kubernetes-reference.md §1.4) plus what the seed adds:
/// 127.0.0.1 (the node-local proxy dials it) and kubernetes.default.svc.<first label>.
pub fn serving_cert_sans(cluster: &Cluster, master: &Master) -> Sans {
    let domain = &cluster.network.dns_domain;
    let mut dns: BTreeSet<String> = [
        master.name.to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", domain.first_label()),
        format!("kubernetes.default.svc.{domain}"),
    ]
    .into();
    let mut ips = vec![
        master.ip,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        cluster.network.service_cidr.kubernetes_service_ip(),
    ];
    let endpoint_host = cluster.control_plane_endpoint.as_ref().map(|e| &e.host);
    for host in endpoint_host.into_iter().chain(&cluster.pki.extra_sans) {
        match host {
            Host::Ip(ip) => {
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            Host::Dns(name) => {
                dns.insert(name.to_string());
            }
        }
    }
    Sans {
        dns: dns.into_iter().collect(),
        ips,
    }
}
