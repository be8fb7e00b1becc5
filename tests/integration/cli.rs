//! The command-line contract: commands, exit codes 0 / 1 / 2, messages, and what the
//! shell, man(1) and `--version` learn about the command line.

use std::fs;
use std::process::Command;

use clap::CommandFactory;
use kube_bundle::cli::Cli;
use kube_bundle::versions::{NEWEST_MINOR, OLDEST_MINOR};

use crate::harness::{Project, kube_bundle, repo_root};

#[test]
fn examples_pass_check() {
    for example in ["examples/cluster.yaml", "examples/seed-ha.yaml"] {
        kube_bundle(&repo_root(), &["check", example])
            .code(0)
            .stdout_has("is valid");
    }
}

#[test]
fn seed_example_is_linted_for_aescbc() {
    kube_bundle(&repo_root(), &["check", "examples/seed-ha.yaml"])
        .code(0)
        .stderr_has("aescbc is rated weak")
        .stderr_has("examples/seed-ha.yaml:");
}

/// Every bad fixture exits 1 and names the position and the problem it was written for.
#[test]
fn every_bad_fixture_exits_1_with_its_expected_message() {
    let fixtures = repo_root().join("tests/fixtures/bad");
    let mut checked = 0;
    for entry in fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let expected = fs::read_to_string(dir.join("expected"))
            .unwrap_or_else(|_| panic!("{} has no `expected` file", dir.display()));
        let run = kube_bundle(&dir, &["check", "cluster.yaml"]);
        run.code(1);
        for line in expected.lines().filter(|line| !line.is_empty()) {
            run.stderr_has(line);
        }
        assert!(!run.stderr().contains("panicked"), "{}", dir.display());
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn plan_rejects_what_check_rejects() {
    let dir = repo_root().join("tests/fixtures/bad/dns-domain-trailing-dot");
    kube_bundle(&dir, &["plan", "cluster.yaml"])
        .code(1)
        .stderr_has("trailing dot");
}

#[test]
fn usage_errors_exit_2() {
    kube_bundle(&repo_root(), &["chek"]).code(2);
    kube_bundle(
        &repo_root(),
        &["plan", "--output", "yaml", "examples/cluster.yaml"],
    )
    .code(2);
    kube_bundle(&repo_root(), &["check", "--no-such-flag"]).code(2);
}

#[test]
fn a_missing_config_exits_1_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    kube_bundle(dir.path(), &["check"])
        .code(1)
        .stderr_has("kube-bundle init");
}

#[test]
fn init_writes_a_valid_example_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    kube_bundle(dir.path(), &["init", "site"]).code(0);
    let written = fs::read_to_string(dir.path().join("site/cluster.yaml")).unwrap();
    assert!(written.contains("kubernetesVersion: v1.37.2"));
    kube_bundle(dir.path(), &["check", "site/cluster.yaml"]).code(0);
    fs::write(dir.path().join("site/cluster.yaml"), "mine").unwrap();
    kube_bundle(dir.path(), &["init", "site"])
        .code(1)
        .stderr_has("never overwrites");
    assert_eq!(
        fs::read_to_string(dir.path().join("site/cluster.yaml")).unwrap(),
        "mine"
    );
}

#[test]
fn the_init_template_is_the_shipped_example() {
    let template = fs::read_to_string(repo_root().join("templates/cluster.yaml")).unwrap();
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    assert_eq!(
        template, example,
        "examples/cluster.yaml must be what `init` writes"
    );
}

#[test]
fn plan_text_shows_seed_sans_and_paths() {
    let run = kube_bundle(&repo_root(), &["plan", "examples/seed-ha.yaml"]);
    run.code(0)
        .stdout_has("kubernetes service IP 10.254.0.1")
        .stdout_has("node m7-autocv-gpu01 (172.27.128.150)")
        .stdout_has("kubernetes.default.svc.cluster, kubernetes.default.svc.cluster.local")
        .stdout_has("IP:  172.27.128.150, 127.0.0.1, 10.254.0.1")
        .stdout_has("0600  /etc/kubernetes/cert/apiserver.key")
        .stdout_has("directories: /data/k8s/k8s/kube-apiserver");
}

#[test]
fn plan_json_has_the_documented_shape() {
    let run = kube_bundle(
        &repo_root(),
        &["plan", "--output", "json", "examples/cluster.yaml"],
    );
    run.code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(plan["formatVersion"], 1);
    assert_eq!(plan["cluster"], "prod-eu1");
    assert_eq!(plan["kubernetesVersion"], "v1.37.2");
    assert_eq!(plan["kubernetesServiceIp"], "10.96.0.1");
    let node = &plan["nodes"]["cp2"];
    assert_eq!(node["ip"], "10.20.0.12");
    let dns = node["servingCertSans"]["dns"].as_array().unwrap();
    assert!(
        dns.contains(&"api.prod-eu1.example.com".into()),
        "endpoint host is a SAN"
    );
    assert!(dns.contains(&"kubernetes.default.svc.cluster.local".into()));
    let ips = node["servingCertSans"]["ips"].as_array().unwrap();
    assert_eq!(
        ips,
        &["10.20.0.12", "127.0.0.1", "10.96.0.1"].map(serde_json::Value::from)
    );
    let key = &node["files"]["/etc/kubernetes/pki/apiserver.key"];
    assert_eq!(key["mode"], "0600");
    assert_eq!(key["artifact"], "apiserver-key");
    assert_eq!(
        node["files"]["/etc/kubernetes/pki/etcd/ca.crt"]["artifact"],
        "etcd-ca-cert"
    );
}

#[test]
fn opsnull_domain_yields_both_seed_names() {
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(repo_root().join("examples/seed-ha.yaml")).unwrap();
    let edited = example.replace("dnsDomain: cluster.local", "dnsDomain: opsnull.com");
    fs::write(dir.path().join("cluster.yaml"), edited).unwrap();
    kube_bundle(dir.path(), &["plan"])
        .code(0)
        .stdout_has("kubernetes.default.svc.opsnull, kubernetes.default.svc.opsnull.com");
}

/// `check` names the key and its line for every setting weaker than kube-bundle's defaults,
/// and stays quiet about the same settings at the seed's own release where they are the seed's.
#[test]
fn check_warns_about_weaker_apiserver_settings_at_their_lines() {
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    let weaker = example
        .replace("maxBackup: 10", "maxBackup: 3")
        .replace("enableAllAPIs: false", "enableAllAPIs: true")
        .replace(
            "verifyKubeletServingCerts: true",
            "verifyKubeletServingCerts: false",
        );
    let line = |key: &str| {
        1 + weaker
            .lines()
            .position(|l| l.contains(key) && !l.trim_start().starts_with('#'))
            .unwrap_or_else(|| panic!("the example has no {key}"))
    };
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cluster.yaml"), &weaker).unwrap();
    let run = kube_bundle(dir.path(), &["check", "cluster.yaml"]);
    run.code(0)
        .stderr_has("apiserver.audit.maxBackup")
        .stderr_has(&format!("cluster.yaml:{}:", line("maxBackup: 3")))
        .stderr_has("apiserver.enableAllAPIs")
        .stderr_has("alpha")
        .stderr_has(&format!("cluster.yaml:{}:", line("enableAllAPIs: true")))
        .stderr_has("apiserver.verifyKubeletServingCerts")
        .stderr_has(&format!(
            "cluster.yaml:{}:",
            line("verifyKubeletServingCerts: false")
        ));

    let seed = weaker
        .replace("kubernetesVersion: v1.37.2", "kubernetesVersion: v1.12.3")
        .replace(
            "verifyKubeletServingCerts: false",
            "verifyKubeletServingCerts: true",
        );
    fs::write(dir.path().join("cluster.yaml"), &seed).unwrap();
    let run = kube_bundle(dir.path(), &["check", "cluster.yaml"]);
    run.code(0);
    assert!(
        !run.stderr().contains("apiserver.audit.maxBackup"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("apiserver.enableAllAPIs"),
        "{}",
        run.stderr()
    );
}

/// bundle.json's configSha256 is the hash of the cluster.yaml bytes the build validated.
#[test]
fn bundle_json_records_the_sha256_of_the_cluster_yaml_it_built() {
    let project = Project::new();
    project.build();
    let extracted = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(project.bundle("cp1"))
        .arg("cp1/bundle.json")
        .output()
        .unwrap();
    assert!(extracted.status.success(), "{extracted:?}");
    let provenance: serde_json::Value = serde_json::from_slice(&extracted.stdout).unwrap();
    let config = fs::read(project.path().join("cluster.yaml")).unwrap();
    assert_eq!(
        provenance["configSha256"],
        kube_bundle::sign::sha256_hex(&config).as_str()
    );
}

/// `certs renew` names what exists at the level that was wrong: the nodes for an unknown
/// node, the node's certificates for an unknown certificate on a known node.
#[test]
fn renew_names_the_nodes_or_the_certificates_that_exist() {
    let project = Project::new();
    project.add_client();
    kube_bundle(project.path(), &["certs", "renew", "cp9/apiserver"])
        .code(2)
        .stderr_has("there is no node cp9; the nodes are cp1, cp2, cp3, w1");
    kube_bundle(project.path(), &["certs", "renew", "cp1/apiserver-key"])
        .code(2)
        .stderr_has("node cp1 has no certificate named \"apiserver-key\"; its certificates are admin, apiserver, ");
    kube_bundle(project.path(), &["certs", "renew", "w1/apiserver"])
        .code(2)
        .stderr_has("node w1 has no certificates");
    kube_bundle(project.path(), &["certs", "renew", "cp1/apiserver/x"])
        .code(2)
        .stderr_has("NODE/NAME");
    // The cluster description is an option: a file among the names says so.
    kube_bundle(project.path(), &["certs", "renew", "cluster.yaml", "--all"])
        .code(2)
        .stderr_has("--config cluster.yaml");
    kube_bundle(project.path(), &["certs", "renew", "apiserver", "--all"])
        .code(2)
        .stderr_has("--all");
    kube_bundle(
        project.path(),
        &[
            "certs",
            "renew",
            "--config",
            "cluster.yaml",
            "cp1/apiserver",
        ],
    )
    .code(0)
    .stdout_has("renewed cp1/apiserver\nnext:");
}

/// `certs renew` and `encryption rotate` change what a build created: run where nothing
/// was built (a config that does not load, a folder without secrets, a wrong --secrets),
/// they fail without creating a secrets folder or its lock file.
#[test]
fn a_failed_renew_or_rotate_creates_no_secrets_folder_and_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(repo_root().join("examples/cluster.yaml")).unwrap();
    fs::write(
        dir.path().join("cluster.yaml"),
        example.replace("name: cp2", "name: cp2\n    nonsense: 1"),
    )
    .unwrap();
    let commands: [&[&str]; 3] = [
        &["certs", "renew", "--all"],
        &["certs", "renew", "cp1/apiserver"],
        &["encryption", "rotate"],
    ];
    for args in commands {
        kube_bundle(dir.path(), args).code(1).stderr_has("nonsense");
        assert!(!dir.path().join("secrets").exists(), "{args:?}");
    }

    fs::write(dir.path().join("cluster.yaml"), &example).unwrap();
    for args in commands {
        kube_bundle(dir.path(), args)
            .code(1)
            .stderr_has("no such secrets folder; `kube-bundle build` creates it");
        assert!(!dir.path().join("secrets").exists(), "{args:?}");
        let elsewhere = [args, &["--secrets", "elsewhere/prod-eu1"]].concat();
        kube_bundle(dir.path(), &elsewhere)
            .code(1)
            .stderr_has("elsewhere/prod-eu1: no such secrets folder");
        assert!(!dir.path().join("elsewhere").exists(), "{elsewhere:?}");
    }
}

/// Every command's full name, `kube-bundle certs expiry` as `["certs", "expiry"]`, the
/// top command as `[]`; clap's `help` left out.
fn every_command() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: Vec<String>, all: &mut Vec<Vec<String>>) {
        for sub in command
            .get_subcommands()
            .filter(|sub| sub.get_name() != "help")
        {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            walk(sub, sub_path, all);
        }
        all.push(path);
    }
    let mut all = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut all);
    all
}

/// As kubectl does: a bare `kube-bundle` is a request for help, not a usage error.
#[test]
fn no_command_prints_the_help_on_stdout_and_exits_0() {
    let run = kube_bundle(&repo_root(), &[]);
    run.code(0)
        .stdout_has("Usage: kube-bundle [OPTIONS] [COMMAND]")
        .stdout_has("  build ")
        .stdout_has("  completions ");
    assert_eq!(run.stderr(), "");
    kube_bundle(&repo_root(), &["--color", "never"])
        .code(0)
        .stdout_has("Commands:");
}

#[test]
fn version_names_the_commit_and_the_supported_kubernetes_releases() {
    let run = kube_bundle(&repo_root(), &["--version"]);
    run.code(0)
        .stdout_has(&format!(
            "kube-bundle {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .stdout_has(&format!(
            "Kubernetes v1.{OLDEST_MINOR} – v1.{NEWEST_MINOR})"
        ));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // The commit the tests were built from: the checkout's HEAD, or "unknown" without git
    // (a release tarball).
    let in_checkout = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| fs::canonicalize(top).ok() == fs::canonicalize(repo_root()).ok());
    let expected = match git(&["rev-parse", "HEAD"]) {
        Some(head) if in_checkout => head[..12].to_owned(),
        _ => "unknown".to_owned(),
    };
    run.stdout_has(&format!("(commit {expected}, "));
    assert_eq!(
        kube_bundle(&repo_root(), &["-V"]).stdout(),
        run.stdout(),
        "-V says the same"
    );
}

/// The script loads in a real bash and completes a command, an option and an option value.
#[test]
fn the_bash_completion_script_loads_and_completes() {
    let script = r#"
        set -e
        source <("$KUBE_BUNDLE" completions bash)
        complete -p kube-bundle
        completion=$(complete -p kube-bundle | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
        complete_line() {
            COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            "$completion" kube-bundle "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
            echo "$* -> ${COMPREPLY[*]}"
        }
        complete_line kube-bundle cert
        complete_line kube-bundle plan --outp
        complete_line kube-bundle plan --output ''
        complete_line kube-bundle completions ''
    "#;
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("KUBE_BUNDLE", env!("CARGO_BIN_EXE_kube-bundle"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr, "", "loads without complaint");
    assert!(stdout.starts_with("complete "), "registered:\n{stdout}");
    for expected in [
        " kube-bundle\n",
        "kube-bundle cert -> certs\n",
        "kube-bundle plan --outp -> --output\n",
        "kube-bundle plan --output  -> text json\n",
        " bash zsh fish powershell\n",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
}

/// zsh, fish and PowerShell are not installed to run their scripts: each script is checked
/// for its shell's registration line and for every command and every --output.
#[test]
fn the_other_completion_scripts_name_every_command() {
    for (shell, registration) in [
        ("zsh", "#compdef kube-bundle"),
        ("fish", "complete -c kube-bundle "),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName 'kube-bundle'",
        ),
    ] {
        let run = kube_bundle(&repo_root(), &["completions", shell]);
        run.code(0).stdout_has(registration);
        let script = run.stdout();
        for command in every_command()
            .into_iter()
            .filter_map(|path| path.last().cloned())
        {
            assert!(script.contains(&command), "{shell} lacks {command}");
        }
        for option in ["output", "color", "allow-untested-version", "fingerprint"] {
            assert!(script.contains(option), "{shell} lacks --{option}");
        }
    }
    kube_bundle(&repo_root(), &["completions", "tcsh"]).code(2);
}

/// One page per command, each rendered by man(1) (groff underneath) without a warning, in
/// the plain C locale too, whose ASCII output has no glyph for typographic characters.
#[test]
fn every_man_page_renders_with_man_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let run = kube_bundle(dir.path(), &["man", "--dir", "man1"]);
    run.code(0);
    let mut expected: Vec<String> = every_command()
        .iter()
        .map(|path| {
            let name: Vec<&str> = ["kube-bundle"]
                .into_iter()
                .chain(path.iter().map(String::as_str))
                .collect();
            format!("{}.1", name.join("-"))
        })
        .collect();
    expected.sort();
    let mut written: Vec<String> = fs::read_dir(&pages)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    for page in &written {
        run.stdout_has(&format!("man1/{page}\n"));
        for locale in ["C", "C.UTF-8"] {
            let shown = Command::new("man")
                .args(["-l", "--warnings=w", "-P", "cat"])
                .arg(pages.join(page))
                .env("MANWIDTH", "80")
                .env("LC_ALL", locale)
                .output()
                .expect("man(1) runs (.ci/run installs man-db)");
            let stdout = String::from_utf8_lossy(&shown.stdout);
            let stderr = String::from_utf8_lossy(&shown.stderr);
            assert!(shown.status.success(), "{page} {locale}: {stderr}");
            assert_eq!(stderr, "", "{page} {locale}: warnings");
            let title = page.trim_end_matches(".1");
            assert!(stdout.contains(&format!("{title}(1)")), "{page}:\n{stdout}");
            assert!(stdout.contains("SYNOPSIS"), "{page}:\n{stdout}");
        }
    }
    let top = fs::read_to_string(pages.join("kube-bundle.1")).unwrap();
    let printed = kube_bundle(dir.path(), &["man"]);
    printed.code(0);
    assert_eq!(
        printed.stdout(),
        top,
        "without --dir: the top page on stdout"
    );
}

/// `--color` decides for the diagnostics and for clap's usage errors, over NO_COLOR and
/// whether stderr is a terminal; `auto` colors only a terminal, and a test's stderr is not.
#[test]
fn color_follows_the_color_option() {
    const ESCAPE: &str = "\x1b[";
    let fixture = repo_root().join("tests/fixtures/bad/dns-domain-trailing-dot");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
            .args(args)
            .current_dir(&fixture)
            .env_remove("NO_COLOR")
            .output()
            .expect("the binary runs");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let check = ["check", "cluster.yaml"];
    for (color, colored) in [("always", true), ("never", false), ("auto", false)] {
        let diagnostics = run(&[&["--color", color][..], &check[..]].concat());
        assert!(diagnostics.contains("trailing dot"), "{diagnostics}");
        assert_eq!(
            diagnostics.contains(ESCAPE),
            colored,
            "{color}: {diagnostics}"
        );
        let usage = run(&["--color", color, "chek"]);
        assert!(usage.contains("unrecognized subcommand"), "{usage}");
        assert_eq!(usage.contains(ESCAPE), colored, "{color}: {usage}");
    }
    assert!(!run(&check).contains(ESCAPE), "auto by default");
    // NO_COLOR gives way to an explicit choice.
    kube_bundle(&fixture, &["check", "--color=always", "cluster.yaml"])
        .code(1)
        .stderr_has(ESCAPE);
}

#[test]
fn man_replaces_a_planted_link_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let pages = dir.path().join("man");
    fs::create_dir(&pages).unwrap();
    std::os::unix::fs::symlink(&victim, pages.join("kube-bundle.1")).unwrap();
    kube_bundle(dir.path(), &["man", "--dir", "man"]).code(0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    let page = fs::symlink_metadata(pages.join("kube-bundle.1")).unwrap();
    assert!(
        page.file_type().is_file(),
        "the link was replaced by the page"
    );
}
