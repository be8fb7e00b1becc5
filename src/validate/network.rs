//! `network:`: the service CIDR, the NodePort range and the cluster's DNS domain.

use super::Checker;
use crate::config::RawNetwork;
use crate::model::{Master, Network};
use crate::values::{DnsName, PortRange, ServiceNetwork};

pub(super) fn check_network(
    c: &mut Checker<'_>,
    raw: &RawNetwork,
    masters: Option<&[Master]>,
) -> Option<Network> {
    let service_cidr = match &raw.service_cidr {
        None => ServiceNetwork::parse("10.96.0.0/12").ok(),
        Some(value) => {
            let parsed = c.parse(
                "network.serviceCIDR",
                value,
                "a service CIDR",
                "write one CIDR (10.96.0.0/12) or two, comma-separated, for dual-stack \
                 (10.96.0.0/12,fd00:10:96::/108); the first is the primary family",
                ServiceNetwork::parse,
            );
            if let (Some(cidrs), Some(masters)) = (&parsed, masters) {
                for master in masters.iter().filter(|m| cidrs.contains(&m.ip)) {
                    c.error(
                        value.referenced,
                        "network.serviceCIDR",
                        format!("{cidrs} contains master {} ({})", master.name, master.ip),
                        "service addresses are virtual; pick a range no node lives in",
                    );
                }
            }
            parsed
        }
    };
    let node_port_range = match &raw.node_port_range {
        None => PortRange::parse("30000-32767").ok(),
        Some(value) => c.parse(
            "network.nodePortRange",
            value,
            "a port range",
            "write FIRST-LAST, e.g. 30000-32767, clear of 6443",
            PortRange::parse,
        ),
    };
    let dns_domain = match &raw.dns_domain {
        None => DnsName::parse("cluster.local", false).ok(),
        Some(value) => c.parse(
            "network.dnsDomain",
            value,
            "a DNS domain",
            "write the cluster domain without a trailing dot, e.g. cluster.local",
            |text| DnsName::parse(text, false),
        ),
    };
    Some(Network {
        service_cidr: service_cidr?,
        node_port_range: node_port_range?,
        dns_domain: dns_domain?,
    })
}
#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::testing::*;
    use crate::validate::ValidateOptions;

    #[test]
    fn service_cidr_must_parse_fit_and_avoid_masters() {
        let cidr = "serviceCIDR: 10.96.0.0/12";
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/33",
            &["network.serviceCIDR", "not a CIDR"],
        );
        rejects(cidr, "serviceCIDR: 10.0.0.0/8", &["larger than /12"]);
        rejects(cidr, "serviceCIDR: fd00::/64", &["larger than /108"]);
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.1/12",
            &["host bits", "10.96.0.0/12"],
        );
        rejects(
            cidr,
            "serviceCIDR: 10.20.0.0/16",
            &["contains master cp1 (10.20.0.11)"],
        );
    }

    #[test]
    fn dual_stack_service_cidrs_put_the_primary_first() {
        let cidr = "serviceCIDR: 10.96.0.0/12";
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/12,10.112.0.0/12",
            &["same family"],
        );
        rejects(
            cidr,
            "serviceCIDR: 10.96.0.0/12,fd00::/108,fd01::/108",
            &["at most two"],
        );
        let yaml = example_with(cidr, "serviceCIDR: fd00:10:96::/108,10.96.0.0/12");
        let cluster = run(&yaml, ValidateOptions::default())
            .expect("valid")
            .cluster;
        assert_eq!(
            cluster.network.service_cidr.kubernetes_service_ip(),
            "fd00:10:96::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn node_port_range_must_be_well_formed_and_clear_of_6443() {
        let range = "nodePortRange: 30000-32767";
        rejects(
            range,
            "nodePortRange: \"30000\"",
            &["network.nodePortRange", "FIRST-LAST"],
        );
        // Unquoted, YAML reads a number: refused before validation, with a hint to quote.
        rejects(range, "nodePortRange: 30000", &["must be quoted"]);
        rejects(range, "nodePortRange: 32767-30000", &["inverted"]);
        rejects(range, "nodePortRange: 6000-7000", &["contains 6443"]);
        rejects(range, "nodePortRange: 0-100", &["'0' is not a port"]);
    }

    #[test]
    fn dns_domain_has_no_trailing_dot_and_valid_labels() {
        let domain = "dnsDomain: cluster.local";
        rejects(
            domain,
            "dnsDomain: cluster.local.",
            &["network.dnsDomain", "trailing dot"],
        );
        rejects(domain, "dnsDomain: cluster..local", &["empty"]);
        rejects(domain, "dnsDomain: clus_ter.local", &["'_' is not allowed"]);
        rejects(
            domain,
            "dnsDomain: \"*.local\"",
            &["wildcard is not allowed"],
        );
    }
}
