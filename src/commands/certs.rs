//! `certs expiry` and `certs renew`: the certificate lifecycle between builds.
//!
//! `expiry` reads the secrets folder; `renew` re-issues leaves there from the stored CAs,
//! and the next `build` ships them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::{load_and_plan, open_built_store, prepare, secrets_folder, to_json, write_out};
use crate::cli::{CertSelector, CertsCommand, ConfigArgs, OutputFormat, RenewArgs};
use crate::error::Error;
use crate::pki;
use crate::plan::Plan;

pub(super) fn certs(
    command: CertsCommand,
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
        CertsCommand::Renew(args) => renew(&args, out, err),
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
fn renew(args: &RenewArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let config = ConfigArgs {
        config: args.config.clone(),
        allow_untested_version: args.allow_untested_version,
    };
    let (validated, plan) = load_and_plan(&config, &[], err)?;
    check_selection(&plan, &args.certificates)?;
    let cluster = &validated.cluster;
    let dir = secrets_folder(&config.config, cluster, args.secrets.as_deref())?;
    let store = open_built_store(&dir, err)?;
    let names: Vec<String> = args.certificates.iter().map(ToString::to_string).collect();
    let renewed = pki::renew(
        cluster,
        &plan,
        &store,
        &names,
        args.reuse_keys,
        OffsetDateTime::now_utc(),
    )?;
    let mut text: String = renewed
        .iter()
        .map(|name| format!("renewed {name}\n"))
        .collect();
    text.push_str(
        "next: `kube-bundle build`, then install the bundles; only the renewed files change\n",
    );
    write_out(out, &text)
}

/// Every selector names a certificate the plan issues: on its node, or on some node. The
/// error lists what exists at the level that was wrong (the nodes, or the node's
/// certificates, or every certificate name).
fn check_selection(plan: &Plan, selection: &[CertSelector]) -> Result<(), Error> {
    for selector in selection {
        match selector {
            CertSelector::OnNode { node, cert } => {
                let Some(node_plan) = plan.nodes.get(node) else {
                    let nodes: Vec<&str> = plan.nodes.keys().map(String::as_str).collect();
                    return Err(Error::Usage(format!(
                        "{selector}: there is no node {node}; the nodes are {}",
                        nodes.join(", ")
                    )));
                };
                if node_plan.certificates.contains_key(cert) {
                    continue;
                }
                let certs: Vec<&str> = node_plan.certificates.keys().map(String::as_str).collect();
                return Err(Error::Usage(if certs.is_empty() {
                    format!(
                        "{selector}: node {node} has no certificates (a client: it runs only \
                         the HA front)"
                    )
                } else {
                    format!(
                        "{selector}: node {node} has no certificate named {cert:?}; its \
                         certificates are {}",
                        certs.join(", ")
                    )
                }));
            }
            CertSelector::Everywhere { cert } => {
                let names: BTreeSet<&str> = plan
                    .nodes
                    .values()
                    .flat_map(|p| p.certificates.keys())
                    .map(String::as_str)
                    .collect();
                if !names.contains(cert.as_str()) {
                    return Err(Error::Usage(format!(
                        "no certificate named {cert:?}; name one of {} (optionally as \
                         NODE/NAME)",
                        names.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}
