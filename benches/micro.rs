//! `cargo bench`: micro-benchmarks of the stages that dominate a build, so regressions
//! show. No framework: each case runs a fixed number of times and prints the median.

use std::path::Path;
use std::time::{Duration, Instant};

use kube_bundle::config::KeyAlgorithm;
use kube_bundle::keys::PrivateKey;
use kube_bundle::secrets::{Access, SecretStore};
use kube_bundle::validate::ValidateOptions;
use kube_bundle::{bundle, encryption, pki, plan, render};

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn report(name: &str, time: Duration) {
    println!("{name:<44} {:>10.3} ms", time.as_secs_f64() * 1000.0);
}

fn main() {
    let cluster = kube_bundle::load_cluster(
        Path::new("examples/cluster.yaml"),
        ValidateOptions::default(),
    )
    .expect("run from the repository root")
    .cluster;
    let plan = plan::plan(&cluster);

    report(
        "key generation: ecdsa-p256",
        median(50, || drop(PrivateKey::generate(KeyAlgorithm::EcdsaP256))),
    );
    report(
        "key generation: rsa-2048",
        median(5, || drop(PrivateKey::generate(KeyAlgorithm::Rsa2048))),
    );

    report(
        "pki: provision 3 masters from empty secrets",
        median(10, || {
            let dir = tempfile::tempdir().unwrap();
            let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
            pki::provision(&cluster, &plan, &store, time::OffsetDateTime::now_utc()).unwrap();
        }),
    );

    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
    let now = time::OffsetDateTime::now_utc();
    pki::provision(&cluster, &plan, &store, now).unwrap();
    report(
        "pki: reuse 3 masters (secrets present)",
        median(20, || {
            drop(pki::provision(&cluster, &plan, &store, now).unwrap())
        }),
    );
    let material = pki::provision(&cluster, &plan, &store, now).unwrap();
    let keys = encryption::keys_for_build(&cluster, &store).unwrap();
    let node = &plan.nodes["cp1"];
    report(
        "plan: 3 masters",
        median(200, || drop(plan::plan(&cluster))),
    );
    report(
        "render: one node",
        median(200, || {
            drop(render::render_node(&cluster, node, &material, &keys).unwrap())
        }),
    );

    let rendered = render::render_node(&cluster, node, &material, &keys).unwrap();
    let shared = bundle::SharedFiles::new(dir.path().join("shared"));
    let contents = bundle::contents(&node.name, rendered, &shared).unwrap();
    let documents = render::documents(&render::BundleFacts {
        cluster: &cluster,
        node,
        bundle_id: &contents.bundle_id,
        manifests: contents.manifests.clone(),
    })
    .unwrap();
    let assembled = bundle::assemble(&cluster, node, contents, documents, "0", &shared).unwrap();
    let out = dir.path().join("cp1.tar.gz");
    report(
        "tar + gzip: one node",
        median(100, || {
            bundle::write_tarball(&out, "cp1", &assembled.tree, 0, &shared).unwrap();
        }),
    );
}
