//! Stage 3, the credentials part: which certificates a node needs and what each must say
//! (subject, purpose, SANs, issuer), and which group the admin credential is in. `pki`
//! issues or reuses certificates from these specs; `render` reads the names and groups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::model::{Cluster, EtcdCa, Master};
use crate::values::Host;

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
    /// The controller manager's CSR signer: an intermediate under the cluster CA, so the
    /// certificates it signs chain to the cluster CA while the root key stays on the build
    /// host. Its key is the one CA key a bundle carries.
    ClusterSigner,
}

impl CaName {
    pub const ALL: [CaName; 4] = [
        CaName::Cluster,
        CaName::FrontProxy,
        CaName::Etcd,
        CaName::ClusterSigner,
    ];

    /// kubeadm's name for the CA, which is also its secrets/ file stem.
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Cluster => "ca",
            Self::FrontProxy => "front-proxy-ca",
            Self::Etcd => "etcd-ca",
            Self::ClusterSigner => "cluster-signer-ca",
        }
    }

    /// The CA whose key signs this one; None for a self-signed root.
    pub fn parent(self) -> Option<CaName> {
        match self {
            Self::ClusterSigner => Some(Self::Cluster),
            Self::Cluster | Self::FrontProxy | Self::Etcd => None,
        }
    }

    /// The subject CN kubeadm gives it.
    pub fn common_name(self) -> &'static str {
        match self {
            Self::Cluster => "kubernetes",
            Self::FrontProxy => "front-proxy-ca",
            Self::Etcd => "etcd-ca",
            Self::ClusterSigner => "kube-bundle-cluster-signer",
        }
    }
}

/// The leaf certificates kube-bundle issues per node, one name each wherever a credential is
/// meant: the plan's certificate map, the artifacts, the secrets store, `certs renew`.
/// Shown and stored under kubeadm's names; declared in the order of those names, so maps
/// keyed by it list certificates as they always were listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeafName {
    Admin,
    Apiserver,
    ApiserverEtcdClient,
    ApiserverKubeletClient,
    /// The controller manager's client identity toward the apiserver.
    ControllerManager,
    /// The controller manager's serving certificate (its secure port).
    ControllerManagerServer,
    FrontProxyClient,
    Scheduler,
    SchedulerServer,
}

impl LeafName {
    pub const ALL: [LeafName; 9] = [
        Self::Admin,
        Self::Apiserver,
        Self::ApiserverEtcdClient,
        Self::ApiserverKubeletClient,
        Self::ControllerManager,
        Self::ControllerManagerServer,
        Self::FrontProxyClient,
        Self::Scheduler,
        Self::SchedulerServer,
    ];

    /// kubeadm's name: the plan output's and the secrets/nodes/<node>/ file stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Apiserver => "apiserver",
            Self::ApiserverEtcdClient => "apiserver-etcd-client",
            Self::ApiserverKubeletClient => "apiserver-kubelet-client",
            Self::ControllerManager => "controller-manager",
            Self::ControllerManagerServer => "controller-manager-server",
            Self::FrontProxyClient => "front-proxy-client",
            Self::Scheduler => "scheduler",
            Self::SchedulerServer => "scheduler-server",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|leaf| leaf.as_str() == name)
    }
}

/// Padded like a string, so it lines up in tables.
impl std::fmt::Display for LeafName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for LeafName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The identity the apiserver presents to kubelets; bound to system:kubelet-api-admin by
/// the rendered RBAC, never a member of system:masters.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// The identities the apiserver's RBAC bootstrap policy grants the controller manager's and
/// the scheduler's rights to.
pub const CONTROLLER_MANAGER_CN: &str = "system:kube-controller-manager";
pub const SCHEDULER_CN: &str = "system:kube-scheduler";
/// The bundle's admin kubeconfig identity.
pub const ADMIN_CN: &str = "kubernetes-admin";
/// The group of the admin credential from `versions::REVOCABLE_ADMIN_GROUP_FROM`: cluster-admin
/// comes from the RBAC binding install.sh applies, and deleting that binding revokes every
/// admin kubeconfig at once.
pub const CLUSTER_ADMINS_GROUP: &str = "kube-bundle:cluster-admins";
/// Before that minor (seed parity), the admin credential is in the unrevocable superuser group.
pub const SUPERUSER_GROUP: &str = "system:masters";
/// Who install.sh is when it applies the RBAC manifests from that minor on: asserted through
/// the front-proxy client certificate (the request-header authenticator, which is what that
/// certificate is for), because the admin group is authorized only once the binding exists.
pub const INSTALLER_USER: &str = "kube-bundle:installer";

/// The admin credential's group for `minor`.
pub fn admin_group(minor: u64) -> &'static str {
    if minor >= crate::versions::REVOCABLE_ADMIN_GROUP_FROM {
        CLUSTER_ADMINS_GROUP
    } else {
        SUPERUSER_GROUP
    }
}

/// Subject alternative names, ordered as kubeadm orders them: DNS names sorted, IPs in
/// first-seen order (node, loopback, service IP, endpoint, extras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// kubeadm's leaf inventory for one node. With external
/// etcd the user's own client certificate is shipped instead of one kube-bundle issues.
pub(super) fn certificates(
    cluster: &Cluster,
    master: &Master,
    sans: &Sans,
) -> BTreeMap<LeafName, CertSpec> {
    let spec = |cn: &str, purpose, issuer| CertSpec {
        common_name: cn.to_owned(),
        organization: None,
        purpose,
        sans: None,
        issuer,
    };
    let mut certs = BTreeMap::new();
    certs.insert(
        LeafName::Apiserver,
        CertSpec {
            sans: Some(sans.clone()),
            ..spec("kube-apiserver", Purpose::ServerAuth, CaName::Cluster)
        },
    );
    certs.insert(
        LeafName::ApiserverKubeletClient,
        spec(KUBELET_CLIENT_CN, Purpose::ClientAuth, CaName::Cluster),
    );
    let etcd_issuer = match cluster.etcd.ca {
        EtcdCa::Cluster => Some(CaName::Cluster),
        EtcdCa::Separate => Some(CaName::Etcd),
        EtcdCa::External { .. } => None,
    };
    if let Some(issuer) = etcd_issuer {
        certs.insert(
            LeafName::ApiserverEtcdClient,
            spec("kube-apiserver-etcd-client", Purpose::ClientAuth, issuer),
        );
    }
    certs.insert(
        LeafName::FrontProxyClient,
        spec(
            "front-proxy-client",
            Purpose::ClientAuth,
            CaName::FrontProxy,
        ),
    );
    certs.insert(
        LeafName::Admin,
        CertSpec {
            organization: Some(admin_group(cluster.kubernetes_version.minor()).to_owned()),
            ..spec(ADMIN_CN, Purpose::ClientAuth, CaName::Cluster)
        },
    );
    // A client identity the bootstrap RBAC policy knows, and a serving certificate the
    // cluster CA vouches for (instead of the self-signed one the binary would make up), so
    // its secure port can be health-checked and scraped with TLS verified.
    // The 1.12 scheduler has no secure port: nothing would serve its certificate.
    let scheduler_serves =
        cluster.kubernetes_version.minor() >= crate::versions::scheduler::SECURE_PORT_FROM;
    let components = [
        (
            cluster.controller_manager.is_some(),
            LeafName::ControllerManager,
            CONTROLLER_MANAGER_CN,
            Some(LeafName::ControllerManagerServer),
            "kube-controller-manager",
        ),
        (
            cluster.scheduler.is_some(),
            LeafName::Scheduler,
            SCHEDULER_CN,
            scheduler_serves.then_some(LeafName::SchedulerServer),
            "kube-scheduler",
        ),
    ];
    for (runs, client, client_cn, server, server_cn) in components {
        if !runs {
            continue;
        }
        certs.insert(
            client,
            spec(client_cn, Purpose::ClientAuth, CaName::Cluster),
        );
        if let Some(server) = server {
            certs.insert(
                server,
                CertSpec {
                    sans: Some(component_serving_sans(master)),
                    ..spec(server_cn, Purpose::ServerAuth, CaName::Cluster)
                },
            );
        }
    }
    certs
}

/// Where a component's secure port is reached: loopback (it binds 127.0.0.1, and
/// install.sh checks it there) and the node's own name and address.
fn component_serving_sans(master: &Master) -> Sans {
    Sans {
        dns: vec!["localhost".into(), master.name.to_string()],
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), master.ip],
    }
}

/// kubeadm's apiserver SANs plus what the seed adds:
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
    // Clients of the node-local proxy verify the apiserver cert against its address.
    if let Some(front) = &cluster.ha_front
        && !ips.contains(&front.listen_ip)
    {
        ips.push(front.listen_ip);
    }
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

#[cfg(test)]
mod tests {
    use super::LeafName;

    #[test]
    fn leaf_names_sort_as_their_kubeadm_names_and_read_back() {
        let mut by_name = LeafName::ALL;
        by_name.sort_by_key(|leaf| leaf.as_str());
        assert_eq!(
            by_name,
            LeafName::ALL,
            "declare LeafName in the order of its names"
        );
        let mut sorted = LeafName::ALL;
        sorted.sort();
        assert_eq!(sorted, LeafName::ALL);
        for leaf in LeafName::ALL {
            assert_eq!(LeafName::parse(leaf.as_str()), Some(leaf));
        }
        assert_eq!(LeafName::parse("apiserver.crt"), None);
    }
}
