//! The access the agent needs, as RBAC rules (in the collector's `access` form, so the chart
//! and the tests write both the same way): `get` on `nodes/metrics` (the kubelet's
//! `/metrics/resource`) and `nodes/stats` (`/stats/summary`). Nothing else, and no API-server
//! resource: the kubelet authorizes those two subresources through a SubjectAccessReview, and
//! the agent never calls the API server itself.
//!
//! Never `nodes/proxy`: it also grants exec into every pod on the node.

use serde_json::{Value, json};

/// The ClusterRole's rules.
pub fn cluster_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["nodes/metrics", "nodes/stats"], "verbs": ["get"]},
    ])
}
