//! `kubeconfig user`: access for a person or a tool, from the cluster CA on the build host.
//!
//! The credential is issued, written once into a 0600 kubeconfig and forgotten: nothing is
//! stored in secrets/ and no bundle changes. A client certificate cannot be revoked, so it
//! is short-lived by default, and identities in the `system:` namespace (system:masters
//! above all, which no RBAC change can take back) need an explicit flag.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{ConfigArgs, load_and_plan, secrets_folder, write_err, write_out};
use crate::cli::UserArgs;
use crate::error::Error;
use crate::model::Cluster;
use crate::plan::{ADMIN_CN, CaName, CertSpec, KUBELET_CLIENT_CN, Purpose, SUPERUSER_GROUP};
use crate::secrets::{Access, SecretStore};
use crate::values::{Host, SECURE_PORT, parse_duration};
use crate::{pki, render};

/// Longer than a year is a credential nobody remembers handing out.
const LONGEST_VALIDITY_HOURS: u64 = 8760;
/// Shorter than this is spent before it is handed over (certificates are backdated a few
/// minutes against clock skew, and that comes off their lifetime).
const SHORTEST_VALIDITY_MINUTES: u64 = 15;
/// The longest CN or O X.509 allows (RFC 5280's upper bound).
const MAX_NAME_CHARS: usize = 64;

pub(super) fn user(args: &UserArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    check_identity(&args.user, "USER", args.allow_system_identity)?;
    if let Some(group) = &args.group {
        check_identity(group, "--group", args.allow_system_identity)?;
    }
    let validity = parse_duration(&args.validity)
        .map_err(|why| Error::Usage(format!("--validity {}: {why}", args.validity)))?;
    if validity.as_secs() < SHORTEST_VALIDITY_MINUTES * 60 {
        return Err(Error::Usage(format!(
            "--validity {}: at least {SHORTEST_VALIDITY_MINUTES}m, so the certificate is still \
             valid when it reaches its holder",
            args.validity
        )));
    }
    if validity.as_secs() > LONGEST_VALIDITY_HOURS * 3600 {
        return Err(Error::Usage(format!(
            "--validity {}: at most {LONGEST_VALIDITY_HOURS}h; a client certificate cannot be \
             revoked, so issue a new one when this one ends",
            args.validity
        )));
    }
    let config = ConfigArgs {
        config: args.config.clone(),
        allow_untested_version: false,
    };
    let (validated, _) = load_and_plan(&config, &[], err)?;
    let cluster = &validated.cluster;
    let server = match &args.server {
        Some(url) => checked_server(url)?,
        None => default_server(cluster)?,
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.kubeconfig", args.user)));
    if path.symlink_metadata().is_ok() {
        return Err(Error::Input(format!(
            "{} already exists; kube-bundle never overwrites a credential (pick another --out)",
            path.display()
        )));
    }
    let dir = secrets_folder(&args.config, cluster, args.secrets.as_deref())?;
    write_err(err, &format!("secrets: {}\n", dir.display()))?;
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "{}: no such secrets folder; `kube-bundle build` creates it",
            dir.display()
        )));
    }
    let store = SecretStore::open(&dir, Access::ReadOnly)?;
    let spec = CertSpec {
        common_name: args.user.clone(),
        organization: args.group.clone(),
        purpose: Purpose::ClientAuth,
        sans: None,
        issuer: CaName::Cluster,
    };
    let issued = pki::issue_user(cluster, &store, &spec, validity, OffsetDateTime::now_utc())?;
    let kubeconfig = render::client_kubeconfig(
        cluster.name.as_str(),
        &server,
        &issued.ca_cert_pem,
        &args.user,
        &issued.credential,
    )?;
    write_private_new(&path, kubeconfig.as_bytes())?;
    let group = args
        .group
        .as_deref()
        .map_or(String::new(), |g| format!(" in group {g}"));
    write_out(
        out,
        &format!(
            "wrote {}: {}{group} at {server}, valid until {} (it cannot be revoked: grant \
             rights with RBAC bindings, which can)\n",
            path.display(),
            args.user,
            issued.not_after.date()
        ),
    )
}

/// A user or group name goes into the certificate and, quoted, into the kubeconfig:
/// printable words only. Names that already hold power are refused without the flag:
/// Kubernetes' own `system:` names (system:masters above all, a superuser no RBAC change
/// can take back) and kube-bundle's own identities, whose bindings install.sh restores on
/// every run (so revoking them means breaking the bundles' own credentials).
fn check_identity(name: &str, what: &str, allow_system: bool) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@:+-".contains(c);
    if name.is_empty()
        || name.len() > MAX_NAME_CHARS
        || !name.chars().all(allowed)
        || name.starts_with('-')
    {
        return Err(Error::Usage(format!(
            "{what} {name:?}: use 1 to {MAX_NAME_CHARS} letters, digits and . _ @ : + - (not \
             starting with -)"
        )));
    }
    let why = if name == SUPERUSER_GROUP {
        Some("a superuser that no RBAC change can revoke, for as long as the certificate lives")
    } else if name.starts_with("system:") {
        Some("a name Kubernetes reserves for its own components")
    } else if name.starts_with("kube-bundle:") || [ADMIN_CN, KUBELET_CLIENT_CN].contains(&name) {
        Some(
            "an identity of kube-bundle's own, bound to its rights by manifests install.sh restores on every run",
        )
    } else {
        None
    };
    match why {
        Some(why) if !allow_system => Err(Error::Usage(format!(
            "{what} {name}: {why}; bind the rights needed to a group of your own instead, or \
             pass --allow-system-identity if this is what you mean"
        ))),
        _ => Ok(()),
    }
}

/// The apiserver URL: https, a host, at most a port; it is written unquoted into YAML.
fn checked_server(text: &str) -> Result<String, Error> {
    let url = url::Url::parse(text)
        .map_err(|e| Error::Usage(format!("--server {text:?}: not a URL ({e})")))?;
    let plain = url.scheme() == "https"
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(Error::Usage(format!(
            "--server {text:?}: write https://HOST[:PORT], nothing more"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// What a machine off the cluster reaches: the load balancer or VIP when there is one, else
/// the first master (the node-local proxy the bundles' own kubeconfig uses is on the nodes).
fn default_server(cluster: &Cluster) -> Result<String, Error> {
    if let Some(endpoint) = &cluster.control_plane_endpoint {
        return Ok(endpoint
            .host
            .https_url(endpoint.port.unwrap_or(SECURE_PORT)));
    }
    let first = cluster
        .masters
        .first()
        .ok_or_else(|| Error::Internal("a validated cluster without masters".into()))?;
    Ok(Host::Ip(first.ip).https_url(SECURE_PORT))
}

/// Creates `path` 0600 with `bytes`; an existing file (or link) there is refused.
fn write_private_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}
