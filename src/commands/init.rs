//! `init`: the first step of a new cluster, a commented cluster.yaml to edit.

use std::io::Write;
use std::path::Path;

use super::write_out;
use crate::error::Error;

/// The commented example `init` writes: a modern three-master cluster.
pub const EXAMPLE_CLUSTER_YAML: &str = include_str!("../../templates/cluster.yaml");

/// Writes DIR/cluster.yaml; an existing file is the operator's work, so it is never replaced.
pub(super) fn init(dir: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let path = dir.join("cluster.yaml");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Input(format!(
                "{} already exists; kube-bundle init never overwrites a cluster description \
                 (move it away or pick another directory)",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    file.write_all(EXAMPLE_CLUSTER_YAML.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    write_out(
        out,
        &format!(
            "wrote {}: edit masters, network and etcd, then run `kube-bundle check {}`\n",
            path.display(),
            path.display()
        ),
    )
}
