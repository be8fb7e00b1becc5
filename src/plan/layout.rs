//! Where every file a bundle installs lives on the node, each path named once. The plan
//! computes it per node; the flags, the unit, the installer, the README and the file list
//! all read their paths from here.

use serde::Serialize;

use super::{Artifact, CaName, Component, KEEPALIVED_CONFIG_PATH, LeafName, front_unit_name};
use crate::model::Cluster;

/// Where systemd looks for administrator units.
pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const CONTROLLER_MANAGER_UNIT: &str = "kube-controller-manager.service";
pub const SCHEDULER_UNIT: &str = "kube-scheduler.service";
pub const ETCD_UNIT: &str = "etcd.service";
/// Where Debian and RHEL install keepalived; the bundle ships only its config.
pub const KEEPALIVED_PROGRAM: &str = "/usr/sbin/keepalived";

/// A certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialPaths {
    pub cert: String,
    pub key: String,
}

/// The node-local proxy's files, when the cluster has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrontPaths {
    pub config: String,
    pub unit: String,
    pub binary: String,
    /// nginx's prefix (temp files, pid); install.sh creates it for either proxy.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLayout {
    /// The directory of every certificate and key below.
    pub cert_dir: String,
    pub ca_cert: String,
    pub front_proxy_ca_cert: String,
    /// The separate etcd CA's certificate (unused with `etcd.ca: cluster`).
    pub etcd_ca_cert: String,
    pub apiserver: CredentialPaths,
    pub kubelet_client: CredentialPaths,
    pub etcd_client: CredentialPaths,
    pub front_proxy_client: CredentialPaths,
    pub admin: CredentialPaths,
    pub controller_manager: CredentialPaths,
    pub controller_manager_server: CredentialPaths,
    pub scheduler: CredentialPaths,
    pub scheduler_server: CredentialPaths,
    /// A stacked etcd member's serving, peer and health-check client certificates, in
    /// kubeadm's etcd/ folder beside the etcd CA.
    pub etcd_server: CredentialPaths,
    pub etcd_peer: CredentialPaths,
    pub etcd_healthcheck_client: CredentialPaths,
    /// The CSR signer's certificate and key (the controller manager signs with them).
    pub cluster_signer: CredentialPaths,
    /// The cluster CA and the CSR signer in one file: the client certificates the
    /// apiserver accepts (and the kubelet serving certificates it verifies) chain to either.
    pub client_ca_bundle: String,
    pub controller_manager_kubeconfig: String,
    pub scheduler_kubeconfig: String,
    /// The KubeSchedulerConfiguration file.
    pub scheduler_config: String,
    pub controller_manager_unit: String,
    pub scheduler_unit: String,
    pub controller_manager_binary: String,
    pub scheduler_binary: String,
    pub etcd_unit: String,
    pub etcd_binary: String,
    pub etcdctl_binary: String,
    /// A stacked etcd member's data directory.
    pub etcd_data_dir: String,
    pub service_account_key: String,
    pub service_account_pub: String,
    pub encryption_config: String,
    pub audit_policy: String,
    pub admin_kubeconfig: String,
    pub apiserver_unit: String,
    pub apiserver_binary: String,
    /// The apiserver's WorkingDirectory.
    pub working_directory: String,
    pub keepalived_config: String,
    /// The distribution's keepalived, which install.sh checks before installing its config.
    pub keepalived_program: String,
    pub front: Option<FrontPaths>,
}

impl NodeLayout {
    pub fn new(cluster: &Cluster) -> Self {
        let paths = &cluster.paths;
        let cert = |name: &str| paths.cert_dir.join(name);
        let credential = |stem: &str| CredentialPaths {
            cert: cert(&format!("{stem}.crt")),
            key: cert(&format!("{stem}.key")),
        };
        let front = cluster.ha_front.as_ref().map(|front| FrontPaths {
            config: match front.kind {
                crate::model::FrontKind::Haproxy => paths.config_dir.join("kube-haproxy.cfg"),
                crate::model::FrontKind::Nginx => paths.config_dir.join("kube-nginx.conf"),
            },
            unit: format!("{UNIT_DIR}/{}", front_unit_name(front)),
            binary: front.binary.as_str().to_owned(),
            prefix: super::front_prefix(cluster),
        });
        Self {
            cert_dir: paths.cert_dir.as_str().to_owned(),
            ca_cert: cert("ca.crt"),
            front_proxy_ca_cert: cert("front-proxy-ca.crt"),
            etcd_ca_cert: cert("etcd/ca.crt"),
            apiserver: credential("apiserver"),
            kubelet_client: credential("apiserver-kubelet-client"),
            etcd_client: credential("apiserver-etcd-client"),
            front_proxy_client: credential("front-proxy-client"),
            admin: credential("admin"),
            controller_manager: credential("controller-manager"),
            controller_manager_server: credential("controller-manager-server"),
            scheduler: credential("scheduler"),
            scheduler_server: credential("scheduler-server"),
            etcd_server: credential("etcd/server"),
            etcd_peer: credential("etcd/peer"),
            etcd_healthcheck_client: credential("etcd/healthcheck-client"),
            cluster_signer: credential("cluster-signer"),
            client_ca_bundle: cert("client-ca.crt"),
            controller_manager_kubeconfig: paths.config_dir.join("controller-manager.kubeconfig"),
            scheduler_kubeconfig: paths.config_dir.join("scheduler.kubeconfig"),
            scheduler_config: paths.config_dir.join("kube-scheduler.yaml"),
            controller_manager_unit: format!("{UNIT_DIR}/{CONTROLLER_MANAGER_UNIT}"),
            scheduler_unit: format!("{UNIT_DIR}/{SCHEDULER_UNIT}"),
            controller_manager_binary: paths.bin_dir.join("kube-controller-manager"),
            scheduler_binary: paths.bin_dir.join("kube-scheduler"),
            etcd_unit: format!("{UNIT_DIR}/{ETCD_UNIT}"),
            etcd_binary: paths.bin_dir.join("etcd"),
            etcdctl_binary: paths.bin_dir.join("etcdctl"),
            etcd_data_dir: super::etcd_data_dir(cluster),
            service_account_key: cert("sa.key"),
            service_account_pub: cert("sa.pub"),
            encryption_config: paths.config_dir.join("encryption-config.yaml"),
            audit_policy: paths.config_dir.join("audit-policy.yaml"),
            admin_kubeconfig: paths.config_dir.join("admin.kubeconfig"),
            apiserver_unit: format!("{UNIT_DIR}/{}", super::APISERVER_UNIT),
            apiserver_binary: paths.bin_dir.join("kube-apiserver"),
            working_directory: super::working_directory(cluster),
            keepalived_config: KEEPALIVED_CONFIG_PATH.to_owned(),
            keepalived_program: KEEPALIVED_PROGRAM.to_owned(),
            front,
        }
    }

    /// Where a CA's certificate is installed.
    pub fn ca_cert(&self, ca: CaName) -> &str {
        match ca {
            CaName::Cluster => &self.ca_cert,
            CaName::FrontProxy => &self.front_proxy_ca_cert,
            CaName::Etcd => &self.etcd_ca_cert,
            CaName::ClusterSigner => &self.cluster_signer.cert,
        }
    }

    /// Where a leaf's certificate and key are installed.
    pub fn credential(&self, leaf: LeafName) -> &CredentialPaths {
        match leaf {
            LeafName::Admin => &self.admin,
            LeafName::Apiserver => &self.apiserver,
            LeafName::ApiserverEtcdClient => &self.etcd_client,
            LeafName::ApiserverKubeletClient => &self.kubelet_client,
            LeafName::ControllerManager => &self.controller_manager,
            LeafName::ControllerManagerServer => &self.controller_manager_server,
            LeafName::EtcdHealthcheckClient => &self.etcd_healthcheck_client,
            LeafName::EtcdPeer => &self.etcd_peer,
            LeafName::EtcdServer => &self.etcd_server,
            LeafName::FrontProxyClient => &self.front_proxy_client,
            LeafName::Scheduler => &self.scheduler,
            LeafName::SchedulerServer => &self.scheduler_server,
        }
    }

    /// Where `component`'s systemd unit is installed.
    pub fn unit(&self, component: Component) -> &str {
        match component {
            Component::Apiserver => &self.apiserver_unit,
            Component::ControllerManager => &self.controller_manager_unit,
            Component::Scheduler => &self.scheduler_unit,
            Component::Etcd => &self.etcd_unit,
        }
    }

    /// Where `component`'s binary is, shipped or the node's own.
    pub fn binary(&self, component: Component) -> &str {
        match component {
            Component::Apiserver => &self.apiserver_binary,
            Component::ControllerManager => &self.controller_manager_binary,
            Component::Scheduler => &self.scheduler_binary,
            Component::Etcd => &self.etcd_binary,
        }
    }

    /// Where `component`'s kubeconfig is; None for the apiserver and etcd, which need none.
    pub fn kubeconfig(&self, component: Component) -> Option<&str> {
        match component {
            Component::Apiserver | Component::Etcd => None,
            Component::ControllerManager => Some(&self.controller_manager_kubeconfig),
            Component::Scheduler => Some(&self.scheduler_kubeconfig),
        }
    }

    /// The path of `artifact`; `None` only for a front file in a cluster without a front,
    /// and for the apiserver's kubeconfig, which does not exist.
    pub fn path(&self, artifact: Artifact) -> Option<&str> {
        let front = self.front.as_ref();
        Some(match artifact {
            Artifact::CaCert(ca) => self.ca_cert(ca),
            Artifact::Cert(leaf) => &self.credential(leaf).cert,
            Artifact::Key(leaf) => &self.credential(leaf).key,
            Artifact::ServiceAccountKey => &self.service_account_key,
            Artifact::ServiceAccountPub => &self.service_account_pub,
            Artifact::EncryptionConfig => &self.encryption_config,
            Artifact::AuditPolicy => &self.audit_policy,
            Artifact::AdminKubeconfig => &self.admin_kubeconfig,
            Artifact::Unit(component) => self.unit(component),
            Artifact::Binary(component) => self.binary(component),
            Artifact::EtcdctlBinary => &self.etcdctl_binary,
            Artifact::Kubeconfig(component) => self.kubeconfig(component)?,
            Artifact::SchedulerConfig => &self.scheduler_config,
            Artifact::ClientCaBundle => &self.client_ca_bundle,
            Artifact::ClusterSignerKey => &self.cluster_signer.key,
            Artifact::KeepalivedConfig => &self.keepalived_config,
            Artifact::FrontConfig => &front?.config,
            Artifact::FrontUnit => &front?.unit,
            Artifact::FrontBinary => &front?.binary,
        })
    }
}
