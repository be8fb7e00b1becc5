//! The PKI stage after the build: what is stored and when it expires (`certs expiry`), and
//! re-issuing chosen leaves from the stored CAs (`certs renew`).

use serde::Serialize;
use time::OffsetDateTime;

use super::ca::load_ca;
use super::leaf::{issue_leaf, load_leaf};
use super::{Credential, ca_file, corrupt, leaf_file, needed_cas, parse_cert};
use crate::error::Error;
use crate::keys::PrivateKey;
use crate::model::Cluster;
use crate::plan::{CaName, CertSpec, LeafName, Plan};
use crate::secrets::SecretStore;

/// One stored certificate, for `certs expiry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// None for the CAs.
    pub node: Option<String>,
    pub name: String,
    pub subject: String,
    pub issuer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whole days left (negative once expired).
    pub days_left: i64,
}

/// Every CA and leaf stored for this cluster, CAs first. Reads only.
pub fn inventory(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
) -> Result<Vec<CertificateStatus>, Error> {
    let mut found = Vec::new();
    let mut push = |node: Option<&str>, name: &str, file: &str| -> Result<(), Error> {
        let Some(text) = store.read_text(file)? else {
            return Ok(());
        };
        let credential = Credential::parse(&text).map_err(|why| corrupt(store, file, &why))?;
        let cert = parse_cert(&credential.cert_der).map_err(Error::Input)?;
        let not_after = cert.validity().not_after.to_datetime();
        found.push(CertificateStatus {
            node: node.map(str::to_owned),
            name: name.to_owned(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after,
            days_left: (not_after - now).whole_days(),
        });
        Ok(())
    };
    for ca in needed_cas(cluster) {
        push(None, ca.file_stem(), &ca_file(ca))?;
    }
    for (node, node_plan) in &plan.nodes {
        for cert in node_plan.certificates.keys() {
            push(Some(node), cert.as_str(), &leaf_file(node, *cert))?;
        }
    }
    Ok(found)
}

/// A leaf `certs renew` re-issues: on one node, or on every node that has it. The command
/// line checks the names against the plan before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewTarget {
    pub node: Option<String>,
    pub leaf: LeafName,
}

impl RenewTarget {
    pub fn selects(&self, node: &str, leaf: LeafName) -> bool {
        self.leaf == leaf && self.node.as_deref().is_none_or(|n| n == node)
    }
}

/// Re-issues the selected leaves from the stored CAs with what the plan wants now:
/// new keys unless `reuse_keys`. An empty selection means every leaf. Returns what was
/// renewed, as `node/name`.
pub fn renew(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    selection: &[RenewTarget],
    reuse_keys: bool,
    now: OffsetDateTime,
) -> Result<Vec<String>, Error> {
    renew_reporting(cluster, plan, store, selection, reuse_keys, now, &|_| {})
}

/// [`renew`], calling `renewed_one` with `node/name` after each leaf is stored: with new
/// RSA keys a renewal of every leaf takes seconds, and someone watching wants the count.
pub fn renew_reporting(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    selection: &[RenewTarget],
    reuse_keys: bool,
    now: OffsetDateTime,
    renewed_one: &dyn Fn(&str),
) -> Result<Vec<String>, Error> {
    let mut renewed = Vec::new();
    for (node, node_plan) in &plan.nodes {
        for (&cert, spec) in &node_plan.certificates {
            let wanted = selection.is_empty() || selection.iter().any(|t| t.selects(node, cert));
            if !wanted {
                continue;
            }
            let ca = load_ca(store, spec.issuer, now)?.ok_or_else(|| {
                Error::Input(format!(
                    "no {} CA in {} yet: run `kube-bundle build` first",
                    spec.issuer.file_stem(),
                    store.dir().display()
                ))
            })?;
            let key = match (reuse_keys, load_leaf(store, node, cert)?) {
                (true, Some(existing)) => existing.key,
                _ => PrivateKey::generate(cluster.pki.key_algorithm)?,
            };
            let leaf = issue_leaf(spec, &ca, key, cluster.pki.cert_validity, now)?;
            store.write(&leaf_file(node, cert), leaf.stored_form().as_bytes())?;
            let name = format!("{node}/{cert}");
            renewed_one(&name);
            renewed.push(name);
        }
    }
    Ok(renewed)
}

/// A client credential for a person or a tool (`kubeconfig user`): issued from the stored
/// cluster CA and handed out, never stored, so secrets/ holds only what bundles ship.
pub struct UserCredential {
    pub ca_cert_pem: String,
    pub credential: Credential,
    pub not_after: OffsetDateTime,
}

/// Issues `spec` (a client certificate) from the stored cluster CA, with a new key of the
/// cluster's algorithm. Reads secrets/ only.
pub fn issue_user(
    cluster: &Cluster,
    store: &SecretStore,
    spec: &CertSpec,
    validity: std::time::Duration,
    now: OffsetDateTime,
) -> Result<UserCredential, Error> {
    let ca = load_ca(store, CaName::Cluster, now)?.ok_or_else(|| {
        Error::Input(format!(
            "no cluster CA in {} yet: run `kube-bundle build` first",
            store.dir().display()
        ))
    })?;
    let key = PrivateKey::generate(cluster.pki.key_algorithm)?;
    let credential = issue_leaf(spec, &ca, key, validity, now)?;
    let not_after = parse_cert(&credential.cert_der)
        .map_err(Error::Internal)?
        .validity()
        .not_after
        .to_datetime();
    Ok(UserCredential {
        ca_cert_pem: ca.cert_pem,
        credential,
        not_after,
    })
}
