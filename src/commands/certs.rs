//! `certs expiry` and `certs renew`: the certificate lifecycle between builds.
//!
//! `expiry` reads the secrets folder; `renew` re-issues leaves there from the stored CAs,
//! and the next `build` ships them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::progress::Progress;
use super::{load_and_plan, open_built_store, prepare, secrets_folder, to_json, write_out};
use crate::cli::{CertSelector, CertsCommand, ConfigArgs, OutputFormat, RenewArgs, Verbosity};
use crate::error::Error;
use crate::pki::{self, RenewTarget};
use crate::plan::{LeafName, Plan};

pub(super) fn certs(
    command: CertsCommand,
    verbosity: Verbosity,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    match command {
        CertsCommand::Expiry {
            config,
            secrets,
            fail_under,
            output,
        } => expiry(&config, secrets, fail_under, output, out, err),
        CertsCommand::Renew(args) => renew(&args, verbosity, out, err),
    }
}

fn expiry(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    fail_under: Option<i64>,
    output: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (validated, plan, store) = prepare(config, secrets, err)?;
    let cluster = &validated.cluster;
    let certs = pki::inventory(cluster, &plan, &store, OffsetDateTime::now_utc())?;
    if certs.is_empty() {
        return Err(Error::Input(format!(
            "{} holds no certificates yet: run `kube-bundle build` first",
            store.dir().display()
        )));
    }
    let text = match output {
        OutputFormat::Json => to_json(&certs)?,
        OutputFormat::Text => expiry_table(&certs),
    };
    write_out(out, &text)?;
    let worst = certs.iter().map(|c| c.days_left).min().unwrap_or(i64::MAX);
    match fail_under {
        Some(days) if worst < days => Err(Error::Input(format!(
            "a certificate has {worst} day(s) left, under --fail-under {days}: run \
             `kube-bundle certs renew --all`, then build and install"
        ))),
        _ => Ok(()),
    }
}

fn expiry_table(certs: &[pki::CertificateStatus]) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "{:<8} {:<26} {:<12} {:>10}  {}\n",
        "NODE", "CERTIFICATE", "EXPIRES", "DAYS LEFT", "ISSUER"
    );
    for cert in certs {
        let warning = if cert.days_left < 30 {
            "  WARNING: under 30 days"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "{:<8} {:<26} {:<12} {:>10}  {}{warning}",
            cert.node.as_deref().unwrap_or("(CA)"),
            cert.name,
            cert.not_after.date().to_string(),
            cert.days_left,
            cert.issuer
        );
    }
    text
}

/// Re-issues the named leaves (or all with `--all`, which clap makes the only other
/// choice) in a secrets folder a build created. Names are checked against the plan before
/// the folder is opened.
fn renew(
    args: &RenewArgs,
    verbosity: Verbosity,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let config = ConfigArgs {
        config: args.config.clone(),
        allow_untested_version: args.allow_untested_version,
    };
    let (validated, plan) = load_and_plan(&config, &[], err)?;
    let targets = renew_targets(&plan, &args.certificates)?;
    let cluster = &validated.cluster;
    let dir = secrets_folder(&config.config, cluster, args.secrets.as_deref())?;
    let store = open_built_store(&dir, err)?;
    let leaves = plan
        .nodes
        .values()
        .flat_map(|node| {
            node.certificates
                .keys()
                .map(move |leaf| (&node.name, *leaf))
        })
        .filter(|(node, leaf)| targets.is_empty() || targets.iter().any(|t| t.selects(node, *leaf)))
        .count();
    let stage = Progress::new(verbosity).stage(format!("renewing {leaves} certificates"), leaves);
    let renewed = pki::renew_reporting(
        cluster,
        &plan,
        &store,
        &targets,
        args.reuse_keys,
        OffsetDateTime::now_utc(),
        &|name| stage.step(name),
    )?;
    stage.finish();
    let mut text: String = renewed
        .iter()
        .map(|name| format!("renewed {name}\n"))
        .collect();
    text.push_str(
        "next: `kube-bundle build`, then install the bundles; only the renewed files change\n",
    );
    write_out(out, &text)
}

/// The leaves the selectors name, each checked against the plan: on its node, or on some
/// node. The error lists what exists at the level that was wrong (the nodes, or the node's
/// certificates, or every certificate name).
fn renew_targets(plan: &Plan, selection: &[CertSelector]) -> Result<Vec<RenewTarget>, Error> {
    selection
        .iter()
        .map(|selector| match selector {
            CertSelector::OnNode { node, cert } => on_node(plan, selector, node, cert),
            CertSelector::Everywhere { cert } => everywhere(plan, cert),
        })
        .collect()
}

fn on_node(
    plan: &Plan,
    selector: &CertSelector,
    node: &str,
    cert: &str,
) -> Result<RenewTarget, Error> {
    let Some(node_plan) = plan.nodes.get(node) else {
        let nodes: Vec<&str> = plan.nodes.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "{selector}: there is no node {node}; the nodes are {}",
            nodes.join(", ")
        )));
    };
    let leaf = LeafName::parse(cert).filter(|leaf| node_plan.certificates.contains_key(leaf));
    if let Some(leaf) = leaf {
        return Ok(RenewTarget {
            node: Some(node.to_owned()),
            leaf,
        });
    }
    let certs: Vec<&str> = node_plan.certificates.keys().map(|l| l.as_str()).collect();
    Err(Error::Usage(if certs.is_empty() {
        format!("{selector}: node {node} has no certificates (a client: it runs only the HA front)")
    } else {
        format!(
            "{selector}: node {node} has no certificate named {cert:?}; its certificates are {}",
            certs.join(", ")
        )
    }))
}

fn everywhere(plan: &Plan, cert: &str) -> Result<RenewTarget, Error> {
    let names: BTreeSet<LeafName> = plan
        .nodes
        .values()
        .flat_map(|p| p.certificates.keys().copied())
        .collect();
    match LeafName::parse(cert).filter(|leaf| names.contains(leaf)) {
        Some(leaf) => Ok(RenewTarget { node: None, leaf }),
        None => Err(Error::Usage(format!(
            "no certificate named {cert:?}; name one of {} (optionally as NODE/NAME)",
            names
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
