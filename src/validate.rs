//! Stage 2: from what the user wrote to what the program works with.
//!
//! In: a [`RawCluster`] and its [`SourceFile`]. Out: a [`Cluster`] made of newtypes whose
//! constructors are the checks (node names are DNS labels, CIDRs are network addresses,
//! paths are absolute and shell-safe, …), with every default applied, plus lint warnings.
//! All problems are collected, not just the first, and each one points at the value that
//! caused it and says how to fix it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;
use serde_saphyr::Location;
use url::Url;

use crate::model::{
    Apiserver, Audit, CIS_AUDIT_MAX_BACKUP, Cluster, Etcd, EtcdCa, HaFront, ImportCa, Keepalived,
    Master, Network, Paths, Pki, SEED_AUDIT_MAX_BACKUP,
};
use crate::values::{
    AbsPath, DnsLabel, DnsName, Endpoint, Host, KubeVersion, PortRange, SECURE_PORT,
    ServiceNetwork, parse_duration,
};

use crate::config::{
    EncryptionProvider, EtcdCaMode, KeyAlgorithm, RawCluster, RawEtcd, RawNetwork, RawPki, Text,
};
use crate::error::Error;
use crate::source::SourceFile;
use crate::versions::{NEWEST_MINOR, OLDEST_MINOR};

pub const API_VERSION: &str = "kube-bundle/v1alpha1";
pub const KIND: &str = "Cluster";

// ---------------------------------------------------------------------------------------
// Findings

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
}

// ---------------------------------------------------------------------------------------
// The checks

/// A value as shown in a message: escaped, and cut short if it is long.
fn shorten(value: &str) -> String {
    const LIMIT: usize = 80;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!(
            "{}… ({} characters)",
            &escaped[..cut],
            value.chars().count()
        ),
        None => escaped,
    }
}

struct Checker<'a> {
    source: &'a SourceFile,
    base_dir: PathBuf,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, at: Location, field: &str, message: String, help: &str) {
        self.findings.push(Finding {
            severity,
            field: field.to_owned(),
            message,
            help: help.to_owned(),
            source: self.source.named_source(),
            span: self.source.span_at(at),
        });
    }

    fn error(&mut self, at: Location, field: &str, message: String, help: &str) {
        self.push(Severity::Error, at, field, message, help);
    }

    fn warn(&mut self, at: Location, field: &str, message: String, help: &str) {
        self.push(Severity::Warning, at, field, message, help);
    }

    /// Runs `parse` on a spanned value; on failure records an error at the value.
    fn parse<T>(
        &mut self,
        field: &str,
        value: &Text,
        what: &str,
        help: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(&value.value) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                let shown = shorten(&value.value);
                self.error(
                    value.referenced,
                    field,
                    format!("\"{shown}\" is not {what}: {why}"),
                    help,
                );
                None
            }
        }
    }

    fn path(&mut self, field: &str, value: Option<&Text>, default: &str) -> Option<AbsPath> {
        match value {
            None => AbsPath::parse(default).ok(),
            Some(value) => self.parse(
                field,
                value,
                "a usable path",
                "use an absolute path made of letters, digits and / . _ - + @ only; it is \
                 written unquoted into the unit and the installer",
                AbsPath::parse,
            ),
        }
    }

    /// A file named relative to cluster.yaml that must exist now.
    fn input_file(&mut self, field: &str, value: &Text) -> Option<PathBuf> {
        if value.value.is_empty() || value.value.contains('\0') {
            self.error(
                value.referenced,
                field,
                "the file name is empty or holds a NUL".into(),
                "name a file, relative to cluster.yaml or absolute",
            );
            return None;
        }
        let path = self.base_dir.join(&value.value);
        if path.is_file() {
            Some(path)
        } else {
            let shown = path.display().to_string();
            self.error(
                value.referenced,
                field,
                format!("file \"{shown}\" does not exist or is not a regular file"),
                "paths are relative to the directory that holds cluster.yaml",
            );
            None
        }
    }
}

/// Validates the raw cluster, returning it with defaults applied, or every error found.
pub fn validate(
    raw: RawCluster,
    source: &SourceFile,
    options: ValidateOptions,
) -> Result<Validated, Error> {
    let base_dir = source
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut c = Checker {
        source,
        base_dir,
        findings: Vec::new(),
    };

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
    let name = c.parse(
        "name",
        &raw.name,
        "a DNS label",
        "name the cluster with lowercase \
        letters, digits and '-' (it names the bundles/<cluster> directory)",
        DnsLabel::parse,
    );
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
    let mut taken = TakenNames::default();
    let masters = check_masters(&mut c, &raw.masters, &mut taken);
    if let (Some(version), Some(masters)) = (&version, &masters) {
        check_advertise_addresses(&mut c, version, &raw.masters.value, masters);
    }
    let clients = check_clients(&mut c, raw.clients.as_ref(), raw.ha_front.kind, &mut taken);
    let network = check_network(&mut c, &raw.network, masters.as_deref());
    let etcd = check_etcd(&mut c, &raw.etcd);
    let pki = check_pki(&mut c, &raw.pki);
    let provider = raw
        .encryption
        .provider
        .as_ref()
        .map_or(EncryptionProvider::Secretbox, |p| p.value);
    if let Some(p) = raw
        .encryption
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
    let bin_dir = c.path("paths.binDir", raw.paths.bin_dir.as_ref(), "/opt/k8s/bin");
    let cert_dir = c.path(
        "paths.certDir",
        raw.paths.cert_dir.as_ref(),
        "/etc/kubernetes/cert",
    );
    let config_dir = c.path(
        "paths.configDir",
        raw.paths.config_dir.as_ref(),
        "/etc/kubernetes",
    );
    let data_dir = c.path(
        "paths.dataDir",
        raw.paths.data_dir.as_ref(),
        "/data/k8s/k8s",
    );
    let extra_args = check_extra_args(&mut c, raw.apiserver.extra_args.as_ref(), version.as_ref());
    if let (Some(raw_args), Some(pki)) = (&raw.apiserver.extra_args, &pki) {
        check_cipher_suites_fit_key(&mut c, raw_args, pki.key_algorithm);
    }
    let apiserver = check_apiserver_settings(&mut c, &raw.apiserver, version.as_ref(), extra_args);
    let binary = raw
        .binaries
        .kube_apiserver
        .as_ref()
        .and_then(|value| c.input_file("binaries.kubeApiserver", value));
    let front_binary = raw
        .binaries
        .front
        .as_ref()
        .and_then(|value| c.input_file("binaries.front", value));
    if let (Some(value), Some(crate::config::FrontKind::None)) =
        (&raw.binaries.front, raw.ha_front.kind)
    {
        c.error(
            value.referenced,
            "binaries.front",
            "a proxy binary to ship, but haFront.kind is none".into(),
            "set haFront.kind to nginx or haproxy, or remove binaries.front",
        );
    }
    let binary_ok = (raw.binaries.kube_apiserver.is_none() || binary.is_some())
        && (raw.binaries.front.is_none() || front_binary.is_some());
    let ha_front = check_ha_front(&mut c, &raw.ha_front);

    let has_errors = c.findings.iter().any(|f| f.severity == Severity::Error);
    let (Some(name), Some(version), Some(masters), Some(network), Some(etcd), Some(pki)) =
        (name, version, masters, network, etcd, pki)
    else {
        return Err(into_error(c.findings));
    };
    let (Some(bin_dir), Some(cert_dir), Some(config_dir), Some(data_dir)) =
        (bin_dir, cert_dir, config_dir, data_dir)
    else {
        return Err(into_error(c.findings));
    };
    if has_errors || !binary_ok || (raw.control_plane_endpoint.is_some() && endpoint.is_none()) {
        return Err(into_error(c.findings));
    }
    let keepalived = raw
        .keepalived
        .as_ref()
        .map(|k| check_keepalived(&mut c, k, endpoint.as_ref(), &masters));
    if has_errors || c.findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(into_error(c.findings));
    }
    let (Some(ha_front), Some(clients)) = (ha_front, clients) else {
        return Err(into_error(c.findings));
    };
    let cluster = Cluster {
        name,
        kubernetes_version: version,
        control_plane_endpoint: endpoint,
        masters,
        network,
        etcd,
        pki,
        encryption_provider: provider,
        paths: Paths {
            bin_dir,
            cert_dir,
            config_dir,
            data_dir,
        },
        apiserver,
        kube_apiserver_binary: binary,
        ha_front,
        front_binary,
        clients,
        keepalived: keepalived.flatten(),
    };
    Ok(Validated {
        cluster,
        warnings: c.findings,
    })
}

fn into_error(findings: Vec<Finding>) -> Error {
    Error::InvalidConfig(
        findings
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(miette::Report::new)
            .collect(),
    )
}

/// `Some(None)` when the front is off, `None` when its settings are invalid.
fn check_ha_front(c: &mut Checker<'_>, raw: &crate::config::RawHaFront) -> Option<Option<HaFront>> {
    use crate::config::FrontKind;
    let kind = raw.kind.unwrap_or(FrontKind::Nginx);
    if kind == FrontKind::None {
        return Some(None);
    }
    let listen = match &raw.listen {
        None => Some((IpAddr::from([127, 0, 0, 1]), 8443)),
        Some(value) => c.parse(
            "haFront.listen",
            value,
            "an IP:port to listen on",
            "write a local address and port, e.g. 127.0.0.1:8443 (the seed's kube-nginx)",
            |text| {
                let endpoint = Endpoint::parse(text)?;
                match (endpoint.host, endpoint.port) {
                    (Host::Ip(ip), Some(port)) if port != SECURE_PORT => Ok((ip, port)),
                    (Host::Ip(_), Some(_)) => {
                        Err(format!("{SECURE_PORT} is the apiserver's own port"))
                    }
                    (Host::Ip(_), None) => Err("it has no port".into()),
                    (Host::Dns(_), _) => {
                        Err("the proxy listens on an IP address, not a name".into())
                    }
                }
            },
        ),
    };
    let default_binary = if kind == FrontKind::Nginx {
        "/usr/sbin/nginx"
    } else {
        "/usr/sbin/haproxy"
    };
    let binary = c.path("haFront.binary", raw.binary.as_ref(), default_binary);
    let mut modules = Vec::new();
    let mut ok = true;
    match &raw.nginx_modules {
        // Debian and Ubuntu build the stream module as a dynamic module.
        None if kind == FrontKind::Nginx => {
            modules.extend(AbsPath::parse("/usr/lib/nginx/modules/ngx_stream_module.so").ok())
        }
        None => {}
        Some(values) => {
            for (index, value) in values.iter().enumerate() {
                match c.path(&format!("haFront.nginxModules[{index}]"), Some(value), "") {
                    Some(path) => modules.push(path),
                    None => ok = false,
                }
            }
        }
    }
    let (listen_ip, listen_port) = listen?;
    Some(HaFront {
        kind,
        listen_ip,
        listen_port,
        binary: binary?,
        nginx_modules: modules,
    })
    .filter(|_| ok)
    .map(Some)
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

/// From 1.37 the apiserver refuses to advertise a loopback, link-local or unspecified
/// address (its lease endpoint reconciler validates the IP at start-up), and a master's
/// address is its advertise address.
fn check_advertise_addresses(
    c: &mut Checker<'_>,
    version: &KubeVersion,
    raw: &[crate::config::RawNode],
    masters: &[Master],
) {
    if version.minor() < crate::versions::ADVERTISE_MUST_BE_ROUTABLE_FROM {
        return;
    }
    for (index, (node, master)) in raw.iter().zip(masters).enumerate() {
        let link_local = match master.ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if master.ip.is_loopback() || link_local {
            c.error(
                node.ip.referenced,
                &format!("masters[{index}].ip"),
                format!(
                    "{} is a loopback or link-local address, which kube-apiserver {version} \
                     refuses as its advertise address",
                    master.ip
                ),
                "use the master's routable address (for a test bed on one host, give each \
                 master its own network namespace and address)",
            );
        }
    }
}

fn check_masters(
    c: &mut Checker<'_>,
    masters: &serde_saphyr::Spanned<Vec<crate::config::RawNode>>,
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    if masters.value.is_empty() {
        c.error(
            masters.referenced,
            "masters",
            "the list is empty".into(),
            "list every control-plane node as `- { name: m1, ip: 10.0.0.11 }`",
        );
        return None;
    }
    let valid = check_nodes(c, "masters", &masters.value, taken)?;
    if valid.len() > 1 && valid.len() % 2 == 0 {
        c.warn(
            masters.referenced,
            "masters",
            format!(
                "{} masters: an even number adds no fault \
            tolerance over {} when etcd runs beside them",
                valid.len(),
                valid.len() - 1
            ),
            "run an odd number of control-plane nodes (3 or 5)",
        );
    }
    if valid.len() == 1 {
        c.warn(
            masters.referenced,
            "masters",
            "one master is not highly available".into(),
            "run three control-plane nodes for HA",
        );
    }
    Some(valid)
}

/// The VIP is controlPlaneEndpoint's address, on the masters' own subnet, served by
/// whichever master holds it: its apiserver then binds every address.
fn check_keepalived(
    c: &mut Checker<'_>,
    raw: &serde_saphyr::Spanned<crate::config::RawKeepalived>,
    endpoint: Option<&Endpoint>,
    masters: &[Master],
) -> Option<Keepalived> {
    let at = raw.referenced;
    let vip = match endpoint {
        Some(Endpoint {
            host: Host::Ip(ip),
            port,
        }) if port.is_none_or(|p| p == SECURE_PORT) => *ip,
        Some(Endpoint {
            host: Host::Ip(_), ..
        }) => {
            c.error(
                at,
                "keepalived",
                format!("the VIP serves the apiservers' own port {SECURE_PORT}, and controlPlaneEndpoint names another"),
                &format!("write controlPlaneEndpoint as the VIP, e.g. 10.0.0.100:{SECURE_PORT}"),
            );
            return None;
        }
        _ => {
            c.error(
                at,
                "keepalived",
                "keepalived needs controlPlaneEndpoint to be an IP address: the VIP it moves between the masters".into(),
                "write controlPlaneEndpoint as a free address on the masters' subnet, e.g. 10.0.0.100:6443",
            );
            return None;
        }
    };
    let interface = c.parse(
        "keepalived.interface",
        &raw.value.interface,
        "a network interface name",
        "write the masters' interface, e.g. eth0 or ens192",
        |text| {
            let ok = (1..=15).contains(&text.len())
                && text != "."
                && text != ".."
                && text
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
            ok.then(|| text.to_owned()).ok_or_else(|| {
                "Linux names interfaces with 1 to 15 letters, digits, '_', '.' or '-'".into()
            })
        },
    );
    let mut number = |value: Option<&serde_saphyr::Spanned<u32>>,
                      field: &str,
                      default: u32,
                      max: u32,
                      help: &str| {
        let Some(value) = value else {
            return Some(default);
        };
        if (1..=max).contains(&value.value) {
            Some(value.value)
        } else {
            c.error(
                value.referenced,
                field,
                format!("{} is out of range 1-{max}", value.value),
                help,
            );
            None
        }
    };
    let router_id = number(
        raw.value.virtual_router_id.as_ref(),
        "keepalived.virtualRouterId",
        51,
        255,
        "pick a VRRP router id no other VRRP instance on that network uses",
    );
    let max_prefix = if vip.is_ipv4() { 32 } else { 128 };
    let prefix = number(
        raw.value.prefix_length.as_ref(),
        "keepalived.prefixLength",
        if vip.is_ipv4() { 24 } else { 64 },
        max_prefix,
        "write the masters' subnet prefix length, e.g. 24",
    );
    let (interface, router_id, prefix) = (interface?, router_id?, prefix?);
    let subnet = ipnet::IpNet::new(vip, u8::try_from(prefix).ok()?).ok()?;
    for master in masters {
        if master.ip == vip {
            c.error(
                at,
                "keepalived",
                format!("the VIP {vip} is master {}'s own address", master.name),
                "pick a free address for controlPlaneEndpoint",
            );
            return None;
        }
        if !subnet.contains(&master.ip) {
            c.error(
                at,
                "keepalived",
                format!(
                    "master {} ({}) is not on the VIP's subnet {}",
                    master.name,
                    master.ip,
                    subnet.trunc()
                ),
                "VRRP moves an address within one L2 segment: every master must be on the VIP's subnet (check keepalived.prefixLength)",
            );
            return None;
        }
    }
    Some(Keepalived {
        vip,
        prefix_length: u8::try_from(prefix).ok()?,
        interface,
        virtual_router_id: u8::try_from(router_id).ok()?,
    })
}

/// Node names and addresses already used: masters and clients share one namespace,
/// since their bundles share one directory.
#[derive(Default)]
struct TakenNames {
    names: BTreeSet<DnsLabel>,
    ips: BTreeSet<IpAddr>,
}

/// Clients (non-master nodes with a front-only bundle) need a front to install.
fn check_clients(
    c: &mut Checker<'_>,
    clients: Option<&serde_saphyr::Spanned<Vec<crate::config::RawNode>>>,
    front_kind: Option<crate::config::FrontKind>,
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    let Some(clients) = clients else {
        return Some(Vec::new());
    };
    if front_kind == Some(crate::config::FrontKind::None) && !clients.value.is_empty() {
        c.error(
            clients.referenced,
            "clients",
            "client bundles carry only the HA front, and haFront.kind is none".into(),
            "set haFront.kind to nginx or haproxy, or remove the clients list",
        );
        return None;
    }
    check_nodes(c, "clients", &clients.value, taken)
}

/// Names and addresses of a node list: each valid, none used twice.
fn check_nodes(
    c: &mut Checker<'_>,
    list: &str,
    nodes: &[crate::config::RawNode],
    taken: &mut TakenNames,
) -> Option<Vec<Master>> {
    let mut valid = Vec::new();
    let mut ok = true;
    for (index, node) in nodes.iter().enumerate() {
        let name = c.parse(
            &format!("{list}[{index}].name"),
            &node.name,
            "a DNS label",
            "node names are RFC 1123 labels: lowercase letters, digits and '-', at most 63",
            DnsLabel::parse,
        );
        let ip = c.parse(
            &format!("{list}[{index}].ip"),
            &node.ip,
            "an IP address",
            "write the node's address, e.g. 172.27.128.150 or fd00::10",
            |text| {
                let ip: IpAddr = text.parse().map_err(|_| "it does not parse".to_owned())?;
                if ip.is_unspecified() || ip.is_multicast() {
                    return Err(
                        "an unspecified or multicast address cannot be a node's address".into(),
                    );
                }
                if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
                    return Err("the broadcast address cannot be a node's address".into());
                }
                Ok(ip)
            },
        );
        if let Some(name) = &name
            && !taken.names.insert(name.clone())
        {
            c.error(
                node.name.referenced,
                &format!("{list}[{index}].name"),
                format!("\"{name}\" is listed twice"),
                "give every master and client its own name",
            );
            ok = false;
        }
        if let Some(ip) = ip {
            if !taken.ips.insert(ip) {
                c.error(
                    node.ip.referenced,
                    &format!("{list}[{index}].ip"),
                    format!("{ip} is listed twice"),
                    "give every master and client its own address",
                );
                ok = false;
            }
            if ip.is_loopback() {
                c.warn(
                    node.ip.referenced,
                    &format!("{list}[{index}].ip"),
                    format!("{ip} is a loopback address; other nodes cannot reach it"),
                    "fine for a test bed on one host; use the node's routable address otherwise",
                );
            }
        }
        match (name, ip) {
            (Some(name), Some(ip)) => valid.push(Master { name, ip }),
            _ => ok = false,
        }
    }
    ok.then_some(valid)
}

fn check_network(
    c: &mut Checker<'_>,
    raw: &RawNetwork,
    masters: Option<&[Master]>,
) -> Option<Network> {
    let service_cidr = match &raw.service_cidr {
        None => ServiceNetwork::parse("10.96.0.0/12").ok(),
        Some(value) => {
            let parsed = c.parse(
                "network.serviceCIDR",
                value,
                "a service CIDR",
                "write one CIDR (10.96.0.0/12) or two, comma-separated, for dual-stack \
                 (10.96.0.0/12,fd00:10:96::/108); the first is the primary family",
                ServiceNetwork::parse,
            );
            if let (Some(cidrs), Some(masters)) = (&parsed, masters) {
                for master in masters.iter().filter(|m| cidrs.contains(&m.ip)) {
                    c.error(
                        value.referenced,
                        "network.serviceCIDR",
                        format!("{cidrs} contains master {} ({})", master.name, master.ip),
                        "service addresses are virtual; pick a range no node lives in",
                    );
                }
            }
            parsed
        }
    };
    let node_port_range = match &raw.node_port_range {
        None => PortRange::parse("30000-32767").ok(),
        Some(value) => c.parse(
            "network.nodePortRange",
            value,
            "a port range",
            "write FIRST-LAST, e.g. 30000-32767, clear of 6443",
            PortRange::parse,
        ),
    };
    let dns_domain = match &raw.dns_domain {
        None => DnsName::parse("cluster.local", false).ok(),
        Some(value) => c.parse(
            "network.dnsDomain",
            value,
            "a DNS domain",
            "write the cluster domain without a trailing dot, e.g. cluster.local",
            |text| DnsName::parse(text, false),
        ),
    };
    Some(Network {
        service_cidr: service_cidr?,
        node_port_range: node_port_range?,
        dns_domain: dns_domain?,
    })
}

fn check_etcd(c: &mut Checker<'_>, raw: &RawEtcd) -> Option<Etcd> {
    let help = "write each endpoint as https://HOST:PORT, e.g. https://172.27.128.150:2379";
    if raw.endpoints.value.is_empty() {
        c.error(
            raw.endpoints.referenced,
            "etcd.endpoints",
            "the list is empty".into(),
            help,
        );
        return None;
    }
    let mut endpoints = Vec::new();
    let mut ok = true;
    for (index, value) in raw.endpoints.value.iter().enumerate() {
        let field = format!("etcd.endpoints[{index}]");
        let url = c.parse(&field, value, "an https URL", help, |text| {
            // The URL parser silently drops tabs and newlines; refuse them first.
            if let Some(bad) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!("it contains '{}'", bad.escape_default()));
            }
            let url = Url::parse(text).map_err(|err| err.to_string())?;
            match url.host() {
                Some(url::Host::Domain(name)) => {
                    DnsName::parse(name, false).map_err(|why| format!("host '{name}': {why}"))?;
                }
                Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) | None => {}
            }
            if url.scheme() != "https" {
                return Err(format!(
                    "the scheme is '{}'; the apiserver talks to etcd over TLS",
                    url.scheme()
                ));
            }
            if url.host().is_none() {
                return Err("it has no host".into());
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err("it carries credentials".into());
            }
            if url.path() != "/" && !url.path().is_empty()
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err("it has a path, query or fragment".into());
            }
            Ok(url)
        });
        match url {
            Some(url) if endpoints.contains(&url) => {
                c.error(
                    value.referenced,
                    &field,
                    format!("{url} is listed twice"),
                    "list each etcd member once",
                );
                ok = false;
            }
            Some(url) => endpoints.push(url),
            None => ok = false,
        }
    }
    if ok && endpoints.len() % 2 == 0 {
        c.warn(
            raw.endpoints.referenced,
            "etcd.endpoints",
            format!(
                "{} etcd members: an even \
            number tolerates no more failures than one fewer",
                endpoints.len()
            ),
            "run an odd number of etcd members",
        );
    }
    let mode = raw.ca.as_ref().map_or(EtcdCaMode::Cluster, |m| m.value);
    let ca = match (mode, &raw.external) {
        (EtcdCaMode::Cluster, None) => Some(EtcdCa::Cluster),
        (EtcdCaMode::Separate, None) => Some(EtcdCa::Separate),
        (EtcdCaMode::External, Some(files)) => {
            let ca = c.input_file("etcd.external.ca", &files.ca);
            let cert = c.input_file("etcd.external.cert", &files.cert);
            let key = c.input_file("etcd.external.key", &files.key);
            match (ca, cert, key) {
                (Some(ca), Some(cert), Some(key)) => Some(EtcdCa::External { ca, cert, key }),
                _ => None,
            }
        }
        (EtcdCaMode::External, None) => {
            let at = raw
                .ca
                .as_ref()
                .map_or(raw.endpoints.referenced, |m| m.referenced);
            c.error(
                at,
                "etcd.external",
                "`ca: external` needs the client credentials".into(),
                "add `external: { ca: etcd-ca.pem, cert: client.pem, key: client-key.pem }`",
            );
            None
        }
        (_, Some(files)) => {
            c.error(files.ca.referenced, "etcd.external", "client files are given but `ca` is not `external`".into(),
                "set `ca: external`, or remove `external:` to let kube-bundle issue the etcd client cert");
            None
        }
    };
    Some(Etcd { endpoints, ca: ca? }).filter(|_| ok)
}

fn check_pki(c: &mut Checker<'_>, raw: &RawPki) -> Option<Pki> {
    let duration =
        |c: &mut Checker<'_>, field: &str, value: Option<&Text>, default: Duration| match value {
            None => Some(default),
            Some(value) => c.parse(
                field,
                value,
                "a duration",
                "write hours, e.g. 8760h (one year)",
                |text| {
                    let duration = parse_duration(text)?;
                    if duration < Duration::from_secs(3600) {
                        return Err("it is shorter than one hour".into());
                    }
                    Ok(duration)
                },
            ),
        };
    let year = Duration::from_secs(365 * 24 * 3600);
    let cert_validity = duration(c, "pki.certValidity", raw.cert_validity.as_ref(), year);
    let ca_validity = duration(c, "pki.caValidity", raw.ca_validity.as_ref(), year * 10);
    if let (Some(leaf), Some(ca), Some(value)) =
        (cert_validity, ca_validity, raw.cert_validity.as_ref())
        && leaf > ca
    {
        c.error(
            value.referenced,
            "pki.certValidity",
            "certificates would outlive their CA".into(),
            "make certValidity no longer than caValidity",
        );
    }
    let mut extra_sans = Vec::new();
    let mut ok = true;
    for (index, value) in raw.extra_sans.iter().flatten().enumerate() {
        let san = c.parse(
            &format!("pki.extraSANs[{index}]"),
            value,
            "an IP address or DNS name",
            "write an IP address, a DNS name (api.example.com) or a wildcard (*.example.com)",
            |text| match text.parse::<IpAddr>() {
                Ok(ip) => Ok(Host::Ip(ip)),
                Err(_) => DnsName::parse(text, true).map(Host::Dns),
            },
        );
        match san {
            Some(san) => extra_sans.push(san),
            None => ok = false,
        }
    }
    let import_ca = match &raw.import_ca {
        None => Some(None),
        Some(files) => {
            let cert = c.input_file("pki.importCA.cert", &files.cert);
            let key = c.input_file("pki.importCA.key", &files.key);
            cert.zip(key)
                .map(|(cert, key)| Some(ImportCa { cert, key }))
        }
    };
    Some(Pki {
        key_algorithm: raw.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256),
        cert_validity: cert_validity?,
        ca_validity: ca_validity?,
        extra_sans,
        import_ca: import_ca?,
    })
    .filter(|_| ok)
}

/// The apiserver's own keys: the audit log's rotation, enableAllAPIs and
/// verifyKubeletServingCerts, with kube-bundle's hardened defaults after the seed's release
/// and a warning for each explicit value that is weaker than them.
fn check_apiserver_settings(
    c: &mut Checker<'_>,
    raw: &crate::config::RawApiserver,
    version: Option<&KubeVersion>,
    extra_args: BTreeMap<String, String>,
) -> Apiserver {
    // Without a valid version validation fails anyway; the hardened defaults are the safe guess.
    let hardened = version.is_none_or(|v| crate::versions::hardened_defaults(v.minor()));
    let shown_version = version.map_or_else(|| "this release".to_owned(), ToString::to_string);
    let raw_audit = raw.audit.as_ref();
    let enabled = raw_audit.and_then(|a| a.enabled).unwrap_or(true);
    let max_backup = match raw_audit.and_then(|a| a.max_backup.as_ref()) {
        Some(explicit) => {
            // 0 keeps every old file, which is more than the benchmark asks for.
            let fewer = (1..CIS_AUDIT_MAX_BACKUP).contains(&explicit.value);
            if enabled && hardened && fewer {
                c.warn(
                    explicit.referenced,
                    "apiserver.audit.maxBackup",
                    format!(
                        "{} rotated audit logs are fewer than the {CIS_AUDIT_MAX_BACKUP} the CIS \
                         Kubernetes Benchmark asks for",
                        explicit.value
                    ),
                    &format!(
                        "remove the key for kube-bundle's default of {CIS_AUDIT_MAX_BACKUP}, or \
                         keep {SEED_AUDIT_MAX_BACKUP} if you mean the seed guide's rotation"
                    ),
                );
            }
            explicit.value
        }
        None if hardened => CIS_AUDIT_MAX_BACKUP,
        None => SEED_AUDIT_MAX_BACKUP,
    };
    // The seed's audit-log settings, but for the number of old files.
    let audit = Audit {
        enabled,
        max_age: raw_audit.and_then(|a| a.max_age).unwrap_or(30),
        max_backup,
        max_size: raw_audit.and_then(|a| a.max_size).unwrap_or(100),
    };
    let enable_all_apis = match &raw.enable_all_apis {
        Some(explicit) => {
            if explicit.value && hardened {
                c.warn(
                    explicit.referenced,
                    "apiserver.enableAllAPIs",
                    format!(
                        "--runtime-config=api/all=true serves every API of {shown_version}, alpha \
                         ones included: upstream advises against alpha APIs in production (they \
                         are off by default, may be buggy, and can change or vanish in any release)"
                    ),
                    "remove the key, and enable only the API versions you need with \
                     `extraArgs: { runtime-config: \"<group>/<version>=true\" }`",
                );
            }
            explicit.value
        }
        None => !hardened,
    };
    let verify_kubelet_serving_certs = match &raw.verify_kubelet_serving_certs {
        Some(explicit) => {
            if !explicit.value {
                c.warn(
                    explicit.referenced,
                    "apiserver.verifyKubeletServingCerts",
                    "kubelets' serving certificates are not verified (no \
                     --kubelet-certificate-authority): whoever answers on a kubelet's address \
                     receives the apiserver's exec, attach, logs and port-forward traffic"
                        .into(),
                    "give every kubelet a serving certificate signed by the cluster CA (kubelet \
                     serverTLSBootstrap: true and approved CSRs) and remove the key",
                );
            }
            explicit.value
        }
        None => true,
    };
    Apiserver {
        extra_args,
        audit,
        enable_all_apis,
        verify_kubelet_serving_certs,
    }
}

/// Whether a TLS 1.2 suite name is one the CIS benchmark accepts: ECDHE key exchange with
/// AES-GCM or ChaCha20-Poly1305. TLS 1.3 names are accepted too: every TLS 1.3 suite is an
/// AEAD with ephemeral key exchange.
fn is_strong_cipher_suite(name: &str) -> bool {
    const TLS13_SUITES: [&str; 3] = [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ];
    TLS13_SUITES.contains(&name)
        || (name.starts_with("TLS_ECDHE_")
            && (name.contains("_GCM_") || name.contains("_CHACHA20_POLY1305")))
}

/// A TLS 1.2 suite authenticates the server with one kind of key: an extraArgs cipher list
/// without a suite for the serving certificate's key leaves TLS 1.2 clients unable to
/// connect (TLS 1.3 suites are not configurable and still work).
fn check_cipher_suites_fit_key(
    c: &mut Checker<'_>,
    raw_args: &BTreeMap<String, Text>,
    algorithm: KeyAlgorithm,
) {
    let Some(suites) = raw_args.get("tls-cipher-suites") else {
        return;
    };
    let tls13_only = raw_args
        .get("tls-min-version")
        .is_some_and(|v| v.value == "VersionTLS13");
    let (fits, kind) = match algorithm {
        KeyAlgorithm::EcdsaP256 => (&["_ECDSA_"][..], "ECDSA"),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            (&["TLS_ECDHE_RSA_", "TLS_RSA_"][..], "RSA")
        }
    };
    let any_fits = suites
        .value
        .split(',')
        .map(str::trim)
        .any(|suite| fits.iter().any(|part| suite.contains(part)));
    if !any_fits && !tls13_only {
        c.warn(
            suites.referenced,
            "apiserver.extraArgs.tls-cipher-suites",
            format!(
                "no TLS 1.2 suite in the list fits the serving certificate's {kind} key \
                 (pki.keyAlgorithm: {algorithm}): clients limited to TLS 1.2 cannot connect"
            ),
            &format!("add the matching TLS_ECDHE_{kind}_WITH_… suites, or remove the flag"),
        );
    }
}

fn check_extra_args(
    c: &mut Checker<'_>,
    raw: Option<&BTreeMap<String, Text>>,
    version: Option<&KubeVersion>,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (key, value) in raw.into_iter().flatten() {
        let field = format!("apiserver.extraArgs.{}", key.escape_debug());
        if key.starts_with('-') {
            c.error(
                value.referenced,
                &field,
                "flag names are written without leading dashes".into(),
                &format!("write `{}: …`", key.trim_start_matches('-').escape_debug()),
            );
            continue;
        }
        let valid_key = key.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
            && key
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !valid_key {
            c.error(
                value.referenced,
                &field,
                "is not a kube-apiserver flag name".into(),
                "flag names are lowercase letters, digits and '-', e.g. `event-ttl: 168h`",
            );
            continue;
        }
        if let Some(bad) = value.value.chars().find(|ch| !(' '..='~').contains(ch)) {
            c.error(
                value.referenced,
                &field,
                format!(
                    "the value contains '{}', which is not printable ASCII (control characters, \
                     bidi overrides and look-alikes hide what the flag says)",
                    bad.escape_default()
                ),
                "flag values are one line of printable ASCII text",
            );
            continue;
        }
        if value.value.len() > 4096 {
            c.error(
                value.referenced,
                &field,
                "the value is longer than 4096 characters".into(),
                "pass long settings through a file the flag points at",
            );
            continue;
        }
        if let Some(version) = version {
            check_flag_against_version(c, &field, key, value, version);
        }
        if let Some(why) = weakens_security(key, &value.value) {
            c.warn(
                value.referenced,
                &field,
                format!("--{key}={} weakens the apiserver: {why}", value.value),
                "remove it unless you mean it (the CIS Kubernetes Benchmark's API-server items \
                 ask for the opposite)",
            );
        }
        args.insert(key.clone(), value.value.clone());
    }
    args
}

/// Why an extraArgs value turns off a protection the apiserver has by default or by
/// kube-bundle's choice, if it does.
fn weakens_security(key: &str, value: &str) -> Option<String> {
    let items = || value.split(',').map(str::trim);
    if key == "tls-cipher-suites" {
        return items()
            .filter(|suite| !suite.is_empty())
            .find(|suite| !is_strong_cipher_suite(suite))
            .map(|weak| {
                format!(
                    "{weak} is allowed, which lacks ECDHE key exchange or an AEAD cipher \
                     (AES-GCM, ChaCha20-Poly1305)"
                )
            });
    }
    let why = match key {
        "anonymous-auth" if value == "true" => Some("unauthenticated requests are served"),
        "authorization-mode" if items().any(|m| m == "AlwaysAllow") => {
            Some("AlwaysAllow authorizes every request")
        }
        "enable-admission-plugins" if items().any(|p| p == "AlwaysAdmit") => {
            Some("AlwaysAdmit admits every request")
        }
        "service-account-lookup" if value == "false" => {
            Some("tokens of deleted service accounts stay valid")
        }
        "tls-min-version" if matches!(value, "VersionTLS10" | "VersionTLS11") => {
            Some("TLS below 1.2 is broken")
        }
        "kubelet-certificate-authority" if value.is_empty() => {
            Some("kubelet serving certificates are not verified")
        }
        "profiling" if value == "true" => Some("profiling exposes program internals over HTTP"),
        _ => None,
    };
    why.map(str::to_owned)
}

/// A flag the target version rejects is an error naming its replacement; one the table
/// does not know is passed through with a warning.
fn check_flag_against_version(
    c: &mut Checker<'_>,
    field: &str,
    key: &str,
    value: &Text,
    version: &KubeVersion,
) {
    let minor = version.minor();
    let Some(flag) = crate::versions::flag(key) else {
        c.warn(
            value.referenced,
            field,
            format!(
                "--{key} is not in kube-bundle's version table; \
            it is passed through unchecked"
            ),
            "check the flag exists in this Kubernetes release",
        );
        return;
    };
    if !flag.accepted_in(minor) {
        let instead = flag
            .replacement
            .map(|r| format!("use `{r}` instead"))
            .unwrap_or_else(|| "remove it".into());
        c.error(
            value.referenced,
            field,
            format!("--{key} is not accepted by {version}: {}", flag.note),
            &instead,
        );
        return;
    }
    let plugins = key == "enable-admission-plugins"
        && value.value.split(',').any(|p| p.trim() == "Initializers");
    if plugins && !crate::versions::initializers_plugin_accepted(minor) {
        c.error(
            value.referenced,
            field,
            format!(
                "the Initializers admission plugin was removed in 1.14; \
            {version} refuses to start with it"
            ),
            "remove Initializers from the list",
        );
    }
    if key == "tls-cipher-suites" && minor < crate::versions::CHACHA20_SHA256_NAMES_FROM {
        let long_chacha =
            value.value.split(',').map(str::trim).find(|suite| {
                suite.starts_with("TLS_ECDHE_") && suite.ends_with("_POLY1305_SHA256")
            });
        if let Some(suite) = long_chacha {
            let short = suite.trim_end_matches("_SHA256");
            c.error(
                value.referenced,
                field,
                format!(
                    "{version} does not know {suite} and refuses to start: before 1.23 the suite \
                     is named {short}"
                ),
                &format!("write {short}"),
            );
        }
    }
    for gate in crate::versions::CHECKED_FEATURE_GATES {
        let gate_known = (gate.known_in)(minor);
        let gate = gate.name;
        if key == "feature-gates" && value.value.contains(gate) && !gate_known {
            c.error(
                value.referenced,
                field,
                format!(
                    "the {gate} feature gate does not exist in {version}, which refuses to \
                     start with it"
                ),
                &format!("remove {gate} from feature-gates"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::EXAMPLE_CLUSTER_YAML;

    /// The example with `old` replaced by `new`; panics if `old` is missing so a test
    /// cannot silently check the unmodified example.
    fn example_with(old: &str, new: &str) -> String {
        assert!(EXAMPLE_CLUSTER_YAML.contains(old), "example lacks {old:?}");
        EXAMPLE_CLUSTER_YAML.replacen(old, new, 1)
    }

    fn run(yaml: &str, options: ValidateOptions) -> Result<Validated, Vec<String>> {
        let source = SourceFile::new(Path::new("cluster.yaml"), yaml.to_owned());
        let raw = match crate::config::parse(&source) {
            Ok(raw) => raw,
            Err(Error::InvalidConfig(reports)) => {
                return Err(reports.iter().map(ToString::to_string).collect());
            }
            Err(other) => return Err(vec![other.to_string()]),
        };
        validate(raw, &source, options).map_err(|err| match err {
            Error::InvalidConfig(reports) => reports.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        })
    }

    /// Asserts that the edited example fails with one error containing every fragment.
    #[track_caller]
    fn rejects(old: &str, new: &str, fragments: &[&str]) {
        rejects_yaml(&example_with(old, new), fragments);
    }

    #[track_caller]
    fn rejects_yaml(yaml: &str, fragments: &[&str]) {
        let errors = run(yaml, ValidateOptions::default())
            .err()
            .unwrap_or_else(|| panic!("accepted: {fragments:?}"));
        assert!(
            errors
                .iter()
                .any(|e| fragments.iter().all(|f| e.contains(f))),
            "no error contains {fragments:?}: {errors:#?}"
        );
    }

    fn warnings(yaml: &str) -> Vec<String> {
        let validated = run(yaml, ValidateOptions::default()).expect("valid");
        validated.warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_example_is_valid_and_warning_free() {
        assert!(warnings(EXAMPLE_CLUSTER_YAML).is_empty());
    }

    #[test]
    fn clients_share_the_masters_namespace_and_need_a_front() {
        let with_clients = |clients: &str| format!("clients:\n{clients}network:");
        rejects(
            "network:",
            &with_clients("  - { name: cp2, ip: 10.20.0.50 }\n"),
            &["clients[0].name", "\"cp2\" is listed twice"],
        );
        rejects(
            "network:",
            &with_clients("  - { name: w1, ip: 10.20.0.11 }\n"),
            &["clients[0].ip", "10.20.0.11 is listed twice"],
        );
        rejects(
            "network:",
            &with_clients("  - { name: W1, ip: 10.20.0.50 }\n"),
            &["clients[0].name", "uppercase"],
        );
        let no_front = format!(
            "{}haFront: {{ kind: none }}\n",
            example_with(
                "network:",
                &with_clients("  - { name: w1, ip: 10.20.0.50 }\n")
            )
        );
        let errors = run(&no_front, ValidateOptions::default()).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("clients") && e.contains("haFront.kind is none")),
            "{errors:#?}"
        );
        let accepted = example_with(
            "network:",
            &with_clients("  - { name: w1, ip: 10.20.0.50 }\n"),
        );
        assert!(run(&accepted, ValidateOptions::default()).is_ok());
    }

    #[test]
    fn a_shipped_front_binary_must_exist_and_needs_a_front() {
        rejects(
            "  kubeApiserver: null",
            "  kubeApiserver: null\n  front: no-such-nginx",
            &["binaries.front", "does not exist"],
        );
    }

    #[test]
    fn keepalived_needs_an_ip_endpoint_on_the_masters_subnet() {
        let with = |endpoint: &str, keepalived: &str| {
            format!(
                "{}keepalived: {keepalived}\n",
                example_with(
                    "controlPlaneEndpoint: api.prod-eu1.example.com:6443",
                    &format!("controlPlaneEndpoint: {endpoint}")
                )
            )
        };
        let errors = |yaml: String| run(&yaml, ValidateOptions::default()).unwrap_err();
        let has = |errors: &[String], fragments: &[&str]| {
            assert!(
                errors
                    .iter()
                    .any(|e| fragments.iter().all(|f| e.contains(f))),
                "no error has {fragments:?}: {errors:#?}"
            );
        };
        has(
            &errors(with("api.example.com:6443", "{ interface: eth0 }")),
            &[
                "keepalived",
                "needs controlPlaneEndpoint to be an IP address",
            ],
        );
        has(
            &errors(with("10.20.0.100:8443", "{ interface: eth0 }")),
            &["keepalived", "6443"],
        );
        has(
            &errors(with("10.20.1.100:6443", "{ interface: eth0 }")),
            &["keepalived", "not on the VIP's subnet 10.20.1.0/24"],
        );
        has(
            &errors(with("10.20.0.11:6443", "{ interface: eth0 }")),
            &["keepalived", "master cp1's own address"],
        );
        has(
            &errors(with("10.20.0.100:6443", "{ interface: \"eth0; reboot\" }")),
            &["keepalived.interface", "1 to 15 letters"],
        );
        has(
            &errors(with(
                "10.20.0.100:6443",
                "{ interface: eth0, virtualRouterId: 256 }",
            )),
            &["keepalived.virtualRouterId", "out of range 1-255"],
        );
        // A /16 reaches 10.20.1.100 from the 10.20.0.x masters.
        let wide = with("10.20.1.100:6443", "{ interface: eth0, prefixLength: 16 }");
        let keepalived = run(&wide, ValidateOptions::default())
            .unwrap()
            .cluster
            .keepalived
            .unwrap();
        assert_eq!(
            (keepalived.prefix_length, keepalived.virtual_router_id),
            (16, 51)
        );
    }

    #[test]
    fn node_names_must_be_dns_labels() {
        rejects(
            "name: cp1,",
            "name: CP1,",
            &["masters[0].name", "uppercase"],
        );
        rejects(
            "name: cp1,",
            "name: cp_1,",
            &["masters[0].name", "'_' is not allowed"],
        );
        rejects(
            "name: cp1,",
            "name: -cp1,",
            &["masters[0].name", "start and end"],
        );
        rejects(
            "name: cp1,",
            "name: cp1.example,",
            &["masters[0].name", "'.' is not allowed"],
        );
        let long = format!("name: {},", "a".repeat(64));
        rejects("name: cp1,", &long, &["masters[0].name", "at most 63"]);
    }

    #[test]
    fn duplicate_names_and_ips_are_refused() {
        rejects(
            "name: cp2,",
            "name: cp1,",
            &["masters[1].name", "listed twice"],
        );
        rejects(
            "ip: 10.20.0.12",
            "ip: 10.20.0.11",
            &["masters[1].ip", "listed twice"],
        );
    }

    #[test]
    fn ips_must_parse_and_be_unicast() {
        rejects(
            "ip: 10.20.0.11",
            "ip: 10.20.0.311",
            &["masters[0].ip", "not an IP address"],
        );
        rejects(
            "ip: 10.20.0.11",
            "ip: 0.0.0.0",
            &["masters[0].ip", "unspecified"],
        );
        rejects(
            "ip: 10.20.0.11",
            "ip: 224.0.0.1",
            &["masters[0].ip", "multicast"],
        );
    }

    #[test]
    fn service_cidr_must_parse_fit_and_avoid_masters() {
        let cidr = "serviceCIDR: 10.96.0.0/12";
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/33",
            &["network.serviceCIDR", "not a CIDR"],
        );
        rejects(cidr, "serviceCIDR: 10.0.0.0/8", &["larger than /12"]);
        rejects(cidr, "serviceCIDR: fd00::/64", &["larger than /108"]);
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.1/12",
            &["host bits", "10.96.0.0/12"],
        );
        rejects(
            cidr,
            "serviceCIDR: 10.20.0.0/16",
            &["contains master cp1 (10.20.0.11)"],
        );
    }

    #[test]
    fn dual_stack_service_cidrs_put_the_primary_first() {
        let cidr = "serviceCIDR: 10.96.0.0/12";
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/12,10.112.0.0/12",
            &["same family"],
        );
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/12,fd00::/108,fd01::/108",
            &["at most two"],
        );
        let yaml = example_with(cidr, "serviceCIDR: fd00:10:96::/108,10.96.0.0/12");
        let cluster = run(&yaml, ValidateOptions::default())
            .expect("valid")
            .cluster;
        assert_eq!(
            cluster.network.service_cidr.kubernetes_service_ip(),
            "fd00:10:96::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn node_port_range_must_be_well_formed_and_clear_of_6443() {
        let range = "nodePortRange: 30000-32767";
        rejects(
            range,
            "nodePortRange: \"30000\"",
            &["network.nodePortRange", "FIRST-LAST"],
        );
        // Unquoted, YAML reads a number: refused before validation, with a hint to quote.
        rejects(range, "nodePortRange: 30000", &["must be quoted"]);
        rejects(range, "nodePortRange: 32767-30000", &["inverted"]);
        rejects(range, "nodePortRange: 6000-7000", &["contains 6443"]);
        rejects(range, "nodePortRange: 0-100", &["'0' is not a port"]);
    }

    #[test]
    fn dns_domain_has_no_trailing_dot_and_valid_labels() {
        let domain = "dnsDomain: cluster.local";
        rejects(
            domain,
            "dnsDomain: cluster.local.",
            &["network.dnsDomain", "trailing dot"],
        );
        rejects(domain, "dnsDomain: cluster..local", &["empty"]);
        rejects(domain, "dnsDomain: clus_ter.local", &["'_' is not allowed"]);
        rejects(
            domain,
            "dnsDomain: \"*.local\"",
            &["wildcard is not allowed"],
        );
    }

    #[test]
    fn extra_sans_are_ips_or_dns_names_with_reasons() {
        let sans = "extraSANs: []";
        rejects(
            sans,
            "extraSANs: [api_1.example.com]",
            &["pki.extraSANs[0]", "'_'"],
        );
        rejects(sans, "extraSANs: [api.example.com.]", &["trailing dot"]);
        rejects(
            sans,
            "extraSANs: [\"api.*.example.com\"]",
            &["leftmost label"],
        );
        rejects(sans, "extraSANs: [\"bücher.example\"]", &["punycode"]);
        let yaml = example_with(sans, "extraSANs: [\"*.example.com\", 192.0.2.7]");
        let cluster = run(&yaml, ValidateOptions::default())
            .expect("valid")
            .cluster;
        assert_eq!(cluster.pki.extra_sans.len(), 2);
    }

    #[test]
    fn etcd_endpoints_are_https_urls() {
        let endpoint = "- https://10.20.0.11:2379";
        rejects(
            endpoint,
            "- http://10.20.0.11:2379",
            &["etcd.endpoints[0]", "scheme is 'http'"],
        );
        rejects(
            endpoint,
            "- 10.20.0.11:2379",
            &["etcd.endpoints[0]", "not an https URL"],
        );
        rejects(endpoint, "- https://10.20.0.11:2379/v3", &["path"]);
        rejects(
            endpoint,
            "- https://10.20.0.12:2379",
            &["etcd.endpoints[1]", "listed twice"],
        );
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
    fn extra_args_keys_and_values_are_checked() {
        let arg = "profiling: \"false\"";
        rejects(arg, "--event-ttl: 168h", &["leading dashes"]);
        rejects(arg, "Event_TTL: 168h", &["not a kube-apiserver flag name"]);
        rejects(
            arg,
            "profiling: \"168h\\n--evil\"",
            &["not printable ASCII"],
        );
    }

    #[test]
    fn extra_args_that_weaken_security_are_named_in_a_warning() {
        let arg = "profiling: \"false\"";
        for (weak, fragment) in [
            ("anonymous-auth: \"true\"", "unauthenticated requests"),
            ("authorization-mode: \"Node,AlwaysAllow\"", "AlwaysAllow"),
            (
                "enable-admission-plugins: \"NodeRestriction,AlwaysAdmit\"",
                "AlwaysAdmit",
            ),
            (
                "service-account-lookup: \"false\"",
                "deleted service accounts",
            ),
            ("tls-min-version: VersionTLS11", "below 1.2"),
            ("kubelet-certificate-authority: \"\"", "not verified"),
            ("profiling: \"true\"", "profiling exposes"),
        ] {
            let yaml = example_with(arg, weak);
            let validated = run(&yaml, ValidateOptions::default()).expect(weak);
            assert!(
                validated
                    .warnings
                    .iter()
                    .any(|w| w.message.contains("weakens the apiserver")
                        && w.message.contains(fragment)),
                "{weak}: {:?}",
                validated
                    .warnings
                    .iter()
                    .map(|w| &w.message)
                    .collect::<Vec<_>>()
            );
        }
        let quiet = run(
            &example_with(arg, "profiling: \"false\""),
            ValidateOptions::default(),
        )
        .unwrap();
        assert!(
            quiet
                .warnings
                .iter()
                .all(|w| !w.message.contains("weakens"))
        );
    }

    #[test]
    fn from_1_37_a_master_address_must_be_routable() {
        let master = "{ name: cp1, ip: 10.20.0.11 }";
        rejects(
            master,
            "{ name: cp1, ip: 127.0.0.11 }",
            &[
                "127.0.0.11 is a loopback or link-local address",
                "v1.37.2 refuses",
            ],
        );
        rejects(master, "{ name: cp1, ip: 169.254.0.11 }", &["link-local"]);
        let yaml =
            example_with(master, "{ name: cp1, ip: 127.0.0.11 }").replace("v1.37.2", "v1.36.1");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.36 accepts a loopback master (with a warning)"
        );
    }

    #[test]
    fn extra_args_the_target_rejects_are_errors_naming_the_replacement() {
        let arg = "profiling: \"false\"";
        rejects(
            arg,
            "insecure-port: \"0\"",
            &[
                "--insecure-port is not accepted by v1.37.2",
                "removed in 1.24",
            ],
        );
        rejects(
            arg,
            "experimental-encryption-provider-config: /etc/x.yaml",
            &["not accepted by v1.37.2"],
        );
        rejects(
            arg,
            "enable-admission-plugins: Initializers,NodeRestriction",
            &["Initializers"],
        );
        rejects(
            arg,
            "feature-gates: DynamicAuditing=true",
            &["DynamicAuditing"],
        );
        rejects(
            arg,
            "feature-gates: StructuredAuthenticationConfiguration=true",
            &["StructuredAuthenticationConfiguration feature gate does not exist in v1.37.2"],
        );
        let yaml = example_with(
            arg,
            "feature-gates: StructuredAuthenticationConfiguration=true",
        )
        .replace("v1.37.2", "v1.33.13");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.33 still knows the StructuredAuthenticationConfiguration gate"
        );
        let yaml = example_with(arg, "kubelet-https: \"true\"").replace("v1.37.2", "v1.21.0");
        assert!(
            run(&yaml, ValidateOptions::default()).is_ok(),
            "1.21 still accepts --kubelet-https"
        );
        let yaml = example_with(arg, "made-up-flag: \"1\"");
        assert!(
            warnings(&yaml)
                .iter()
                .any(|w| w.contains("not in kube-bundle's version table"))
        );
    }

    #[test]
    fn validities_parse_and_leaves_do_not_outlive_cas() {
        rejects(
            "certValidity: 8760h",
            "certValidity: 1y",
            &["'y' is not a unit"],
        );
        rejects(
            "certValidity: 8760h",
            "certValidity: 10m",
            &["shorter than one hour"],
        );
        rejects(
            "certValidity: 8760h",
            "certValidity: 100000h",
            &["outlive their CA"],
        );
    }

    #[test]
    fn referenced_files_must_exist() {
        let import = "# importCA: { cert: ca.pem, key: ca-key.pem }";
        rejects(
            import,
            "importCA: { cert: nope.pem, key: nope-key.pem }",
            &["pki.importCA.cert"],
        );
        rejects(
            "kubeApiserver: null",
            "kubeApiserver: ./nope",
            &["binaries.kubeApiserver"],
        );
        rejects(
            "ca: separate",
            "ca: external",
            &["etcd.external", "needs the client"],
        );
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let errors = run(
            &example_with("name: prod-eu1", "name: prod-eu1\nflavour: x"),
            ValidateOptions::default(),
        )
        .err()
        .unwrap();
        assert!(errors[0].contains("unknown field `flavour`"), "{errors:?}");
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

    /// The example at `version`, its enableAllAPIs and verifyKubeletServingCerts lines
    /// replaced by `settings` (so that an empty string means the defaults).
    fn example_at(version: &str, settings: &str) -> String {
        let explicit = "  enableAllAPIs: false\n";
        example_with(explicit, settings)
            .replace("  verifyKubeletServingCerts: true\n", "")
            .replace("v1.37.2", version)
    }

    /// The warnings about one cluster.yaml key, with the line they point at.
    fn warnings_about(yaml: &str, field: &str) -> Vec<(String, Option<usize>)> {
        run(yaml, ValidateOptions::default())
            .expect("valid")
            .warnings
            .iter()
            .filter(|w| w.field == field)
            .map(|w| {
                let line = w.span.map(|span| yaml[..span.offset()].lines().count());
                (w.message.clone(), line)
            })
            .collect()
    }

    fn line_of(yaml: &str, fragment: &str) -> Option<usize> {
        yaml.lines()
            .position(|l| l.contains(fragment))
            .map(|i| i + 1)
    }

    #[test]
    fn audit_keeps_ten_old_logs_after_the_seeds_release_and_three_in_it() {
        let without =
            |version: &str| example_with("maxBackup: 10, ", "").replace("v1.37.2", version);
        let cluster_of = |yaml: &str| run(yaml, ValidateOptions::default()).unwrap().cluster;
        assert_eq!(
            cluster_of(&without("v1.37.2")).apiserver.audit.max_backup,
            10
        );
        assert_eq!(
            cluster_of(&without("v1.13.0")).apiserver.audit.max_backup,
            10
        );
        assert_eq!(
            cluster_of(&without("v1.12.3")).apiserver.audit.max_backup,
            3
        );

        // The seed's 3 stays allowed, with a warning naming the key and its line.
        let seeds = example_with("maxBackup: 10", "maxBackup: 3");
        assert_eq!(cluster_of(&seeds).apiserver.audit.max_backup, 3);
        let warned = warnings_about(&seeds, "apiserver.audit.maxBackup");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].0.contains("fewer than the 10"), "{warned:?}");
        assert_eq!(warned[0].1, line_of(&seeds, "maxBackup: 3"));
        // Not at the seed's own release, not for 0 (keeps every file), not when audit is off.
        for quiet in [
            seeds.replace("v1.37.2", "v1.12.3"),
            example_with("maxBackup: 10", "maxBackup: 0"),
            example_with(
                "enabled: true, maxAge: 30, maxBackup: 10",
                "enabled: false, maxAge: 30, maxBackup: 3",
            ),
        ] {
            assert!(warnings_about(&quiet, "apiserver.audit.maxBackup").is_empty());
        }
    }

    #[test]
    fn all_apis_are_served_only_at_the_seeds_release_unless_enabled() {
        let enabled = |yaml: &str| {
            run(yaml, ValidateOptions::default())
                .unwrap()
                .cluster
                .apiserver
                .enable_all_apis
        };
        assert!(enabled(&example_at("v1.12.3", "")));
        assert!(!enabled(&example_at("v1.13.0", "")));
        assert!(!enabled(&example_at("v1.37.2", "")));
        assert!(!enabled(&example_at("v1.12.3", "  enableAllAPIs: false\n")));

        let yaml = example_at("v1.37.2", "  enableAllAPIs: true\n");
        assert!(enabled(&yaml));
        let warned = warnings_about(&yaml, "apiserver.enableAllAPIs");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].0.contains("alpha"), "{warned:?}");
        assert!(warned[0].0.contains("v1.37.2"), "{warned:?}");
        assert_eq!(warned[0].1, line_of(&yaml, "enableAllAPIs: true"));
        // The seed's own release serves every API anyway: nothing to warn about.
        let seed = example_at("v1.12.3", "  enableAllAPIs: true\n");
        assert!(warnings_about(&seed, "apiserver.enableAllAPIs").is_empty());
    }

    #[test]
    fn kubelet_serving_certs_are_verified_unless_turned_off_with_a_warning() {
        let verified = |yaml: &str| {
            run(yaml, ValidateOptions::default())
                .unwrap()
                .cluster
                .apiserver
                .verify_kubelet_serving_certs
        };
        assert!(verified(&example_at("v1.37.2", "")));
        assert!(verified(&example_at("v1.12.3", "")));
        for version in ["v1.12.3", "v1.37.2"] {
            let yaml = example_at(version, "  verifyKubeletServingCerts: false\n");
            assert!(!verified(&yaml));
            let warned = warnings_about(&yaml, "apiserver.verifyKubeletServingCerts");
            assert_eq!(warned.len(), 1, "{version}: {warned:?}");
            assert!(warned[0].0.contains("not verified"), "{warned:?}");
            assert_eq!(warned[0].1, line_of(&yaml, "verifyKubeletServingCerts"));
        }
    }

    #[test]
    fn extra_args_cipher_suites_are_checked_for_strength_names_and_key_fit() {
        let arg = "profiling: \"false\"";
        let with_suites = |suites: &str| example_with(arg, &format!("tls-cipher-suites: {suites}"));
        let field = "apiserver.extraArgs.tls-cipher-suites";
        let weak = with_suites(
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        );
        let warned = warnings_about(&weak, field);
        assert!(
            warned.iter().any(|(m, _)| m.contains("weakens")
                && m.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA is allowed")),
            "{warned:?}"
        );
        let rsa_kex =
            with_suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256");
        assert!(
            warnings_about(&rsa_kex, field)
                .iter()
                .any(|(m, _)| m.contains("weakens"))
        );
        let strong = crate::versions::strong_tls_cipher_suites(NEWEST_MINOR).join(",");
        assert!(warnings_about(&with_suites(&strong), field).is_empty());
        let tls13 = with_suites("TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(warnings_about(&tls13, field).is_empty());

        // Before 1.23 the long ChaCha20 names stop the apiserver from starting.
        let long = with_suites("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
        assert!(run(&long, ValidateOptions::default()).is_ok());
        rejects_yaml(
            &long.replace("v1.37.2", "v1.22.17"),
            &[
                "does not know TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            ],
        );
        let short =
            with_suites("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305").replace("v1.37.2", "v1.22.17");
        assert!(run(&short, ValidateOptions::default()).is_ok());

        // Only ECDSA suites for an RSA serving key: TLS 1.2 clients cannot connect.
        let ecdsa_only = with_suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(warnings_about(&ecdsa_only, field).is_empty());
        let rsa_key = ecdsa_only.replace("keyAlgorithm: ecdsa-p256", "keyAlgorithm: rsa-2048");
        let warned = warnings_about(&rsa_key, field);
        assert!(
            warned
                .iter()
                .any(|(m, _)| m.contains("fits the serving certificate's RSA key")),
            "{warned:?}"
        );
        assert_eq!(warned[0].1, line_of(&rsa_key, "tls-cipher-suites"));
    }
}
