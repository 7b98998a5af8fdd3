//! The access the collector needs, as RBAC rules: its ClusterRole's (reads of what its sources
//! watch, and the API servers' health and metrics pages) and its Lease Role's (in the Lease's
//! namespace only). No secrets, no writes but the Lease. The lab, the benchmark and the tests
//! grant exactly these, so a rule the collector lacks fails there first.

use serde_json::{Value, json};

/// The ClusterRole's rules.
pub fn cluster_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["nodes", "pods", "namespaces"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["get", "list", "watch"]},
        {"nonResourceURLs": ["/metrics", "/readyz", "/livez"], "verbs": ["get"]},
    ])
}

/// The Role's rules in the Lease's namespace: leader election.
pub fn lease_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update", "patch"]},
    ])
}
