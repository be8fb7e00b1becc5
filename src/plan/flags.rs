//! Stage 3, the kube-apiserver part: every flag of a master's unit with the reason it is
//! there, and the seed guide's flags the unit leaves out with the reason why. Which flags a
//! minor accepts comes from the version table (`crate::versions`); this module decides the
//! values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{NodeLayout, working_directory};
use crate::model::{CIS_AUDIT_MAX_BACKUP, Cluster, EtcdCa, Master, SEED_AUDIT_MAX_BACKUP};
use crate::versions;

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
