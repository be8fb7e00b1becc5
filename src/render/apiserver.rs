//! The apiserver's own files: its systemd unit, the encryption and audit configs, the
//! admin kubeconfig, and the RBAC manifests install.sh applies once the apiserver is healthy.

use std::collections::BTreeMap;
use std::net::IpAddr;

use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{render, systemd_word};
use crate::encryption::{EncryptionKey, EncryptionKeys};
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::Credential;
use crate::plan::{
    ADMIN_CN, CONTROLLER_MANAGER_CN, INSTALLER_USER, KUBELET_CLIENT_CN, NodePlan, SCHEDULER_CN,
    SUPERUSER_GROUP, admin_group,
};
use crate::values::{Host, SECURE_PORT};
use crate::versions;

pub const KUBELET_APIS_MANIFEST: &str = "kube-apiserver-kubelet-apis.yaml";
/// From `versions::REVOCABLE_ADMIN_GROUP_FROM`: cluster-admin for the admin credential's group.
pub const CLUSTER_ADMINS_MANIFEST: &str = "kube-bundle-cluster-admins.yaml";
/// Delegated authentication and authorization for the controller manager and the scheduler
/// where the bootstrap policy does not grant it: a ClusterRoleBinding and a kube-system
/// RoleBinding (whose file name says where it is POSTed).
pub const COMPONENTS_AUTH_DELEGATOR_MANIFEST: &str = "kube-bundle-components-auth-delegator.yaml";
pub const COMPONENTS_AUTHENTICATION_READER_MANIFEST: &str =
    "kube-system-components-authentication-reader.yaml";

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
#[template(path = "config/client.kubeconfig", escape = "none")]
struct ClientKubeconfig<'a> {
    cluster: &'a str,
    /// The kubeconfig's name for the user; the certificate's CN decides who it is.
    user: &'a str,
    server: String,
    ca_data: String,
    client_cert_data: String,
    client_key_data: String,
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

#[derive(Template)]
#[template(
    path = "manifests/kube-bundle-components-auth-delegator.yaml",
    escape = "none"
)]
struct ComponentsAuthDelegator<'a> {
    users: &'a [&'a str],
}

#[derive(Template)]
#[template(
    path = "manifests/kube-system-components-authentication-reader.yaml",
    escape = "none"
)]
struct ComponentsAuthenticationReader<'a> {
    users: &'a [&'a str],
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
        working_directory: node.layout.working_directory.clone(),
        binary: node.layout.apiserver_binary.clone(),
        args,
    })
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

/// The admin kubeconfig, with the cluster CA and the admin credential inline: one file is
/// all kubectl needs.
pub(super) fn admin_kubeconfig(
    cluster: &Cluster,
    node: &NodePlan,
    ca_cert_pem: &str,
    admin: &Credential,
) -> Result<String, Error> {
    client_kubeconfig(
        cluster.name.as_str(),
        &kubeconfig_server(cluster, node.ip),
        ca_cert_pem,
        ADMIN_CN,
        admin,
    )
}

/// A kubeconfig for one client credential with everything inline: the file is the whole
/// credential. Names and the server are written in double quotes, so a name YAML would
/// read as a number or a boolean (`1001`, `on`) stays text; callers pass only validated
/// names and URLs, which hold no quote or backslash (base64 needs no quoting).
pub fn client_kubeconfig(
    cluster: &str,
    server: &str,
    ca_cert_pem: &str,
    user: &str,
    credential: &Credential,
) -> Result<String, Error> {
    render(&ClientKubeconfig {
        cluster,
        user,
        server: server.to_owned(),
        ca_data: BASE64.encode(ca_cert_pem),
        client_cert_data: BASE64.encode(&credential.cert_pem),
        client_key_data: BASE64.encode(credential.key.to_pem()),
    })
}

/// The RBAC objects install.sh applies once the apiserver is healthy, keyed by file name.
pub(super) fn rbac_manifests(cluster: &Cluster) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut manifests = BTreeMap::new();
    manifests.insert(
        KUBELET_APIS_MANIFEST.to_owned(),
        render(&KubeletApisBinding {
            user: KUBELET_CLIENT_CN,
        })?
        .into_bytes(),
    );
    let admin_group = admin_group(cluster.kubernetes_version.minor());
    if admin_group != SUPERUSER_GROUP {
        manifests.insert(
            CLUSTER_ADMINS_MANIFEST.to_owned(),
            render(&ClusterAdminsBinding {
                group: admin_group,
                installer: INSTALLER_USER,
            })?
            .into_bytes(),
        );
    }
    let minor = cluster.kubernetes_version.minor();
    let users: Vec<&str> = [
        (cluster.controller_manager.is_some(), CONTROLLER_MANAGER_CN),
        (cluster.scheduler.is_some(), SCHEDULER_CN),
    ]
    .into_iter()
    .filter_map(|(runs, user)| runs.then_some(user))
    .collect();
    if minor < versions::controller_manager::BOOTSTRAP_DELEGATES_AUTH_FROM && !users.is_empty() {
        manifests.insert(
            COMPONENTS_AUTH_DELEGATOR_MANIFEST.to_owned(),
            render(&ComponentsAuthDelegator { users: &users })?.into_bytes(),
        );
        manifests.insert(
            COMPONENTS_AUTHENTICATION_READER_MANIFEST.to_owned(),
            render(&ComponentsAuthenticationReader { users: &users })?.into_bytes(),
        );
    }
    Ok(manifests)
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
    host.https_url(port)
}
