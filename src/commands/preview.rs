//! `check` and `plan`: what a build would do, shown before anything is written.
//!
//! `check` stops after `validate`; `plan` adds the plan and reads (never writes) the
//! secrets folder to say, per certificate, whether a build creates, reuses or re-issues it.

use std::io::Write;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::{load, prepare, report_warnings, write_out};
use crate::cli::{ConfigArgs, OutputFormat};
use crate::error::Error;
use crate::model::Cluster;
use crate::plan::{self, Plan};
use crate::secrets::{Access, SecretStore};
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
    let (validated, plan, store) = prepare(config, secrets, Access::ReadOnly, err)?;
    let cluster = &validated.cluster;
    let decisions = pki::assess(cluster, &plan, &store, OffsetDateTime::now_utc())?;
    let secrets = planned_secrets(cluster, &store)?;
    let text = match output {
        OutputFormat::Json => plan_json(&plan, &decisions, &secrets)?,
        OutputFormat::Text => plan_text(&plan, &decisions, &secrets),
    };
    write_out(out, &text)
}

/// What a build would do with the cluster-wide secrets: whose identity, what it creates.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedSecrets {
    folder: PathBuf,
    identity: IdentityAction,
    ca_fingerprint: Option<String>,
    /// Files the build creates in the folder.
    create: Vec<String>,
}

/// What a build does about the cluster CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// The plan as JSON, each certificate carrying what this build will do with it.
fn plan_json(
    plan: &Plan,
    decisions: &pki::Assessment,
    secrets: &PlannedSecrets,
) -> Result<String, Error> {
    let encode = |e: serde_json::Error| Error::Input(format!("cannot encode the plan: {e}"));
    let mut value = serde_json::to_value(plan).map_err(encode)?;
    value["secrets"] = serde_json::to_value(secrets).map_err(encode)?;
    for (node, certs) in decisions {
        for (cert, decision) in certs {
            let entry = &mut value["nodes"][node]["certificates"][cert];
            if !entry.is_object() {
                *entry = serde_json::json!({});
            }
            let decision = serde_json::to_value(decision).map_err(encode)?;
            entry["decision"] = decision;
        }
    }
    let mut json = serde_json::to_string_pretty(&value).map_err(encode)?;
    json.push('\n');
    Ok(json)
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
        let _ = writeln!(text, "  files:");
        for (path, file) in &node.files {
            let artifact = serde_json::to_value(file.artifact)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(text, "    {:04o}  {path}  ({artifact})", file.mode);
        }
        if client {
            continue;
        }
        let _ = writeln!(text, "  kube-apiserver flags:");
        for (name, flag) in &node.flags {
            let _ = writeln!(
                text,
                "    --{name}={}  [{}]",
                flag.value,
                flag_reason(&flag.reason)
            );
        }
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
        let _ = writeln!(text, "  certificates:");
        for (cert, decision) in decisions.get(&node.name).into_iter().flatten() {
            let _ = writeln!(text, "    {cert:<26} {decision}");
        }
        if let Some(admin) = node.certificates.get(plan::cert_names::ADMIN) {
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
    text
}

fn flag_reason(reason: &plan::FlagReason) -> String {
    use plan::FlagReason;
    match reason {
        FlagReason::Seed => "seed".into(),
        FlagReason::Translated(why) => format!("seed, translated: {why}"),
        FlagReason::Kubeadm => "kubeadm default".into(),
        FlagReason::Required(why) => format!("required: {why}"),
        FlagReason::KubeBundle(why) => format!("kube-bundle: {why}"),
        FlagReason::User => "apiserver.extraArgs".into(),
    }
}
