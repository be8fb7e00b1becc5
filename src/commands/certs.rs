//! `certs expiry` and `certs renew`: the certificate lifecycle between builds.
//!
//! `expiry` reads the secrets folder; `renew` re-issues leaves there from the stored CAs,
//! and the next `build` ships them.

use std::io::Write;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::{prepare, write_out};
use crate::cli::{CertsCommand, ConfigArgs, OutputFormat};
use crate::error::Error;
use crate::pki;
use crate::secrets::Access;

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
        } => {
            let (validated, plan, store) = prepare(&config, secrets, Access::ReadOnly, err)?;
            let cluster = &validated.cluster;
            let certs = pki::inventory(cluster, &plan, &store, OffsetDateTime::now_utc())?;
            if certs.is_empty() {
                return Err(Error::Input(format!(
                    "{} holds no certificates yet: run `kube-bundle build` first",
                    store.dir().display()
                )));
            }
            let text = match output {
                OutputFormat::Json => serde_json::to_string_pretty(&certs)
                    .map(|json| json + "\n")
                    .map_err(|e| Error::Input(format!("cannot encode: {e}")))?,
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
        CertsCommand::Renew {
            args,
            all,
            reuse_keys,
            secrets,
            allow_untested_version,
        } => {
            let (config, names) = match args.first() {
                Some(first) if first.ends_with(".yaml") || first.ends_with(".yml") => {
                    (PathBuf::from(first), args[1..].to_vec())
                }
                _ => (PathBuf::from("cluster.yaml"), args.clone()),
            };
            if all != names.is_empty() {
                return Err(Error::Usage(
                    "name the certificates to renew (e.g. `apiserver` or `cp1/apiserver`), or pass --all".into(),
                ));
            }
            let config = ConfigArgs {
                config,
                allow_untested_version,
            };
            let (validated, plan, store) = prepare(&config, secrets, Access::ReadWrite, err)?;
            let cluster = &validated.cluster;
            let renewed = pki::renew(
                cluster,
                &plan,
                &store,
                &names,
                reuse_keys,
                OffsetDateTime::now_utc(),
            )?;
            let mut text: String = renewed
                .iter()
                .map(|name| format!("renewed {name}\n"))
                .collect();
            text.push_str("next: `kube-bundle build`, then install the bundles; only the renewed files change\n");
            write_out(out, &text)
        }
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
