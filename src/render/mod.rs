//! Stage 5: the bytes of every file a node receives.
//!
//! In: the [`Cluster`], one [`NodePlan`] (which files, which flags), the [`Pki`] and the
//! [`EncryptionKeys`]. Out: a [`RenderedNode`]: rootfs files keyed by target path with
//! their modes, and the RBAC manifests applied once the apiserver is healthy. Templates
//! live in templates/ (askama, checked at compile time); every value that reaches a unit
//! or YAML file was validated upstream or is quoted here.
//!
//! Every on-node path comes from the plan (`NodePlan.layout`), so a path is named once;
//! the cluster supplies only settings (names, versions, addresses). `apiserver` renders
//! the apiserver's files, `components` the controller manager's and the scheduler's,
//! `front` the node-local proxy's and keepalived's, `documents`
//! install.sh and the READMEs; this module maps the plan's artifacts onto them and holds
//! the quoting the templates rely on.

mod apiserver;
mod components;
mod documents;
mod front;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use askama::Template;

use crate::encryption::EncryptionKeys;
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::{Credential, Pki};
use crate::plan::{Artifact, CaName, Component, LeafName, NodePlan, Role};
use crate::values::{Host, SECURE_PORT};

pub use apiserver::{
    CLUSTER_ADMINS_MANIFEST, KUBELET_APIS_MANIFEST, apiserver_unit, audit_policy,
    client_kubeconfig, encryption_config, kubeconfig_server,
};
use apiserver::{admin_kubeconfig, rbac_manifests};
pub use components::{
    ETCD_TIMEOUT_START, client_ca_bundle, component_kubeconfig, controller_manager_unit, etcd_unit,
    scheduler_config, scheduler_unit,
};
pub use documents::{
    BundleFacts, Documents, MANIFEST_COLLECTION, documents, install_guide, installer, node_readme,
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

/// Renders one node's files.
pub fn render_node(
    cluster: &Cluster,
    node: &NodePlan,
    pki: &Pki,
    encryption: &EncryptionKeys,
) -> Result<RenderedNode, Error> {
    let sources = Sources {
        cluster,
        node,
        pki,
        leaves: pki
            .nodes
            .get(&node.name)
            .ok_or_else(|| Error::Internal(format!("no certificates for {}", node.name)))?,
        encryption,
    };
    let rootfs = node
        .files
        .iter()
        .map(|(path, planned)| {
            let content = sources.content(planned.artifact)?;
            let file = RenderedFile {
                mode: planned.mode,
                content,
            };
            Ok((path.clone(), file))
        })
        .collect::<Result<_, Error>>()?;
    let manifests = match node.role {
        Role::Master => rbac_manifests(cluster)?,
        // A client runs no apiserver to apply them to.
        Role::Client => BTreeMap::new(),
    };
    Ok(RenderedNode { rootfs, manifests })
}

/// What one node's files are made from.
struct Sources<'a> {
    cluster: &'a Cluster,
    node: &'a NodePlan,
    pki: &'a Pki,
    /// The node's leaf credentials, keyed by the plan's certificate names.
    leaves: &'a BTreeMap<LeafName, Credential>,
    encryption: &'a EncryptionKeys,
}

impl Sources<'_> {
    /// The content of the file that carries `artifact`.
    fn content(&self, artifact: Artifact) -> Result<Content, Error> {
        use Artifact::*;
        let (cluster, node, pki) = (self.cluster, self.node, self.pki);
        let text = match artifact {
            CaCert(ca) => self.ca(ca)?,
            Cert(leaf) => self.leaf(leaf)?.cert_pem.clone(),
            Key(leaf) => self.leaf(leaf)?.key.to_pem(),
            ServiceAccountKey => pki.service_account_key_pem.clone(),
            ServiceAccountPub => pki.service_account_pub_pem.clone(),
            EncryptionConfig => encryption_config(cluster, self.encryption)?,
            AuditPolicy => audit_policy(cluster)?,
            AdminKubeconfig => admin_kubeconfig(
                cluster,
                node,
                &self.ca(CaName::Cluster)?,
                self.leaf(LeafName::Admin)?,
            )?,
            Unit(Component::Apiserver) => apiserver_unit(cluster, node)?,
            Unit(Component::ControllerManager) => controller_manager_unit(cluster, node)?,
            Unit(Component::Scheduler) => scheduler_unit(cluster, node)?,
            Unit(Component::Etcd) => etcd_unit(cluster, node)?,
            Kubeconfig(component) => component_kubeconfig(
                cluster,
                node,
                component,
                &self.ca(CaName::Cluster)?,
                self.leaf(client_identity(component)?)?,
            )?,
            SchedulerConfig => scheduler_config(cluster, node)?,
            ClientCaBundle => {
                client_ca_bundle(&self.ca(CaName::Cluster)?, &self.ca(CaName::ClusterSigner)?)
            }
            ClusterSignerKey => pki
                .cluster_signer_key_pem
                .clone()
                .ok_or_else(|| Error::Internal("no CSR signer key".into()))?,
            FrontConfig => front_config(cluster, node)?,
            FrontUnit => front_unit(cluster, node)?,
            KeepalivedConfig => keepalived_config(cluster, node)?,
            // Binaries are not read here: the bundle streams them from where cluster.yaml says.
            Binary(component) => return shipped(component.shipped_binary(cluster)),
            EtcdctlBinary => {
                let stacked = cluster.etcd.stacked.as_ref();
                return shipped(stacked.and_then(|s| s.etcdctl_binary.as_ref()));
            }
            FrontBinary => return shipped(cluster.front_binary.as_ref()),
        };
        Ok(Content::Bytes(text.into_bytes()))
    }

    fn ca(&self, name: CaName) -> Result<String, Error> {
        self.pki
            .ca_cert_pem(name)
            .map(str::to_owned)
            .ok_or_else(|| Error::Internal(format!("no {name:?} CA")))
    }

    fn leaf(&self, name: LeafName) -> Result<&Credential, Error> {
        self.leaves
            .get(&name)
            .ok_or_else(|| Error::Internal(format!("{} lacks {name}", self.node.name)))
    }
}

/// The client certificate in `component`'s kubeconfig.
fn client_identity(component: Component) -> Result<LeafName, Error> {
    match component {
        Component::ControllerManager => Ok(LeafName::ControllerManager),
        Component::Scheduler => Ok(LeafName::Scheduler),
        Component::Apiserver | Component::Etcd => Err(Error::Internal(format!(
            "{} has no kubeconfig",
            component.program()
        ))),
    }
}

fn shipped(binary: Option<&PathBuf>) -> Result<Content, Error> {
    binary
        .cloned()
        .map(Content::File)
        .ok_or_else(|| Error::Internal("binary planned but not configured".into()))
}

/// The node's own apiserver, which install.sh and keepalived check: never the load
/// balancer, so a healthy peer cannot hide a broken node.
pub fn node_api_url(ip: IpAddr) -> String {
    Host::Ip(ip).https_url(SECURE_PORT)
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
mod tests {
    use super::{shell_quote, systemd_word};

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

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_quote("/etc/kubernetes"), "/etc/kubernetes");
        assert_eq!(shell_quote("0644 /etc/a"), "'0644 /etc/a'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
