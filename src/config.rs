//! Stage 1: the raw shape of cluster.yaml, exactly as the user wrote it.
//!
//! In: a [`SourceFile`]. Out: a [`RawCluster`]. Every key is optional here unless the
//! file is meaningless without it; defaults are applied by `validate`, so what this stage
//! holds is what the user said, with the source position of every value `validate` checks.
//! Unknown keys, duplicate keys and wrong types are refused by the parser itself.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Error;
use crate::source::SourceFile;

/// A string with the position it was written at.
pub type Text = Spanned<String>;

/// A value with the position it was written at, for diagnostics that point at it.
///
/// serde-saphyr's own `Spanned`, wrapped so the JSON Schema of cluster.yaml can be derived
/// from these types: the schema of a spanned value is the value's.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Spanned<T>(serde_saphyr::Spanned<T>);

impl<T> std::ops::Deref for Spanned<T> {
    type Target = serde_saphyr::Spanned<T>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    /// Always `kube-bundle/v1alpha1`.
    pub api_version: Text,
    /// Always `Cluster`.
    pub kind: Text,
    /// The cluster's name, a DNS label: bundles go to bundles/<name>/, secrets to secrets/<name>/.
    pub name: Text,
    /// The Kubernetes release every master runs, e.g. v1.37.2; flags and file formats are rendered for it.
    pub kubernetes_version: Text,
    /// The load balancer or VIP in front of the apiservers (host[:port]), in the serving certificates and kubeconfigs.
    #[serde(default)]
    pub control_plane_endpoint: Option<Text>,
    /// The control-plane nodes, each with a DNS-label name and the address its apiserver advertises; an odd number.
    pub masters: Spanned<Vec<RawNode>>,
    /// Non-master nodes that get a front-only bundle.
    #[serde(default)]
    pub clients: Option<Spanned<Vec<RawNode>>>,
    /// Service IP range, NodePort range and cluster DNS domain.
    pub network: RawNetwork,
    /// The etcd cluster the apiservers store state in.
    /// Your own with `mode: external` (the default); one member per master with `mode: stacked`.
    pub etcd: Spanned<RawEtcd>,
    /// Key algorithm, certificate lifetimes, extra SANs, and an existing CA to adopt.
    #[serde(default)]
    pub pki: RawPki,
    /// Encryption at rest for Secrets.
    #[serde(default)]
    pub encryption: RawEncryption,
    /// Where files go on the nodes.
    #[serde(default)]
    pub paths: RawPaths,
    /// kube-apiserver settings beyond the defaults.
    #[serde(default)]
    pub apiserver: RawApiserver,
    /// kube-controller-manager on every master; absent or `enabled: false`, the bundle
    /// holds no controller manager.
    #[serde(default)]
    pub controller_manager: Option<RawComponent>,
    /// kube-scheduler on every master; absent or `enabled: false`, the bundle holds no
    /// scheduler.
    #[serde(default)]
    pub scheduler: Option<RawComponent>,
    /// Binaries to ship inside every bundle.
    #[serde(default)]
    pub binaries: RawBinaries,
    /// The node-local proxy every client reaches the apiserver tier through.
    #[serde(default)]
    pub ha_front: RawHaFront,
    /// A keepalived VRRP instance on the masters holding controlPlaneEndpoint's address.
    #[serde(default)]
    pub keepalived: Option<Spanned<RawKeepalived>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeepalived {
    /// The masters' network interface the VIP is added to.
    pub interface: Text,
    #[serde(default)]
    pub virtual_router_id: Option<Spanned<u32>>,
    /// The VIP's prefix length on that interface (default 24, or 64 for IPv6).
    #[serde(default)]
    pub prefix_length: Option<Spanned<u32>>,
}

/// The node-local L4 proxy every client reaches the apiserver tier through (the seed's
/// kube-nginx on 127.0.0.1:8443).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHaFront {
    /// nginx, haproxy, or none for no local proxy.
    #[serde(default)]
    pub kind: Option<FrontKind>,
    /// The address the proxy listens on, host:port (default 127.0.0.1:8443).
    #[serde(default)]
    pub listen: Option<Text>,
    /// The proxy binary on the node (default: the distribution's).
    #[serde(default)]
    pub binary: Option<Text>,
    /// nginx dynamic modules to load (Debian ships the stream module separately).
    #[serde(default)]
    pub nginx_modules: Option<Vec<Text>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FrontKind {
    Nginx,
    Haproxy,
    None,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// The node's name, a DNS label.
    pub name: Text,
    /// The node's IP address: the apiserver advertises and binds it.
    pub ip: Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// The Service IP range; dual-stack is two comma-separated CIDRs, primary first.
    #[serde(rename = "serviceCIDR", default)]
    pub service_cidr: Option<Text>,
    /// The NodePort range, FIRST-LAST; must stay clear of 6443.
    #[serde(rename = "nodePortRange", default)]
    pub node_port_range: Option<Text>,
    /// The cluster DNS domain, without a trailing dot.
    #[serde(rename = "dnsDomain", default)]
    pub dns_domain: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEtcd {
    /// external (default): an etcd cluster run apart from the masters, reached at
    /// `endpoints`; stacked: one etcd member per master, run by the bundles.
    #[serde(default)]
    pub mode: Option<Spanned<EtcdMode>>,
    /// Every etcd member's client URL (https only); required with `mode: external`, derived
    /// from the masters (https://<ip>:2379) with `mode: stacked`.
    #[serde(default)]
    pub endpoints: Option<Spanned<Vec<Text>>>,
    /// Who signs the apiserver's etcd client certificate (and, stacked, the members'
    /// certificates): cluster, separate or external. Stacked defaults to separate and
    /// refuses external.
    #[serde(default)]
    pub ca: Option<Spanned<EtcdCaMode>>,
    /// The user's own etcd client credentials, for `ca: external`.
    #[serde(default)]
    pub external: Option<RawEtcdExternal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EtcdMode {
    /// etcd runs apart from the masters; the apiservers reach it at `endpoints`.
    External,
    /// One etcd member per master, in the same bundle as its apiserver (kubeadm's layout).
    Stacked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EtcdCaMode {
    /// etcd trusts the cluster CA, as in the seed guide.
    Cluster,
    /// etcd has its own CA, kept in secrets/ beside the cluster CA (kubeadm's layout).
    Separate,
    /// etcd is run by someone else; the user supplies CA, client cert and key.
    External,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEtcdExternal {
    /// The etcd CA certificate file, relative to cluster.yaml.
    /// The etcd CA certificate, relative to cluster.yaml.
    pub ca: Text,
    /// The apiserver's etcd client certificate, relative to cluster.yaml.
    pub cert: Text,
    /// Its private key, relative to cluster.yaml.
    pub key: Text,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPki {
    /// The algorithm of every key kube-bundle creates.
    #[serde(default)]
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Lifetime of leaf certificates, in hours (e.g. 8760h).
    #[serde(default)]
    pub cert_validity: Option<Text>,
    /// Lifetime of CA certificates, in hours (e.g. 87600h).
    #[serde(default)]
    pub ca_validity: Option<Text>,
    /// More names or addresses for the serving certificates (IP, DNS name or *.wildcard).
    #[serde(rename = "extraSANs", default)]
    pub extra_sans: Option<Vec<Text>>,
    /// An existing CA to adopt on the first build, e.g. cfssl's ca.pem and ca-key.pem.
    #[serde(default, rename = "importCA")]
    pub import_ca: Option<RawImportCa>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
pub enum KeyAlgorithm {
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawImportCa {
    /// The CA certificate (PEM), relative to cluster.yaml.
    pub cert: Text,
    /// The CA's private key (PEM), relative to cluster.yaml.
    pub key: Text,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    /// secretbox (the strongest without a KMS), aesgcm or aescbc.
    #[serde(default)]
    pub provider: Option<Spanned<EncryptionProvider>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionProvider {
    Secretbox,
    Aescbc,
    Aesgcm,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPaths {
    /// Where binaries go (default /usr/local/bin).
    #[serde(default)]
    pub bin_dir: Option<Text>,
    /// Where certificates and keys go (default /etc/kubernetes/pki).
    #[serde(default)]
    pub cert_dir: Option<Text>,
    /// Where configuration files go (default /etc/kubernetes).
    #[serde(default)]
    pub config_dir: Option<Text>,
    /// Where state and logs go (default /var/lib/kubernetes).
    #[serde(default)]
    pub data_dir: Option<Text>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApiserver {
    /// More kube-apiserver flags, without leading dashes, each value a quoted string; checked against the version table.
    #[serde(default)]
    pub extra_args: Option<BTreeMap<String, Text>>,
    /// The audit log under <dataDir>/kube-apiserver/audit.log and its rotation.
    #[serde(default)]
    pub audit: Option<RawAudit>,
    /// `--runtime-config=api/all=true`: every API group and version, alpha included.
    #[serde(default, rename = "enableAllAPIs")]
    pub enable_all_apis: Option<Spanned<bool>>,
    /// `--kubelet-certificate-authority`: verify kubelets' serving certificates.
    #[serde(default)]
    pub verify_kubelet_serving_certs: Option<Spanned<bool>>,
}

/// A control-plane component beside the apiserver (controller manager, scheduler).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawComponent {
    /// Run it on every master (default true once the section is written).
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
    /// More flags, without leading dashes, each value a quoted string; checked against the
    /// version table.
    #[serde(default)]
    pub extra_args: Option<BTreeMap<String, Text>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAudit {
    /// Write the audit log.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Days to keep rotated audit logs.
    #[serde(default)]
    pub max_age: Option<u32>,
    /// Rotated audit logs to keep.
    #[serde(default)]
    pub max_backup: Option<Spanned<u32>>,
    /// Megabytes an audit log grows to before rotation.
    #[serde(default)]
    pub max_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBinaries {
    #[serde(default)]
    pub kube_apiserver: Option<Text>,
    /// A kube-controller-manager binary to ship inside every bundle.
    #[serde(default)]
    pub kube_controller_manager: Option<Text>,
    /// A kube-scheduler binary to ship inside every bundle.
    #[serde(default)]
    pub kube_scheduler: Option<Text>,
    /// An etcd binary to ship inside every bundle (`etcd.mode: stacked` only).
    #[serde(default)]
    pub etcd: Option<Text>,
    /// The etcdctl binary to ship with it, which install.sh checks etcd's health with.
    #[serde(default)]
    pub etcdctl: Option<Text>,
    /// The proxy binary (nginx or haproxy) to ship, installed at `haFront.binary`.
    #[serde(default)]
    pub front: Option<Text>,
}

/// Parses cluster.yaml into its raw shape.
///
/// The shape check runs first, so every unknown key and missing key is reported at once;
/// the parser then refuses what remains (wrong kinds of value, duplicates), one at a time.
pub fn parse(source: &SourceFile) -> Result<RawCluster, Error> {
    let shape = crate::schema::shape_findings(source);
    if !shape.is_empty() {
        return Err(Error::InvalidConfig(
            shape.into_iter().map(miette::Report::new).collect(),
        ));
    }
    source.parse()
}
