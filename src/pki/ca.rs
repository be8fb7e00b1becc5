//! The PKI stage's certificate authorities: loaded from secrets/, imported from the
//! user's files (pki.importCA), or created; and the external etcd CA shipped as given.
//!
//! A CA is only used while it says it is one, may sign certificates, and is valid now;
//! once secrets/ holds the cluster CA, importCA may only name that same CA, so the cluster's
//! identity never changes silently.

use std::path::Path;

use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use time::OffsetDateTime;

use super::leaf::base_params;
use super::{
    BACKDATE, Credential, KeyPool, ca_file, certificate_failed, corrupt, date, parse_cert,
};
use crate::error::Error;
use crate::keys::{PEM_CERTIFICATE, PrivateKey, cert_pem, encode_pem, read_pem_file};
use crate::model::{Cluster, ImportCa};
use crate::plan::CaName;
use crate::secrets::SecretStore;

/// The stored CA `name`, or None while secrets/ has none; a damaged or unusable one is
/// an error, never silently replaced.
pub(super) fn load_ca(
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
pub(super) fn create_ca(
    cluster: &Cluster,
    name: CaName,
    now: OffsetDateTime,
    keys: &KeyPool,
) -> Result<Credential, Error> {
    let ca = match (&cluster.pki.import_ca, name) {
        (Some(import), CaName::Cluster) => import_ca(import, now)?,
        _ => {
            let key = keys.take()?;
            let mut params = base_params(name.common_name(), None, now, cluster.pki.ca_validity)?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params
                .self_signed(&key)
                .map_err(|e| certificate_failed(&format!("CA {}", name.file_stem()), e))?;
            Credential {
                cert_pem: cert_pem(cert.der()),
                cert_der: cert.der().to_vec(),
                key,
            }
        }
    };
    Ok(ca)
}

/// Creates an intermediate CA (the CSR signer) under `parent`: it may sign leaves only
/// (path length 0), and never outlives its parent, so what it signs chains to the cluster
/// CA for as long as both are valid.
pub(super) fn create_intermediate(
    cluster: &Cluster,
    name: CaName,
    parent: &Credential,
    now: OffsetDateTime,
    keys: &KeyPool,
) -> Result<Credential, Error> {
    let what = format!("CA {}", name.file_stem());
    let parent_cert = parse_cert(&parent.cert_der).map_err(Error::Input)?;
    // A root limited to path length 0 may sign no CA: an intermediate under it would not
    // verify anywhere.
    if let Ok(Some(constraints)) = parent_cert.basic_constraints()
        && constraints.value.path_len_constraint == Some(0)
    {
        return Err(Error::Input(format!(
            "the cluster CA allows no intermediate CA (pathlen:0), and the controller manager \
             signs with one ({}); import a CA without a path length limit, or turn the \
             controller manager off",
            name.file_stem()
        )));
    }
    let key = keys.take()?;
    let mut params = base_params(name.common_name(), None, now, cluster.pki.ca_validity)?;
    params.not_after = params
        .not_after
        .min(parent_cert.validity().not_after.to_datetime());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    let issuer = rcgen::Issuer::from_ca_cert_der(&parent.cert_der.clone().into(), &parent.key)
        .map_err(|e| Error::Input(format!("{what}: {e}")))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| certificate_failed(&what, e))?;
    Ok(Credential {
        cert_pem: cert_pem(cert.der()),
        cert_der: cert.der().to_vec(),
        key,
    })
}

/// A stored intermediate must still be signed by the stored parent: after the cluster CA
/// changed, it would sign certificates nothing trusts. Never replaced silently.
pub(super) fn check_signed_by(
    store: &SecretStore,
    name: CaName,
    cert: &x509_parser::certificate::X509Certificate<'_>,
    parent_cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<(), Error> {
    if cert
        .verify_signature(Some(parent_cert.public_key()))
        .is_ok()
    {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{} was not signed by the stored cluster CA, so nothing it signs would be trusted; \
         kube-bundle never replaces a CA silently: move the file away and build again to \
         issue a new {} under the cluster CA",
        store.path(&ca_file(name)).display(),
        name.file_stem()
    )))
}

/// Adopts an existing CA (cfssl's ca.pem + ca-key.pem, or openssl's) as the cluster CA.
fn import_ca(import: &ImportCa, now: OffsetDateTime) -> Result<Credential, Error> {
    let named = |path: &Path, why: String| Error::Input(format!("{}: {why}", path.display()));
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
pub(super) fn check_import_matches(
    store: &SecretStore,
    stored: Option<&Credential>,
    import: &ImportCa,
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

/// The external etcd CA file: every CERTIFICATE block in it, shipped as given.
pub(super) fn load_external_ca(path: &Path) -> Result<String, Error> {
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
