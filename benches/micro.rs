//! `cargo bench`: micro-benchmarks of the stages that dominate a build, so regressions
//! show. No framework: each case runs a fixed number of times and prints the median (RSA
//! key generation the mean: its time varies with the prime search, and a build of N keys
//! costs N means). `cargo bench --bench micro -- WORDS` runs only the cases whose name
//! contains WORDS; `bench/run.sh` reads the RSA key time that way.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use kube_bundle::config::KeyAlgorithm;
use kube_bundle::keys::PrivateKey;
use kube_bundle::model::Cluster;
use kube_bundle::secrets::{Access, SecretStore};
use kube_bundle::validate::ValidateOptions;
use kube_bundle::{bundle, encryption, pki, plan, render};

fn times(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn median(runs: usize, f: impl FnMut()) -> Duration {
    times(runs, f)[runs / 2]
}

fn mean(runs: usize, f: impl FnMut()) -> Duration {
    times(runs, f).iter().sum::<Duration>() / u32::try_from(runs).unwrap_or(1)
}

/// The cases named on the command line (cargo adds `--bench`, which is not one).
struct Selection(Vec<String>);

impl Selection {
    fn wants(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|word| name.contains(word.as_str()))
    }

    fn run(&self, name: &str, measure: impl FnOnce() -> Duration) {
        if self.wants(name) {
            let time = measure();
            println!("{name:<48} {:>10.3} ms", time.as_secs_f64() * 1000.0);
        }
    }
}

fn load(path: &Path) -> Cluster {
    kube_bundle::load_cluster(path, ValidateOptions::default())
        .expect("run from the repository root")
        .cluster
}

/// A cluster.yaml with `count` masters, as bench/run.sh writes it.
fn masters(dir: &Path, count: usize) -> Cluster {
    let mut yaml = String::from(
        "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: bench\n\
         kubernetesVersion: v1.36.1\nmasters:\n",
    );
    for i in 0..count {
        yaml += &format!(
            "  - {{ name: m{i}, ip: 10.{}.{}.{} }}\n",
            i / 62_500 + 20,
            i / 250 % 250,
            i % 250 + 1
        );
    }
    yaml += "network: { serviceCIDR: 10.96.0.0/12 }\n\
             etcd: { endpoints: [\"https://10.20.0.1:2379\"] }\napiserver: { extraArgs: {} }\n";
    let path = dir.join(format!("masters-{count}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    load(&path)
}

fn main() {
    let selection = Selection(
        std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with("--"))
            .collect(),
    );
    let cluster = load(Path::new("examples/cluster.yaml"));
    let plan = plan::plan(&cluster);
    let dir = tempfile::tempdir().unwrap();

    key_cases(&selection);
    selection.run("config: shape check of examples/cluster.yaml", || {
        let source =
            kube_bundle::source::SourceFile::read(Path::new("examples/cluster.yaml")).unwrap();
        median(200, || drop(kube_bundle::schema::shape_findings(&source)))
    });
    selection.run("pki: provision 3 masters from empty secrets", || {
        median(10, || {
            let dir = tempfile::tempdir().unwrap();
            let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
            pki::provision(&cluster, &plan, &store, time::OffsetDateTime::now_utc()).unwrap();
        })
    });
    let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let material = pki::provision(&cluster, &plan, &store, now).unwrap();
    selection.run("pki: reuse 3 masters (secrets present)", || {
        median(20, || {
            drop(pki::provision(&cluster, &plan, &store, now).unwrap())
        })
    });
    if selection.wants("pki: reuse 300 masters") {
        let many = masters(dir.path(), 300);
        let many_plan = plan::plan(&many);
        let store = SecretStore::open(&dir.path().join("s300"), Access::ReadWrite).unwrap();
        pki::provision(&many, &many_plan, &store, now).unwrap();
        selection.run("pki: reuse 300 masters (secrets present)", || {
            median(5, || {
                drop(pki::provision(&many, &many_plan, &store, now).unwrap())
            })
        });
    }

    let keys = encryption::keys_for_build(&cluster, &store).unwrap();
    let node = &plan.nodes["cp1"];
    selection.run("plan: 3 masters", || {
        median(200, || drop(plan::plan(&cluster)))
    });
    selection.run("render: one node", || {
        median(200, || {
            drop(render::render_node(&cluster, node, &material, &keys).unwrap())
        })
    });

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
    selection.run("tar + gzip: one node", || {
        median(100, || {
            bundle::write_tarball(&out, "cp1", &assembled.tree, 0, &shared).unwrap();
        })
    });
    shared_file_cases(&selection, dir.path());
}

fn key_cases(selection: &Selection) {
    selection.run("key generation: ecdsa-p256", || {
        median(200, || {
            drop(PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap())
        })
    });
    let stored = PrivateKey::generate(KeyAlgorithm::EcdsaP256)
        .unwrap()
        .to_pem();
    selection.run("key parse: stored ecdsa-p256 (one derivation)", || {
        median(200, || drop(PrivateKey::from_pem_text(&stored).unwrap()))
    });
    let key = PrivateKey::from_pem_text(&stored).unwrap();
    selection.run("sign: ecdsa-p256, RFC 6979", || {
        median(200, || drop(key.sign_sha256(b"kube-bundle").unwrap()))
    });
    selection.run("key generation: rsa-2048 (mean of 60)", || {
        mean(60, || {
            drop(PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap())
        })
    });
}

/// A 32 MiB shared file (half text, half pseudo-random, like the stand-in binary of
/// bench/run.sh) compressed in chunks: on every thread, and on one for the comparison.
fn shared_file_cases(selection: &Selection, dir: &Path) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let name = "shared file 32 MiB: chunked gzip";
    let (on_all, on_one) = (
        format!("{name}, {cores} threads"),
        format!("{name}, 1 thread"),
    );
    if !selection.wants(&on_all) && !selection.wants(&on_one) {
        return;
    }
    let path = dir.join("kube-apiserver");
    let mut file = std::fs::File::create(&path).unwrap();
    let text = b"kube-apiserver stand-in: compressible text segment 0123456789\n";
    for _ in 0..(16 << 20) / text.len() {
        file.write_all(text).unwrap();
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..16 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    file.write_all(&random).unwrap();
    drop(file);
    let prepare_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        median(5, || {
            // prepare compresses as it hashes, as in a build that writes every tarball.
            let shared = bundle::SharedFiles::compressing_when_hashed(dir.join("chunks"));
            pool.install(|| shared.prepare(&path).unwrap());
            assert!(dir.join("chunks").exists(), "prepare did not compress");
            shared.close().unwrap();
        })
    };
    selection.run(&on_all, || prepare_on(cores));
    selection.run(&on_one, || prepare_on(1));
}
