//! A change: the directory of manifests a rollout applies, typically a DaemonSet with its
//! ServiceAccount and RBAC. Read, checked and put in apply order here, before any cluster is
//! touched; every refusal names the file, line and column.
//!
//! What a change must be, and why:
//! - exactly one `apps/v1` DaemonSet: the executor admits it node by node, through labels and
//!   an affinity on that DaemonSet;
//! - the DaemonSet runs as a service account of its own, not the namespace's `default`: the
//!   quarantine lane and the load projection find the change's API traffic by that account;
//! - no API Priority and Fairness objects: the change must not configure the lane that bounds it;
//! - every object named, and no two alike (kind, namespace, name).
//!
//! Whether a kind is namespaced, and whether each object is valid, is the API server's to say:
//! the executor dry-runs the whole change on every cluster before the first wave.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kube::api::DynamicObject;
use serde::Deserialize;

/// The label key prefix of admitted nodes: `rollout.fleetwatch.dev/<change>`.
pub const LABEL_PREFIX: &str = "rollout.fleetwatch.dev/";

/// Where in a change's files something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("change {dir}: {reason}")]
    Directory { dir: PathBuf, reason: String },
    #[error("{at}: {reason}")]
    Invalid { at: Location, reason: String },
}

/// One object of the change and where it was written.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub object: DynamicObject,
    pub at: Location,
}

/// The service account a change's pods run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

/// A change, checked: its objects in apply order, the DaemonSet last.
#[derive(Debug, Clone)]
pub struct Change {
    /// The DaemonSet's name, which names the change in node labels and lane names.
    pub name: String,
    pub service_account: ServiceAccount,
    /// Everything to apply, in order: namespaces, accounts and RBAC, configuration, then the
    /// DaemonSet (so its pods start with what they need already there).
    pub manifests: Vec<Manifest>,
}

impl Change {
    /// The DaemonSet (the last manifest, by construction).
    pub fn daemonset(&self) -> &Manifest {
        // `parse` refuses a change without one and puts it last.
        &self.manifests[self.manifests.len() - 1]
    }

    /// The label key that admits a node to this change.
    pub fn label_key(&self) -> String {
        format!("{LABEL_PREFIX}{}", self.name)
    }
}

/// Reads every `*.yaml` and `*.yml` file directly in `dir` (in name order) as a change.
///
/// # Errors
/// [`ChangeError`] naming the directory, or the file, line and column of what is wrong.
pub fn load(dir: &Path) -> Result<Change, ChangeError> {
    let unreadable = |reason: String| ChangeError::Directory {
        dir: dir.to_owned(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| unreadable(e.to_string()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| unreadable(e.to_string()))?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(unreadable("holds no .yaml or .yml file".to_owned()));
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| ChangeError::Directory {
            dir: dir.to_owned(),
            reason: format!("reading {}: {e}", path.display()),
        })?;
        files.push((path, text));
    }
    parse(dir, &files)
}

/// The change written in `files` (path and contents) of `dir`.
///
/// # Errors
/// As [`load`].
pub fn parse(dir: &Path, files: &[(PathBuf, String)]) -> Result<Change, ChangeError> {
    let mut manifests = Vec::new();
    for (path, text) in files {
        for document in documents(text) {
            if let Some(manifest) = read_document(path, document)? {
                manifests.push(manifest);
            }
        }
    }
    refuse_duplicates(&manifests)?;
    let daemonset = the_daemonset(dir, &mut manifests)?;
    let (name, service_account) = check_daemonset(&daemonset)?;
    manifests.sort_by_key(|m| apply_rank(kind_of(&m.object)));
    manifests.push(daemonset);
    Ok(Change {
        name,
        service_account,
        manifests,
    })
}

/// A YAML document of a file: its text and the line it starts on.
struct Document<'a> {
    text: &'a str,
    first_line: usize,
}

/// Splits a multi-document YAML file at its `---` markers, remembering where each document
/// starts so errors can say where in the file they are. Hand-written because the YAML library
/// reports positions within a document, not within the file; the documents themselves are
/// parsed by the library.
fn documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
        if is_marker {
            documents.push(Document {
                text: &text[start..offset],
                first_line,
            });
            // A marker may carry content after it (`--- {a: 1}`): keep it in the next document.
            start = offset + 3;
            first_line = index + 1;
        }
        offset += line.len();
    }
    documents.push(Document {
        text: &text[start..],
        first_line,
    });
    documents
}

/// The fields every object must have, read first so a missing one is reported where it is.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: HeaderMetadata,
}

#[derive(Deserialize)]
struct HeaderMetadata {
    name: String,
}

/// The document's object, or `None` for an empty one (only comments, or nothing).
fn read_document(path: &Path, document: Document<'_>) -> Result<Option<Manifest>, ChangeError> {
    let at_line = |line: usize, column: usize| Location {
        file: path.to_owned(),
        line: document.first_line + line.saturating_sub(1),
        column,
    };
    let yaml_error = |e: serde_yaml_ng::Error| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        ChangeError::Invalid {
            at: at_line(line, column),
            reason: e.to_string(),
        }
    };
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(document.text).map_err(yaml_error)?;
    if value.is_null() {
        return Ok(None);
    }
    let header: Header = serde_yaml_ng::from_str(document.text).map_err(yaml_error)?;
    let object: DynamicObject = serde_yaml_ng::from_str(document.text).map_err(yaml_error)?;
    let at = at_line(first_content_line(document.text), 1);
    let invalid = |reason: String| ChangeError::Invalid {
        at: at.clone(),
        reason,
    };
    if header.metadata.name.is_empty() {
        return Err(invalid(format!("{}: metadata.name is empty", header.kind)));
    }
    if header
        .api_version
        .starts_with("flowcontrol.apiserver.k8s.io/")
    {
        return Err(invalid(format!(
            "{} {}: a change may not configure API Priority and Fairness (fleetwatch's \
             quarantine lane bounds the change's API traffic)",
            header.kind, header.metadata.name
        )));
    }
    Ok(Some(Manifest { object, at }))
}

/// The document's first line (from 1) that is neither blank nor a comment: where its object is
/// said to be. A document after a `---` marker starts on the marker's line.
fn first_content_line(text: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map_or(1, |index| index + 1)
}

/// Kind, namespace and name: what makes two objects the same object.
fn identity(object: &DynamicObject) -> (String, Option<String>, Option<String>) {
    (
        kind_of(object).to_owned(),
        object.metadata.namespace.clone(),
        object.metadata.name.clone(),
    )
}

fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map_or("", |t| t.kind.as_str())
}

fn refuse_duplicates(manifests: &[Manifest]) -> Result<(), ChangeError> {
    let mut seen: HashMap<_, &Location> = HashMap::new();
    for manifest in manifests {
        let key = identity(&manifest.object);
        if let Some(first) = seen.get(&key) {
            return Err(ChangeError::Invalid {
                at: manifest.at.clone(),
                reason: format!(
                    "{} {} is also defined at {first}",
                    key.0,
                    describe(&manifest.object)
                ),
            });
        }
        seen.insert(key, &manifest.at);
    }
    Ok(())
}

/// `namespace/name`, or `name` for an object without a namespace.
fn describe(object: &DynamicObject) -> String {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    match object.metadata.namespace.as_deref() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

fn is_daemonset(object: &DynamicObject) -> bool {
    object
        .types
        .as_ref()
        .is_some_and(|t| t.api_version == "apps/v1" && t.kind == "DaemonSet")
}

/// Takes the change's one DaemonSet out of `manifests`.
fn the_daemonset(dir: &Path, manifests: &mut Vec<Manifest>) -> Result<Manifest, ChangeError> {
    let mut found = manifests
        .iter()
        .enumerate()
        .filter(|(_, m)| is_daemonset(&m.object));
    let Some((index, _)) = found.next() else {
        return Err(ChangeError::Directory {
            dir: dir.to_owned(),
            reason: "has no apps/v1 DaemonSet: a rollout admits one DaemonSet node by node"
                .to_owned(),
        });
    };
    if let Some((_, second)) = found.next() {
        return Err(ChangeError::Invalid {
            at: second.at.clone(),
            reason: format!(
                "a second DaemonSet ({}; the first is at {}): a change rolls out exactly one",
                describe(&second.object),
                manifests[index].at
            ),
        });
    }
    Ok(manifests.remove(index))
}

/// The change's name and service account, from its DaemonSet.
fn check_daemonset(daemonset: &Manifest) -> Result<(String, ServiceAccount), ChangeError> {
    let invalid = |reason: String| ChangeError::Invalid {
        at: daemonset.at.clone(),
        reason: format!("DaemonSet {}: {reason}", describe(&daemonset.object)),
    };
    let name = daemonset.object.metadata.name.clone().unwrap_or_default();
    if !is_label_name(&name) {
        return Err(invalid(format!(
            "its name names the change in the node label {LABEL_PREFIX}<name>, so it must be at \
             most 63 characters of a-z, 0-9, '-', '_' and '.', beginning and ending with a \
             letter or digit"
        )));
    }
    let namespace = daemonset
        .object
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            invalid("metadata.namespace is missing (fleetwatch does not default one)".to_owned())
        })?;
    let account = daemonset.object.data["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    if account == "default" {
        return Err(invalid(
            "its pods run as the namespace's default service account: give the change a \
             ServiceAccount of its own (spec.template.spec.serviceAccountName), by which its API \
             traffic is quarantined and measured"
                .to_owned(),
        ));
    }
    Ok((
        name,
        ServiceAccount {
            namespace,
            name: account.to_owned(),
        },
    ))
}

/// A label name (the part after the prefix): at most 63 alphanumerics, '-', '_' or '.',
/// beginning and ending with an alphanumeric.
fn is_label_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.len() <= 63
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Where a kind goes in the apply order: what others refer to first.
fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        "ConfigMap" | "Secret" | "PriorityClass" => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests;
