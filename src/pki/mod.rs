//! Stage 4: every certificate and key the apiserver tier needs, issued once and reused.
//!
//! In: the [`Cluster`] (algorithms, validity, importCA, etcd mode), the [`Plan`] (what each
//! node's certificates must say) and the [`SecretStore`]. Out: a [`Pki`] holding every PEM
//! the bundles need, and per certificate a [`Decision`]: new, reused, or re-issued and why.
//!
//! [`assess`] only reads (it backs `plan`); [`provision`] also creates what is missing.
//! A stored leaf is reused while it says what the plan wants (subject, SANs, usage,
//! issuer, key algorithm) and has more than a third of its validity left, so rebuilding
//! never writes anything. Signatures are deterministic (see [`crate::keys`]), so the only
//! randomness is in keys and serials, drawn when a credential is created on purpose.
//!
//! This module holds the stage's flow and its result; `ca` loads, imports and creates
//! the CAs, `leaf` judges and issues the per-node certificates, and `lifecycle` backs
//! `certs expiry` and `certs renew`.

mod ca;
mod leaf;
mod lifecycle;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use rayon::prelude::*;
use rcgen::PublicKeyData;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::KeyAlgorithm;
use crate::error::Error;
use crate::keys::{PEM_CERTIFICATE, encode_pem, parse_key_file, parse_pem, read_pem_file};
use crate::model::{Cluster, EtcdCa};
use crate::plan::{CaName, LeafName, NodePlan, Plan, Role};
use crate::secrets::SecretStore;

use ca::{
    check_import_matches, check_signed_by, create_ca, create_intermediate, load_ca,
    load_external_ca,
};
use leaf::{issue_leaf, judge_leaf, load_external_client, load_leaf};
pub use lifecycle::{
    CertificateStatus, RenewTarget, UserCredential, inventory, issue_user, renew, renew_reporting,
};

/// Re-exported because `sign` and the benchmarks import the key type from here.
pub use crate::keys::PrivateKey;

/// kubeadm's CertificateBackdate: tolerate clocks a little behind the issuer's.
const BACKDATE: Duration = Duration::minutes(5);

// ---------------------------------------------------------------------------------------
// Stored credentials: one PEM file holding a certificate and its key

/// A certificate with its key, as stored in secrets/ and shipped in bundles.
#[derive(Debug)]
pub struct Credential {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key: PrivateKey,
}

impl Credential {
    fn stored_form(&self) -> String {
        format!("{}{}", self.cert_pem, self.key.to_pem())
    }

    /// Parses a file holding one CERTIFICATE block and one private key block.
    fn parse(text: &str) -> Result<Self, String> {
        let blocks = parse_pem(text)?;
        let certs: Vec<_> = blocks
            .iter()
            .filter(|b| b.tag() == PEM_CERTIFICATE)
            .collect();
        let keys: Vec<_> = blocks
            .iter()
            .filter(|b| b.tag() != PEM_CERTIFICATE)
            .collect();
        let ([cert], [key]) = (certs.as_slice(), keys.as_slice()) else {
            return Err(format!(
                "expected one certificate and one private key, found {} and {}",
                certs.len(),
                keys.len()
            ));
        };
        let credential = Self {
            cert_pem: encode_pem(cert),
            cert_der: cert.contents().to_vec(),
            key: PrivateKey::from_pem_block(key)?,
        };
        credential.check_key_matches()?;
        Ok(credential)
    }

    fn check_key_matches(&self) -> Result<(), String> {
        let cert = parse_cert(&self.cert_der)?;
        if cert.public_key().raw != self.key.subject_public_key_info().as_slice() {
            return Err("the private key does not belong to the certificate".into());
        }
        Ok(())
    }
}

/// One DER certificate with nothing after it.
fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(format!("not an X.509 certificate ({e})")),
    }
}

// ---------------------------------------------------------------------------------------
// Decisions

/// What happens to one certificate in this build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "reason")]
pub enum Decision {
    /// Nothing stored yet: issued now.
    New,
    /// Stored and still what the plan wants: reused byte for byte.
    Reuse,
    /// Stored but no longer right: issued again, for this reason.
    Reissue(String),
    /// Supplied by the user (external etcd): shipped as given.
    External,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::New => f.write_str("new"),
            Self::Reuse => f.write_str("reuse"),
            Self::Reissue(reason) => write!(f, "re-issue: {reason}"),
            Self::External => f.write_str("external (your file)"),
        }
    }
}

/// Per node, per certificate name, what a build will do.
pub type Assessment = BTreeMap<String, BTreeMap<LeafName, Decision>>;

// ---------------------------------------------------------------------------------------
// The result

/// Every PEM the bundles need.
pub struct Pki {
    /// Every CA certificate the bundles carry: the cluster's and the front proxy's always,
    /// etcd's when it is not the cluster CA (kube-bundle's own, or the operator's file).
    ca_certs: BTreeMap<CaName, String>,
    /// The CSR signer's key, when the controller manager runs; no other CA key leaves
    /// secrets/.
    pub cluster_signer_key_pem: Option<String>,
    pub service_account_key_pem: String,
    pub service_account_pub_pem: String,
    /// Per node, per certificate name (plan's names), the leaf and its key.
    pub nodes: BTreeMap<String, BTreeMap<LeafName, Credential>>,
    pub decisions: Assessment,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The service-account key is left out: key material never reaches logs.
        f.debug_struct("Pki")
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .field("decisions", &self.decisions)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// When the newest of `node`'s own leaves was issued (its notBefore plus the backdate),
    /// as Unix seconds: that node's bundle timestamp when SOURCE_DATE_EPOCH is not set, so a
    /// rebuild from the same secrets gives the same bytes, and renewing one node's
    /// certificate leaves every other node's bundle byte for byte as it was. A node without
    /// leaves (the HA front's client) takes the cluster CA's issue time.
    pub fn issued_at(&self, node: &str) -> u64 {
        let not_before = |der: &[u8]| {
            parse_cert(der)
                .ok()
                .map(|c| c.validity().not_before.to_datetime())
        };
        let newest_leaf = self
            .nodes
            .get(node)
            .into_iter()
            .flat_map(|leaves| leaves.values())
            .filter_map(|leaf| not_before(&leaf.cert_der))
            .max();
        let issued = newest_leaf.or_else(|| {
            pem::parse(self.ca_cert_pem(CaName::Cluster)?)
                .ok()
                .and_then(|ca| not_before(ca.contents()))
        });
        issued.map_or(0, |not_before| {
            u64::try_from((not_before + BACKDATE).unix_timestamp()).unwrap_or(0)
        })
    }

    /// The stored CA certificate for `name`.
    pub fn ca_cert_pem(&self, name: CaName) -> Option<&str> {
        self.ca_certs.get(&name).map(String::as_str)
    }
}

impl Pki {
    /// The cluster's identity: sha256 of the cluster CA certificate's DER.
    pub fn ca_fingerprint(&self) -> Result<String, Error> {
        let cluster_ca = self
            .ca_cert_pem(CaName::Cluster)
            .ok_or_else(|| Error::Internal("no cluster CA".into()))?;
        let der = parse_pem(cluster_ca)
            .ok()
            .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == PEM_CERTIFICATE))
            .ok_or_else(|| Error::Internal("the cluster CA is not a PEM certificate".into()))?;
        Ok(crate::sign::sha256_hex(der.contents()))
    }
}

/// Where the cluster's identity comes from before a build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The CA stored in secrets/, with its fingerprint.
    Stored(String),
    /// No CA stored yet; `pki.importCA` names this one, with its fingerprint.
    Imported(String),
    /// No CA stored and none to import: a build creates a new one.
    New,
}

impl Identity {
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            Self::Stored(fingerprint) | Self::Imported(fingerprint) => Some(fingerprint),
            Self::New => None,
        }
    }
}

/// The cluster CA a build will use, read without writing anything.
pub fn cluster_identity(cluster: &Cluster, store: &SecretStore) -> Result<Identity, Error> {
    let file = ca_file(CaName::Cluster);
    if let Some(text) = store.read_text(&file)? {
        let ca = Credential::parse(&text).map_err(|why| corrupt(store, &file, &why))?;
        return Ok(Identity::Stored(crate::sign::sha256_hex(&ca.cert_der)));
    }
    let Some(import) = &cluster.pki.import_ca else {
        return Ok(Identity::New);
    };
    let certs = read_pem_file(&import.cert)?;
    let cert = certs
        .iter()
        .find(|b| b.tag() == PEM_CERTIFICATE)
        .ok_or_else(|| Error::Input(format!("{}: no CERTIFICATE block", import.cert.display())))?;
    Ok(Identity::Imported(crate::sign::sha256_hex(cert.contents())))
}

/// The cluster-wide secrets a build would create because the store lacks them (leaves
/// are in the per-certificate decisions): CAs and the service-account key.
pub fn missing_cluster_secrets(
    cluster: &Cluster,
    store: &SecretStore,
) -> Result<Vec<String>, Error> {
    let mut files: Vec<String> = needed_cas(cluster).into_iter().map(ca_file).collect();
    files.push(SERVICE_ACCOUNT_FILE.to_owned());
    let mut missing = Vec::new();
    for file in files {
        if store.read(&file)?.is_none() {
            missing.push(file);
        }
    }
    Ok(missing)
}

fn ca_file(name: CaName) -> String {
    format!("{}.pem", name.file_stem())
}

fn leaf_file(node: &str, cert: LeafName) -> String {
    format!("nodes/{node}/{cert}.pem")
}

const SERVICE_ACCOUNT_FILE: &str = "sa.pem";

/// The CAs this cluster needs in secrets/.
fn needed_cas(cluster: &Cluster) -> Vec<CaName> {
    let mut cas = vec![CaName::Cluster, CaName::FrontProxy];
    if cluster.etcd.ca == EtcdCa::Separate {
        cas.push(CaName::Etcd);
    }
    if cluster.controller_manager.is_some() {
        cas.push(CaName::ClusterSigner);
    }
    cas
}

/// What secrets/ holds, read once: the CAs, the stored leaves worth reusing, and the
/// decision for every certificate.
struct Survey {
    cas: BTreeMap<CaName, Credential>,
    reusable: BTreeMap<String, BTreeMap<LeafName, Credential>>,
    assessment: Assessment,
}

/// Reads what secrets/ holds and decides, per certificate, what a build would do.
/// Reads only; an absent store means every certificate is new.
pub fn assess(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
) -> Result<Assessment, Error> {
    survey(cluster, plan, store, now).map(|survey| survey.assessment)
}

/// One node's decisions, and the stored leaves it can reuse.
type JudgedNode = (
    String,
    BTreeMap<LeafName, Decision>,
    BTreeMap<LeafName, Credential>,
);

fn survey(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
) -> Result<Survey, Error> {
    let mut cas = BTreeMap::new();
    for name in needed_cas(cluster) {
        if let Some(ca) = load_ca(store, name, now)? {
            cas.insert(name, ca);
        }
    }
    if let Some(import) = &cluster.pki.import_ca {
        check_import_matches(store, cas.get(&CaName::Cluster), import)?;
    }
    // Every stored intermediate and leaf is checked against its CA's certificate: parse
    // each CA once.
    let ca_certs = cas
        .iter()
        .map(|(name, ca)| parse_cert(&ca.cert_der).map(|cert| (*name, cert)))
        .collect::<Result<BTreeMap<_, _>, String>>()
        .map_err(Error::Input)?;
    for (name, cert) in &ca_certs {
        if let Some(parent) = name.parent().and_then(|parent| ca_certs.get(&parent)) {
            check_signed_by(store, *name, cert, parent)?;
        }
    }
    // Parsing keys and checking signatures dominates a build that reuses everything:
    // nodes are judged in parallel.
    let judged: Vec<JudgedNode> = plan
        .nodes
        .par_iter()
        .map(|(node, node_plan)| {
            let mut decisions = BTreeMap::new();
            let mut reusable = BTreeMap::new();
            for (cert, spec) in &node_plan.certificates {
                let stored = match ca_certs.get(&spec.issuer) {
                    None => None,
                    Some(ca) => load_leaf(store, node, *cert)?.map(|leaf| (ca, leaf)),
                };
                let decision = match stored {
                    None => Decision::New,
                    Some((ca, leaf)) => {
                        let decision = judge_leaf(&leaf, spec, ca, cluster.pki.key_algorithm, now)?;
                        if decision == Decision::Reuse {
                            reusable.insert(*cert, leaf);
                        }
                        decision
                    }
                };
                decisions.insert(*cert, decision);
            }
            if matches!(cluster.etcd.ca, EtcdCa::External { .. }) && node_plan.role == Role::Master
            {
                decisions.insert(LeafName::ApiserverEtcdClient, Decision::External);
            }
            Ok((node.clone(), decisions, reusable))
        })
        .collect::<Result<_, Error>>()?;
    drop(ca_certs);
    let mut survey = Survey {
        cas,
        reusable: BTreeMap::new(),
        assessment: Assessment::new(),
    };
    for (node, decisions, reusable) in judged {
        survey.assessment.insert(node.clone(), decisions);
        survey.reusable.insert(node, reusable);
    }
    Ok(survey)
}

/// Creates whatever secrets/ lacks (CAs, the service-account key, leaves), re-issues
/// leaves that no longer fit, and returns every PEM the bundles need.
pub fn provision(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
) -> Result<Pki, Error> {
    provision_reporting(cluster, plan, store, now, &|| {})
}

/// [`provision`], calling `key_made` (from any thread) each time a new private key exists:
/// key generation is what a first build waits for, and someone watching wants the count.
pub fn provision_reporting(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
    key_made: &(dyn Fn() + Sync),
) -> Result<Pki, Error> {
    let Survey {
        mut cas,
        mut reusable,
        assessment: decisions,
    } = survey(cluster, plan, store, now)?;
    let new_keys = new_key_count(cluster, store, &cas, &decisions)?;
    let keys = KeyPool::fill(cluster.pki.key_algorithm, new_keys, key_made)?;
    let service_account = ensure_cluster_secrets(cluster, store, &mut cas, now, &keys)?;
    let issuing = Issuing {
        cluster,
        store,
        cas: &cas,
        now,
        keys: &keys,
    };
    // Each node takes its own reusable leaves, so the nodes can be provisioned in parallel.
    let pending: Vec<_> = plan
        .nodes
        .iter()
        .map(|(node, node_plan)| (node, node_plan, reusable.remove(node).unwrap_or_default()))
        .collect();
    let nodes = pending
        .into_par_iter()
        .map(|(node, node_plan, reused)| {
            let leaves = issuing.node_leaves(node, node_plan, reused)?;
            Ok((node.clone(), leaves))
        })
        .collect::<Result<BTreeMap<_, _>, Error>>()?;

    // The one CA key a bundle carries: the CSR signer's, for the controller manager.
    let cluster_signer_key_pem = cas.get(&CaName::ClusterSigner).map(|ca| ca.key.to_pem());
    let mut ca_certs: BTreeMap<CaName, String> = cas
        .into_iter()
        .map(|(name, ca)| (name, ca.cert_pem))
        .collect();
    if let EtcdCa::External { ca, .. } = &cluster.etcd.ca {
        ca_certs.insert(CaName::Etcd, load_external_ca(ca)?);
    }
    Ok(Pki {
        ca_certs,
        cluster_signer_key_pem,
        service_account_pub_pem: service_account.public_key_pem(),
        service_account_key_pem: service_account.to_pem(),
        nodes,
        decisions,
    })
}

/// Creates and stores the CAs `cas` lacks (adding them to it), and reads or creates the
/// service-account key, which it returns.
fn ensure_cluster_secrets(
    cluster: &Cluster,
    store: &SecretStore,
    cas: &mut BTreeMap<CaName, Credential>,
    now: OffsetDateTime,
    keys: &KeyPool,
) -> Result<PrivateKey, Error> {
    // Roots first (in parallel: an import reads and checks files), then the intermediates
    // their parents sign. Nothing is stored until every one exists, so a CA that fails to
    // import leaves secrets/ untouched.
    let (missing, missing_intermediates): (Vec<CaName>, Vec<CaName>) = missing_cas(cluster, cas)
        .into_iter()
        .partition(|name| name.parent().is_none());
    let (created, service_account) = rayon::join(
        || {
            missing
                .par_iter()
                .map(|&name| Ok((name, create_ca(cluster, name, now, keys)?)))
                .collect::<Result<Vec<_>, Error>>()
        },
        || -> Result<(PrivateKey, bool), Error> {
            match store.read_text(SERVICE_ACCOUNT_FILE)? {
                Some(text) => parse_key_file(&text)
                    .map(|key| (key, false))
                    .map_err(|why| corrupt(store, SERVICE_ACCOUNT_FILE, &why)),
                None => Ok((keys.take()?, true)),
            }
        },
    );
    let (service_account, is_new) = service_account?;
    let mut created = created?;
    for name in missing_intermediates {
        let parent = name
            .parent()
            .and_then(|parent| {
                cas.get(&parent)
                    .or_else(|| created.iter().find(|(n, _)| *n == parent).map(|(_, ca)| ca))
            })
            .ok_or_else(|| Error::Internal(format!("{name:?} has no parent CA")))?;
        let ca = create_intermediate(cluster, name, parent, now, keys)?;
        created.push((name, ca));
    }
    for (name, ca) in created {
        store.write(&ca_file(name), ca.stored_form().as_bytes())?;
        cas.insert(name, ca);
    }
    if is_new {
        store.write(SERVICE_ACCOUNT_FILE, service_account.to_pem().as_bytes())?;
    }
    Ok(service_account)
}

/// How many private keys `provision` will generate, for a progress line.
pub fn keys_to_make(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    now: OffsetDateTime,
) -> Result<usize, Error> {
    let survey = survey(cluster, plan, store, now)?;
    new_key_count(cluster, store, &survey.cas, &survey.assessment)
}

/// One key per new or re-issued leaf and per missing CA or service-account key, except a
/// cluster CA about to be imported.
fn new_key_count(
    cluster: &Cluster,
    store: &SecretStore,
    cas: &BTreeMap<CaName, Credential>,
    assessment: &Assessment,
) -> Result<usize, Error> {
    let leaves = assessment
        .values()
        .flat_map(BTreeMap::values)
        .filter(|d| matches!(d, Decision::New | Decision::Reissue(_)))
        .count();
    let imported = cluster.pki.import_ca.is_some() && !cas.contains_key(&CaName::Cluster);
    Ok(
        leaves + missing_cas(cluster, cas).len() - usize::from(imported)
            + usize::from(store.read(SERVICE_ACCOUNT_FILE)?.is_none()),
    )
}

/// The CAs this cluster needs that `cas` does not hold yet.
fn missing_cas(cluster: &Cluster, cas: &BTreeMap<CaName, Credential>) -> Vec<CaName> {
    needed_cas(cluster)
        .into_iter()
        .filter(|name| !cas.contains_key(name))
        .collect()
}

/// The build's new private keys, made up front on every core at once. Keys are the slow
/// part of a first build (an RSA-2048 key takes tens of milliseconds, and how long varies
/// widely), and made where each is used (per CA, then per node, each node's in turn)
/// they leave cores idle: three nodes on two cores have one core make two nodes' keys
/// while the other waits. Keys are interchangeable, so any order of handing them out is
/// as good as any other.
struct KeyPool<'a> {
    algorithm: KeyAlgorithm,
    ready: Mutex<Vec<PrivateKey>>,
    key_made: &'a (dyn Fn() + Sync),
}

impl<'a> KeyPool<'a> {
    fn fill(
        algorithm: KeyAlgorithm,
        count: usize,
        key_made: &'a (dyn Fn() + Sync),
    ) -> Result<Self, Error> {
        let ready = (0..count)
            .into_par_iter()
            .map(|_| {
                let key = PrivateKey::generate(algorithm)?;
                key_made();
                Ok(key)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            algorithm,
            ready: Mutex::new(ready),
            key_made,
        })
    }

    /// A key from the pool; a new one when the count made up front fell short.
    fn take(&self) -> Result<PrivateKey, Error> {
        let pooled = self
            .ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match pooled {
            Some(key) => Ok(key),
            None => {
                let key = PrivateKey::generate(self.algorithm)?;
                (self.key_made)();
                Ok(key)
            }
        }
    }
}

/// What issuing a node's leaves needs from the build: the same for every node.
struct Issuing<'a> {
    cluster: &'a Cluster,
    store: &'a SecretStore,
    cas: &'a BTreeMap<CaName, Credential>,
    now: OffsetDateTime,
    keys: &'a KeyPool<'a>,
}

impl Issuing<'_> {
    /// One node's leaves: the `reused` ones as stored, the others issued and stored now, and
    /// on a master the external etcd client certificate when etcd is external.
    fn node_leaves(
        &self,
        node: &str,
        node_plan: &NodePlan,
        mut reused: BTreeMap<LeafName, Credential>,
    ) -> Result<BTreeMap<LeafName, Credential>, Error> {
        let Self {
            cluster,
            store,
            cas,
            now,
            keys,
        } = *self;
        let mut leaves = BTreeMap::new();
        for (cert, spec) in &node_plan.certificates {
            let leaf = match reused.remove(cert) {
                Some(leaf) => leaf,
                None => {
                    let ca = cas.get(&spec.issuer).ok_or_else(|| {
                        Error::Internal(format!(
                            "{cert} wants CA {:?}, which this cluster lacks",
                            spec.issuer
                        ))
                    })?;
                    let leaf = issue_leaf(spec, ca, keys.take()?, cluster.pki.cert_validity, now)?;
                    store.write(&leaf_file(node, *cert), leaf.stored_form().as_bytes())?;
                    leaf
                }
            };
            leaves.insert(*cert, leaf);
        }
        if let EtcdCa::External { cert, key, .. } = &cluster.etcd.ca
            && node_plan.role == Role::Master
        {
            leaves.insert(
                LeafName::ApiserverEtcdClient,
                load_external_client(cert, key)?,
            );
        }
        Ok(leaves)
    }
}

/// rcgen refused to build or sign a certificate kube-bundle described from a validated
/// plan: a signing failure is the crypto library's; anything else means we described the
/// certificate wrongly, a bug.
fn certificate_failed(what: &str, error: rcgen::Error) -> Error {
    match error {
        rcgen::Error::RingUnspecified
        | rcgen::Error::RingKeyRejected(_)
        | rcgen::Error::RemoteKeyError => Error::Crypto(format!("{what}: {error}")),
        _ => Error::Internal(format!("{what}: {error}")),
    }
}

pub(crate) fn corrupt(store: &SecretStore, name: &str, why: &str) -> Error {
    Error::Input(format!(
        "{}: {why}. kube-bundle never overwrites secret material: restore the file from \
         backup, or move it away to have it created anew",
        store.path(name).display()
    ))
}

fn date(time: OffsetDateTime) -> String {
    format!("{}", time.date())
}
