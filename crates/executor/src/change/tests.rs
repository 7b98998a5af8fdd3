use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

const ACCOUNT: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: probe
  namespace: probe-system
";

const DAEMONSET: &str = "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-probe
  namespace: probe-system
spec:
  selector:
    matchLabels: {app: node-probe}
  template:
    metadata:
      labels: {app: node-probe}
    spec:
      serviceAccountName: probe
      containers:
        - name: probe
          image: registry.example/probe:1
";

fn file(name: &str, text: &str) -> (PathBuf, String) {
    (PathBuf::from(format!("change/{name}")), text.to_owned())
}

fn parse_files(files: &[(PathBuf, String)]) -> Result<Change, ChangeError> {
    parse(Path::new("change"), files)
}

/// The error's location and reason; panics if the change was accepted.
fn refusal(files: &[(PathBuf, String)]) -> (String, String) {
    match parse_files(files) {
        Err(ChangeError::Invalid { at, reason }) => (at.to_string(), reason),
        Err(other) => panic!("refused without a location: {other}"),
        Ok(change) => panic!("accepted: {change:?}"),
    }
}

#[test]
fn a_change_is_put_in_apply_order_with_the_daemonset_last() {
    let rbac = "\
# RBAC for the probe
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: probe}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: probe}
subjects: [{kind: ServiceAccount, name: probe, namespace: probe-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: probe}
rules: []
---
";
    let files = [
        file("a-daemonset.yaml", &format!("{DAEMONSET}---\n{ACCOUNT}")),
        file("b-rbac.yaml", rbac),
        file(
            "c-namespace.yml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: probe-system}\n",
        ),
    ];
    let change = parse_files(&files).expect("a valid change");
    let kinds: Vec<_> = change
        .manifests
        .iter()
        .map(|m| kind_of(&m.object))
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet"
        ]
    );
    assert_eq!(change.name, "node-probe");
    assert_eq!(change.label_key(), "rollout.fleetwatch.dev/node-probe");
    assert_eq!(
        change.service_account,
        ServiceAccount {
            namespace: "probe-system".to_owned(),
            name: "probe".to_owned()
        }
    );
    assert_eq!(
        change.daemonset().at.to_string(),
        "change/a-daemonset.yaml:1:1"
    );
    let role = change
        .manifests
        .iter()
        .find(|m| kind_of(&m.object) == "ClusterRole");
    assert_eq!(
        role.expect("the role").at.to_string(),
        "change/b-rbac.yaml:8:1"
    );
}

#[test]
fn a_missing_field_is_located_in_its_file_not_its_document() {
    let text = format!(
        "{ACCOUNT}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: x\n---\n{DAEMONSET}"
    );
    let (at, reason) = refusal(&[file("all.yaml", &text)]);
    // The ConfigMap's document starts on line 6 (after the account's 5 lines and the marker).
    assert!(at.starts_with("change/all.yaml:"), "{at}");
    let line: usize = at
        .split(':')
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a line");
    assert!((6..=10).contains(&line), "located at {at}: {reason}");
    assert!(reason.contains("name"), "{reason}");
}

#[test]
fn a_yaml_syntax_error_gives_its_line_and_column() {
    let text = format!("{ACCOUNT}---\n{DAEMONSET}---\nkind: [unclosed\n");
    let (at, _) = refusal(&[file("all.yaml", &text)]);
    let lines_before = ACCOUNT.lines().count() + 1 + DAEMONSET.lines().count() + 1;
    let line: usize = at
        .split(':')
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a line");
    assert!(
        line > lines_before,
        "{at} is not in the third document (after line {lines_before})"
    );
}

#[test]
fn unsafe_or_ambiguous_changes_are_refused_saying_why() {
    let default_account = DAEMONSET.replace("      serviceAccountName: probe\n", "");
    let (at, reason) = refusal(&[file("ds.yaml", &default_account)]);
    assert_eq!(at, "change/ds.yaml:1:1");
    assert!(reason.contains("default service account"), "{reason}");

    let second = DAEMONSET.replace("name: node-probe\n  namespace", "name: other\n  namespace");
    let (at, reason) = refusal(&[file("a.yaml", DAEMONSET), file("b.yaml", &second)]);
    assert_eq!(at, "change/b.yaml:1:1");
    assert!(
        reason.contains("second DaemonSet") && reason.contains("change/a.yaml:1:1"),
        "{reason}"
    );

    let lane =
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: mine}\n";
    let (at, reason) = refusal(&[file("ds.yaml", DAEMONSET), file("lane.yaml", lane)]);
    assert_eq!(at, "change/lane.yaml:1:1");
    assert!(reason.contains("Priority and Fairness"), "{reason}");

    let (at, reason) = refusal(&[file(
        "ds.yaml",
        &format!("{DAEMONSET}---\n{ACCOUNT}---\n{ACCOUNT}"),
    )]);
    assert_eq!(
        at,
        format!(
            "change/ds.yaml:{}:1",
            DAEMONSET.lines().count() + ACCOUNT.lines().count() + 3
        )
    );
    assert!(
        reason.contains("also defined at change/ds.yaml:"),
        "{reason}"
    );

    let long = DAEMONSET.replace(
        "name: node-probe\n  namespace",
        &format!("name: {}\n  namespace", "n".repeat(64)),
    );
    let (_, reason) = refusal(&[file("ds.yaml", &long)]);
    assert!(reason.contains("63 characters"), "{reason}");

    let no_namespace = DAEMONSET.replace("  namespace: probe-system\n", "");
    let (_, reason) = refusal(&[file("ds.yaml", &no_namespace)]);
    assert!(reason.contains("metadata.namespace is missing"), "{reason}");

    match parse_files(&[file("sa.yaml", ACCOUNT)]) {
        Err(ChangeError::Directory { reason, .. }) => {
            assert!(reason.contains("no apps/v1 DaemonSet"))
        }
        other => panic!("a change without a DaemonSet: {other:?}"),
    }
}

#[test]
fn load_reads_only_yaml_files_and_names_an_empty_directory() {
    let dir = tempfile::tempdir().expect("a directory");
    match load(dir.path()) {
        Err(ChangeError::Directory { reason, .. }) => assert!(reason.contains("no .yaml")),
        other => panic!("an empty directory: {other:?}"),
    }
    std::fs::write(dir.path().join("ds.yaml"), DAEMONSET).expect("write");
    std::fs::write(dir.path().join("README.md"), "not a manifest: {").expect("write");
    let change = load(dir.path()).expect("the change");
    assert_eq!(change.manifests.len(), 1);
}

#[test]
fn label_names_follow_kubernetes_rules() {
    for good in ["a", "node-probe", "a.b_c-9", &"x".repeat(63)] {
        assert!(is_label_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", "A/b", "a b", &"x".repeat(64), "é"] {
        assert!(!is_label_name(bad), "{bad}");
    }
}

proptest! {
    /// Whatever the files hold, parsing answers (never panics), and a located refusal points
    /// into the file it names.
    #[test]
    fn any_input_is_answered_and_located_within_its_file(
        text in "(apiVersion: v1\n|kind: DaemonSet\n|---\n|metadata:\n|  name: x\n|  namespace: y\n|[ -~]{0,12}\n){0,16}"
    ) {
        let lines = text.lines().count().max(1);
        if let Err(ChangeError::Invalid { at, .. }) = parse_files(&[file("f.yaml", &text)]) {
            prop_assert_eq!(at.file, PathBuf::from("change/f.yaml"));
            prop_assert!(at.line >= 1 && at.line <= lines + 1, "line {} of {}", at.line, lines);
        }
    }
}
