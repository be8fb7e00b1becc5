//! Stage 5: the bytes of every file a master receives.
//!
//! In: the [`Cluster`], one [`NodePlan`] (which files, which flags), the [`Pki`] and the
//! [`EncryptionKeys`]. Out: a [`RenderedNode`]: rootfs files keyed by target path with
//! their modes, and the RBAC manifests applied once the apiserver is healthy. Templates
//! live in templates/ (askama, checked at compile time); every value that reaches a unit
//! or YAML file was validated upstream or is quoted here.

mod apiserver;
mod documents;
mod front;

use std::collections::BTreeMap;
use std::path::PathBuf;

use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::encryption::EncryptionKeys;
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::Pki;
use crate::plan::{Artifact, CaName, KUBELET_CLIENT_CN, NodePlan, Role, cert_names};

use apiserver::{AdminKubeconfig, ClusterAdminsBinding, KubeletApisBinding};
pub use apiserver::{apiserver_unit, audit_policy, encryption_config, kubeconfig_server};
pub use documents::{
    BundleFacts, Documents, MANIFEST_COLLECTION, documents, install_guide, installer, node_api_url,
    node_readme,
};
pub use front::{front_config, front_unit, keepalived_config};

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
