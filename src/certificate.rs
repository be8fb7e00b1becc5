//! Facts read back from an X.509 certificate, shared by the PKI stage (is a stored leaf
//! still what the plan wants?) and `diff` (what changed between two bundles?), so that
//! both see the same SANs. A leaf module: it depends on no stage.

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::prelude::{GeneralName, X509Certificate};

/// Every subject alternative name as `DNS:name` / `IP:address`. A name of another kind, or a
/// malformed IP, is kept too (in a form no plan produces), so that it counts as a
/// difference instead of vanishing.
pub fn subject_alt_names(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return names;
    };
    for name in &extension.value.general_names {
        names.insert(match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                    _ => None,
                };
                ip.map_or_else(
                    || format!("IP:<{} malformed bytes>", bytes.len()),
                    |ip| format!("IP:{ip}"),
                )
            }
            other => format!("other:{other:?}"),
        });
    }
    names
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
    use x509_parser::prelude::FromDer;

    use super::*;

    #[test]
    fn every_kind_of_san_is_read_and_odd_ones_are_kept() {
        let mut params = CertificateParams::new(vec!["api.example".to_owned()]).unwrap();
        params.subject_alt_names.extend([
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
            SanType::IpAddress("fd00::1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
        ]);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        let names = subject_alt_names(&parsed);
        for wanted in ["DNS:api.example", "IP:10.0.0.1", "IP:fd00::1"] {
            assert!(names.contains(wanted), "{wanted} missing from {names:?}");
        }
        assert_eq!(names.len(), 4, "the e-mail SAN is kept: {names:?}");
        assert!(names.iter().any(|n| n.starts_with("other:")), "{names:?}");
    }
}
