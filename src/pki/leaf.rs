//! The PKI stage's leaves, the per-node certificates: read back from secrets/, judged
//! against what the plan wants now, and issued from their CA; and the external etcd
//! client certificate, shipped as the user gave it.

use std::collections::BTreeSet;
use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::X509Certificate;

use super::{
    BACKDATE, Credential, Decision, certificate_failed, corrupt, date, leaf_file, parse_cert,
};
use crate::config::KeyAlgorithm;
use crate::error::Error;
use crate::keys::{PEM_CERTIFICATE, PrivateKey, cert_pem, encode_pem, read_pem_file};
use crate::plan::{CertSpec, LeafName, Purpose};
use crate::secrets::{SecretStore, random_bytes};

/// `node`'s stored leaf `cert`, or None while secrets/ has none.
pub(super) fn load_leaf(
    store: &SecretStore,
    node: &str,
    cert: LeafName,
) -> Result<Option<Credential>, Error> {
    let file = leaf_file(node, cert);
    let Some(text) = store.read_text(&file)? else {
        return Ok(None);
    };
    Credential::parse(&text)
        .map(Some)
        .map_err(|why| corrupt(store, &file, &why))
}

/// Decides whether a stored leaf still says what the plan wants. `ca_cert` is its
/// issuer's certificate, parsed once for all the leaves it signed.
pub(super) fn judge_leaf(
    leaf: &Credential,
    spec: &CertSpec,
    ca_cert: &X509Certificate<'_>,
    algorithm: KeyAlgorithm,
    now: OffsetDateTime,
) -> Result<Decision, Error> {
    let cert = parse_cert(&leaf.cert_der).map_err(Error::Input)?;
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
        Purpose::ServerAndClientAuth => eku.server_auth && eku.client_auth,
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

/// How the leaf's SANs differ from the plan's, as `+wanted -unwanted`; None when they match.
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
pub(super) fn issue_leaf(
    spec: &CertSpec,
    ca: &Credential,
    key: PrivateKey,
    validity: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Credential, Error> {
    let what = format!("issuing {}", spec.common_name);
    let failed = |e: rcgen::Error| certificate_failed(&what, e);
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
    if key.is_rsa() {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = match spec.purpose {
        Purpose::ServerAuth => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Purpose::ClientAuth => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Purpose::ServerAndClientAuth => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    if let Some(sans) = &spec.sans {
        for dns in &sans.dns {
            let name = dns.clone().try_into().map_err(failed)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(sans.ips.iter().copied().map(SanType::IpAddress));
    }
    // The CA comes from secrets/ or pki.importCA: a CA rcgen cannot read is the input's.
    let issuer = Issuer::from_ca_cert_der(&ca.cert_der.clone().into(), &ca.key)
        .map_err(|e| Error::Input(format!("{what}: {e}")))?;
    let cert = params.signed_by(&key, &issuer).map_err(failed)?;
    Ok(Credential {
        cert_pem: cert_pem(cert.der()),
        cert_der: cert.der().to_vec(),
        key,
    })
}

/// Subject, validity (backdated) and a fresh serial: what CAs and leaves share.
pub(super) fn base_params(
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
    // validate bounds validity only from below, so a huge pki.caValidity reaches here: a
    // certificate cannot end after the year 9999, and adding past it would panic.
    params.not_after = Duration::try_from(validity)
        .ok()
        .and_then(|validity| params.not_before.checked_add(validity))
        .ok_or_else(|| {
            Error::Input(format!(
                "validity too long: {}h from now ends after the year 9999, the last date a \
                 certificate can hold; shorten pki.caValidity or pki.certValidity",
                validity.as_secs() / 3600
            ))
        })?;
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

/// The external etcd client certificate (and any chain after it) with its key, shipped as
/// given once the key is checked to belong to it.
pub(super) fn load_external_client(cert: &Path, key: &Path) -> Result<Credential, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validity_past_the_year_9999_is_refused_not_a_panic() {
        let now = OffsetDateTime::now_utc();
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        assert!(base_params("ca", None, now, hours(87_600)).is_ok());
        for too_long in [hours(1_000_000_000), std::time::Duration::MAX] {
            let error = base_params("ca", None, now, too_long).unwrap_err();
            assert!(matches!(error, Error::Input(_)), "{error}");
            assert!(error.to_string().contains("year 9999"), "{error}");
        }
    }
}
