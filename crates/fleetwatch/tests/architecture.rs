//! The architecture's load-safety promises, checked on the dependency graph `cargo metadata`
//! reports, so that a new dependency that breaks one fails the suite:
//!
//! - the node agent cannot reach an API server: nothing it depends on, however indirectly, is a
//!   Kubernetes client (rule 1 of the design: a per-node component never talks to the API
//!   server) — nor is anything the shared telemetry crate depends on;
//! - the collector and the binary reach an API server only through the budgeted client: neither
//!   depends on a Kubernetes or HTTP client crate directly, nor on `kube` with its client. The
//!   collector's audit webhook is an HTTPS *server*, so the collector may declare `hyper` and
//!   `hyper-util` with server features and no client feature (Cargo unifies features across the
//!   workspace, so this checks the manifest's intent, not what the compiled crate offers).
//!
//! Inside crates, `clippy.toml`'s `disallowed-methods` and `disallowed-types` keep raw
//! `kube::Client` construction and `Api::list` to the budgeted client and the lab.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that build or are a Kubernetes API client.
const KUBERNETES_CLIENTS: [&str; 6] = [
    "kube",
    "kube-client",
    "kube-runtime",
    "fleetwatch-client",
    "fleetwatch-control-plane",
    "fleetwatch-load-lab",
];
/// Crates through which a component could send HTTP requests of its own.
const HTTP_CLIENTS: [&str; 4] = ["hyper", "hyper-util", "reqwest", "tower-http"];
/// Of those, the crates the collector may declare with server features only (the audit
/// webhook's HTTPS server).
const HTTP_SERVERS: [&str; 2] = ["hyper", "hyper-util"];

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

struct Graph<'a> {
    /// Package id → (name, normal dependencies' ids).
    nodes: HashMap<&'a str, (&'a str, Vec<&'a str>)>,
    /// Package name → its id, for workspace members.
    members: HashMap<&'a str, &'a str>,
    packages: &'a [Value],
}

impl<'a> Graph<'a> {
    fn new(metadata: &'a Value) -> Self {
        let packages = metadata["packages"].as_array().expect("packages");
        let names: HashMap<&str, &str> = packages
            .iter()
            .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
            .collect();
        let nodes = metadata["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes")
            .iter()
            .map(|node| {
                let id = str_of(&node["id"]);
                let normal = node["deps"]
                    .as_array()
                    .expect("deps")
                    .iter()
                    .filter(|dep| {
                        dep["dep_kinds"]
                            .as_array()
                            .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                    })
                    .map(|dep| str_of(&dep["pkg"]))
                    .collect();
                (id, (names[id], normal))
            })
            .collect();
        let members = metadata["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(|id| (names[str_of(id)], str_of(id)))
            .collect();
        Graph {
            nodes,
            members,
            packages,
        }
    }

    /// Every package `member` depends on at run time, however indirectly.
    fn closure(&self, member: &str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.members[member]];
        while let Some(id) = stack.pop() {
            for &dep in &self.nodes[id].1 {
                if seen.insert(self.nodes[dep].0) {
                    stack.push(dep);
                }
            }
        }
        seen
    }

    /// `member`'s own normal dependencies as its manifest declares them.
    fn declared(&self, member: &str) -> Vec<&'a Value> {
        let package = self
            .packages
            .iter()
            .find(|p| str_of(&p["name"]) == member)
            .expect("a workspace member");
        package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .collect()
    }
}

fn str_of(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[test]
fn the_agent_and_its_telemetry_crate_cannot_reach_an_api_server() {
    let metadata = metadata();
    let graph = Graph::new(&metadata);
    for member in ["fleetwatch-agent", "fleetwatch-telemetry"] {
        let closure = graph.closure(member);
        let reachable: Vec<&&str> = KUBERNETES_CLIENTS
            .iter()
            .filter(|c| closure.contains(*c))
            .collect();
        assert!(
            reachable.is_empty(),
            "{member} depends, directly or not, on {reachable:?}: a per-node component must \
             not be able to talk to the API server (design rule 1), and the agent uses \
             fleetwatch-telemetry"
        );
    }
    // The test can fail: the budgeted client's own closure holds a Kubernetes client.
    assert!(graph.closure("fleetwatch-client").contains("kube-client"));
}

#[test]
fn the_collector_and_the_binary_reach_an_api_server_only_through_the_budgeted_client() {
    let metadata = metadata();
    let graph = Graph::new(&metadata);
    for member in ["fleetwatch-collector", "fleetwatch"] {
        for dep in graph.declared(member) {
            let name = str_of(&dep["name"]);
            let features: Vec<&str> = dep["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(str_of)
                .collect();
            let server_only = HTTP_SERVERS.contains(&name)
                && member == "fleetwatch-collector"
                && dep["uses_default_features"] == false
                && features.contains(&"server")
                && !features.iter().any(|f| f.starts_with("client"));
            assert!(
                server_only
                    || (!HTTP_CLIENTS.contains(&name)
                        && !["kube-client", "kube-runtime"].contains(&name)),
                "{member} depends on {name} directly; API requests go through fleetwatch-client"
            );
            if name == "kube" {
                assert!(
                    dep["uses_default_features"] == false
                        && !features.iter().any(|f| ["client", "runtime"].contains(f)),
                    "{member} depends on kube with its client ({features:?}, default features \
                     {}); use fleetwatch-client",
                    dep["uses_default_features"]
                );
            }
        }
    }
}
