//! A bounded, seeded mutation fuzzer for the config parser and validator, run in-process
//! on every CI run: byte flips, insertions of YAML-significant characters, line
//! duplications and splices across the examples, the bad fixtures and the hostile corpus.
//! Any panic fails the test and names the seed that reproduces it. (cargo-fuzz needs a
//! nightly toolchain, which this project's CI does not have.)

use std::fs;
use std::panic;
use std::path::Path;

use kube_bundle::source::SourceFile;
use kube_bundle::validate::ValidateOptions;

use crate::harness::repo_root;

const ITERATIONS: u64 = 20_000;
const TOKENS: &[&str] = &[
    ":", "- ", "[", "]", "{", "}", "&a ", "*a", "!!str ", "'", "\"", "\n", "  ", "#", "|", ">",
    "~", "0x", "-1", "1e999", "\\u0000", "/", "..", "::", "10.0.0.1", "fd00::1", "/32", "v1.", ",",
    "\t", "é", "\u{202e}",
];

fn seeds() -> Vec<Vec<u8>> {
    let root = repo_root();
    let mut inputs = vec![
        fs::read(root.join("examples/cluster.yaml")).unwrap(),
        fs::read(root.join("examples/seed-ha.yaml")).unwrap(),
    ];
    for dir in ["tests/fixtures/bad", "tests/hostile"] {
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let file = if path.is_dir() {
                path.join("cluster.yaml")
            } else {
                path
            };
            if let Ok(bytes) = fs::read(&file)
                && bytes.len() < 64 * 1024
            {
                inputs.push(bytes);
            }
        }
    }
    inputs
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: small, seedable, good enough to pick mutations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut data = inputs[rng.below(inputs.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + rng.below(40)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let other = &inputs[rng.below(inputs.len())];
                let start = rng.below(other.len());
                let end = (start + rng.below(200)).min(other.len());
                data.splice(at..at, other[start..end].iter().copied());
            }
            _ => {
                let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                data.splice(at..at, line.into_iter().chain([b'\n']));
            }
        }
    }
    data
}

#[test]
fn the_parser_and_validator_never_panic_on_mutated_input() {
    let inputs = seeds();
    assert!(inputs.len() > 100);
    let mut accepted = 0;
    for seed in 1..=ITERATIONS {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let data = mutate(&mut rng, &inputs);
        let outcome = panic::catch_unwind(|| {
            let text = String::from_utf8_lossy(&data).into_owned();
            let source = SourceFile::new(Path::new("fuzz.yaml"), text);
            let validated = kube_bundle::validate_source(&source, ValidateOptions::default())?;
            // Whatever validates must also plan without panicking.
            kube_bundle::plan::plan(&validated.cluster);
            Ok::<_, kube_bundle::error::Error>(())
        });
        match outcome {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(error)) => {
                // Errors render without panicking too.
                if let kube_bundle::error::Error::InvalidConfig(reports) = &error {
                    for report in reports {
                        let _ = kube_bundle::diagnostics::render(report.as_ref());
                    }
                }
            }
            Err(_) => {
                panic!(
                    "seed {seed} panicked on:\n{}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }
    assert!(
        accepted > 0,
        "no mutation was valid: the fuzzer only tests the first error path"
    );
}
