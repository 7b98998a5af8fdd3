//! Admission of a wave: which of a cluster's nodes a node fraction admits, and the node affinity
//! that keeps the change's DaemonSet on admitted nodes (a DaemonSet has no partition or pause of
//! its own, so the executor labels nodes and the scheduler does the rest).

use serde_json::{Value, json};

/// How many of `nodes` a fraction admits: at least one once the fraction is above zero, so a
/// small cluster's first wave is not empty.
pub fn admitted_count(nodes: usize, fraction: f64) -> usize {
    if fraction <= 0.0 || nodes == 0 {
        return 0;
    }
    // Rounding up: a fraction admits at least its share. The cast is of a value in [0, nodes].
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let count = (fraction.min(1.0) * nodes as f64).ceil() as usize;
    count.clamp(1, nodes)
}

/// The nodes to admit for `fraction` of `nodes`, in admission order. The order is a hash of
/// `change` and each node's name, so it spreads over node pools whatever their naming,
/// does not depend on the order nodes are listed in, and is the same for every run of every
/// version of fleetwatch (std's hasher promises neither); a larger fraction admits a superset.
pub fn nodes_to_admit<'a>(change: &str, nodes: &'a [String], fraction: f64) -> Vec<&'a str> {
    let mut ordered: Vec<&str> = nodes.iter().map(String::as_str).collect();
    ordered.sort_by_key(|node| (admission_hash(change, node), *node));
    ordered.dedup();
    let count = admitted_count(ordered.len(), fraction);
    ordered.truncate(count);
    ordered
}

/// 64-bit FNV-1a of `change`, a NUL and `node`, then MurmurHash3's 64-bit finalizer: FNV-1a
/// alone orders names that differ only in an early byte (`gpu-001`, `cpu-001`) nearly alike,
/// because its multiplications carry a difference only towards higher bits.
fn admission_hash(change: &str, node: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let bytes = change.bytes().chain(std::iter::once(0)).chain(node.bytes());
    let mut hash = bytes.fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The DaemonSet object `daemonset` with a required node affinity for `label_key` (operator
/// `Exists`) added to each of its node selector terms — terms are alternatives, so the
/// requirement goes into every one — or as the only term when it has none. Applying it again
/// changes nothing.
pub fn with_admission_affinity(daemonset: &Value, label_key: &str) -> Value {
    let mut admitted = daemonset.clone();
    let requirement = json!({"key": label_key, "operator": "Exists"});
    let required = &mut admitted["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let terms = &mut required["nodeSelectorTerms"];
    match terms.as_array_mut() {
        Some(terms) if !terms.is_empty() => {
            for term in terms {
                let expressions = &mut term["matchExpressions"];
                if !expressions.is_array() {
                    *expressions = json!([]);
                }
                if let Some(list) = expressions.as_array_mut()
                    && !list.contains(&requirement)
                {
                    list.push(requirement.clone());
                }
            }
        }
        _ => *terms = json!([{"matchExpressions": [requirement]}]),
    }
    admitted
}

/// The JSON merge patch that admits a node to wave `wave` (or, with `None`, removes it).
pub fn node_label_patch(label_key: &str, wave: Option<usize>) -> Value {
    let value = wave.map_or(Value::Null, |w| Value::String(w.to_string()));
    json!({"metadata": {"labels": {label_key: value}}})
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:04}")).collect()
    }

    #[test]
    fn a_fraction_admits_at_least_its_share_and_never_none() {
        assert_eq!(admitted_count(1000, 0.02), 20);
        assert_eq!(admitted_count(1000, 0.0201), 21);
        assert_eq!(admitted_count(20, 0.01), 1);
        assert_eq!(admitted_count(20, 1.0), 20);
        assert_eq!(admitted_count(20, 0.0), 0);
        assert_eq!(admitted_count(0, 0.5), 0);
    }

    #[test]
    fn admission_spreads_over_node_name_ranges() {
        // Two pools named in blocks: the first 10 % of the order must not be one pool.
        let mut nodes: Vec<String> = (0..500).map(|i| format!("gpu-{i:03}")).collect();
        nodes.extend((0..500).map(|i| format!("cpu-{i:03}")));
        let first = nodes_to_admit("probe", &nodes, 0.1);
        let gpu = first.iter().filter(|n| n.starts_with("gpu-")).count();
        assert!(
            (25..=75).contains(&gpu),
            "{gpu} of 100 admitted nodes are gpu nodes"
        );
    }

    #[test]
    fn affinity_is_added_to_every_term_once() {
        let daemonset = json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
        ]}}}}}}});
        let admitted = with_admission_affinity(&daemonset, "rollout.fleetwatch.dev/probe");
        let terms = &admitted["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        let requirement = json!({"key": "rollout.fleetwatch.dev/probe", "operator": "Exists"});
        assert_eq!(terms[0]["matchExpressions"][1], requirement);
        assert_eq!(
            terms[0]["matchExpressions"][0]["key"], "pool",
            "the user's own term stays"
        );
        assert_eq!(terms[1]["matchExpressions"], json!([requirement]));
        assert_eq!(terms[1]["matchFields"][0]["key"], "metadata.name");
        assert_eq!(
            with_admission_affinity(&admitted, "rollout.fleetwatch.dev/probe"),
            admitted
        );

        let bare = with_admission_affinity(&json!({"spec": {"template": {"spec": {}}}}), "k");
        assert_eq!(
            bare["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"],
            json!([{"matchExpressions": [{"key": "k", "operator": "Exists"}]}])
        );
    }

    #[test]
    fn label_patches_set_and_remove_the_wave() {
        assert_eq!(
            node_label_patch("k", Some(2)),
            json!({"metadata": {"labels": {"k": "2"}}})
        );
        assert_eq!(
            node_label_patch("k", None),
            json!({"metadata": {"labels": {"k": null}}})
        );
    }

    proptest! {
        /// A larger fraction admits a superset, in the same order, whatever order nodes are
        /// listed in; the count is the fraction's share rounded up.
        #[test]
        fn larger_fractions_admit_supersets_in_any_listing_order(
            n in 1usize..400, small in 0.001f64..1.0, extra in 0.0f64..1.0, seed in any::<u64>()
        ) {
            let nodes = names(n);
            let mut shuffled = nodes.clone();
            let len = shuffled.len();
            // A deterministic shuffle from the seed.
            for i in 0..len {
                let j = usize::try_from((seed ^ (i as u64).wrapping_mul(0x9e37_79b9)) % len as u64).unwrap_or(0);
                shuffled.swap(i, j);
            }
            let large = (small + extra).min(1.0);
            let a = nodes_to_admit("c", &nodes, small);
            let b = nodes_to_admit("c", &shuffled, large);
            prop_assert_eq!(&b[..a.len()], &a[..]);
            prop_assert_eq!(a.len(), admitted_count(n, small));
        }
    }
}
