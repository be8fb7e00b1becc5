//! Stage 4: every certificate and key the apiserver tier needs, issued once and reused.
//!
//! In: the [`Cluster`] (algorithms, validity, importCA, etcd mode), the [`Plan`] (what each
//! node's certificates must say) and the [`SecretStore`]. Out: a [`Pki`] holding every PEM
//! the bundles need, and per certificate a [`Decision`]: new, reused, or re-issued and why.
//!
//! [`assess`] only reads (it backs `plan`); [`provision`] also creates what is missing.
//! A stored leaf is reused while it says what the plan wants (subject, SANs, usage,
//! issuer, key algorithm) and has more than a third of its validity left, so rebuilding
//! never writes anything. ECDSA signatures use RFC 6979 (deterministic) and RSA uses
//! PKCS#1 v1.5 (deterministic), so the only randomness is in keys and serials, drawn when
//! a credential is created on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use p256::pkcs8::DecodePrivateKey;
use rayon::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData,
    RsaKeySize, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::KeyAlgorithm;
use crate::error::Error;
use crate::model::{Cluster, EtcdCa};
use crate::plan::{CaName, CertSpec, Plan, Purpose};
use crate::secrets::{SecretStore, random_bytes};

/// kubeadm's CertificateBackdate: tolerate clocks a little behind the issuer's.
const BACKDATE: Duration = Duration::minutes(5);

const PEM_CERTIFICATE: &str = "CERTIFICATE";
const PEM_PRIVATE_KEY: &str = "PRIVATE KEY";
const PEM_EC_PRIVATE_KEY: &str = "EC PRIVATE KEY";
const PEM_RSA_PRIVATE_KEY: &str = "RSA PRIVATE KEY";
const PEM_PUBLIC_KEY: &str = "PUBLIC KEY";

// ---------------------------------------------------------------------------------------
// Keys

/// A private key kube-bundle can sign with: ECDSA P-256 (RFC 6979) or RSA.
pub struct PrivateKey {
    kind: KeyKind,
    /// The PEM block as stored: our own keys are PKCS#8; imported keys keep their encoding.
    pem: pem::Pem,
}

enum KeyKind {
    EcdsaP256 {
        key: p256::ecdsa::SigningKey,
        public_point: Vec<u8>,
    },
    Rsa(KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even in debug output.
        write!(f, "PrivateKey({})", self.algorithm_name())
    }
}

impl PrivateKey {
    /// Creates a fresh key from the OS random source (through aws-lc).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let failed = |e: rcgen::Error| Error::Input(format!("key generation failed: {e}"));
        let pair = match algorithm {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            KeyAlgorithm::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        }
        .map_err(failed)?;
        let block = pem::Pem::new(PEM_PRIVATE_KEY, pair.serialize_der());
        Self::from_pem_block(&block).map_err(|why| Error::Input(format!("generated key: {why}")))
    }

    /// Reads a PEM private key block: PKCS#8, SEC1 (EC) or PKCS#1 (RSA), unencrypted.
    fn from_pem_block(block: &pem::Pem) -> Result<Self, String> {
        let der = block.contents();
        let encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        if encrypted || block.tag() == "ENCRYPTED PRIVATE KEY" {
            return Err(
                "the key is password-protected; export it without a passphrase \
                        (openssl pkey -in KEY -out PLAIN)"
                    .into(),
            );
        }
        let kind = match block.tag() {
            PEM_PRIVATE_KEY => match p256::ecdsa::SigningKey::from_pkcs8_der(der) {
                Ok(key) => ecdsa(key),
                Err(_) => rsa(PrivateKeyDer::Pkcs8(der.to_vec().into()))?,
            },
            PEM_EC_PRIVATE_KEY => {
                let secret = p256::SecretKey::from_sec1_der(der)
                    .map_err(|_| "not a P-256 EC key (only P-256 ECDSA keys are supported)")?;
                ecdsa(secret.into())
            }
            PEM_RSA_PRIVATE_KEY => rsa(PrivateKeyDer::Pkcs1(der.to_vec().into()))?,
            other => return Err(format!("a '{other}' PEM block is not a private key")),
        };
        Ok(Self {
            kind,
            pem: block.clone(),
        })
    }

    /// Reads a file holding exactly one unencrypted private key block.
    pub fn from_pem_text(text: &str) -> Result<Self, String> {
        parse_key_file(text)
    }

    /// The key as PEM, in the encoding it was created or imported with.
    pub fn to_pem(&self) -> String {
        encode_pem(&self.pem)
    }

    /// The public half as a PKIX `PUBLIC KEY` PEM (sa.pub, signing.pub).
    pub fn public_key_pem(&self) -> String {
        encode_pem(&pem::Pem::new(
            PEM_PUBLIC_KEY,
            self.subject_public_key_info(),
        ))
    }

    pub fn algorithm_name(&self) -> &'static str {
        match &self.kind {
            KeyKind::EcdsaP256 { .. } => "ecdsa-p256",
            KeyKind::Rsa(pair) => match pair.public_key_raw().len() {
                // RSAPublicKey DER: modulus plus a little framing.
                0..=300 => "rsa-2048",
                301..=430 => "rsa-3072",
                _ => "rsa-4096",
            },
        }
    }

    /// Signs a SHA-256 digest computed elsewhere (a streamed file): ECDSA P-256 only,
    /// deterministic DER signature (RFC 6979).
    pub fn sign_sha256_prehash(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        match &self.kind {
            KeyKind::EcdsaP256 { key, .. } => {
                let signature: p256::ecdsa::DerSignature = key
                    .sign_prehash(digest)
                    .map_err(|e| Error::Input(format!("signing failed: {e}")))?;
                Ok(signature.as_bytes().to_vec())
            }
            KeyKind::Rsa(_) => Err(Error::Internal("prehash signing needs an ECDSA key".into())),
        }
    }

    /// Signs `message` with SHA-256; for ECDSA a deterministic DER signature (RFC 6979).
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign(message)
            .map_err(|e| Error::Input(format!("signing failed: {e}")))
    }
}

fn ecdsa(key: p256::ecdsa::SigningKey) -> KeyKind {
    let public_point = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
    KeyKind::EcdsaP256 { key, public_point }
}

fn rsa(der: PrivateKeyDer<'_>) -> Result<KeyKind, String> {
    KeyPair::from_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
        .map(KeyKind::Rsa)
        .map_err(|_| "not a P-256 ECDSA or RSA private key, or a damaged one".into())
}

impl PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.kind {
            KeyKind::EcdsaP256 { public_point, .. } => public_point,
            KeyKind::Rsa(pair) => pair.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match &self.kind {
            KeyKind::EcdsaP256 { .. } => &PKCS_ECDSA_P256_SHA256,
            KeyKind::Rsa(_) => &PKCS_RSA_SHA256,
        }
    }
}

impl SigningKey for PrivateKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match &self.kind {
            KeyKind::EcdsaP256 { key, .. } => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::DerSignature = key.sign(message);
                Ok(signature.as_bytes().to_vec())
            }
            KeyKind::Rsa(pair) => pair.sign(message),
        }
    }
}

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

/// PEM with LF line endings, as every Unix tool writes it (the pem crate defaults to CRLF).
fn encode_pem(block: &pem::Pem) -> String {
    pem::encode_config(
        block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn cert_pem(der: &[u8]) -> String {
    encode_pem(&pem::Pem::new(PEM_CERTIFICATE, der.to_vec()))
}

/// Parses every PEM block; a BEGIN without its END (a truncated file) is an error, where
/// the pem crate alone would skip the broken block silently.
fn parse_pem(text: &str) -> Result<Vec<pem::Pem>, String> {
    let begins = text.matches("-----BEGIN ").count();
    let ends = text.matches("-----END ").count();
    let blocks = pem::parse_many(text).map_err(|e| format!("not valid PEM ({e}); truncated?"))?;
    if begins != ends || blocks.len() != begins {
        return Err("not valid PEM: a block is cut off or damaged; is the file truncated?".into());
    }
    Ok(blocks)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(format!("not an X.509 certificate ({e})")),
    }
}

fn read_pem_file(path: &std::path::Path) -> Result<Vec<pem::Pem>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_pem(&text).map_err(|why| Error::Input(format!("{}: {why}", path.display())))
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
pub type Assessment = BTreeMap<String, BTreeMap<String, Decision>>;

// ---------------------------------------------------------------------------------------
// The result

/// Every PEM the bundles need.
pub struct Pki {
    pub ca_cert_pem: String,
    pub front_proxy_ca_cert_pem: String,
    /// The CA etcd's server certificate chains to, when it is not the cluster CA.
    pub etcd_ca_cert_pem: Option<String>,
    pub service_account_key_pem: String,
    pub service_account_pub_pem: String,
    /// Per node, per certificate name (plan's names), the leaf and its key.
    pub nodes: BTreeMap<String, BTreeMap<String, Credential>>,
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
            pem::parse(&self.ca_cert_pem)
                .ok()
                .and_then(|ca| not_before(ca.contents()))
        });
        issued.map_or(0, |not_before| {
            u64::try_from((not_before + BACKDATE).unix_timestamp()).unwrap_or(0)
        })
    }

    /// The stored CA certificate for `name`.
    pub fn ca_cert_pem(&self, name: CaName) -> Option<&str> {
        match name {
            CaName::Cluster => Some(&self.ca_cert_pem),
            CaName::FrontProxy => Some(&self.front_proxy_ca_cert_pem),
            CaName::Etcd => self.etcd_ca_cert_pem.as_deref(),
        }
    }
}

impl Pki {
    /// The cluster's identity: sha256 of the cluster CA certificate's DER.
    pub fn ca_fingerprint(&self) -> Result<String, Error> {
        let der = parse_pem(&self.ca_cert_pem)
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

fn leaf_file(node: &str, cert: &str) -> String {
    format!("nodes/{node}/{cert}.pem")
}

const SERVICE_ACCOUNT_FILE: &str = "sa.pem";

/// The CAs this cluster needs in secrets/.
fn needed_cas(cluster: &Cluster) -> Vec<CaName> {
    let mut cas = vec![CaName::Cluster, CaName::FrontProxy];
    if cluster.etcd.ca == EtcdCa::Separate {
        cas.push(CaName::Etcd);
    }
    cas
}

/// What secrets/ holds, read once: the CAs, the stored leaves worth reusing, and the
/// decision for every certificate.
struct Survey {
    cas: BTreeMap<CaName, Credential>,
    reusable: BTreeMap<String, BTreeMap<String, Credential>>,
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
    BTreeMap<String, Decision>,
    BTreeMap<String, Credential>,
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
    // Parsing keys and checking signatures dominates a build that reuses everything:
    // nodes are judged in parallel.
    let judged: Vec<JudgedNode> = plan
        .nodes
        .par_iter()
        .map(|(node, node_plan)| {
            let mut decisions = BTreeMap::new();
            let mut reusable = BTreeMap::new();
            for (cert, spec) in &node_plan.certificates {
                let stored = match cas.get(&spec.issuer) {
                    None => None,
                    Some(ca) => load_leaf(store, node, cert)?.map(|leaf| (ca, leaf)),
                };
                let decision = match stored {
                    None => Decision::New,
                    Some((ca, leaf)) => {
                        let decision = judge_leaf(&leaf, spec, ca, cluster.pki.key_algorithm, now)?;
                        if decision == Decision::Reuse {
                            reusable.insert(cert.clone(), leaf);
                        }
                        decision
                    }
                };
                decisions.insert(cert.clone(), decision);
            }
            if matches!(cluster.etcd.ca, EtcdCa::External { .. })
                && node_plan.role == crate::plan::Role::Master
            {
                decisions.insert(
                    crate::plan::cert_names::ETCD_CLIENT.to_owned(),
                    Decision::External,
                );
            }
            Ok((node.clone(), decisions, reusable))
        })
        .collect::<Result<_, Error>>()?;
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
    let Survey {
        mut cas,
        mut reusable,
        assessment: decisions,
    } = survey(cluster, plan, store, now)?;
    let missing: Vec<CaName> = needed_cas(cluster)
        .into_iter()
        .filter(|name| !cas.contains_key(name))
        .collect();
    // New keys are the slow part of a first build (RSA-2048 takes ~100 ms): make them in
    // parallel, the service-account key beside the CAs. Nothing is stored until every one
    // exists, so a CA that fails to import leaves secrets/ untouched.
    let (created, service_account) = rayon::join(
        || {
            missing
                .par_iter()
                .map(|&name| create_ca(cluster, name, now).map(|ca| (name, ca)))
                .collect::<Result<Vec<_>, Error>>()
        },
        || -> Result<(PrivateKey, bool), Error> {
            match store.read_text(SERVICE_ACCOUNT_FILE)? {
                Some(text) => parse_key_file(&text)
                    .map(|key| (key, false))
                    .map_err(|why| corrupt(store, SERVICE_ACCOUNT_FILE, &why)),
                None => Ok((PrivateKey::generate(cluster.pki.key_algorithm)?, true)),
            }
        },
    );
    let created = created?;
    let (service_account, is_new) = service_account?;
    for (name, ca) in created {
        store.write(&ca_file(name), ca.stored_form().as_bytes())?;
        cas.insert(name, ca);
    }
    if is_new {
        store.write(SERVICE_ACCOUNT_FILE, service_account.to_pem().as_bytes())?;
    }

    let mut pending: Vec<(
        &String,
        &crate::plan::NodePlan,
        BTreeMap<String, Credential>,
    )> = plan
        .nodes
        .iter()
        .map(|(node, node_plan)| (node, node_plan, reusable.remove(node).unwrap_or_default()))
        .collect();
    let nodes = pending
        .par_iter_mut()
        .map(|(node, node_plan, reused)| {
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
                        let key = PrivateKey::generate(cluster.pki.key_algorithm)?;
                        let leaf = issue_leaf(spec, ca, key, cluster.pki.cert_validity, now)?;
                        store.write(&leaf_file(node, cert), leaf.stored_form().as_bytes())?;
                        leaf
                    }
                };
                leaves.insert(cert.clone(), leaf);
            }
            if let EtcdCa::External { cert, key, .. } = &cluster.etcd.ca
                && node_plan.role == crate::plan::Role::Master
            {
                leaves.insert(
                    crate::plan::cert_names::ETCD_CLIENT.to_owned(),
                    load_external_client(cert, key)?,
                );
            }
            Ok(((*node).clone(), leaves))
        })
        .collect::<Result<BTreeMap<_, _>, Error>>()?;

    let etcd_ca_cert_pem = match &cluster.etcd.ca {
        EtcdCa::Cluster => None,
        EtcdCa::Separate => cas.get(&CaName::Etcd).map(|ca| ca.cert_pem.clone()),
        EtcdCa::External { ca, .. } => Some(load_external_ca(ca)?),
    };
    let ca_pem = |name| {
        cas.get(&name)
            .map(|ca: &Credential| ca.cert_pem.clone())
            .unwrap_or_default()
    };
    Ok(Pki {
        ca_cert_pem: ca_pem(CaName::Cluster),
        front_proxy_ca_cert_pem: ca_pem(CaName::FrontProxy),
        etcd_ca_cert_pem,
        service_account_pub_pem: service_account.public_key_pem(),
        service_account_key_pem: service_account.to_pem(),
        nodes,
        decisions,
    })
}

pub(crate) fn corrupt(store: &SecretStore, name: &str, why: &str) -> Error {
    Error::Input(format!(
        "{}: {why}. kube-bundle never overwrites secret material: restore the file from \
         backup, or move it away to have it created anew",
        store.path(name).display()
    ))
}

fn parse_key_file(text: &str) -> Result<PrivateKey, String> {
    let blocks = parse_pem(text)?;
    match blocks.as_slice() {
        [key] => PrivateKey::from_pem_block(key),
        _ => Err(format!(
            "expected one private key, found {} PEM blocks",
            blocks.len()
        )),
    }
}

fn load_ca(
    store: &SecretStore,
    name: CaName,
    now: OffsetDateTime,
) -> Result<Option<Credential>, Error> {
    let file = ca_file(name);
    let Some(text) = store.read_text(&file)? else {
        return Ok(None);
    };
    let ca = Credential::parse(&text).map_err(|why| corrupt(store, &file, &why))?;
    check_usable_ca(&ca.cert_der, now).map_err(|why| corrupt(store, &file, &why))?;
    Ok(Some(ca))
}

/// A CA must say it is one, may sign certificates, and be valid now.
fn check_usable_ca(der: &[u8], now: OffsetDateTime) -> Result<(), String> {
    let cert = parse_cert(der)?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err("the certificate is not a CA (basicConstraints CA:FALSE or absent)".into());
    }
    if let Ok(Some(usage)) = cert.key_usage()
        && !usage.value.key_cert_sign()
    {
        return Err("the CA's key usage does not allow signing certificates (keyCertSign)".into());
    }
    let not_after = cert.validity().not_after.to_datetime();
    if not_after <= now {
        return Err(format!("the CA expired on {}", date(not_after)));
    }
    if cert.validity().not_before.to_datetime() > now + BACKDATE {
        return Err(format!(
            "the CA is not valid before {}",
            date(cert.validity().not_before.to_datetime())
        ));
    }
    Ok(())
}

/// Imports or generates a CA; the caller stores it.
fn create_ca(cluster: &Cluster, name: CaName, now: OffsetDateTime) -> Result<Credential, Error> {
    let ca = match (&cluster.pki.import_ca, name) {
        (Some(import), CaName::Cluster) => import_ca(import, now)?,
        _ => {
            let key = PrivateKey::generate(cluster.pki.key_algorithm)?;
            let mut params = base_params(name.common_name(), None, now, cluster.pki.ca_validity)?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params
                .self_signed(&key)
                .map_err(|e| Error::Input(format!("CA {}: {e}", name.file_stem())))?;
            Credential {
                cert_pem: cert_pem(cert.der()),
                cert_der: cert.der().to_vec(),
                key,
            }
        }
    };
    Ok(ca)
}

/// Adopts an existing CA (cfssl's ca.pem + ca-key.pem, or openssl's) as the cluster CA.
fn import_ca(import: &crate::model::ImportCa, now: OffsetDateTime) -> Result<Credential, Error> {
    let named =
        |path: &std::path::Path, why: String| Error::Input(format!("{}: {why}", path.display()));
    let certs = read_pem_file(&import.cert)?;
    let cert = match certs
        .iter()
        .filter(|b| b.tag() == PEM_CERTIFICATE)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [cert] => (*cert).clone(),
        found => {
            return Err(named(
                &import.cert,
                format!("expected one CERTIFICATE block, found {}", found.len()),
            ));
        }
    };
    let keys = read_pem_file(&import.key)?;
    let key = match keys.as_slice() {
        [key] => PrivateKey::from_pem_block(key).map_err(|why| named(&import.key, why))?,
        found => {
            return Err(named(
                &import.key,
                format!("expected one private key block, found {}", found.len()),
            ));
        }
    };
    let credential = Credential {
        cert_pem: encode_pem(&cert),
        cert_der: cert.contents().to_vec(),
        key,
    };
    check_usable_ca(&credential.cert_der, now).map_err(|why| named(&import.cert, why))?;
    credential.check_key_matches().map_err(|why| {
        named(
            &import.key,
            format!(
                "{why} ({}); pass the key that belongs to this CA",
                import.cert.display()
            ),
        )
    })?;
    Ok(credential)
}

/// Once secrets/ holds a CA, importCA must name that same CA: never a silent swap.
fn check_import_matches(
    store: &SecretStore,
    stored: Option<&Credential>,
    import: &crate::model::ImportCa,
) -> Result<(), Error> {
    let Some(stored) = stored else { return Ok(()) };
    let offered = read_pem_file(&import.cert)?;
    let same = offered
        .iter()
        .any(|b| b.tag() == PEM_CERTIFICATE && b.contents() == stored.cert_der.as_slice());
    if same {
        return Ok(());
    }
    Err(Error::Input(format!(
        "pki.importCA names {}, but {} already holds a different cluster CA; kube-bundle \
         never swaps a CA silently. Remove importCA to keep the stored CA, or move the \
         secrets directory away to start over with the imported one",
        import.cert.display(),
        store.path(&ca_file(CaName::Cluster)).display()
    )))
}

fn load_leaf(store: &SecretStore, node: &str, cert: &str) -> Result<Option<Credential>, Error> {
    let file = leaf_file(node, cert);
    let Some(text) = store.read_text(&file)? else {
        return Ok(None);
    };
    Credential::parse(&text)
        .map(Some)
        .map_err(|why| corrupt(store, &file, &why))
}

/// Decides whether a stored leaf still says what the plan wants.
fn judge_leaf(
    leaf: &Credential,
    spec: &CertSpec,
    ca: &Credential,
    algorithm: KeyAlgorithm,
    now: OffsetDateTime,
) -> Result<Decision, Error> {
    let cert = parse_cert(&leaf.cert_der).map_err(Error::Input)?;
    let ca_cert = parse_cert(&ca.cert_der).map_err(Error::Input)?;
    if cert.issuer().as_raw() != ca_cert.subject().as_raw()
        || cert.verify_signature(Some(ca_cert.public_key())).is_err()
    {
        return Ok(Decision::Reissue(format!(
            "not signed by the current {} CA",
            spec.issuer.file_stem()
        )));
    }
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let org: Vec<_> = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let wanted_org: Vec<&str> = spec.organization.as_deref().into_iter().collect();
    if cn != [spec.common_name.as_str()] || org != wanted_org {
        return Ok(Decision::Reissue(format!(
            "subject is CN={} O={}, wanted CN={} O={}",
            cn.join("+"),
            org.join("+"),
            spec.common_name,
            wanted_org.join("+")
        )));
    }
    let eku = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| e.value.clone());
    let usage_ok = eku.is_some_and(|eku| match spec.purpose {
        Purpose::ServerAuth => eku.server_auth && !eku.client_auth,
        Purpose::ClientAuth => eku.client_auth && !eku.server_auth,
    });
    if !usage_ok {
        return Ok(Decision::Reissue(format!(
            "extended key usage is not {:?} alone",
            spec.purpose
        )));
    }
    if let Some(diff) = san_difference(&cert, spec) {
        return Ok(Decision::Reissue(diff));
    }
    let wanted_algorithm = algorithm.to_string();
    if leaf.key.algorithm_name() != wanted_algorithm {
        return Ok(Decision::Reissue(format!(
            "key is {}, pki.keyAlgorithm wants {wanted_algorithm}",
            leaf.key.algorithm_name()
        )));
    }
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if (not_after - now) * 3 <= not_after - not_before {
        return Ok(Decision::Reissue(format!(
            "expires {}, less than a third of its validity left",
            date(not_after)
        )));
    }
    Ok(Decision::Reuse)
}

fn san_difference(cert: &X509Certificate<'_>, spec: &CertSpec) -> Option<String> {
    let have = crate::certificate::subject_alt_names(cert);
    let want: BTreeSet<String> = spec
        .sans
        .iter()
        .flat_map(|s| {
            s.dns
                .iter()
                .map(|d| format!("DNS:{d}"))
                .chain(s.ips.iter().map(|ip| format!("IP:{ip}")))
        })
        .collect();
    if have == want {
        return None;
    }
    let added: Vec<_> = want.difference(&have).map(|s| format!("+{s}")).collect();
    let removed: Vec<_> = have.difference(&want).map(|s| format!("-{s}")).collect();
    Some(format!(
        "SANs changed ({})",
        added
            .into_iter()
            .chain(removed)
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// Issues one leaf. Its lifetime never runs past its CA's.
fn issue_leaf(
    spec: &CertSpec,
    ca: &Credential,
    key: PrivateKey,
    validity: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Credential, Error> {
    let failed = |e: rcgen::Error| Error::Input(format!("issuing {}: {e}", spec.common_name));
    let mut params = base_params(
        &spec.common_name,
        spec.organization.as_deref(),
        now,
        validity,
    )?;
    let ca_not_after = parse_cert(&ca.cert_der)
        .map_err(Error::Input)?
        .validity()
        .not_after
        .to_datetime();
    params.not_after = params.not_after.min(ca_not_after);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // KeyEncipherment only makes sense for RSA key transport; EC keys never encipher.
    if matches!(key.kind, KeyKind::Rsa(_)) {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![match spec.purpose {
        Purpose::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
        Purpose::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    if let Some(sans) = &spec.sans {
        for dns in &sans.dns {
            let name = dns.clone().try_into().map_err(failed)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(sans.ips.iter().copied().map(SanType::IpAddress));
    }
    let issuer = Issuer::from_ca_cert_der(&ca.cert_der.clone().into(), &ca.key).map_err(failed)?;
    let cert = params.signed_by(&key, &issuer).map_err(failed)?;
    Ok(Credential {
        cert_pem: cert_pem(cert.der()),
        cert_der: cert.der().to_vec(),
        key,
    })
}

fn base_params(
    common_name: &str,
    organization: Option<&str>,
    now: OffsetDateTime,
    validity: std::time::Duration,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    if let Some(org) = organization {
        name.push(DnType::OrganizationName, org);
    }
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = now - BACKDATE;
    let validity =
        Duration::try_from(validity).map_err(|_| Error::Input("validity too long".into()))?;
    params.not_after = params.not_before + validity;
    params.serial_number = Some(new_serial()?);
    Ok(params)
}

/// A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
fn new_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn load_external_client(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Credential, Error> {
    let certs = read_pem_file(cert)?;
    let Some(first) = certs.iter().find(|b| b.tag() == PEM_CERTIFICATE) else {
        return Err(Error::Input(format!(
            "{}: holds no CERTIFICATE block",
            cert.display()
        )));
    };
    let keys = read_pem_file(key)?;
    let [key_block] = keys.as_slice() else {
        return Err(Error::Input(format!(
            "{}: expected one private key block",
            key.display()
        )));
    };
    let credential = Credential {
        cert_pem: certs
            .iter()
            .filter(|b| b.tag() == PEM_CERTIFICATE)
            .map(encode_pem)
            .collect(),
        cert_der: first.contents().to_vec(),
        key: PrivateKey::from_pem_block(key_block)
            .map_err(|why| Error::Input(format!("{}: {why}", key.display())))?,
    };
    credential
        .check_key_matches()
        .map_err(|why| Error::Input(format!("{}: {why} ({})", key.display(), cert.display())))?;
    Ok(credential)
}

fn load_external_ca(path: &std::path::Path) -> Result<String, Error> {
    let blocks = read_pem_file(path)?;
    let certs: String = blocks
        .iter()
        .filter(|b| b.tag() == PEM_CERTIFICATE)
        .map(encode_pem)
        .collect();
    if certs.is_empty() {
        return Err(Error::Input(format!(
            "{}: holds no CERTIFICATE block",
            path.display()
        )));
    }
    Ok(certs)
}

fn date(time: OffsetDateTime) -> String {
    format!("{}", time.date())
}

// ---------------------------------------------------------------------------------------
// Lifecycle: expiry inventory and renewal

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
            push(Some(node), cert, &leaf_file(node, cert))?;
        }
    }
    Ok(found)
}

/// Re-issues the selected leaves from the stored CAs with what the plan wants now:
/// new keys unless `reuse_keys`. `selection` holds `NAME` (on every node) or
/// `NODE/NAME`; empty means every leaf. Returns what was renewed, as `node/name`.
pub fn renew(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    selection: &[String],
    reuse_keys: bool,
    now: OffsetDateTime,
) -> Result<Vec<String>, Error> {
    let known: BTreeSet<String> = plan
        .nodes
        .iter()
        .flat_map(|(node, p)| {
            p.certificates
                .keys()
                .flat_map(move |c| [c.clone(), format!("{node}/{c}")])
        })
        .collect();
    if let Some(unknown) = selection.iter().find(|s| !known.contains(*s)) {
        let names: BTreeSet<&str> = plan
            .nodes
            .values()
            .flat_map(|p| p.certificates.keys())
            .map(String::as_str)
            .collect();
        return Err(Error::Usage(format!(
            "no certificate named {unknown:?}; name one of {} (optionally as NODE/NAME)",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut renewed = Vec::new();
    for (node, node_plan) in &plan.nodes {
        for (cert, spec) in &node_plan.certificates {
            let wanted = selection.is_empty()
                || selection
                    .iter()
                    .any(|s| s == cert || *s == format!("{node}/{cert}"));
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
            renewed.push(format!("{node}/{cert}"));
        }
    }
    Ok(renewed)
}
