//! The RBAC the agent needs, as data: the deployment's ClusterRole is written from it and a
//! SubjectAccessReview test proves it grants no more.
//!
//! The kubelet authorizes `/metrics/resource` as `nodes/metrics` and `/stats/summary` as
//! `nodes/stats` (verb `get`). Never `nodes/proxy`: it also grants exec into every pod on the
//! node. The agent reads nothing else, and no API-server resource at all.

/// One rule of the agent's ClusterRole: API group, resources, verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// Every rule the agent's ClusterRole holds.
pub const CLUSTER_ROLE_RULES: [Rule; 1] = [Rule {
    api_group: "",
    resources: &["nodes/metrics", "nodes/stats"],
    verbs: &["get"],
}];
