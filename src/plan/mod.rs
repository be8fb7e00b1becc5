//! Stage 3: what every node gets, decided before any byte is produced.
//!
//! In: a validated [`Cluster`]. Out: a [`Plan`] with one [`NodePlan`] per master: its
//! addresses, the SANs of its serving certificate, and every file it receives with target
//! path and mode. No crypto and no I/O happen here, so `plan` is cheap and its JSON form
//! is the most stable snapshot of what kube-bundle will do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::model::{CIS_AUDIT_MAX_BACKUP, Cluster, EtcdCa, Master, SEED_AUDIT_MAX_BACKUP};
use crate::values::Host;
use crate::versions;

/// Bumped whenever the JSON shape of the plan changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

pub mod layout;

pub use layout::NodeLayout;

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
    /// Every on-node path, computed once; the plan's JSON shows them in `files`.
    #[serde(skip)]
    pub layout: NodeLayout,
    pub name: String,
    pub ip: IpAddr,
    pub role: Role,
    pub serving_cert_sans: Sans,
    /// Directories install.sh creates (the seed notes the working directory must exist).
    pub directories: Vec<String>,
    /// Every file the bundle installs, keyed by its absolute target path.
    pub files: BTreeMap<String, PlannedFile>,
    /// Every certificate this node needs, keyed by its kubeadm-like name.
    pub certificates: BTreeMap<String, CertSpec>,
    /// The kube-apiserver command line, flag name (without dashes) to value and reason.
    pub flags: BTreeMap<String, PlannedFlag>,
    /// The seed unit's flags this version's unit leaves out, and why.
    pub dropped_seed_flags: BTreeMap<String, DroppedFlag>,
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
/// the rendered RBAC, never a member of system:masters.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
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

/// A master runs an apiserver (and the front); a client runs only the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Master,
    Client,
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
    AdminCert,
    AdminKey,
    ServiceAccountKey,
    ServiceAccountPub,
    EncryptionConfig,
    AuditPolicy,
    AdminKubeconfig,
    ApiserverUnit,
    ApiserverBinary,
    FrontConfig,
    FrontUnit,
    FrontBinary,
    KeepalivedConfig,
}

impl Artifact {
    /// The systemd unit that must restart when this file changes.
    pub fn unit(self, front: Option<&crate::model::HaFront>) -> &'static str {
        match (self, front) {
            (Self::FrontConfig | Self::FrontUnit | Self::FrontBinary, Some(front)) => {
                front_unit_name(front)
            }
            (Self::KeepalivedConfig, _) => KEEPALIVED_UNIT,
            _ => APISERVER_UNIT,
        }
    }
}

pub const APISERVER_UNIT: &str = crate::bundle::format::APISERVER_UNIT;
/// The distribution's keepalived unit (Debian, RHEL): kube-bundle ships only its config.
pub const KEEPALIVED_UNIT: &str = "keepalived.service";
pub const KEEPALIVED_CONFIG_PATH: &str = "/etc/keepalived/keepalived.conf";

pub fn front_unit_name(front: &crate::model::HaFront) -> &'static str {
    match front.kind {
        crate::model::FrontKind::Haproxy => "kube-haproxy.service",
        crate::model::FrontKind::Nginx => "kube-nginx.service",
    }
}

fn octal<S: serde::Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:04o}"))
}

const PUBLIC: u32 = 0o644;
const PRIVATE: u32 = 0o600;
const EXECUTABLE: u32 = 0o755;

/// Decides every node's files and SANs.
pub fn plan(cluster: &Cluster) -> Plan {
    let masters = cluster
        .masters
        .iter()
        .map(|master| (master.name.to_string(), plan_node(cluster, master)));
    let clients = cluster
        .clients
        .iter()
        .map(|client| (client.name.to_string(), plan_client(cluster, client)));
    let nodes = masters.chain(clients).collect();
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        cluster: cluster.name.to_string(),
        kubernetes_version: cluster.kubernetes_version.to_string(),
        kubernetes_service_ip: cluster.network.service_cidr.kubernetes_service_ip(),
        nodes,
    }
}

fn plan_node(cluster: &Cluster, master: &Master) -> NodePlan {
    use Artifact::*;
    let layout = NodeLayout::new(cluster);
    // With `ca: cluster` etcd trusts the cluster CA (the seed's layout): no separate file.
    let separate_etcd_ca = !matches!(cluster.etcd.ca, EtcdCa::Cluster);
    let installed = [
        (CaCert, PUBLIC, true),
        (FrontProxyCaCert, PUBLIC, true),
        (EtcdCaCert, PUBLIC, separate_etcd_ca),
        (ApiserverCert, PUBLIC, true),
        (ApiserverKey, PRIVATE, true),
        (ApiserverKubeletClientCert, PUBLIC, true),
        (ApiserverKubeletClientKey, PRIVATE, true),
        (ApiserverEtcdClientCert, PUBLIC, true),
        (ApiserverEtcdClientKey, PRIVATE, true),
        (FrontProxyClientCert, PUBLIC, true),
        (FrontProxyClientKey, PRIVATE, true),
        // The admin identity as files too: install.sh checks /healthz and applies the RBAC
        // manifests with curl, which cannot read a kubeconfig.
        (AdminCert, PUBLIC, true),
        (AdminKey, PRIVATE, true),
        // kubeadm writes sa.pub 0600 too.
        (ServiceAccountKey, PRIVATE, true),
        (ServiceAccountPub, PRIVATE, true),
        (EncryptionConfig, PRIVATE, true),
        (AuditPolicy, PUBLIC, cluster.apiserver.audit.enabled),
        (AdminKubeconfig, PRIVATE, true),
        (ApiserverUnit, PUBLIC, true),
        (
            ApiserverBinary,
            EXECUTABLE,
            cluster.kube_apiserver_binary.is_some(),
        ),
        (KeepalivedConfig, PUBLIC, cluster.keepalived.is_some()),
        (FrontConfig, PUBLIC, true),
        (FrontUnit, PUBLIC, true),
        (FrontBinary, EXECUTABLE, cluster.front_binary.is_some()),
    ];
    let files = planned_files(&layout, &installed);
    let mut directories = vec![working_directory(cluster)];
    if cluster.ha_front.is_some() {
        directories.push(front_prefix(cluster));
    }
    let sans = serving_cert_sans(cluster, master);
    let (flags, dropped_seed_flags) = apiserver_flags(cluster, master, &layout);
    NodePlan {
        layout,
        flags,
        dropped_seed_flags,
        name: master.name.to_string(),
        ip: master.ip,
        role: Role::Master,
        certificates: certificates(cluster, &sans),
        serving_cert_sans: sans,
        directories,
        files,
    }
}

/// The files of `installed` (artifact, mode, whether this cluster ships it) at their
/// layout paths; front files only when the cluster has a front.
fn planned_files(
    layout: &NodeLayout,
    installed: &[(Artifact, u32, bool)],
) -> BTreeMap<String, PlannedFile> {
    installed
        .iter()
        .filter(|(_, _, shipped)| *shipped)
        .filter_map(|&(artifact, mode, _)| {
            let path = layout.path(artifact)?;
            Some((path.to_owned(), PlannedFile { mode, artifact }))
        })
        .collect()
}

/// A client node: the front and the CA it checks the apiservers with, nothing else; it
/// holds no key and no credential.
fn plan_client(cluster: &Cluster, client: &Master) -> NodePlan {
    use Artifact::*;
    let layout = NodeLayout::new(cluster);
    let files = planned_files(
        &layout,
        &[
            (CaCert, PUBLIC, true),
            (FrontConfig, PUBLIC, true),
            (FrontUnit, PUBLIC, true),
            (FrontBinary, EXECUTABLE, cluster.front_binary.is_some()),
        ],
    );
    let directories = if cluster.ha_front.is_some() {
        vec![front_prefix(cluster)]
    } else {
        Vec::new()
    };
    NodePlan {
        layout,
        name: client.name.to_string(),
        ip: client.ip,
        role: Role::Client,
        serving_cert_sans: Sans {
            dns: Vec::new(),
            ips: Vec::new(),
        },
        directories,
        files,
        certificates: BTreeMap::new(),
        flags: BTreeMap::new(),
        dropped_seed_flags: BTreeMap::new(),
    }
}

/// kubeadm's leaf inventory for one node. With external
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
            organization: Some(admin_group(cluster.kubernetes_version.minor()).to_owned()),
            ..spec(ADMIN_CN, Purpose::ClientAuth, CaName::Cluster)
        },
    );
    certs
}

/// nginx's prefix (temp files, pid) under dataDir, like the seed's /opt/k8s/kube-nginx.
pub fn front_prefix(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("kube-nginx")
}

/// The apiserver's WorkingDirectory, where the seed also keeps its audit log.
pub fn working_directory(cluster: &Cluster) -> String {
    cluster.paths.data_dir.join("kube-apiserver")
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

// ---------------------------------------------------------------------------------------
// kube-apiserver flags

/// One flag of the rendered unit and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFlag {
    pub value: String,
    pub reason: FlagReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "note")]
pub enum FlagReason {
    /// The seed guide's flag and value, unchanged.
    Seed,
    /// The seed guide's flag, adapted (new name, new value or this bundle's file).
    Translated(String),
    /// Not in the seed; kubeadm sets it.
    Kubeadm,
    /// The target version refuses to start without it.
    Required(String),
    /// kube-bundle's own choice, and why.
    KubeBundle(String),
    /// From apiserver.extraArgs.
    User,
}

/// A flag of the seed's unit that this version's unit does not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedFlag {
    pub seed_value: String,
    pub why: String,
}

/// The seed guide's kube-apiserver unit (06-2), flag by flag, with its values.
pub const SEED_UNIT_FLAGS: &[(&str, &str)] = &[
    (
        "enable-admission-plugins",
        "Initializers,NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota",
    ),
    ("anonymous-auth", "false"),
    (
        "experimental-encryption-provider-config",
        "/etc/kubernetes/encryption-config.yaml",
    ),
    ("advertise-address", "##NODE_IP##"),
    ("bind-address", "##NODE_IP##"),
    ("insecure-port", "0"),
    ("authorization-mode", "Node,RBAC"),
    ("runtime-config", "api/all"),
    ("enable-bootstrap-token-auth", ""),
    ("service-cluster-ip-range", "${SERVICE_CIDR}"),
    ("service-node-port-range", "${NODE_PORT_RANGE}"),
    ("tls-cert-file", "/etc/kubernetes/cert/kubernetes.pem"),
    (
        "tls-private-key-file",
        "/etc/kubernetes/cert/kubernetes-key.pem",
    ),
    ("client-ca-file", "/etc/kubernetes/cert/ca.pem"),
    (
        "kubelet-certificate-authority",
        "/etc/kubernetes/cert/ca.pem",
    ),
    (
        "kubelet-client-certificate",
        "/etc/kubernetes/cert/kubernetes.pem",
    ),
    (
        "kubelet-client-key",
        "/etc/kubernetes/cert/kubernetes-key.pem",
    ),
    ("kubelet-https", "true"),
    ("service-account-key-file", "/etc/kubernetes/cert/ca.pem"),
    ("etcd-cafile", "/etc/kubernetes/cert/ca.pem"),
    ("etcd-certfile", "/etc/kubernetes/cert/kubernetes.pem"),
    ("etcd-keyfile", "/etc/kubernetes/cert/kubernetes-key.pem"),
    ("etcd-servers", "${ETCD_ENDPOINTS}"),
    ("enable-swagger-ui", "true"),
    ("allow-privileged", "true"),
    ("max-mutating-requests-inflight", "2000"),
    ("max-requests-inflight", "4000"),
    ("apiserver-count", "3"),
    ("audit-log-maxage", "30"),
    ("audit-log-maxbackup", "3"),
    ("audit-log-maxsize", "100"),
    ("audit-log-path", "${K8S_DIR}/kube-apiserver/audit.log"),
    ("event-ttl", "168h"),
    ("logtostderr", "true"),
    ("v", "2"),
];

/// The admission plugins the seed enables; `Initializers` only where it still exists.
const SEED_ADMISSION_PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "NodeRestriction",
    "LimitRanger",
    "ServiceAccount",
    "DefaultStorageClass",
    "ResourceQuota",
];

/// The unit's flags for one node, sorted by name, and the seed flags left out.
pub fn apiserver_flags(
    cluster: &Cluster,
    master: &Master,
    layout: &NodeLayout,
) -> (BTreeMap<String, PlannedFlag>, BTreeMap<String, DroppedFlag>) {
    use versions::{encryption_config_flag, flag, initializers_plugin_accepted};
    let minor = cluster.kubernetes_version.minor();
    let hardened = versions::hardened_defaults(minor);
    let accepted = |name: &str| flag(name).is_some_and(|f| f.accepted_in(minor));
    let mut flags = BTreeMap::new();
    let mut set = |name: &str, value: String, reason: FlagReason| {
        flags.insert(name.to_owned(), PlannedFlag { value, reason });
    };
    let translated = |why: &str| FlagReason::Translated(why.to_owned());
    let own_file = || translated("this bundle's own file");

    set("advertise-address", master.ip.to_string(), FlagReason::Seed);
    match &cluster.keepalived {
        // The master holding the VIP must answer on it: the apiserver binds every address.
        Some(keepalived) => set(
            "bind-address",
            if keepalived.vip.is_ipv4() {
                "0.0.0.0"
            } else {
                "::"
            }
            .into(),
            FlagReason::KubeBundle(format!(
                "keepalived moves controlPlaneEndpoint {} between the masters",
                keepalived.vip
            )),
        ),
        None => set("bind-address", master.ip.to_string(), FlagReason::Seed),
    }
    set(
        "secure-port",
        crate::values::SECURE_PORT.to_string(),
        FlagReason::Kubeadm,
    );
    if accepted("insecure-port") {
        // Apiservers up to 1.19 open 127.0.0.1:8080 unless told otherwise.
        set("insecure-port", "0".into(), FlagReason::Seed);
    }
    let mut plugins: Vec<&str> = SEED_ADMISSION_PLUGINS.to_vec();
    let plugins_reason = if initializers_plugin_accepted(minor) {
        plugins.insert(0, "Initializers");
        FlagReason::Seed
    } else {
        translated(
            "Initializers dropped: the plugin was removed in 1.14 and unknown plugins stop startup",
        )
    };
    set(
        "enable-admission-plugins",
        plugins.join(","),
        plugins_reason,
    );
    set("anonymous-auth", "false".into(), FlagReason::Seed);
    let encryption_path = layout.encryption_config.clone();
    let encryption_flag = encryption_config_flag(minor);
    let encryption_reason = if minor < versions::ENCRYPTION_CONFIG_GRADUATED_IN {
        FlagReason::Seed
    } else {
        translated("renamed to --encryption-provider-config in 1.13")
    };
    set(encryption_flag, encryption_path, encryption_reason);
    if accepted("encryption-provider-config-automatic-reload") {
        set(
            "encryption-provider-config-automatic-reload",
            "true".into(),
            FlagReason::KubeBundle("key rotations take effect without a restart".into()),
        );
    }
    set("authorization-mode", "Node,RBAC".into(), FlagReason::Seed);
    if cluster.apiserver.enable_all_apis {
        let reason = if hardened {
            translated(
                "apiserver.enableAllAPIs: true serves every API version, alpha ones included; \
                 upstream advises against alpha APIs in production",
            )
        } else {
            translated("the bare `api/all` is refused by 1.36; `=true` means the same")
        };
        set("runtime-config", "api/all=true".into(), reason);
    }
    set(
        "enable-bootstrap-token-auth",
        "true".into(),
        FlagReason::Seed,
    );
    set(
        "service-cluster-ip-range",
        cluster.network.service_cidr.to_string(),
        FlagReason::Seed,
    );
    set(
        "service-node-port-range",
        cluster.network.node_port_range.to_string(),
        FlagReason::Seed,
    );
    set(
        "tls-cert-file",
        layout.apiserver.cert.clone(),
        translated("a serving cert per node instead of one shared kubernetes.pem"),
    );
    set(
        "tls-private-key-file",
        layout.apiserver.key.clone(),
        translated("a serving key per node"),
    );
    set("client-ca-file", layout.ca_cert.clone(), own_file());
    if cluster.apiserver.verify_kubelet_serving_certs {
        // The seed's own release keeps the seed's plan, word for word.
        let reason = if hardened {
            translated(
                "this bundle's own file. CIS API-server item: the apiserver verifies kubelets' \
                 serving certificates, so every kubelet must serve one signed by the cluster CA \
                 (kubelet serverTLSBootstrap: true with its CSRs approved, or a certificate \
                 issued from this CA); against a self-signed kubelet certificate exec, logs and \
                 port-forward fail. apiserver.verifyKubeletServingCerts: false turns it off",
            )
        } else {
            own_file()
        };
        set(
            "kubelet-certificate-authority",
            layout.ca_cert.clone(),
            reason,
        );
    }
    let kubelet_client =
        "a clientAuth-only identity bound to system:kubelet-api-admin instead of the serving cert";
    set(
        "kubelet-client-certificate",
        layout.kubelet_client.cert.clone(),
        translated(kubelet_client),
    );
    set(
        "kubelet-client-key",
        layout.kubelet_client.key.clone(),
        translated(kubelet_client),
    );
    set(
        "kubelet-preferred-address-types",
        "InternalIP,ExternalIP,Hostname".into(),
        FlagReason::Kubeadm,
    );
    if accepted("kubelet-https") {
        set("kubelet-https", "true".into(), FlagReason::Seed);
    }
    set(
        "service-account-key-file",
        layout.service_account_pub.clone(),
        translated("the service-account public key instead of the CA cert"),
    );
    let required_in = |name: &str| flag(name).is_some_and(|f| f.required_in(minor));
    if required_in("service-account-signing-key-file") {
        let required =
            || FlagReason::Required("kube-apiserver refuses to start without it from 1.20".into());
        set(
            "service-account-signing-key-file",
            layout.service_account_key.clone(),
            required(),
        );
        set(
            "service-account-issuer",
            format!(
                "https://kubernetes.default.svc.{}",
                cluster.network.dns_domain
            ),
            required(),
        );
    }
    let etcd_ca = match cluster.etcd.ca {
        EtcdCa::Cluster => layout.ca_cert.clone(),
        EtcdCa::Separate | EtcdCa::External { .. } => layout.etcd_ca_cert.clone(),
    };
    set("etcd-cafile", etcd_ca, own_file());
    let etcd_client = "a clientAuth cert of its own instead of the serving cert";
    set(
        "etcd-certfile",
        layout.etcd_client.cert.clone(),
        translated(etcd_client),
    );
    set(
        "etcd-keyfile",
        layout.etcd_client.key.clone(),
        translated(etcd_client),
    );
    let endpoints: Vec<String> = cluster
        .etcd
        .endpoints
        .iter()
        .map(|url| url.as_str().trim_end_matches('/').to_owned())
        .collect();
    set("etcd-servers", endpoints.join(","), FlagReason::Seed);
    let effective = |name: &str| flag(name).is_some_and(|f| f.effective_in(minor));
    if effective("enable-swagger-ui") {
        set("enable-swagger-ui", "true".into(), FlagReason::Seed);
    }
    set("allow-privileged", "true".into(), FlagReason::Seed);
    set(
        "max-mutating-requests-inflight",
        "2000".into(),
        FlagReason::Seed,
    );
    set("max-requests-inflight", "4000".into(), FlagReason::Seed);
    if minor <= OLDEST_SEED_COUNT_MINOR {
        set(
            "apiserver-count",
            cluster.masters.len().to_string(),
            FlagReason::Seed,
        );
    }
    let audit = &cluster.apiserver.audit;
    if audit.enabled {
        set(
            "audit-log-maxage",
            audit.max_age.to_string(),
            FlagReason::Seed,
        );
        let max_backup_reason = match audit.max_backup {
            SEED_AUDIT_MAX_BACKUP => FlagReason::Seed,
            CIS_AUDIT_MAX_BACKUP => FlagReason::Translated(format!(
                "CIS API-server item: {CIS_AUDIT_MAX_BACKUP} old audit logs instead of the \
                 seed's {SEED_AUDIT_MAX_BACKUP} (apiserver.audit.maxBackup: \
                 {SEED_AUDIT_MAX_BACKUP} keeps the seed's)"
            )),
            _ => translated("apiserver.audit.maxBackup"),
        };
        set(
            "audit-log-maxbackup",
            audit.max_backup.to_string(),
            max_backup_reason,
        );
        set(
            "audit-log-maxsize",
            audit.max_size.to_string(),
            FlagReason::Seed,
        );
        set(
            "audit-log-path",
            format!("{}/audit.log", working_directory(cluster)),
            FlagReason::Seed,
        );
        set(
            "audit-policy-file",
            layout.audit_policy.clone(),
            FlagReason::KubeBundle(
                "without a policy nothing is logged; the policy is the newer seed guide's".into(),
            ),
        );
    }
    set("event-ttl", "168h".into(), FlagReason::Seed);
    // The seed's own release keeps the seed's flags; every other one is hardened.
    if hardened {
        set(
            "tls-min-version",
            "VersionTLS12".into(),
            FlagReason::KubeBundle(
                "TLS 1.0 and 1.1 are refused explicitly, not left to the default of the Go \
                 release the binary was built with"
                    .into(),
            ),
        );
        let names = if minor < versions::CHACHA20_SHA256_NAMES_FROM {
            format!("; ChaCha20 is named without _SHA256, the only name 1.{minor} accepts")
        } else {
            String::new()
        };
        set(
            "tls-cipher-suites",
            versions::strong_tls_cipher_suites(minor).join(","),
            FlagReason::KubeBundle(format!(
                "CIS API-server item: TLS 1.2 only with ECDHE key exchange and AES-GCM or \
                 ChaCha20-Poly1305 (no CBC, RC4, 3DES or RSA key exchange); each for ECDSA and \
                 RSA certificates, so every pki.keyAlgorithm works; TLS 1.3 suites are fixed \
                 and stay on{names}"
            )),
        );
        set(
            "profiling",
            "false".into(),
            FlagReason::KubeBundle(
                "CIS API-server item: profiling exposes program internals over HTTP; \
                 `profiling: \"true\"` in extraArgs turns it back on"
                    .into(),
            ),
        );
    }
    if effective("logtostderr") {
        set("logtostderr", "true".into(), FlagReason::Seed);
    }
    set("v", "2".into(), FlagReason::Seed);
    set(
        "requestheader-client-ca-file",
        layout.front_proxy_ca_cert.clone(),
        FlagReason::Kubeadm,
    );
    set(
        "requestheader-allowed-names",
        "front-proxy-client".into(),
        FlagReason::Kubeadm,
    );
    set(
        "requestheader-extra-headers-prefix",
        "X-Remote-Extra-".into(),
        FlagReason::Kubeadm,
    );
    set(
        "requestheader-group-headers",
        "X-Remote-Group".into(),
        FlagReason::Kubeadm,
    );
    set(
        "requestheader-username-headers",
        "X-Remote-User".into(),
        FlagReason::Kubeadm,
    );
    set(
        "proxy-client-cert-file",
        layout.front_proxy_client.cert.clone(),
        FlagReason::Kubeadm,
    );
    set(
        "proxy-client-key-file",
        layout.front_proxy_client.key.clone(),
        FlagReason::Kubeadm,
    );

    for (name, value) in &cluster.apiserver.extra_args {
        set(name, value.clone(), FlagReason::User);
    }
    // --authorization-config and --authorization-mode cannot be combined.
    if cluster
        .apiserver
        .extra_args
        .contains_key("authorization-config")
    {
        flags.remove("authorization-mode");
    }

    let dropped = SEED_UNIT_FLAGS
        .iter()
        .filter(|(name, _)| !flags.contains_key(*name))
        .map(|(name, seed_value)| {
            let why = drop_reason(name, minor, &flags, &cluster.apiserver);
            (
                (*name).to_owned(),
                DroppedFlag {
                    seed_value: (*seed_value).to_owned(),
                    why,
                },
            )
        })
        .collect();
    (flags, dropped)
}

/// The seed's `--apiserver-count` is kept only in the seed's own minor, where the unit
/// must reproduce the guide; it is a no-op under the lease reconciler everywhere.
const OLDEST_SEED_COUNT_MINOR: u64 = 12;

fn drop_reason(
    name: &str,
    minor: u64,
    flags: &BTreeMap<String, PlannedFlag>,
    apiserver: &crate::model::Apiserver,
) -> String {
    let table = versions::flag(name);
    let replaced = table
        .and_then(|f| f.replacement)
        .filter(|replacement| flags.contains_key(*replacement))
        .map(|replacement| format!("; --{replacement} replaces it"))
        .unwrap_or_default();
    match (name, table) {
        ("apiserver-count", _) => {
            "a no-op: the lease endpoint reconciler is the default since 1.11".into()
        }
        ("enable-swagger-ui", Some(f)) if f.accepted_in(minor) => {
            "a no-op since 1.14 (swagger 1.2 is gone); removed in 1.24".into()
        }
        ("logtostderr", Some(f)) if f.accepted_in(minor) => {
            "deprecated in 1.23 and already the default; removed in 1.26".into()
        }
        ("authorization-mode", _) => {
            "apiserver.extraArgs sets --authorization-config, which excludes it".into()
        }
        ("runtime-config", _) if !apiserver.enable_all_apis => {
            "apiserver.enableAllAPIs is false (the default after the seed's v1.12): `api/all` \
             would also serve every alpha API, which upstream advises against in production; \
             the API versions each release enables by default are served"
                .into()
        }
        ("kubelet-certificate-authority", _) if !apiserver.verify_kubelet_serving_certs => {
            "apiserver.verifyKubeletServingCerts: false. Weaker (CIS API-server item): kubelets' \
             serving certificates are not verified, so whoever answers on a kubelet's address \
             receives the apiserver's exec, attach, logs and port-forward traffic"
                .into()
        }
        (_, Some(f)) if !f.accepted_in(minor) => {
            format!("not accepted by 1.{minor}: {}{replaced}", f.note)
        }
        _ => format!("overridden{replaced}"),
    }
}
