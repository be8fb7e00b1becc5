//! What `build` says and refuses when compared with the bundles already in its output: a
//! Kubernetes minor going back or skipping ahead, a new service-account issuer or cluster
//! domain (each refused unless its flag allows it, with nothing written), certificates
//! renewed since the last build, and progress on stderr. The encryption rotation's guard
//! is in `lifecycle`, beside the three phases it follows.

use std::path::Path;

use crate::harness::{Project, Run, kube_bundle, snapshot};

/// `build ARGS` in the project.
fn build(project: &Project, args: &[&str]) -> Run {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    kube_bundle(project.path(), &all)
}

/// A project built once at `version`.
fn built_at(version: &str) -> Project {
    let project = Project::new();
    project.edit(
        "kubernetesVersion: v1.37.2",
        &format!("kubernetesVersion: {version}"),
    );
    let first = project.build();
    assert_no_guard(&first);
    project
}

#[track_caller]
fn assert_no_guard(run: &Run) {
    let stderr = run.stderr();
    assert!(
        !stderr.contains("refusing") && !stderr.contains("warning:"),
        "{stderr}"
    );
}

/// Runs `refused` (which must exit 1 naming `flag`) and checks it wrote nothing.
#[track_caller]
fn assert_refused_untouched(project: &Project, refused: &[&str], flag: &str) -> Run {
    let before = snapshot(project.path());
    let run = build(project, refused);
    run.code(1).stderr_has("refusing to build").stderr_has(flag);
    assert_eq!(
        snapshot(project.path()),
        before,
        "a refused build writes nothing"
    );
    run
}

fn kubernetes_version(project: &Project, version: &str) {
    let text = std::fs::read_to_string(project.path().join("cluster.yaml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("kubernetesVersion:"))
        .unwrap()
        .to_owned();
    project.edit(&line, &format!("kubernetesVersion: {version}"));
}

#[test]
fn a_minor_downgrade_is_refused_unless_allowed() {
    let project = built_at("v1.36.1");
    // A patch release back is not a minor downgrade.
    kubernetes_version(&project, "v1.36.0");
    assert_no_guard(build(&project, &[]).code(0));

    kubernetes_version(&project, "v1.35.0");
    assert_refused_untouched(&project, &[], "--allow-version-skew")
        .stderr_has("kubernetesVersion v1.35.0 is an older minor than v1.36.0")
        .stderr_has("(cp1, cp2, cp3)")
        .stderr_has("does not support downgrading");
    build(&project, &["--allow-version-skew"])
        .code(0)
        .stderr_has("warning: kubernetesVersion v1.35.0 is an older minor")
        .stderr_has("building anyway (--allow-version-skew)");
    // The output now holds v1.35: building it again is the normal case.
    assert_no_guard(build(&project, &[]).code(0));
}

#[test]
fn a_jump_of_more_than_one_minor_is_refused_and_one_minor_is_not() {
    let project = built_at("v1.34.0");
    kubernetes_version(&project, "v1.36.0");
    assert_refused_untouched(&project, &[], "--allow-version-skew")
        .stderr_has("kubernetesVersion v1.36.0 is 2 minor versions after v1.34.0")
        .stderr_has("Build and install v1.35 on every master first");
    // One minor at a time is the supported upgrade: no guard.
    kubernetes_version(&project, "v1.35.0");
    assert_no_guard(build(&project, &[]).code(0));
    kubernetes_version(&project, "v1.37.2");
    build(&project, &["--allow-version-skew"])
        .code(0)
        .stderr_has("building anyway (--allow-version-skew)");
}

/// A master upgraded alone (`--node`) leaves the output with two minors: the next step is
/// measured from the oldest, the downgrade from the newest.
#[test]
fn an_output_halfway_through_an_upgrade_is_measured_from_both_ends() {
    let project = built_at("v1.34.0");
    kubernetes_version(&project, "v1.35.0");
    build(&project, &["--node", "cp1"]).code(0);
    kubernetes_version(&project, "v1.36.0");
    assert_refused_untouched(&project, &["--node", "cp1"], "--allow-version-skew")
        .stderr_has("after v1.34.0, which the bundles in the output carry (cp2, cp3)");
    kubernetes_version(&project, "v1.34.0");
    assert_refused_untouched(&project, &[], "--allow-version-skew")
        .stderr_has("older minor than v1.35.0, which the bundles in the output carry (cp1)");
    kubernetes_version(&project, "v1.35.0");
    assert_no_guard(build(&project, &[]).code(0));
}

#[test]
fn a_new_cluster_domain_and_issuer_are_refused_unless_allowed() {
    let project = built_at("v1.37.2");
    // An unrelated change is no reason for a guard.
    project.edit(
        "profiling: \"false\"",
        "profiling: \"false\"\n    event-ttl: 2h",
    );
    assert_no_guard(build(&project, &[]).code(0));

    project.edit("dnsDomain: cluster.local", "dnsDomain: corp.example");
    assert_refused_untouched(&project, &[], "--allow-issuer-change")
        .stderr_has("network.dnsDomain changes from cluster.local to corp.example")
        .stderr_has(
            "service-account issuer changes from https://kubernetes.default.svc.cluster.local \
             to https://kubernetes.default.svc.corp.example",
        )
        .stderr_has("every service-account token issued so far");
    // The other guard's flag is not this one's.
    assert_refused_untouched(&project, &["--allow-version-skew"], "--allow-issuer-change");
    build(&project, &["--allow-issuer-change"])
        .code(0)
        .stderr_has("building anyway (--allow-issuer-change)");
    assert_no_guard(build(&project, &[]).code(0));
}

#[test]
fn an_issuer_set_in_extra_args_is_guarded_too() {
    let project = built_at("v1.37.2");
    project.edit(
        "profiling: \"false\"",
        "profiling: \"false\"\n    service-account-issuer: https://issuer.corp.example",
    );
    let refused = assert_refused_untouched(&project, &[], "--allow-issuer-change");
    refused.stderr_has(
        "the service-account issuer changes from https://kubernetes.default.svc.cluster.local \
         to https://issuer.corp.example",
    );
    assert!(
        !refused.stderr().contains("dnsDomain"),
        "{}",
        refused.stderr()
    );
    build(&project, &["--allow-issuer-change"]).code(0);
    // The domain moves while extraArgs keeps the issuer: still a refusal, for the domain.
    project.edit("dnsDomain: cluster.local", "dnsDomain: corp.example");
    let refused = assert_refused_untouched(&project, &[], "--allow-issuer-change");
    refused.stderr_has("network.dnsDomain changes from cluster.local to corp.example");
    assert!(
        !refused.stderr().contains("issuer changes"),
        "{}",
        refused.stderr()
    );
}

/// Both guards at once: one refusal lists both, each with its flag.
#[test]
fn every_refusal_is_reported_in_one_run() {
    let project = built_at("v1.36.1");
    kubernetes_version(&project, "v1.35.0");
    project.edit("dnsDomain: cluster.local", "dnsDomain: corp.example");
    let run =
        assert_refused_untouched(&project, &["--allow-issuer-change"], "--allow-version-skew");
    assert!(
        !run.stderr().contains("--allow-issuer-change if"),
        "{}",
        run.stderr()
    );
    assert_refused_untouched(&project, &[], "--allow-version-skew")
        .stderr_has("--allow-issuer-change");
}

#[test]
fn a_build_after_certs_renew_says_renewed_for_exactly_the_renewed_certificates() {
    let project = Project::new();
    let first = project.build();
    // The fixture secrets already hold every leaf: reused, though the output is new.
    for node in ["cp1", "cp2", "cp3"] {
        first.stdout_has(&format!("{node}: new; bundle {node}-"));
    }
    first.stdout_has("(certificates reused)");

    kube_bundle(project.path(), &["certs", "renew", "cp2/apiserver"]).code(0);
    let run = project.build();
    let line = |node: &str| -> String {
        run.stdout()
            .lines()
            .find(|l| l.starts_with(&format!("{node}: ")))
            .unwrap_or_else(|| panic!("no line for {node}:\n{}", run.stdout()))
            .to_owned()
    };
    assert!(
        line("cp2").ends_with("(apiserver renewed; the others reused)"),
        "{}",
        line("cp2")
    );
    for node in ["cp1", "cp3"] {
        assert!(
            line(node).starts_with(&format!("{node}: unchanged;"))
                && line(node).ends_with("(certificates reused)"),
            "{}",
            line(node)
        );
    }
    // Shipped once, the renewed certificate is reused like the others.
    assert!(!project.build().stdout().contains("renewed"));

    // Same key, new certificate: still renewed.
    kube_bundle(project.path(), &["certs", "renew", "admin", "--reuse-keys"]).code(0);
    let run = project.build();
    for node in ["cp1", "cp2", "cp3"] {
        run.stdout_has(&format!("{node}: changed"));
    }
    assert_eq!(
        run.stdout()
            .matches("(admin renewed; the others reused)")
            .count(),
        3,
        "{}",
        run.stdout()
    );
}

/// A project with cluster.yaml and no secrets: the first build makes every key.
fn fresh(dir: &Path) {
    std::fs::write(
        dir.join("cluster.yaml"),
        crate::harness::apiserver_only_example("cluster.yaml"),
    )
    .unwrap();
}

#[test]
fn progress_is_logged_with_verbose_and_silent_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    fresh(dir.path());
    let verbose = kube_bundle(dir.path(), &["build", "--verbose"]);
    verbose
        .code(0)
        .stderr_has("previous generation: none")
        .stderr_has("generating 19 ecdsa-p256 keys…\n")
        .stderr_has("generating 19 ecdsa-p256 keys: done in ")
        .stderr_has("writing 3 bundles…\n")
        .stderr_has("  cp1: written and signed (")
        .stderr_has("writing 3 bundles: done in ");
    assert!(
        !verbose.stdout().contains("writing 3"),
        "progress is not stdout"
    );
    // Each key is counted as it is made, whichever thread makes it.
    let stderr = verbose.stderr();
    let counted = stderr.lines().filter(|l| l.starts_with("  key (")).count();
    assert_eq!(counted, 19, "{stderr}");
    assert!(stderr.contains("  key (19/19, "), "{stderr}");
    // The global flag goes before the command too; nothing to make, nothing said of keys.
    let again = kube_bundle(dir.path(), &["-v", "build"]);
    again
        .code(0)
        .stderr_has("previous generation: v1.37.2 on cp1, cp2, cp3");
    assert!(!again.stderr().contains("generating"), "{}", again.stderr());

    // stderr is not a terminal here: without --verbose, no progress.
    for args in [&["build"][..], &["build", "--quiet"], &["-q", "build"]] {
        let run = kube_bundle(dir.path(), args);
        run.code(0);
        assert!(
            !run.stderr().contains("writing") && !run.stderr().contains("previous generation"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    kube_bundle(dir.path(), &["build", "--quiet", "--verbose"])
        .code(2)
        .stderr_has("cannot be used with");
}

#[test]
fn certs_renew_counts_what_it_renews_with_verbose() {
    let dir = tempfile::tempdir().unwrap();
    fresh(dir.path());
    kube_bundle(dir.path(), &["build"]).code(0);
    let verbose = kube_bundle(dir.path(), &["certs", "renew", "--all", "--verbose"]);
    verbose
        .code(0)
        .stderr_has("renewing 15 certificates…\n")
        .stderr_has("  cp2/apiserver (")
        .stderr_has("renewing 15 certificates: done in ");
    let quiet = kube_bundle(dir.path(), &["certs", "renew", "apiserver"]);
    quiet.code(0).stdout_has("renewed cp1/apiserver");
    assert!(!quiet.stderr().contains("renewing"), "{}", quiet.stderr());
}

/// A truncated copy or a full disk must not open the guards: an unreadable bundle of the
/// output stops the build unless both guards are waived, and nothing named like a bundle
/// (a FIFO) can hang it.
#[test]
fn an_unreadable_bundle_in_the_output_fails_the_guards_closed() {
    let dir = tempfile::tempdir().unwrap();
    fresh(dir.path());
    kube_bundle(dir.path(), &["build"]).code(0);
    let output = dir.path().join("bundles/prod-eu1");
    let whole = std::fs::read(output.join("cp1.tar.gz")).unwrap();
    std::fs::write(output.join("cp1.tar.gz"), &whole[..100]).unwrap();
    kube_bundle(dir.path(), &["build"])
        .code(1)
        .stderr_has("cp1.tar.gz: its bundle.json cannot be read")
        .stderr_has("--allow-version-skew and --allow-issuer-change");
    assert_eq!(
        std::fs::read(output.join("cp1.tar.gz")).unwrap(),
        &whole[..100],
        "a refused build writes nothing"
    );
    kube_bundle(
        dir.path(),
        &["build", "--allow-version-skew", "--allow-issuer-change"],
    )
    .code(0)
    .stderr_has("this build is not compared with it");

    let fifo = output.join("cp9.tar.gz");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    kube_bundle(dir.path(), &["build"])
        .code(1)
        .stderr_has("cp9.tar.gz: its bundle.json cannot be read (it is not a regular file)");
}
