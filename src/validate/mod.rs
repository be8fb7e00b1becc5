//! Stage 2: from what the user wrote to what the program works with.
//!
//! In: a [`RawCluster`] and its [`SourceFile`]. Out: a [`Cluster`] made of the
//! [`crate::values`] newtypes whose constructors are the checks (node names are DNS labels,
//! CIDRs are network addresses, paths are absolute and shell-safe, …), with every default
//! applied, plus lint warnings. All problems are collected, not just the first, and each one
//! points at the value that caused it and says how to fix it.
//!
//! Each part of cluster.yaml has its own submodule; every check records its findings on the
//! one [`Checker`] and returns `None` only after recording an error, so `validate` runs them
//! all and assembles the cluster at the end.

mod apiserver;
mod checker;
mod components;
mod etcd;
mod extra_args;
mod front;
mod network;
mod nodes;
mod pki;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::config::{
    EncryptionProvider, FrontKind, RawBinaries, RawCluster, RawEncryption, RawPaths, Text,
};
use crate::error::Error;
use crate::model::{Cluster, Paths};
use crate::source::SourceFile;
use crate::values::{DnsLabel, Endpoint, KubeVersion};
use crate::versions::{NEWEST_MINOR, OLDEST_MINOR};
use checker::Checker;

pub const API_VERSION: &str = "kube-bundle/v1alpha1";
pub const KIND: &str = "Cluster";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with cluster.yaml, pointing at the value that caused it.
#[derive(Debug)]
pub struct Finding {
    pub severity: Severity,
    /// Where in the document, as a path: `masters[1].ip`.
    pub field: String,
    pub message: String,
    /// How to fix it.
    pub help: String,
    source: NamedSource<Arc<str>>,
    span: Option<SourceSpan>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Finding {}

impl Finding {
    /// An error found outside the checks here (the shape check, before deserializing).
    pub(crate) fn error(
        source: &SourceFile,
        field: &str,
        message: String,
        help: String,
        span: Option<SourceSpan>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            field: field.to_owned(),
            message,
            help,
            source: source.named_source(),
            span,
        }
    }
}

impl Diagnostic for Finding {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span
            .is_some()
            .then_some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".into()),
            span,
        ))))
    }
}

/// Switches for checks a user may relax on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions {
    /// Accept a Kubernetes version newer than the version table.
    pub allow_untested_version: bool,
}

/// A valid cluster and the warnings `check` reports about it.
#[derive(Debug)]
pub struct Validated {
    pub cluster: Cluster,
    pub warnings: Vec<Finding>,
    /// sha256 (hex) of the exact cluster.yaml bytes this was parsed from: bundle.json
    /// records it, and reading the file again could hash a newer edit than was built.
    pub source_sha256: String,
}

/// Validates the raw cluster, returning it with defaults applied, or every error found.
pub fn validate(
    raw: RawCluster,
    source: &SourceFile,
    options: ValidateOptions,
) -> Result<Validated, Error> {
    let mut c = Checker::new(source);
    // The order of the checks is the order of the findings in the report.
    let name = check_identity(&mut c, &raw);
    let version = check_version(&mut c, &raw.kubernetes_version, options);
    let endpoint = raw.control_plane_endpoint.as_ref().and_then(|value| {
        c.parse(
            "controlPlaneEndpoint",
            value,
            "host[:port]",
            "write an IP address or DNS name, \
            optionally with a port, e.g. 172.27.128.100:8443 or api.example.com:6443",
            Endpoint::parse,
        )
    });
    let mut taken = nodes::TakenNames::default();
    let masters = nodes::check_masters(&mut c, &raw.masters, &mut taken);
    if let (Some(version), Some(masters)) = (&version, &masters) {
        nodes::check_advertise_addresses(&mut c, version, &raw.masters.value, masters);
    }
    let clients = nodes::check_clients(&mut c, raw.clients.as_ref(), raw.ha_front.kind, &mut taken);
    let network = network::check_network(&mut c, &raw.network, masters.as_deref());
    let etcd = etcd::check_etcd(&mut c, &raw.etcd);
    let pki = pki::check_pki(&mut c, &raw.pki);
    let encryption_provider = check_encryption(&mut c, &raw.encryption);
    let paths = check_paths(&mut c, &raw.paths);
    let key_algorithm = pki.as_ref().map(|pki| pki.key_algorithm);
    let apiserver =
        apiserver::check_apiserver(&mut c, &raw.apiserver, version.as_ref(), key_algorithm);
    let controller_manager = components::check_controller_manager(
        &mut c,
        raw.controller_manager.as_ref(),
        raw.binaries.kube_controller_manager.as_ref(),
        version.as_ref(),
    );
    let scheduler = components::check_scheduler(
        &mut c,
        raw.scheduler.as_ref(),
        raw.binaries.kube_scheduler.as_ref(),
        version.as_ref(),
    );
    let (kube_apiserver_binary, front_binary) =
        check_binaries(&mut c, &raw.binaries, raw.ha_front.kind);
    let ha_front = front::check_ha_front(&mut c, &raw.ha_front);
    // The VIP is checked against the masters and the endpoint, so only once both are valid
    // (no error so far); otherwise its findings would repeat theirs.
    let keepalived = match (&raw.keepalived, &masters) {
        (Some(keepalived), Some(masters)) if !c.has_errors() => {
            front::check_keepalived(&mut c, keepalived, endpoint.as_ref(), masters)
        }
        _ => None,
    };
    c.finish(|| {
        Some(Cluster {
            name: name?,
            kubernetes_version: version?,
            control_plane_endpoint: endpoint,
            masters: masters?,
            network: network?,
            etcd: etcd?,
            pki: pki?,
            encryption_provider,
            paths: paths?,
            apiserver,
            controller_manager,
            scheduler,
            kube_apiserver_binary,
            ha_front: ha_front?,
            front_binary,
            clients: clients?,
            keepalived,
        })
    })
}

/// The header naming the format, and the cluster's name.
fn check_identity(c: &mut Checker<'_>, raw: &RawCluster) -> Option<DnsLabel> {
    if raw.api_version.value != API_VERSION {
        let shown = raw.api_version.value.escape_debug().to_string();
        c.error(
            raw.api_version.referenced,
            "apiVersion",
            format!("\"{shown}\" is not supported"),
            &format!("write `apiVersion: {API_VERSION}`"),
        );
    }
    if raw.kind.value != KIND {
        let shown = raw.kind.value.escape_debug().to_string();
        c.error(
            raw.kind.referenced,
            "kind",
            format!("\"{shown}\" is not supported"),
            &format!("write `kind: {KIND}`"),
        );
    }
    c.parse(
        "name",
        &raw.name,
        "a DNS label",
        "name the cluster with lowercase \
        letters, digits and '-' (it names the bundles/<cluster> directory)",
        DnsLabel::parse,
    )
}

fn check_encryption(c: &mut Checker<'_>, raw: &RawEncryption) -> EncryptionProvider {
    let provider = raw
        .provider
        .as_ref()
        .map_or(EncryptionProvider::Secretbox, |p| p.value);
    if let Some(p) = raw
        .provider
        .as_ref()
        .filter(|p| p.value == EncryptionProvider::Aescbc)
    {
        c.warn(
            p.referenced,
            "encryption.provider",
            "aescbc is rated weak upstream \
            (CBC padding-oracle attacks)"
                .into(),
            "prefer secretbox, the strongest provider that \
            needs no KMS; switching providers later means rotating keys",
        );
    }
    provider
}

/// The seed guide's directories unless cluster.yaml names others.
fn check_paths(c: &mut Checker<'_>, raw: &RawPaths) -> Option<Paths> {
    let bin_dir = c.path("paths.binDir", raw.bin_dir.as_ref(), "/opt/k8s/bin");
    let cert_dir = c.path(
        "paths.certDir",
        raw.cert_dir.as_ref(),
        "/etc/kubernetes/cert",
    );
    let config_dir = c.path(
        "paths.configDir",
        raw.config_dir.as_ref(),
        "/etc/kubernetes",
    );
    let data_dir = c.path("paths.dataDir", raw.data_dir.as_ref(), "/data/k8s/k8s");
    Some(Paths {
        bin_dir: bin_dir?,
        cert_dir: cert_dir?,
        config_dir: config_dir?,
        data_dir: data_dir?,
    })
}

/// The binaries to ship: each must exist now. `None` is both "none named" and "named but
/// missing"; the second has recorded an error.
fn check_binaries(
    c: &mut Checker<'_>,
    raw: &RawBinaries,
    front_kind: Option<FrontKind>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let binary = raw
        .kube_apiserver
        .as_ref()
        .and_then(|value| c.input_file("binaries.kubeApiserver", value));
    let front_binary = raw
        .front
        .as_ref()
        .and_then(|value| c.input_file("binaries.front", value));
    if let (Some(value), Some(FrontKind::None)) = (&raw.front, front_kind) {
        c.error(
            value.referenced,
            "binaries.front",
            "a proxy binary to ship, but haFront.kind is none".into(),
            "set haFront.kind to nginx or haproxy, or remove binaries.front",
        );
    }
    (binary, front_binary)
}

fn check_version(
    c: &mut Checker<'_>,
    value: &Text,
    options: ValidateOptions,
) -> Option<KubeVersion> {
    let help = format!(
        "write a release such as v1.{NEWEST_MINOR}.1; kube-bundle renders v1.{OLDEST_MINOR} \
         through v1.{NEWEST_MINOR}"
    );
    let version = c.parse(
        "kubernetesVersion",
        value,
        "a Kubernetes version",
        &help,
        KubeVersion::parse,
    )?;
    let (major, minor) = (version.major(), version.minor());
    if major != 1 || minor < OLDEST_MINOR {
        c.error(
            value.referenced,
            "kubernetesVersion",
            format!(
                "{version} is older than v1.{OLDEST_MINOR}, the oldest version kube-bundle renders"
            ),
            &help,
        );
        return None;
    }
    if minor > NEWEST_MINOR {
        if !options.allow_untested_version {
            c.error(value.referenced, "kubernetesVersion",
                format!("{version} is newer than v1.{NEWEST_MINOR}, the newest minor in the version table"),
                &format!("{help}; pass --allow-untested-version to render it with the v1.{NEWEST_MINOR} rules"));
            return None;
        }
        c.warn(value.referenced, "kubernetesVersion",
            format!("{version} is newer than the version table; rendering with the v1.{NEWEST_MINOR} rules"),
            "check the rendered unit against that release's flag reference");
    }
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::config::KeyAlgorithm;
    use crate::model::EtcdCa;

    #[test]
    fn the_example_is_valid_and_warning_free() {
        assert!(warnings(EXAMPLE_CLUSTER_YAML).is_empty());
    }

    #[test]
    fn control_plane_endpoint_is_host_and_optional_port() {
        let endpoint = "controlPlaneEndpoint: api.prod-eu1.example.com:6443";
        rejects(
            endpoint,
            "controlPlaneEndpoint: https://api:6443",
            &["scheme"],
        );
        rejects(
            endpoint,
            "controlPlaneEndpoint: api:99999",
            &["port '99999'"],
        );
        rejects(
            endpoint,
            "controlPlaneEndpoint: api_1:6443",
            &["neither an IP address"],
        );
        rejects(
            endpoint,
            "controlPlaneEndpoint: \"[fd00::1\"",
            &["not closed"],
        );
        for good in [
            "10.20.0.100",
            "10.20.0.100:8443",
            "\"[fd00::1]:6443\"",
            "fd00::1",
            "api",
        ] {
            let yaml = example_with(endpoint, &format!("controlPlaneEndpoint: {good}"));
            assert!(
                run(&yaml, ValidateOptions::default()).is_ok(),
                "{good} refused"
            );
        }
    }

    #[test]
    fn kubernetes_version_parses_and_is_in_range() {
        let version = "kubernetesVersion: v1.37.2";
        rejects(
            version,
            "kubernetesVersion: v1.x",
            &["not a Kubernetes version"],
        );
        rejects(version, "kubernetesVersion: v1.11.9", &["older than v1.12"]);
        rejects(version, "kubernetesVersion: v2.0.0", &["older than v1.12"]);
        rejects(version, "kubernetesVersion: v1.40.0", &["newer than v1.37"]);
        let yaml = example_with(version, "kubernetesVersion: v1.40.0");
        let options = ValidateOptions {
            allow_untested_version: true,
        };
        let validated = run(&yaml, options).expect("accepted with the override");
        assert!(
            validated.warnings[0]
                .message
                .contains("newer than the version table")
        );
    }

    #[test]
    fn paths_are_absolute_and_shell_safe() {
        let path = "certDir: /etc/kubernetes/pki";
        rejects(
            path,
            "certDir: etc/kubernetes",
            &["paths.certDir", "not absolute"],
        );
        rejects(path, "certDir: /etc/kube netes", &["whitespace"]);
        rejects(path, "certDir: /etc/$(reboot)", &["metacharacter '$'"]);
        rejects(path, "certDir: \"/etc/a`b`\"", &["metacharacter '`'"]);
        rejects(path, "certDir: \"/etc/a;b\"", &["metacharacter ';'"]);
        rejects(path, "certDir: \"/etc/a\\nb\"", &["control character"]);
        rejects(path, "certDir: /etc/../root", &["'..'"]);
        rejects(path, "certDir: /", &["root directory"]);
    }

    #[test]
    fn identity_header_is_checked() {
        rejects(
            "apiVersion: kube-bundle/v1alpha1",
            "apiVersion: v1",
            &["apiVersion"],
        );
        rejects("kind: Cluster", "kind: Node", &["kind"]);
        rejects("name: prod-eu1", "name: Prod", &["name", "uppercase"]);
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let errors = run(
            &example_with("name: prod-eu1", "name: prod-eu1\nflavour: x"),
            ValidateOptions::default(),
        )
        .err()
        .unwrap();
        assert!(
            errors[0].contains("flavour: unknown key at the top level"),
            "{errors:?}"
        );
        let errors = run(
            &example_with("name: prod-eu1", "name: prod-eu1\nname: again"),
            ValidateOptions::default(),
        )
        .err()
        .unwrap();
        assert!(errors[0].contains("duplicate"), "{errors:?}");
        let errors = run(
            &example_with("maxAge: 30", "maxAge: thirty"),
            ValidateOptions::default(),
        )
        .err()
        .unwrap();
        assert!(errors[0].contains("invalid"), "{errors:?}");
    }

    #[test]
    fn lints_warn_without_failing() {
        let two = example_with("  - { name: cp3, ip: 10.20.0.13 }\n", "");
        assert!(warnings(&two).iter().any(|w| w.contains("even number")));
        let aescbc = example_with("provider: secretbox", "provider: aescbc");
        assert!(
            warnings(&aescbc)
                .iter()
                .any(|w| w.contains("aescbc is rated weak"))
        );
        let one = two.replacen("  - { name: cp2, ip: 10.20.0.12 }\n", "", 1);
        assert!(
            warnings(&one)
                .iter()
                .any(|w| w.contains("not highly available"))
        );
    }

    #[test]
    fn defaults_are_the_seeds() {
        let minimal = "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: c\n\
            kubernetesVersion: v1.12.3\nmasters: [{name: m1, ip: 10.0.0.1}]\nnetwork: {}\n\
            etcd: {endpoints: [\"https://10.0.0.1:2379\"]}\n";
        let cluster = run(minimal, ValidateOptions::default())
            .expect("valid")
            .cluster;
        assert_eq!(cluster.paths.bin_dir.as_str(), "/opt/k8s/bin");
        assert_eq!(cluster.paths.cert_dir.as_str(), "/etc/kubernetes/cert");
        assert_eq!(cluster.network.node_port_range.to_string(), "30000-32767");
        assert_eq!(cluster.network.dns_domain.as_str(), "cluster.local");
        assert_eq!(cluster.encryption_provider, EncryptionProvider::Secretbox);
        assert_eq!(cluster.etcd.ca, EtcdCa::Cluster);
        assert_eq!(cluster.pki.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(cluster.apiserver.audit.max_age, 30);
    }
}
