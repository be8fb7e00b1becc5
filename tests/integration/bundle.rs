//! `build` and `verify` end to end: byte-reproducible bundles, stock openssl signature
//! checks, tampering and hostile archives refused, a pinned listing and hash.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{Project, kube_bundle, repo_root};

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn openssl_verifies(dir: &Path, tarball: &str) -> bool {
    Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "signing.pub",
            "-signature",
            &format!("{tarball}.sig"),
            tarball,
        ])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// Every entry of a tarball: (path, mode, size, sha256 of the content).
fn listing(tarball: &Path) -> Vec<(String, u32, u64, String)> {
    entries(tarball)
        .into_iter()
        .map(|(path, mode, size, content)| {
            (path, mode, size, kube_bundle::sign::sha256_hex(&content))
        })
        .collect()
}

/// Every entry of a tarball: (path, mode, size, content).
fn entries(tarball: &Path) -> Vec<(String, u32, u64, Vec<u8>)> {
    let file = fs::File::open(tarball).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            let header = entry.header();
            (
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.size().unwrap(),
                content,
            )
        })
        .collect()
}

#[test]
fn two_builds_give_identical_bytes() {
    let project = Project::new();
    project.add_client();
    project.build();
    let nodes = ["cp1", "cp2", "cp3", "w1"];
    let first: Vec<Vec<u8>> = nodes.iter().map(|n| read(&project.bundle(n))).collect();
    let first_sigs: Vec<Vec<u8>> = nodes
        .iter()
        .map(|n| read(&project.bundle(n).with_extension("gz.sig")))
        .collect();
    project.build();
    for (index, node) in nodes.iter().enumerate() {
        assert_eq!(
            read(&project.bundle(node)),
            first[index],
            "{node}.tar.gz changed on a rebuild"
        );
        assert_eq!(
            read(&project.bundle(node).with_extension("gz.sig")),
            first_sigs[index],
            "{node} signature changed"
        );
        assert!(
            openssl_verifies(
                &project.path().join("bundles/prod-eu1"),
                &format!("{node}.tar.gz")
            ),
            "{node}: openssl rejects the signature"
        );
    }
}

#[test]
fn another_directory_timezone_and_umask_give_identical_bytes() {
    let project = Project::new();
    project.build();
    let other = Project::new();
    let output = Command::new("sh")
        .args([
            "-c",
            &format!(
                "umask 0002 && exec {} build",
                env!("CARGO_BIN_EXE_kube-bundle")
            ),
        ])
        .current_dir(other.path())
        .env("TZ", "Pacific/Kiritimati")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for node in ["cp1", "cp2", "cp3"] {
        assert_eq!(
            read(&project.bundle(node)),
            read(&other.bundle(node)),
            "{node} differs across directories"
        );
    }
    for name in ["SHA256SUMS", "signing.pub", "INSTALL.md"] {
        let path = |p: &Project| p.path().join("bundles/prod-eu1").join(name);
        assert_eq!(read(&path(&project)), read(&path(&other)), "{name} differs");
    }
    let mode = fs::metadata(other.bundle("cp1"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o600,
        "bundles hold keys: owner-only whatever the umask"
    );
}

#[test]
fn source_date_epoch_sets_every_timestamp() {
    let project = Project::new();
    let run = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
        .arg("build")
        .current_dir(project.path())
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .output()
        .unwrap();
    assert!(run.status.success());
    let file = fs::File::open(project.bundle("cp1")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 1_234_567_890);
        assert_eq!(entry.header().uid().unwrap(), 0);
        assert_eq!(entry.header().gid().unwrap(), 0);
    }
    let bytes = read(&project.bundle("cp1"));
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0], "gzip header mtime is 0");
    assert_eq!(bytes[3] & 0x08, 0, "gzip header carries no file name");
}

#[test]
fn changing_one_masters_ip_changes_only_what_it_should() {
    let project = Project::new();
    project.build();
    let before: Vec<_> = ["cp1", "cp2", "cp3"]
        .iter()
        .map(|n| listing(&project.bundle(n)))
        .collect();
    project.edit(
        "{ name: cp2, ip: 10.20.0.12 }",
        "{ name: cp2, ip: 10.20.0.22 }",
    );
    let run = project.build();
    assert!(
        run.stdout().contains("apiserver re-issued (SANs changed"),
        "{}",
        run.stdout()
    );
    let changed = |node: &str, before: &[(String, u32, u64, String)]| -> Vec<String> {
        let after = listing(&project.bundle(node));
        assert_eq!(after.len(), before.len(), "{node}: the file list changed");
        let mut changed: Vec<String> = after
            .iter()
            .zip(before)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.trim_start_matches(&format!("{node}/")).to_owned())
            .collect();
        changed.sort_unstable();
        changed
    };
    // The other masters only re-render their node-local proxy's upstream list (and the
    // bookkeeping that names the new bundle).
    for (index, node) in [(0, "cp1"), (2, "cp3")] {
        assert_eq!(
            changed(node, &before[index]),
            [
                "README.md",
                "SHA256SUMS",
                "bundle.json",
                "install.sh",
                "rootfs/etc/kubernetes/kube-nginx.conf"
            ],
            "{node}"
        );
    }
    assert_eq!(
        changed("cp2", &before[1]),
        [
            "README.md",
            "SHA256SUMS",
            "bundle.json",
            "install.sh",
            "rootfs/etc/kubernetes/kube-nginx.conf",
            "rootfs/etc/kubernetes/pki/apiserver.crt",
            "rootfs/etc/kubernetes/pki/apiserver.key",
            "rootfs/etc/systemd/system/kube-apiserver.service",
        ]
    );
}

#[test]
fn stock_openssl_and_verify_accept_every_bundle() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    for node in ["cp1", "cp2", "cp3"] {
        assert!(
            openssl_verifies(&out, &format!("{node}.tar.gz")),
            "openssl rejected {node}"
        );
        kube_bundle(
            project.path(),
            &[
                "verify",
                &format!("bundles/prod-eu1/{node}.tar.gz"),
                "--allow-unpinned",
            ],
        )
        .code(0)
        .stdout_has("OK");
    }
    let sums = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
}

#[test]
fn install_md_commands_work_as_written() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    let guide = fs::read_to_string(out.join("INSTALL.md")).unwrap();
    let fingerprint = kube_bundle(project.path(), &["build"]).stdout();
    let fingerprint = fingerprint
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(guide.contains(&fingerprint));
    let computed = Command::new("sh")
        .args([
            "-c",
            "openssl pkey -pubin -in signing.pub -outform DER | sha256sum",
        ])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&computed.stdout).starts_with(&fingerprint),
        "fingerprint recipe"
    );
    // The verify and extract lines, with <node> filled in, run as written.
    let block: Vec<&str> = guide
        .lines()
        .skip_while(|l| !l.starts_with("openssl dgst"))
        .take(2)
        .collect();
    let script = block.join(" && ").replace("<node>", "cp1");
    let status = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
    assert!(out.join("cp1/install.sh").exists());
}

#[test]
fn every_flipped_byte_is_caught_by_verify_and_sampled_bytes_by_openssl() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    let original = read(&out.join("cp1.tar.gz"));
    let signature = read(&out.join("cp1.tar.gz.sig"));
    let public = fs::read_to_string(out.join("signing.pub")).unwrap();
    let scratch = project.path().join("flipped.tar.gz");
    for index in 0..original.len() {
        let mut bytes = original.clone();
        bytes[index] ^= 0x01;
        fs::write(&scratch, &bytes).unwrap();
        assert!(
            kube_bundle::sign::verify_file_signature(&public, &scratch, &signature).is_err(),
            "a flip at byte {index} verified"
        );
    }
    let step = (original.len() / 40).max(1);
    for index in (0..original.len())
        .step_by(step)
        .chain([original.len() - 1])
    {
        let mut bytes = original.clone();
        bytes[index] ^= 0x80;
        fs::write(out.join("flipped.tar.gz"), &bytes).unwrap();
        fs::copy(out.join("cp1.tar.gz.sig"), out.join("flipped.tar.gz.sig")).unwrap();
        assert!(
            !openssl_verifies(&out, "flipped.tar.gz"),
            "openssl accepted a flip at {index}"
        );
        kube_bundle(
            project.path(),
            &[
                "verify",
                "bundles/prod-eu1/flipped.tar.gz",
                "--allow-unpinned",
            ],
        )
        .code(3)
        .stderr_has("signature does not match");
    }
}

#[test]
fn another_nodes_signature_is_refused() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    fs::copy(out.join("cp2.tar.gz.sig"), out.join("cp1.tar.gz.sig")).unwrap();
    assert!(!openssl_verifies(&out, "cp1.tar.gz"));
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(3);
}

/// A tar entry as written raw: path, type, content.
type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8]);

/// Writes a tar.gz whose entries are given raw (bypassing the tar crate's path checks),
/// and signs it with the project's signing key.
fn hostile_bundle(
    project: &Project,
    name: &str,
    entries: &[(&str, tar::EntryType, &[u8])],
) -> String {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_ustar();
        let raw = &mut header.as_old_mut().name;
        raw[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        // Otherwise what our writer writes, so only the flaw under test is wrong.
        header.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/shadow").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    let relative = format!("bundles/prod-eu1/{name}.tar.gz");
    let path = project.path().join(&relative);
    fs::write(&path, &bytes).unwrap();
    let store = kube_bundle::secrets::SecretStore::open(
        &project.path().join("secrets/prod-eu1"),
        kube_bundle::secrets::Access::ReadOnly,
    )
    .unwrap();
    let signer = kube_bundle::sign::Signer::load_or_create(&store, None).unwrap();
    fs::write(
        project.path().join(format!("{relative}.sig")),
        signer.sign(&bytes).unwrap(),
    )
    .unwrap();
    relative
}

#[test]
fn hostile_archives_signed_with_the_right_key_are_refused() {
    let project = Project::new();
    project.build();
    let regular = tar::EntryType::Regular;
    let cases: &[(&str, Vec<RawEntry<'_>>, &str)] = &[
        (
            "dotdot",
            vec![
                ("cp1/install.sh", regular, b"x"),
                ("cp1/../evil", regular, b"x"),
            ],
            "'..'",
        ),
        (
            "absolute",
            vec![("/etc/cron.d/evil", regular, b"x")],
            "absolute path",
        ),
        (
            "symlink",
            vec![
                ("cp1/install.sh", regular, b"x"),
                ("cp1/rootfs/etc/link", tar::EntryType::Symlink, b""),
            ],
            "Symlink",
        ),
        (
            "duplicate",
            vec![
                ("cp1/install.sh", regular, b"a"),
                ("cp1/install.sh", regular, b"b"),
            ],
            "duplicate entry",
        ),
        (
            "device",
            vec![("cp1/dev", tar::EntryType::Char, b"")],
            "only files and directories",
        ),
        (
            "two-tops",
            vec![("cp1/a", regular, b"x"), ("cp2/b", regular, b"x")],
            "outside the bundle's directory",
        ),
        (
            "no-sums",
            vec![("cp1/install.sh", regular, b"x")],
            "no SHA256SUMS",
        ),
    ];
    for (name, entries, reason) in cases {
        let relative = hostile_bundle(&project, name, entries);
        let run = kube_bundle(project.path(), &["verify", &relative, "--allow-unpinned"]);
        run.code(3).stderr_has(reason);
        assert!(
            openssl_verifies(
                &project.path().join("bundles/prod-eu1"),
                &format!("{name}.tar.gz")
            ),
            "the signature itself is valid"
        );
    }
}

#[test]
fn a_bundle_whose_checksums_lie_is_refused() {
    let project = Project::new();
    project.build();
    // Re-pack cp1 with one rootfs file changed but SHA256SUMS left alone, then sign it.
    let mut files = entries(&project.bundle("cp1"));
    let unit = files
        .iter_mut()
        .find(|e| e.0.ends_with("kube-apiserver.service"))
        .unwrap();
    unit.3 = b"[Service]\nExecStart=/bin/evil\n".to_vec();
    unit.2 = unit.3.len() as u64;
    let owned: Vec<(String, tar::EntryType, Vec<u8>)> = files
        .iter()
        .map(|(p, _, _, c)| {
            (
                p.clone(),
                if p.ends_with('/') {
                    tar::EntryType::Directory
                } else {
                    tar::EntryType::Regular
                },
                c.clone(),
            )
        })
        .collect();
    let borrowed: Vec<RawEntry<'_>> = owned
        .iter()
        .map(|(p, k, c)| (p.as_str(), *k, c.as_slice()))
        .collect();
    let relative = hostile_bundle(&project, "lying", &borrowed);
    kube_bundle(project.path(), &["verify", &relative, "--allow-unpinned"])
        .code(3)
        .stderr_has("sha256 differs from SHA256SUMS");
}

/// The uncompressed listing (path, mode, size) for examples/cluster.yaml with the fixture
/// secrets, and the sha256 of the signed tarball: any change to layout, modes, rendering
/// or compression shows up here and must be reviewed.
#[test]
fn pinned_listing_and_hash_for_the_example() {
    let project = Project::new();
    project.build();
    let listing: String = entries(&project.bundle("cp1"))
        .iter()
        .map(|(path, mode, size, _)| format!("{mode:04o} {size:>6} {path}\n"))
        .collect();
    let golden = repo_root().join("tests/golden/bundle/cp1.listing");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(golden.parent().unwrap()).unwrap();
        fs::write(&golden, &listing).unwrap();
    }
    assert_eq!(
        listing,
        fs::read_to_string(&golden).unwrap(),
        "rerun with UPDATE_GOLDEN=1 and review the diff"
    );
    let hash = kube_bundle::sign::sha256_hex(&read(&project.bundle("cp1")));
    let pinned = repo_root().join("tests/golden/bundle/cp1.tar.gz.sha256");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&pinned, format!("{hash}\n")).unwrap();
    }
    assert_eq!(
        format!("{hash}\n"),
        fs::read_to_string(&pinned).unwrap(),
        "cp1.tar.gz bytes changed"
    );
}

#[test]
fn node_subset_builds_keep_the_other_bundles() {
    let project = Project::new();
    project.build();
    let cp2 = read(&project.bundle("cp2"));
    kube_bundle(project.path(), &["build", "--node", "cp1"]).code(0);
    assert_eq!(read(&project.bundle("cp2")), cp2);
    let fresh = tempfile::tempdir().unwrap();
    fs::copy(
        repo_root().join("examples/cluster.yaml"),
        fresh.path().join("cluster.yaml"),
    )
    .unwrap();
    kube_bundle(fresh.path(), &["build", "--node", "cp9"])
        .code(2)
        .stderr_has("no such master");
    assert!(
        !fresh.path().join("secrets").exists(),
        "a usage error creates nothing"
    );
}

#[test]
fn a_failed_build_leaves_the_previous_bundles_in_place() {
    let project = Project::new();
    project.build();
    let before = read(&project.bundle("cp1"));
    project.edit("ca: separate", "ca: cluster");
    // The stored signing key is damaged: the build must fail before touching bundles/.
    let key = project.path().join("secrets/prod-eu1/signing-key.pem");
    let saved = read(&key);
    fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    kube_bundle(project.path(), &["build"])
        .code(1)
        .stderr_has("signing-key.pem");
    assert_eq!(read(&project.bundle("cp1")), before);
    assert_eq!(
        read(&key),
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
        "the damaged key is kept for inspection"
    );
    fs::write(&key, saved).unwrap();
    let leftovers: Vec<_> = fs::read_dir(project.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers,
        ["prod-eu1"],
        "no staging directories left behind"
    );
}

#[test]
fn a_shipped_binary_lands_in_bin_dir_with_its_hash() {
    let project = Project::new();
    // A stand-in binary: a script that answers --version, padded to a few MB.
    let mut binary = b"#!/bin/sh\necho 'Kubernetes v1.37.2'\nexit 0\n".to_vec();
    binary.extend((0..4_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    fs::write(project.path().join("kube-apiserver"), &binary).unwrap();
    project.edit("kubeApiserver: null", "kubeApiserver: kube-apiserver");
    project.build();
    let listing = listing(&project.bundle("cp1"));
    let (_, mode, size, hash) = listing
        .iter()
        .find(|e| e.0 == "cp1/rootfs/usr/local/bin/kube-apiserver")
        .expect("binary shipped");
    assert_eq!((*mode, *size), (0o755, binary.len() as u64));
    assert_eq!(*hash, kube_bundle::sign::sha256_hex(&binary));
    let provenance = entries(&project.bundle("cp1"))
        .into_iter()
        .find(|e| e.0 == "cp1/bundle.json")
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.3).unwrap())
        .unwrap();
    assert_eq!(
        provenance["files"]["rootfs/usr/local/bin/kube-apiserver"]["sha256"],
        hash.as_str()
    );
    assert_eq!(
        provenance["files"]["rootfs/usr/local/bin/kube-apiserver"]["mode"],
        "0755"
    );
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);

    // The binary is compressed once and spliced into each node's stream as its own gzip
    // member: stock tar still reads it whole, and a rebuild gives the same bytes.
    let extracted = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(project.bundle("cp2"))
        .arg("-C")
        .arg(extracted.path())
        .status()
        .unwrap();
    assert!(status.success(), "stock tar xzf fails on the bundle");
    assert_eq!(
        read(
            &extracted
                .path()
                .join("cp2/rootfs/usr/local/bin/kube-apiserver")
        ),
        binary
    );
    let before = read(&project.bundle("cp1"));
    project.build();
    assert_eq!(read(&project.bundle("cp1")), before);
    let mut names: Vec<String> = fs::read_dir(project.path().join("bundles/prod-eu1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') || n == ".kube-bundle-output"),
        "scratch left in the output: {names:?}"
    );
}

#[test]
fn truncated_and_extended_tarballs_are_refused_by_verify_and_openssl() {
    let project = Project::new();
    project.build();
    let out = project.path().join("bundles/prod-eu1");
    let original = read(&out.join("cp1.tar.gz"));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("truncated-by-one", original[..original.len() - 1].to_vec()),
        ("truncated-to-half", original[..original.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("appended-byte", [original.as_slice(), b"\0"].concat()),
        (
            "appended-gzip-member",
            [original.as_slice(), original.as_slice()].concat(),
        ),
    ];
    for (name, bytes) in variants {
        fs::write(out.join(format!("{name}.tar.gz")), &bytes).unwrap();
        fs::copy(
            out.join("cp1.tar.gz.sig"),
            out.join(format!("{name}.tar.gz.sig")),
        )
        .unwrap();
        assert!(
            !openssl_verifies(&out, &format!("{name}.tar.gz")),
            "openssl accepted {name}"
        );
        kube_bundle(
            project.path(),
            &[
                "verify",
                &format!("bundles/prod-eu1/{name}.tar.gz"),
                "--allow-unpinned",
            ],
        )
        .code(3);
    }
}

/// `binaries.front` ships the proxy like the apiserver binary: at `haFront.binary`, 0755,
/// owned by the front's unit, so a new proxy build restarts only the front.
#[test]
fn a_shipped_front_binary_lands_at_the_front_binary_path() {
    let project = Project::new();
    let binary = b"#!/bin/sh\necho 'nginx version: nginx/1.22.1'\n".to_vec();
    fs::write(project.path().join("nginx"), &binary).unwrap();
    project.edit("kubeApiserver: null", "kubeApiserver: null\n  front: nginx");
    project.build();
    let entries = entries(&project.bundle("cp1"));
    let (_, mode, _, content) = entries
        .iter()
        .find(|e| e.0 == "cp1/rootfs/usr/sbin/nginx")
        .expect("front binary shipped at haFront.binary's default");
    assert_eq!((*mode, content), (0o755, &binary));
    let installer = entries
        .iter()
        .find(|e| e.0 == "cp1/install.sh")
        .map(|e| String::from_utf8_lossy(&e.3).into_owned())
        .unwrap();
    assert!(
        installer.contains("  '0755 /usr/sbin/nginx kube-nginx.service'"),
        "{installer}"
    );
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);
}

/// A binary over several 1 MiB chunks is compressed on every core as independent gzip
/// members: the bytes do not depend on the thread count, stock tar extracts the binary
/// whole, `verify` accepts the bundle, and the strict reader still refuses (under a valid
/// signature) a stream cut at a member boundary or with anything after its last member.
#[test]
fn a_binary_over_several_chunks_gives_the_same_bytes_on_any_thread_count() {
    let project = Project::new();
    let mut binary = b"#!/bin/sh\necho 'Kubernetes v1.37.2'\nexit 0\n".to_vec();
    binary.extend((0..3_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    fs::write(project.path().join("kube-apiserver"), &binary).unwrap();
    project.edit("kubeApiserver: null", "kubeApiserver: kube-apiserver");
    let build_with = |threads: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
            .arg("build")
            .current_dir(project.path())
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        read(&project.bundle("cp1"))
    };
    let one_thread = build_with("1");
    assert!(build_with("2") == one_thread, "2 threads wrote other bytes");
    assert!(build_with("3") == one_thread, "3 threads wrote other bytes");

    let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let member_starts: Vec<usize> = one_thread
        .windows(header.len())
        .enumerate()
        .filter(|(_, window)| *window == header)
        .map(|(offset, _)| offset)
        .collect();
    // One before the binary, one per chunk of it (4), one after.
    assert!(member_starts.len() >= 6, "{member_starts:?}");
    kube_bundle(
        project.path(),
        &["verify", "bundles/prod-eu1/cp1.tar.gz", "--allow-unpinned"],
    )
    .code(0);
    let extracted = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(project.bundle("cp1"))
        .arg("-C")
        .arg(extracted.path())
        .status()
        .unwrap();
    assert!(status.success(), "stock tar xzf fails on the bundle");
    let shipped = extracted
        .path()
        .join("cp1/rootfs/usr/local/bin/kube-apiserver");
    assert_eq!(read(&shipped), binary);

    let junk_member = {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut gzip, b"more after the end").unwrap();
        gzip.finish().unwrap()
    };
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "cut-at-a-member",
            one_thread[..member_starts[3]].to_vec(),
            "is cut off",
        ),
        (
            "member-appended",
            [one_thread.as_slice(), &junk_member].concat(),
            "data follows the end-of-archive marker",
        ),
        (
            "junk-appended",
            [one_thread.as_slice(), b"junk"].concat(),
            "damaged archive",
        ),
    ];
    let store = kube_bundle::secrets::SecretStore::open(
        &project.path().join("secrets/prod-eu1"),
        kube_bundle::secrets::Access::ReadOnly,
    )
    .unwrap();
    let signer = kube_bundle::sign::Signer::load_or_create(&store, None).unwrap();
    for (name, bytes, refusal) in variants {
        let relative = format!("bundles/prod-eu1/{name}.tar.gz");
        fs::write(project.path().join(&relative), &bytes).unwrap();
        fs::write(
            project.path().join(format!("{relative}.sig")),
            signer.sign(&bytes).unwrap(),
        )
        .unwrap();
        kube_bundle(project.path(), &["verify", &relative, "--allow-unpinned"])
            .code(3)
            .stderr_has(refusal);
    }
}
