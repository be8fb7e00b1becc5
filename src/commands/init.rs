//! `init`: the first step of a new cluster, a commented cluster.yaml to edit.

use std::io::Write;
use std::path::Path;

use super::write_out;
use crate::error::Error;
use crate::schema::{SCHEMA_FILE_NAME, schema_json};

/// The commented example `init` writes: a modern three-master cluster.
pub const EXAMPLE_CLUSTER_YAML: &str = include_str!("../../templates/cluster.yaml");

/// Writes DIR/cluster.yaml and, beside it, the JSON Schema its first line points editors at.
/// An existing file is the operator's work, so it is never replaced.
pub(super) fn init(dir: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let path = dir.join("cluster.yaml");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if !write_new(&path, EXAMPLE_CLUSTER_YAML)? {
        return Err(Error::Input(format!(
            "{} already exists; kube-bundle init never overwrites a cluster description \
             (move it away or pick another directory)",
            path.display()
        )));
    }
    let schema_path = dir.join(SCHEMA_FILE_NAME);
    let schema = if write_new(&schema_path, &schema_json())? {
        format!(
            "wrote {}: the schema editors check it with\n",
            schema_path.display()
        )
    } else {
        format!(
            "kept the existing {}; `kube-bundle schema > {}` refreshes it\n",
            schema_path.display(),
            schema_path.display()
        )
    };
    write_out(
        out,
        &format!(
            "wrote {}: edit masters, network and etcd, then run `kube-bundle check {}`\n{schema}",
            path.display(),
            path.display()
        ),
    )
}

/// Writes `text` to a new file at `path`; `false` if something is already there.
fn write_new(path: &Path, text: &str) -> Result<bool, Error> {
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    Ok(true)
}
