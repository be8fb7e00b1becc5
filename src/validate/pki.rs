//! `pki:`: key algorithm, validities, extra SANs and an imported CA.

use std::net::IpAddr;
use std::time::Duration;

use super::Checker;
use crate::config::{KeyAlgorithm, RawPki, Text};
use crate::model::{ImportCa, Pki};
use crate::values::{DnsName, Host, parse_duration};

pub(super) fn check_pki(c: &mut Checker<'_>, raw: &RawPki) -> Option<Pki> {
    let duration =
        |c: &mut Checker<'_>, field: &str, value: Option<&Text>, default: Duration| match value {
            None => Some(default),
            Some(value) => c.parse(
                field,
                value,
                "a duration",
                "write hours, e.g. 8760h (one year)",
                |text| {
                    let duration = parse_duration(text)?;
                    if duration < Duration::from_secs(3600) {
                        return Err("it is shorter than one hour".into());
                    }
                    Ok(duration)
                },
            ),
        };
    let year = Duration::from_secs(365 * 24 * 3600);
    let cert_validity = duration(c, "pki.certValidity", raw.cert_validity.as_ref(), year);
    let ca_validity = duration(c, "pki.caValidity", raw.ca_validity.as_ref(), year * 10);
    if let (Some(leaf), Some(ca), Some(value)) =
        (cert_validity, ca_validity, raw.cert_validity.as_ref())
        && leaf > ca
    {
        c.error(
            value.referenced,
            "pki.certValidity",
            "certificates would outlive their CA".into(),
            "make certValidity no longer than caValidity",
        );
    }
    let mut extra_sans = Vec::new();
    let mut ok = true;
    for (index, value) in raw.extra_sans.iter().flatten().enumerate() {
        let san = c.parse(
            &format!("pki.extraSANs[{index}]"),
            value,
            "an IP address or DNS name",
            "write an IP address, a DNS name (api.example.com) or a wildcard (*.example.com)",
            |text| match text.parse::<IpAddr>() {
                Ok(ip) => Ok(Host::Ip(ip)),
                Err(_) => DnsName::parse(text, true).map(Host::Dns),
            },
        );
        match san {
            Some(san) => extra_sans.push(san),
            None => ok = false,
        }
    }
    let import_ca = match &raw.import_ca {
        None => Some(None),
        Some(files) => {
            let cert = c.input_file("pki.importCA.cert", &files.cert);
            let key = c.input_file("pki.importCA.key", &files.key);
            cert.zip(key)
                .map(|(cert, key)| Some(ImportCa { cert, key }))
        }
    };
    Some(Pki {
        key_algorithm: raw.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256),
        cert_validity: cert_validity?,
        ca_validity: ca_validity?,
        extra_sans,
        import_ca: import_ca?,
    })
    .filter(|_| ok)
}
#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::validate::ValidateOptions;

    #[test]
    fn extra_sans_are_ips_or_dns_names_with_reasons() {
        let sans = "extraSANs: []";
        rejects(
            sans,
            "extraSANs: [api_1.example.com]",
            &["pki.extraSANs[0]", "'_'"],
        );
        rejects(sans, "extraSANs: [api.example.com.]", &["trailing dot"]);
        rejects(
            sans,
            "extraSANs: [\"api.*.example.com\"]",
            &["leftmost label"],
        );
        rejects(sans, "extraSANs: [\"bücher.example\"]", &["punycode"]);
        let yaml = example_with(sans, "extraSANs: [\"*.example.com\", 192.0.2.7]");
        let cluster = run(&yaml, ValidateOptions::default())
            .expect("valid")
            .cluster;
        assert_eq!(cluster.pki.extra_sans.len(), 2);
    }

    #[test]
    fn validities_parse_and_leaves_do_not_outlive_cas() {
        rejects(
            "certValidity: 8760h",
            "certValidity: 1y",
            &["'y' is not a unit"],
        );
        rejects(
            "certValidity: 8760h",
            "certValidity: 10m",
            &["shorter than one hour"],
        );
        rejects(
            "certValidity: 8760h",
            "certValidity: 100000h",
            &["outlive their CA"],
        );
    }

    #[test]
    fn referenced_files_must_exist() {
        let import = "# importCA: { cert: ca.pem, key: ca-key.pem }";
        rejects(
            import,
            "importCA: { cert: nope.pem, key: nope-key.pem }",
            &["pki.importCA.cert"],
        );
        rejects(
            "kubeApiserver: null",
            "kubeApiserver: ./nope",
            &["binaries.kubeApiserver"],
        );
        rejects(
            "ca: separate",
            "ca: external",
            &["etcd.external", "needs the client"],
        );
    }
}
