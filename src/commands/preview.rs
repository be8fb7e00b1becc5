//! `check` and `plan`: what a build would do, shown before anything is written.
//!
//! `check` stops after `validate`; `plan` adds the plan and reads (never writes) the
//! secrets folder to say, per certificate, whether a build creates, reuses or re-issues it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use super::{load, prepare, report_warnings, to_sorted_json, write_out};
use crate::cli::{ConfigArgs, OutputFormat};
use crate::error::Error;
use crate::model::Cluster;
use crate::plan::{self, NodePlan, Plan};
use crate::secrets::SecretStore;
use crate::{encryption, pki};

pub(super) fn check(
    args: &ConfigArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let validated = load(args)?;
    report_warnings(&validated, err)?;
    let cluster = &validated.cluster;
    let warnings = validated.warnings.len();
    write_out(
        out,
        &format!(
            "{}: cluster {} ({} masters, Kubernetes {}) is valid; {warnings} warning(s)\n",
            args.config.display(),
            cluster.name,
            cluster.masters.len(),
            cluster.kubernetes_version,
        ),
    )
}

pub(super) fn plan(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    output: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (validated, plan, store) = prepare(config, secrets, err)?;
    let cluster = &validated.cluster;
    let decisions = pki::assess(cluster, &plan, &store, OffsetDateTime::now_utc())?;
    let secrets = planned_secrets(cluster, &store)?;
    let text = match output {
        OutputFormat::Json => to_sorted_json(&PlanReport::new(&plan, &decisions, &secrets))?,
        OutputFormat::Text => plan_text(&plan, &decisions, &secrets),
    };
    write_out(out, &text)
}

/// What a build would do with the cluster-wide secrets: whose identity, what it creates.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedSecrets {
    folder: PathBuf,
    identity: IdentityAction,
    ca_fingerprint: Option<String>,
    /// Files the build creates in the folder.
    create: Vec<String>,
}

/// What a build does about the cluster CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum IdentityAction {
    /// No CA stored and none to import: a new one is created.
    New,
    /// `pki.importCA` is copied into the store.
    Import,
    /// The stored CA is used.
    Reuse,
}

fn planned_secrets(cluster: &Cluster, store: &SecretStore) -> Result<PlannedSecrets, Error> {
    let identity = pki::cluster_identity(cluster, store)?;
    let mut create = pki::missing_cluster_secrets(cluster, store)?;
    for file in [encryption::ENCRYPTION_FILE, crate::sign::SIGNING_KEY_FILE] {
        if store.read(file)?.is_none() {
            create.push(file.to_owned());
        }
    }
    Ok(PlannedSecrets {
        folder: store.dir().to_path_buf(),
        identity: match identity {
            pki::Identity::New => IdentityAction::New,
            pki::Identity::Imported(_) => IdentityAction::Import,
            pki::Identity::Stored(_) => IdentityAction::Reuse,
        },
        ca_fingerprint: identity.fingerprint().map(str::to_owned),
        create,
    })
}

/// `plan --output json` (format 1): the plan, each certificate with what a build will do
/// with it, and what it will do in the secrets folder.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanReport<'a> {
    format_version: u32,
    cluster: &'a str,
    kubernetes_version: &'a str,
    kubernetes_service_ip: IpAddr,
    nodes: BTreeMap<&'a str, NodeReport<'a>>,
    secrets: &'a PlannedSecrets,
}

/// One node of [`PlanReport`]: its plan, certificates with their decisions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeReport<'a> {
    name: &'a str,
    ip: IpAddr,
    role: plan::Role,
    serving_cert_sans: &'a plan::Sans,
    directories: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    private_directories: &'a [String],
    files: &'a BTreeMap<String, plan::PlannedFile>,
    certificates: BTreeMap<plan::LeafName, CertificateReport<'a>>,
    flags: &'a BTreeMap<String, plan::PlannedFlag>,
    dropped_seed_flags: &'a BTreeMap<String, plan::DroppedFlag>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    controller_manager_flags: &'a BTreeMap<String, plan::PlannedFlag>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    scheduler_flags: &'a BTreeMap<String, plan::PlannedFlag>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    etcd_flags: &'a BTreeMap<String, plan::PlannedFlag>,
}

#[derive(Serialize)]
struct CertificateReport<'a> {
    /// What the plan issues; none for a certificate the operator supplies (external etcd),
    /// which has only a decision.
    #[serde(flatten)]
    spec: Option<&'a plan::CertSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a pki::Decision>,
}

impl<'a> PlanReport<'a> {
    fn new(plan: &'a Plan, decisions: &'a pki::Assessment, secrets: &'a PlannedSecrets) -> Self {
        // Taken apart in full, so a field added to the plan does not compile until the
        // report shows it (or says why not).
        let Plan {
            format_version,
            cluster,
            kubernetes_version,
            kubernetes_service_ip,
            nodes,
        } = plan;
        Self {
            format_version: *format_version,
            cluster,
            kubernetes_version,
            kubernetes_service_ip: *kubernetes_service_ip,
            nodes: nodes
                .iter()
                .map(|(name, node)| (name.as_str(), NodeReport::new(node, decisions.get(name))))
                .collect(),
            secrets,
        }
    }
}

impl<'a> NodeReport<'a> {
    fn new(
        node: &'a NodePlan,
        decisions: Option<&'a BTreeMap<plan::LeafName, pki::Decision>>,
    ) -> Self {
        let NodePlan {
            // Every on-node path: `files` shows them.
            layout: _,
            name,
            ip,
            role,
            serving_cert_sans,
            directories,
            private_directories,
            files,
            certificates,
            flags,
            dropped_seed_flags,
            controller_manager_flags,
            scheduler_flags,
            etcd_flags,
        } = node;
        let mut reports: BTreeMap<plan::LeafName, CertificateReport<'_>> = certificates
            .iter()
            .map(|(cert, spec)| {
                let report = CertificateReport {
                    spec: Some(spec),
                    decision: None,
                };
                (*cert, report)
            })
            .collect();
        // A decision for every planned certificate, and for one the operator supplies.
        for (cert, decision) in decisions.into_iter().flatten() {
            let report = reports.entry(*cert).or_insert(CertificateReport {
                spec: None,
                decision: None,
            });
            report.decision = Some(decision);
        }
        Self {
            name,
            ip: *ip,
            role: *role,
            serving_cert_sans,
            directories,
            private_directories,
            files,
            certificates: reports,
            flags,
            dropped_seed_flags,
            controller_manager_flags,
            scheduler_flags,
            etcd_flags,
        }
    }
}

fn plan_text(plan: &Plan, decisions: &pki::Assessment, secrets: &PlannedSecrets) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "cluster {} · Kubernetes {} · kubernetes service IP {}",
        plan.cluster, plan.kubernetes_version, plan.kubernetes_service_ip
    );
    let folder = secrets.folder.display();
    let fingerprint = secrets.ca_fingerprint.as_deref().unwrap_or_default();
    let _ = match secrets.identity {
        IdentityAction::New => writeln!(
            text,
            "secrets: a build creates a NEW cluster identity in {folder} (no CA there yet)"
        ),
        IdentityAction::Import => writeln!(
            text,
            "secrets: a build imports CA {fingerprint} (pki.importCA) into {folder}"
        ),
        IdentityAction::Reuse => writeln!(text, "secrets: {folder} holds CA {fingerprint}"),
    };
    if !secrets.create.is_empty() {
        let _ = writeln!(text, "  to create: {}", secrets.create.join(", "));
    }
    for node in plan.nodes.values() {
        node_text(&mut text, node, decisions.get(&node.name));
    }
    text
}

/// One node's section of `plan`: a client shows only its files, a master everything.
fn node_text(
    text: &mut String,
    node: &NodePlan,
    decisions: Option<&BTreeMap<plan::LeafName, pki::Decision>>,
) {
    use std::fmt::Write as _;
    let client = node.role == plan::Role::Client;
    let role = if client { "client " } else { "" };
    let _ = writeln!(text, "\n{role}node {} ({})", node.name, node.ip);
    if client {
        let _ = writeln!(
            text,
            "  the HA front only: no apiserver, no key, no credential"
        );
    }
    let ips: Vec<String> = node
        .serving_cert_sans
        .ips
        .iter()
        .map(ToString::to_string)
        .collect();
    if !client {
        let _ = writeln!(text, "  serving cert SANs:");
        let _ = writeln!(text, "    DNS: {}", node.serving_cert_sans.dns.join(", "));
        let _ = writeln!(text, "    IP:  {}", ips.join(", "));
    }
    let _ = writeln!(text, "  directories: {}", node.directories.join(", "));
    if !node.private_directories.is_empty() {
        let _ = writeln!(
            text,
            "  created 0700: {}",
            node.private_directories.join(", ")
        );
    }
    let _ = writeln!(text, "  files:");
    for (path, file) in &node.files {
        let artifact = serde_json::to_value(file.artifact)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(text, "    {:04o}  {path}  ({artifact})", file.mode);
    }
    if client {
        return;
    }
    flags_text(text, plan::Component::Apiserver, &node.flags);
    if !node.dropped_seed_flags.is_empty() {
        let _ = writeln!(text, "  seed flags left out:");
        for (name, dropped) in &node.dropped_seed_flags {
            let _ = writeln!(
                text,
                "    --{name}={}  ({})",
                dropped.seed_value, dropped.why
            );
        }
    }
    for component in [
        plan::Component::ControllerManager,
        plan::Component::Scheduler,
        plan::Component::Etcd,
    ] {
        let flags = node.component_flags(component);
        if !flags.is_empty() {
            flags_text(text, component, flags);
        }
    }
    let _ = writeln!(text, "  certificates:");
    for (cert, decision) in decisions.into_iter().flatten() {
        let _ = writeln!(text, "    {cert:<26} {decision}");
    }
    if let Some(admin) = node.certificates.get(&plan::LeafName::Admin) {
        let group = admin.organization.as_deref().unwrap_or_default();
        let why = if group == plan::SUPERUSER_GROUP {
            "a superuser no RBAC binding can revoke; from Kubernetes 1.29 kube-bundle uses a revocable group"
        } else {
            "cluster-admin through the ClusterRoleBinding of the same name in manifests/; \
             deleting it revokes every admin kubeconfig; install.sh applies the manifests \
             through the front-proxy client certificate"
        };
        let _ = writeln!(
            text,
            "  admin kubeconfig identity: {} in group {group} ({why})",
            admin.common_name
        );
    }
}

/// One component's command line, a flag a line with its reason.
fn flags_text(
    text: &mut String,
    component: plan::Component,
    flags: &BTreeMap<String, plan::PlannedFlag>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(text, "  {} flags:", component.program());
    for (name, flag) in flags {
        let _ = writeln!(
            text,
            "    --{name}={}  [{}]",
            flag.value,
            flag_reason(component, &flag.reason)
        );
    }
}

fn flag_reason(component: plan::Component, reason: &plan::FlagReason) -> String {
    use plan::FlagReason;
    match reason {
        FlagReason::Seed => "seed".into(),
        FlagReason::Translated(why) => format!("seed, translated: {why}"),
        FlagReason::Kubeadm => "kubeadm default".into(),
        FlagReason::Required(why) => format!("required: {why}"),
        FlagReason::KubeBundle(why) => format!("kube-bundle: {why}"),
        FlagReason::User => format!("{}.extraArgs", section(component)),
    }
}

/// The cluster.yaml section of a component.
fn section(component: plan::Component) -> &'static str {
    match component {
        plan::Component::Apiserver => "apiserver",
        plan::Component::ControllerManager => "controllerManager",
        plan::Component::Scheduler => "scheduler",
        plan::Component::Etcd => "etcd",
    }
}
