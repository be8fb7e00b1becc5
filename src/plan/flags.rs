//! Stage 3, the kube-apiserver part: every flag of a master's unit with the reason it is
//! there, and the seed guide's flags the unit leaves out with the reason why. Which flags a
//! minor accepts comes from the version table (`crate::versions`); this module decides the
//! values. The rule machinery here (a rule per flag, gated by a component's table) also
//! renders the controller manager's and the scheduler's flags (`components`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Component, NodeLayout, working_directory};
use crate::model::{Audit, CIS_AUDIT_MAX_BACKUP, Cluster, EtcdCa, Master, SEED_AUDIT_MAX_BACKUP};
use crate::values::SECURE_PORT;
use crate::versions::{self, Flag};

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
    /// From the component's extraArgs in cluster.yaml.
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
///
/// Every rule whose flag the version table lets this minor have (and whose gate admits it)
/// contributes its value; apiserver.extraArgs then override or add.
pub fn apiserver_flags(
    cluster: &Cluster,
    master: &Master,
    layout: &NodeLayout,
) -> (BTreeMap<String, PlannedFlag>, BTreeMap<String, DroppedFlag>) {
    let context = FlagContext {
        cluster,
        master,
        layout,
        minor: cluster.kubernetes_version.minor(),
        component: Component::Apiserver,
    };
    let extra_args = &cluster.apiserver.extra_args;
    let mut flags = rendered_flags(RULES, versions::flag, &context, extra_args);
    // --authorization-config and --authorization-mode cannot be combined.
    if extra_args.contains_key("authorization-config") {
        flags.remove("authorization-mode");
    }
    let dropped = SEED_UNIT_FLAGS
        .iter()
        .filter(|(name, _)| !flags.contains_key(*name))
        .map(|(name, seed_value)| {
            let dropped = DroppedFlag {
                seed_value: (*seed_value).to_owned(),
                why: drop_reason(name, &context, &flags),
            };
            ((*name).to_owned(), dropped)
        })
        .collect();
    (flags, dropped)
}

/// Every rule of `rules` whose flag `table` lets the context's minor have (and whose gate
/// admits it), with its value; then `extra_args`, which override or add.
pub(super) fn rendered_flags(
    rules: &[Rule],
    table: FlagTable,
    context: &FlagContext,
    extra_args: &BTreeMap<String, String>,
) -> BTreeMap<String, PlannedFlag> {
    let mut flags: BTreeMap<String, PlannedFlag> = rules
        .iter()
        .filter(|rule| rule.admitted(table, context.minor))
        .filter_map(|rule| Some((rule.name.to_owned(), (rule.value)(context)?)))
        .collect();
    for (name, value) in extra_args {
        let reason = FlagReason::User;
        let value = value.clone();
        flags.insert(name.clone(), PlannedFlag { value, reason });
    }
    flags
}

/// A component's version table: its row for a flag name.
pub(super) type FlagTable = fn(&str) -> Option<&'static Flag>;

/// A component's rules are sorted by flag name, name each flag once, and name only flags its
/// version table has (so every rule is gated by a row).
#[cfg(test)]
#[track_caller]
pub(super) fn assert_rules_sorted_and_known(component: &str, rules: &[Rule], table: FlagTable) {
    let names: Vec<&str> = rules.iter().map(|rule| rule.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "{component}");
    for name in names {
        assert!(
            table(name).is_some(),
            "{component}: --{name} is not in its table"
        );
    }
}

/// What a rule reads to decide its flag's value: one master of one cluster, at one minor.
pub(super) struct FlagContext<'a> {
    pub cluster: &'a Cluster,
    pub master: &'a Master,
    pub layout: &'a NodeLayout,
    pub minor: u64,
    /// Whose command line the rules decide.
    pub component: Component,
}

impl FlagContext<'_> {
    /// The client CAs every component verifies client certificates against: the cluster CA,
    /// and with the controller manager the CSR signer too (it signs kubelets' client
    /// certificates, which carry no chain).
    pub fn client_ca(&self) -> &str {
        if self.cluster.controller_manager.is_some() {
            &self.layout.client_ca_bundle
        } else {
            &self.layout.ca_cert
        }
    }

    /// The audit settings, when the cluster keeps an audit log.
    fn audit(&self) -> Option<&Audit> {
        let audit = &self.cluster.apiserver.audit;
        audit.enabled.then_some(audit)
    }
}

/// Where a rule's flag appears, beyond the version table saying the minor accepts it and
/// it still does something there.
#[derive(Debug, Clone, Copy)]
pub(super) enum Gate {
    /// Wherever the table says it is effective.
    Effective,
    /// Only where the apiserver refuses to start without it: the minors before keep the
    /// seed's unit.
    Required,
    /// Only where kube-bundle's hardened defaults apply.
    Hardened,
    /// Only in the seed's own release, whose unit reproduces the guide's even where a flag
    /// does nothing.
    SeedRelease,
}

/// One flag kube-bundle renders: where ([`Gate`]), and its value and reason for a node,
/// `None` where the cluster does not ask for it.
pub(super) struct Rule {
    pub name: &'static str,
    gate: Gate,
    value: fn(&FlagContext) -> Option<PlannedFlag>,
}

impl Rule {
    pub const fn new(name: &'static str, value: fn(&FlagContext) -> Option<PlannedFlag>) -> Self {
        Self {
            name,
            gate: Gate::Effective,
            value,
        }
    }

    pub const fn gated(self, gate: Gate) -> Self {
        Self { gate, ..self }
    }

    #[cfg(test)]
    fn admitted_in(&self, minor: u64) -> bool {
        self.admitted(versions::flag, minor)
    }

    /// Whether `table` lets `minor` have the flag and the gate admits it there.
    pub fn admitted(&self, table: FlagTable, minor: u64) -> bool {
        // A test checks that every rule's flag is in the table.
        let Some(row) = table(self.name) else {
            return false;
        };
        row.effective_in(minor)
            && match self.gate {
                Gate::Effective => true,
                Gate::Required => row.required_in(minor),
                Gate::Hardened => versions::hardened_defaults(minor),
                Gate::SeedRelease => !versions::hardened_defaults(minor),
            }
    }
}

// A rule's value and reason, one builder per kind of reason.

pub(super) fn planned(value: impl Into<String>, reason: FlagReason) -> Option<PlannedFlag> {
    let value = value.into();
    Some(PlannedFlag { value, reason })
}

pub(super) fn seed(value: impl Into<String>) -> Option<PlannedFlag> {
    planned(value, FlagReason::Seed)
}

pub(super) fn kubeadm(value: impl Into<String>) -> Option<PlannedFlag> {
    planned(value, FlagReason::Kubeadm)
}

pub(super) fn translated(value: impl Into<String>, why: impl Into<String>) -> Option<PlannedFlag> {
    planned(value, FlagReason::Translated(why.into()))
}

pub(super) fn kube_bundle(value: impl Into<String>, why: impl Into<String>) -> Option<PlannedFlag> {
    planned(value, FlagReason::KubeBundle(why.into()))
}

/// The version table requires only the service-account token flags, from one minor on (a
/// test keeps the rules and the table in step).
fn required(value: impl Into<String>) -> Option<PlannedFlag> {
    let from = versions::SERVICE_ACCOUNT_TOKEN_FLAGS_REQUIRED_FROM;
    let why = format!("kube-apiserver refuses to start without it from 1.{from}");
    planned(value, FlagReason::Required(why))
}

pub(super) const OWN_FILE: &str = "this bundle's own file";
const KUBELET_CLIENT: &str =
    "a clientAuth-only identity bound to system:kubelet-api-admin instead of the serving cert";
const ETCD_CLIENT: &str = "a clientAuth cert of its own instead of the serving cert";

/// Every flag kube-bundle renders, sorted by name. Which minors have each flag is the
/// version table's; a rule says only its gate and its value.
const RULES: &[Rule] = &[
    Rule::new("advertise-address", |c| seed(c.master.ip.to_string())),
    Rule::new("allow-privileged", |_| seed("true")),
    Rule::new("anonymous-auth", |_| seed("false")),
    Rule::new("apiserver-count", |c| {
        seed(c.cluster.masters.len().to_string())
    })
    .gated(Gate::SeedRelease),
    Rule::new("audit-log-maxage", |c| seed(c.audit()?.max_age.to_string())),
    Rule::new("audit-log-maxbackup", audit_log_max_backup),
    Rule::new("audit-log-maxsize", |c| {
        seed(c.audit()?.max_size.to_string())
    }),
    Rule::new("audit-log-path", |c| {
        c.audit()?;
        seed(format!("{}/audit.log", working_directory(c.cluster)))
    }),
    Rule::new("audit-policy-file", |c| {
        c.audit()?;
        kube_bundle(
            &c.layout.audit_policy,
            "without a policy nothing is logged; the policy is the newer seed guide's",
        )
    }),
    Rule::new("authorization-mode", |_| seed("Node,RBAC")),
    Rule::new("bind-address", bind_address),
    Rule::new("client-ca-file", client_ca_file),
    Rule::new("enable-admission-plugins", admission_plugins),
    Rule::new("enable-bootstrap-token-auth", |_| seed("true")),
    Rule::new("enable-swagger-ui", |_| seed("true")),
    Rule::new("encryption-provider-config", |c| {
        let graduated = versions::ENCRYPTION_CONFIG_GRADUATED_IN;
        let why = format!("renamed to --encryption-provider-config in 1.{graduated}");
        translated(&c.layout.encryption_config, why)
    }),
    Rule::new("encryption-provider-config-automatic-reload", |_| {
        kube_bundle("true", "key rotations take effect without a restart")
    }),
    Rule::new("etcd-cafile", |c| {
        let ca = match c.cluster.etcd.ca {
            EtcdCa::Cluster => &c.layout.ca_cert,
            EtcdCa::Separate | EtcdCa::External { .. } => &c.layout.etcd_ca_cert,
        };
        translated(ca, OWN_FILE)
    }),
    Rule::new("etcd-certfile", |c| {
        translated(&c.layout.etcd_client.cert, ETCD_CLIENT)
    }),
    Rule::new("etcd-keyfile", |c| {
        translated(&c.layout.etcd_client.key, ETCD_CLIENT)
    }),
    Rule::new("etcd-servers", etcd_servers),
    Rule::new("event-ttl", |_| seed("168h")),
    Rule::new("experimental-encryption-provider-config", |c| {
        seed(&c.layout.encryption_config)
    }),
    // Apiservers up to 1.19 open 127.0.0.1:8080 unless told otherwise.
    Rule::new("insecure-port", |_| seed("0")),
    Rule::new(
        "kubelet-certificate-authority",
        kubelet_certificate_authority,
    ),
    Rule::new("kubelet-client-certificate", |c| {
        translated(&c.layout.kubelet_client.cert, KUBELET_CLIENT)
    }),
    Rule::new("kubelet-client-key", |c| {
        translated(&c.layout.kubelet_client.key, KUBELET_CLIENT)
    }),
    Rule::new("kubelet-https", |_| seed("true")),
    Rule::new("kubelet-preferred-address-types", |_| {
        kubeadm("InternalIP,ExternalIP,Hostname")
    }),
    Rule::new("logtostderr", |_| seed("true")),
    Rule::new("max-mutating-requests-inflight", |_| seed("2000")),
    Rule::new("max-requests-inflight", |_| seed("4000")),
    Rule::new("profiling", |_| {
        kube_bundle(
            "false",
            "CIS API-server item: profiling exposes program internals over HTTP; \
             `profiling: \"true\"` in extraArgs turns it back on",
        )
    })
    .gated(Gate::Hardened),
    Rule::new("proxy-client-cert-file", |c| {
        kubeadm(&c.layout.front_proxy_client.cert)
    }),
    Rule::new("proxy-client-key-file", |c| {
        kubeadm(&c.layout.front_proxy_client.key)
    }),
    Rule::new("requestheader-allowed-names", |_| {
        kubeadm("front-proxy-client")
    }),
    Rule::new("requestheader-client-ca-file", |c| {
        kubeadm(&c.layout.front_proxy_ca_cert)
    }),
    Rule::new("requestheader-extra-headers-prefix", |_| {
        kubeadm("X-Remote-Extra-")
    }),
    Rule::new("requestheader-group-headers", |_| kubeadm("X-Remote-Group")),
    Rule::new("requestheader-username-headers", |_| {
        kubeadm("X-Remote-User")
    }),
    Rule::new("runtime-config", runtime_config),
    Rule::new("secure-port", |_| kubeadm(SECURE_PORT.to_string())),
    Rule::new("service-account-issuer", |c| {
        let domain = &c.cluster.network.dns_domain;
        required(format!("https://kubernetes.default.svc.{domain}"))
    })
    .gated(Gate::Required),
    Rule::new("service-account-key-file", |c| {
        translated(
            &c.layout.service_account_pub,
            "the service-account public key instead of the CA cert",
        )
    }),
    Rule::new("service-account-signing-key-file", |c| {
        required(&c.layout.service_account_key)
    })
    .gated(Gate::Required),
    Rule::new("service-cluster-ip-range", |c| {
        seed(c.cluster.network.service_cidr.to_string())
    }),
    Rule::new("service-node-port-range", |c| {
        seed(c.cluster.network.node_port_range.to_string())
    }),
    Rule::new("tls-cert-file", |c| {
        translated(
            &c.layout.apiserver.cert,
            "a serving cert per node instead of one shared kubernetes.pem",
        )
    }),
    Rule::new("tls-cipher-suites", tls_cipher_suites).gated(Gate::Hardened),
    Rule::new("tls-min-version", |_| {
        kube_bundle(
            "VersionTLS12",
            "TLS 1.0 and 1.1 are refused explicitly, not left to the default of the Go \
             release the binary was built with",
        )
    })
    .gated(Gate::Hardened),
    Rule::new("tls-private-key-file", |c| {
        translated(&c.layout.apiserver.key, "a serving key per node")
    }),
    Rule::new("v", |_| seed("2")),
];

fn audit_log_max_backup(context: &FlagContext) -> Option<PlannedFlag> {
    let max_backup = context.audit()?.max_backup;
    let reason = match max_backup {
        SEED_AUDIT_MAX_BACKUP => FlagReason::Seed,
        CIS_AUDIT_MAX_BACKUP => FlagReason::Translated(format!(
            "CIS API-server item: {CIS_AUDIT_MAX_BACKUP} old audit logs instead of the \
             seed's {SEED_AUDIT_MAX_BACKUP} (apiserver.audit.maxBackup: \
             {SEED_AUDIT_MAX_BACKUP} keeps the seed's)"
        )),
        _ => FlagReason::Translated("apiserver.audit.maxBackup".into()),
    };
    planned(max_backup.to_string(), reason)
}

fn bind_address(context: &FlagContext) -> Option<PlannedFlag> {
    let Some(keepalived) = &context.cluster.keepalived else {
        return seed(context.master.ip.to_string());
    };
    // The master holding the VIP must answer on it: the apiserver binds every address.
    let every_address = if keepalived.vip.is_ipv4() {
        "0.0.0.0"
    } else {
        "::"
    };
    let why = format!(
        "keepalived moves controlPlaneEndpoint {} between the masters",
        keepalived.vip
    );
    kube_bundle(every_address, why)
}

/// The seed's plugins; `Initializers` only where the minor still has it.
fn admission_plugins(context: &FlagContext) -> Option<PlannedFlag> {
    let plugins = SEED_ADMISSION_PLUGINS.join(",");
    if versions::initializers_plugin_accepted(context.minor) {
        return seed(format!("Initializers,{plugins}"));
    }
    let removed = versions::INITIALIZERS_PLUGIN_LAST + 1;
    translated(
        plugins,
        format!(
            "Initializers dropped: the plugin was removed in 1.{removed} and unknown plugins \
             stop startup"
        ),
    )
}

fn etcd_servers(context: &FlagContext) -> Option<PlannedFlag> {
    let endpoints: Vec<&str> = context
        .cluster
        .etcd
        .endpoints
        .iter()
        .map(|url| url.as_str().trim_end_matches('/'))
        .collect();
    if context.cluster.etcd.stacked.is_some() {
        return translated(
            endpoints.join(","),
            "every master's stacked etcd member (etcd.mode: stacked), this one's among them",
        );
    }
    seed(endpoints.join(","))
}

/// The CSR signer's certificates chain to the cluster CA but carry no chain themselves: a
/// verifier needs the signer in its trust store too.
const SIGNER_IN_BUNDLE: &str = "this bundle's own file: the cluster CA and the controller \
     manager's CSR signer, which signs kubelets' client certificates (they carry no chain, \
     so the signer itself must be trusted)";

fn client_ca_file(context: &FlagContext) -> Option<PlannedFlag> {
    if context.cluster.controller_manager.is_some() {
        return translated(context.client_ca(), SIGNER_IN_BUNDLE);
    }
    translated(context.client_ca(), OWN_FILE)
}

fn kubelet_certificate_authority(context: &FlagContext) -> Option<PlannedFlag> {
    if !context.cluster.apiserver.verify_kubelet_serving_certs {
        return None;
    }
    if context.cluster.controller_manager.is_some() {
        return translated(
            context.client_ca(),
            "the cluster CA and the controller manager's CSR signer: kubelets' serving \
             certificates must be signed by either (kubelet serverTLSBootstrap: true with its \
             CSRs approved, which the signer signs, or a certificate issued from the cluster \
             CA); against a self-signed kubelet certificate exec, logs and port-forward fail. \
             CIS API-server item; apiserver.verifyKubeletServingCerts: false turns it off",
        );
    }
    let ca = &context.layout.ca_cert;
    // The seed's own release keeps the seed's plan, word for word.
    if !versions::hardened_defaults(context.minor) {
        return translated(ca, OWN_FILE);
    }
    translated(
        ca,
        "this bundle's own file. CIS API-server item: the apiserver verifies kubelets' \
         serving certificates, so every kubelet must serve one signed by the cluster CA \
         (kubelet serverTLSBootstrap: true with its CSRs approved, or a certificate \
         issued from this CA); against a self-signed kubelet certificate exec, logs and \
         port-forward fail. apiserver.verifyKubeletServingCerts: false turns it off",
    )
}

fn runtime_config(context: &FlagContext) -> Option<PlannedFlag> {
    if !context.cluster.apiserver.enable_all_apis {
        return None;
    }
    if versions::hardened_defaults(context.minor) {
        return translated(
            "api/all=true",
            "apiserver.enableAllAPIs: true serves every API version, alpha ones included; \
             upstream advises against alpha APIs in production",
        );
    }
    let refused_from = versions::BARE_API_ALL_REFUSED_FROM;
    translated(
        "api/all=true",
        format!("the bare `api/all` is refused by 1.{refused_from}; `=true` means the same"),
    )
}

fn tls_cipher_suites(context: &FlagContext) -> Option<PlannedFlag> {
    let minor = context.minor;
    let names = if minor < versions::CHACHA20_SHA256_NAMES_FROM {
        format!("; ChaCha20 is named without _SHA256, the only name 1.{minor} accepts")
    } else {
        String::new()
    };
    kube_bundle(
        versions::strong_tls_cipher_suites(minor).join(","),
        format!(
            "CIS API-server item: TLS 1.2 only with ECDHE key exchange and AES-GCM or \
             ChaCha20-Poly1305 (no CBC, RC4, 3DES or RSA key exchange); each for ECDSA and \
             RSA certificates, so every pki.keyAlgorithm works; TLS 1.3 suites are fixed \
             and stay on{names}"
        ),
    )
}

/// Why the seed's flag `name` is not in `flags`: the version table's reason where this minor
/// refuses or ignores it, else the cluster's choice that leaves it out, else an override.
fn drop_reason(name: &str, context: &FlagContext, flags: &BTreeMap<String, PlannedFlag>) -> String {
    let minor = context.minor;
    let row = versions::flag(name);
    let replaced = row
        .and_then(|f| f.replacement)
        .filter(|replacement| flags.contains_key(*replacement))
        .map(|replacement| format!("; --{replacement} replaces it"))
        .unwrap_or_default();
    let chosen = match row {
        Some(row) if !row.accepted_in(minor) => {
            return format!("not accepted by 1.{minor}: {}{replaced}", row.note);
        }
        Some(row) if !row.effective_in(minor) => inert_reason(row),
        _ => left_out_reason(name, context),
    };
    chosen.unwrap_or_else(|| format!("overridden{replaced}"))
}

/// Why kube-bundle leaves out a seed flag this minor accepts but ignores, where the flag
/// is gone later; `None` for a flag another name replaces.
fn inert_reason(row: &Flag) -> Option<String> {
    let (inert, removed) = (row.inert_from?, row.last? + 1);
    match row.name {
        "enable-swagger-ui" => Some(format!(
            "a no-op since 1.{inert} (swagger 1.2 is gone); removed in 1.{removed}"
        )),
        "logtostderr" => Some(format!(
            "deprecated in 1.{inert} and already the default; removed in 1.{removed}"
        )),
        _ => None,
    }
}

/// Why kube-bundle leaves out a seed flag this minor accepts and would act on.
fn left_out_reason(name: &str, context: &FlagContext) -> Option<String> {
    let apiserver = &context.cluster.apiserver;
    let why = match name {
        "apiserver-count" => format!(
            "a no-op: the lease endpoint reconciler is the default since 1.{}",
            versions::LEASE_ENDPOINT_RECONCILER_DEFAULT_FROM
        ),
        "authorization-mode" => {
            "apiserver.extraArgs sets --authorization-config, which excludes it".into()
        }
        "runtime-config" if !apiserver.enable_all_apis => {
            "apiserver.enableAllAPIs is false (the default after the seed's v1.12): `api/all` \
             would also serve every alpha API, which upstream advises against in production; \
             the API versions each release enables by default are served"
                .into()
        }
        "kubelet-certificate-authority" if !apiserver.verify_kubelet_serving_certs => {
            "apiserver.verifyKubeletServingCerts: false. Weaker (CIS API-server item): kubelets' \
             serving certificates are not verified, so whoever answers on a kubelet's address \
             receives the apiserver's exec, attach, logs and port-forward traffic"
                .into()
        }
        _ => return None,
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_sorted_unique_and_in_the_version_table() {
        assert_rules_sorted_and_known("kube-apiserver", RULES, versions::flag);
    }

    #[test]
    fn required_rules_are_the_flags_the_table_requires() {
        for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
            for rule in RULES
                .iter()
                .filter(|rule| matches!(rule.gate, Gate::Required))
            {
                let row = versions::flag(rule.name).unwrap();
                let from = Some(versions::SERVICE_ACCOUNT_TOKEN_FLAGS_REQUIRED_FROM);
                assert_eq!(row.required_from, from, "--{}: see `required`", rule.name);
                assert_eq!(rule.admitted_in(minor), row.required_in(minor), "1.{minor}");
            }
        }
    }

    #[test]
    fn exactly_one_encryption_config_flag_per_minor() {
        for minor in versions::OLDEST_MINOR..=versions::NEWEST_MINOR {
            let admitted: Vec<&str> = RULES
                .iter()
                .filter(|rule| rule.name.ends_with("encryption-provider-config"))
                .filter(|rule| rule.admitted_in(minor))
                .map(|rule| rule.name)
                .collect();
            assert_eq!(
                admitted,
                [versions::encryption_config_flag(minor)],
                "1.{minor}"
            );
        }
    }
}
