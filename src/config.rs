//! Stage 1: the raw shape of cluster.yaml, exactly as the user wrote it.
//!
//! In: a [`SourceFile`]. Out: a [`RawCluster`]. Every key is optional here unless the
//! file is meaningless without it; defaults are applied by `validate`, so what this stage
//! holds is what the user said, with the source position of every value `validate` checks.
//! Unknown keys, duplicate keys and wrong types are refused by the parser itself.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::Error;
use crate::source::SourceFile;

/// A string with the position it was written at.
pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    pub api_version: Text,
    pub kind: Text,
    pub name: Text,
    pub kubernetes_version: Text,
    #[serde(default)]
    pub control_plane_endpoint: Option<Text>,
    pub masters: Spanned<Vec<RawNode>>,
    /// Non-master nodes that get a front-only bundle.
    #[serde(default)]
    pub clients: Option<Spanned<Vec<RawNode>>>,
    pub network: RawNetwork,
    pub etcd: RawEtcd,
    #[serde(default)]
    pub pki: RawPki,
    #[serde(default)]
    pub encryption: RawEncryption,
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub apiserver: RawApiserver,
    #[serde(default)]
    pub binaries: RawBinaries,
    #[serde(default)]
    pub ha_front: RawHaFront,
    /// A keepalived VRRP instance on the masters holding controlPlaneEndpoint's address.
    #[serde(default)]
    pub keepalived: Option<Spanned<RawKeepalived>>,
}

#[derive(Debug, Deserialize)]
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHaFront {
    #[serde(default)]
    pub kind: Option<FrontKind>,
    #[serde(default)]
    pub listen: Option<Text>,
    /// The proxy binary on the node (default: the distribution's).
    #[serde(default)]
    pub binary: Option<Text>,
    /// nginx dynamic modules to load (Debian ships the stream module separately).
    #[serde(default)]
    pub nginx_modules: Option<Vec<Text>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontKind {
    Nginx,
    Haproxy,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Text,
    pub ip: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    #[serde(rename = "serviceCIDR", default)]
    pub service_cidr: Option<Text>,
    #[serde(rename = "nodePortRange", default)]
    pub node_port_range: Option<Text>,
    #[serde(rename = "dnsDomain", default)]
    pub dns_domain: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEtcd {
    pub endpoints: Spanned<Vec<Text>>,
    #[serde(default)]
    pub ca: Option<Spanned<EtcdCaMode>>,
    /// The user's own etcd client credentials, for `ca: external`.
    #[serde(default)]
    pub external: Option<RawEtcdExternal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EtcdCaMode {
    /// etcd trusts the cluster CA, as in the seed guide.
    Cluster,
    /// etcd has its own CA, kept in secrets/ beside the cluster CA (kubeadm's layout).
    Separate,
    /// etcd is run by someone else; the user supplies CA, client cert and key.
    External,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcdExternal {
    pub ca: Text,
    pub cert: Text,
    pub key: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPki {
    #[serde(default)]
    pub key_algorithm: Option<KeyAlgorithm>,
    #[serde(default)]
    pub cert_validity: Option<Text>,
    #[serde(default)]
    pub ca_validity: Option<Text>,
    #[serde(rename = "extraSANs", default)]
    pub extra_sans: Option<Vec<Text>>,
    #[serde(default, rename = "importCA")]
    pub import_ca: Option<RawImportCa>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImportCa {
    pub cert: Text,
    pub key: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    #[serde(default)]
    pub provider: Option<Spanned<EncryptionProvider>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionProvider {
    Secretbox,
    Aescbc,
    Aesgcm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPaths {
    #[serde(default)]
    pub bin_dir: Option<Text>,
    #[serde(default)]
    pub cert_dir: Option<Text>,
    #[serde(default)]
    pub config_dir: Option<Text>,
    #[serde(default)]
    pub data_dir: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApiserver {
    #[serde(default)]
    pub extra_args: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub audit: Option<RawAudit>,
    /// `--runtime-config=api/all=true`: every API group and version, alpha included.
    #[serde(default, rename = "enableAllAPIs")]
    pub enable_all_apis: Option<Spanned<bool>>,
    /// `--kubelet-certificate-authority`: verify kubelets' serving certificates.
    #[serde(default)]
    pub verify_kubelet_serving_certs: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAudit {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub max_backup: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBinaries {
    #[serde(default)]
    pub kube_apiserver: Option<Text>,
    /// The proxy binary (nginx or haproxy) to ship, installed at `haFront.binary`.
    #[serde(default)]
    pub front: Option<Text>,
}

/// Parses cluster.yaml into its raw shape.
pub fn parse(source: &SourceFile) -> Result<RawCluster, Error> {
    source.parse()
}
