//! The quarantine lane: before the first wave, a FlowSchema that matches the change's service
//! account routes all its API requests to a PriorityLevelConfiguration of their own, with a
//! bounded share of the API server's concurrency and no borrowing. A change that calls the API
//! server too much then queues and is rejected in its own lane instead of crowding out the
//! kubelets, controllers and DNS; and APF's metrics for the lane (by flow schema) are how the
//! executor measures what the change asked for.

use serde_json::{Value, json};

use crate::change::ServiceAccount;

/// The lane's size. The defaults are the chart's own lane's (`deploy/helm/fleetwatch`), not a
/// measurement: the level's share against the defaults' (`workload-low` has 100,
/// `global-default` 20), and queues sized for one well-behaved client per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneSize {
    pub nominal_concurrency_shares: u32,
    pub queues: u32,
    pub hand_size: u32,
    pub queue_length_limit: u32,
}

impl Default for LaneSize {
    fn default() -> Self {
        LaneSize {
            nominal_concurrency_shares: 10,
            queues: 16,
            hand_size: 4,
            queue_length_limit: 50,
        }
    }
}

/// Matched before the defaults that would otherwise take the change's service account
/// (`kube-system-service-accounts` at 900, `service-accounts` at 9000) and after the system's
/// own exempt and leader-election schemas (≤ 200); the chart's fleetwatch lane is at 1000.
pub const MATCHING_PRECEDENCE: u32 = 800;

/// The lane's name for `change`: the FlowSchema's and the priority level's.
pub fn lane_name(change: &str) -> String {
    format!("fleetwatch-rollout-{change}")
}

/// The PriorityLevelConfiguration and FlowSchema (in apply order) of `change`'s lane.
pub fn lane(change: &str, account: &ServiceAccount, size: LaneSize) -> [Value; 2] {
    let name = lane_name(change);
    let labels = json!({"app.kubernetes.io/managed-by": "fleetwatch-rollout"});
    [
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name, "labels": labels},
            "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": size.nominal_concurrency_shares,
                "lendablePercent": 0,
                "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Queue", "queuing": {
                    "queues": size.queues,
                    "handSize": size.hand_size,
                    "queueLengthLimit": size.queue_length_limit,
                }},
            }},
        }),
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "priorityLevelConfiguration": {"name": name},
                "matchingPrecedence": MATCHING_PRECEDENCE,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "ServiceAccount", "serviceAccount": {
                        "name": account.name, "namespace": account.namespace,
                    }}],
                    "resourceRules": [{
                        "verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                        "clusterScope": true, "namespaces": ["*"],
                    }],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }],
            },
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_matches_only_the_change_account_and_cannot_borrow() {
        let account = ServiceAccount {
            namespace: "probe-system".to_owned(),
            name: "probe".to_owned(),
        };
        let [level, schema] = lane("node-probe", &account, LaneSize::default());
        assert_eq!(level["metadata"]["name"], "fleetwatch-rollout-node-probe");
        assert_eq!(level["spec"]["limited"]["lendablePercent"], 0);
        assert_eq!(level["spec"]["limited"]["borrowingLimitPercent"], 0);
        assert_eq!(
            schema["spec"]["priorityLevelConfiguration"]["name"],
            level["metadata"]["name"]
        );
        let subjects = &schema["spec"]["rules"][0]["subjects"];
        assert_eq!(
            subjects,
            &json!([{"kind": "ServiceAccount", "serviceAccount": {"name": "probe", "namespace": "probe-system"}}])
        );
        assert!(schema["spec"]["matchingPrecedence"].as_u64() < Some(900));
    }
}
