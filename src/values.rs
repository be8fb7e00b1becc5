//! The value types cluster.yaml is made of: names, versions, endpoints, paths, port and
//! address ranges, durations. Each one's constructor is its check, so holding one means the
//! text it came from was valid; `validate` reports the constructor's reason at the value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

/// The apiserver's secure port. Fixed: every tool around the apiserver assumes it.
pub const SECURE_PORT: u16 = 6443;

/// kubeadm's MaximumBitsForServiceSubnet: at most 2^20 service addresses.
const MAX_SERVICE_HOST_BITS: u8 = 20;

/// A DNS label (RFC 1123): node and cluster names, safe in paths, units and shell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DnsLabel(String);

impl DnsLabel {
    pub fn parse(text: &str) -> Result<Self, String> {
        check_label(text).map(|()| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS name (RFC 1123 subdomain), lowercase, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DnsName(String);

impl DnsName {
    /// `allow_wildcard` admits one leading `*.` label, as certificate SANs may carry.
    pub fn parse(text: &str, allow_wildcard: bool) -> Result<Self, String> {
        if text.is_empty() {
            return Err("it is empty".into());
        }
        if text.ends_with('.') {
            return Err(
                "it ends with a dot; certificates cannot carry a trailing dot \
                 (x509: cannot parse dnsName)"
                    .into(),
            );
        }
        if text.len() > 253 {
            return Err(format!(
                "it is {} characters long; DNS names are at most 253",
                text.len()
            ));
        }
        let rest = match text.strip_prefix("*.") {
            Some(rest) if allow_wildcard => rest,
            Some(_) => return Err("a wildcard is not allowed here".into()),
            None => text,
        };
        if rest.contains('*') {
            return Err("'*' may only be the whole leftmost label, as in *.example.com".into());
        }
        for label in rest.split('.') {
            check_label(label).map_err(|why| format!("label '{label}': {why}"))?;
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label: `cluster` for `cluster.local`.
    pub fn first_label(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it is empty (two dots in a row, or a leading dot?)".into());
    }
    if label.len() > 63 {
        return Err(format!(
            "it is {} characters long; a DNS label is at most 63",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
    {
        return Err(if !bad.is_ascii() {
            format!("'{bad}' is not ASCII; write internationalised names in punycode (xn--…)")
        } else {
            format!(
                "'{}' is not allowed; use only a-z, 0-9 and '-'",
                bad.escape_default()
            )
        });
    }
    if label.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("it has uppercase letters; use lowercase".into());
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A Kubernetes release within the range the version table covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion(semver::Version);

impl KubeVersion {
    /// `v1.37.2` or `1.37.2`; which releases are supported is `validate`'s question.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix('v').unwrap_or(text);
        semver::Version::parse(bare)
            .map(Self)
            .map_err(|err| format!("{err} (expected MAJOR.MINOR.PATCH)"))
    }

    pub fn major(&self) -> u64 {
        self.0.major
    }

    pub fn minor(&self) -> u64 {
        self.0.minor
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An absolute path that is safe to write unquoted into a unit file or a shell script.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err("it is not absolute; start it with '/'".into());
        }
        if text.len() > 1024 {
            return Err("it is longer than 1024 characters".into());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(*c)))
        {
            return Err(match bad {
                c if c.is_control() => {
                    format!("it contains the control character '{}'", c.escape_default())
                }
                c if c.is_whitespace() => "it contains whitespace".to_owned(),
                c if !c.is_ascii() => format!("it contains the non-ASCII character '{c}'"),
                c => format!("it contains the shell metacharacter '{c}'"),
            });
        }
        if text.split('/').any(|part| part == "..") {
            return Err("it contains a '..' component".into());
        }
        if text.contains("//") {
            return Err("it contains an empty component ('//')".into());
        }
        let trimmed = text.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err("it is the root directory".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/name`; `name` is one of the program's own relative paths.
    pub fn join(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host as it may appear in an endpoint or a SAN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Host {
    Ip(IpAddr),
    Dns(DnsName),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Dns(name) => name.fmt(f),
        }
    }
}

impl Host {
    /// `https://host:port`, an IPv6 address in brackets.
    pub fn https_url(&self, port: u16) -> String {
        match self {
            Self::Ip(ip) => format!("https://{}", std::net::SocketAddr::new(*ip, port)),
            Self::Dns(name) => format!("https://{name}:{port}"),
        }
    }
}

/// `host[:port]`, as in controlPlaneEndpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: Host,
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains("://") {
            return Err("it has a URL scheme; write host or host:port, without https://".into());
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or("an IPv6 address opened with '[' is not closed")?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("unexpected '{after}' after ']'")),
                },
            }
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address: it has no port, or the port would be ambiguous.
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) if host.contains(':') => return Err(format!("'{host}' is not an IPv6 address")),
            Err(_) => Host::Dns(DnsName::parse(host, false).map_err(|why| {
                format!("host '{host}' is neither an IP address nor a DNS name: {why}")
            })?),
        };
        let port = port
            .map(|port| match port.parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("port '{port}' is not a number from 1 to 65535")),
                Ok(port) => Ok(port),
            })
            .transpose()?;
        Ok(Self { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (Host::Ip(ip), Some(port)) => SocketAddr::new(*ip, port).fmt(f),
            (host, Some(port)) => write!(f, "{host}:{port}"),
            (host, None) => host.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (first, last) = text
            .split_once('-')
            .ok_or("it is not of the form FIRST-LAST (for example 30000-32767)")?;
        let port = |part: &str| match part.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("'{part}' is not a port number from 1 to 65535")),
            Ok(port) => Ok(port),
        };
        let range = Self {
            first: port(first)?,
            last: port(last)?,
        };
        if range.first > range.last {
            return Err(format!(
                "it is inverted: {} is above {}",
                range.first, range.last
            ));
        }
        if range.contains(SECURE_PORT) {
            return Err(format!(
                "it contains {SECURE_PORT}, the apiserver's secure port"
            ));
        }
        Ok(range)
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `--service-cluster-ip-range`: one CIDR, or two of different families (dual-stack);
/// the first is the primary family and yields the `kubernetes` service IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceNetwork(Vec<IpNet>);

impl ServiceNetwork {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cidrs = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let cidr: IpNet = part
                .parse()
                .map_err(|_| format!("'{part}' is not a CIDR such as 10.96.0.0/12"))?;
            if cidr.trunc() != cidr {
                return Err(format!(
                    "'{part}' has host bits set; did you mean {}?",
                    cidr.trunc()
                ));
            }
            let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
            if host_bits > MAX_SERVICE_HOST_BITS {
                let widest = cidr.max_prefix_len() - MAX_SERVICE_HOST_BITS;
                return Err(format!(
                    "'{part}' is larger than /{widest}, the widest range the apiserver accepts"
                ));
            }
            if host_bits < 2 {
                return Err(format!("'{part}' leaves no room for service addresses"));
            }
            cidrs.push(cidr);
        }
        match cidrs.as_slice() {
            [_] => {}
            [a, b] if a.addr().is_ipv4() != b.addr().is_ipv4() => {}
            [_, _] => {
                return Err(
                    "the two dual-stack CIDRs are of the same family; give one IPv4 \
                            and one IPv6 CIDR"
                        .into(),
                );
            }
            _ => return Err("at most two CIDRs (one per address family) are allowed".into()),
        }
        Ok(Self(cidrs))
    }

    pub fn cidrs(&self) -> &[IpNet] {
        &self.0
    }

    /// The `kubernetes` service IP: the first address of the primary CIDR (10.254.0.1).
    pub fn kubernetes_service_ip(&self) -> IpAddr {
        let network = self.0[0].network();
        match network {
            IpAddr::V4(ip) => IpAddr::V4((u32::from(ip) + 1).into()),
            IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) + 1).into()),
        }
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }
}

impl fmt::Display for ServiceNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Go-style durations as kubeadm writes them: `8760h`, `90m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "'{c}' is not a unit; use h, m or s (for example 8760h)"
                ));
            }
        };
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("a number must come before '{c}'"))?;
        total = amount
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or("it is too long")?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("'{digits}' has no unit; write {digits}h for hours"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_parser_reads_go_durations() {
        assert_eq!(
            parse_duration("8760h"),
            Ok(Duration::from_secs(8760 * 3600))
        );
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
