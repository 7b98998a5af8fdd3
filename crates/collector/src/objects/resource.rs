//! Resource lists (`capacity`, `allocatable`, container `requests` and `limits`) as
//! kube-state-metrics exposes them: which resources get a series, the `resource` label (the name
//! with every character outside `[a-zA-Z0-9_]` replaced by `_`), the `unit` label, and the value
//! (CPU in cores, bytes for memory and storage).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Serialized;

use super::quantity::Quantity;

/// A resource's `resource` label; the common ones without an allocation each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResourceName {
    Cpu,
    Memory,
    Storage,
    EphemeralStorage,
    Pods,
    /// Already sanitized (`hugepages_2Mi`, `example_com_gpu`).
    Other(Box<str>),
}

impl ResourceName {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            ResourceName::Cpu => "cpu",
            ResourceName::Memory => "memory",
            ResourceName::Storage => "storage",
            ResourceName::EphemeralStorage => "ephemeral_storage",
            ResourceName::Pods => "pods",
            ResourceName::Other(name) => name,
        }
    }
}

/// The `unit` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Core,
    Byte,
    Integer,
}

impl Unit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Core => "core",
            Unit::Byte => "byte",
            Unit::Integer => "integer",
        }
    }
}

/// One series' worth of a resource list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resource {
    pub(crate) name: ResourceName,
    pub(crate) unit: Unit,
    pub(crate) value: f64,
}

/// Whose resource list: kube-state-metrics treats them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    /// A node's capacity or allocatable: `pods` counts, every value is
    /// `convertValueToFloat64` (milli-value / 1000).
    Node,
    /// A container's requests or limits: no `pods`; only CPU is `convertValueToFloat64`,
    /// everything else `Value()` (rounded up to an integer).
    Container,
}

/// The series kube-state-metrics makes of `list`; resources it ignores (and quantities that do
/// not parse) are left out.
pub(crate) fn project(list: Option<&BTreeMap<String, Serialized>>, whose: List) -> Box<[Resource]> {
    list.into_iter()
        .flatten()
        .filter_map(|(name, quantity)| {
            let quantity = Quantity::parse(&quantity.0)?;
            let (resource, unit) = classify(name, whose)?;
            let value = match (whose, &resource) {
                (List::Node, _) | (List::Container, ResourceName::Cpu) => quantity.ksm_float(),
                (List::Container, _) => quantity.value() as f64,
            };
            Some(Resource {
                name: resource,
                unit,
                value,
            })
        })
        .collect()
}

fn classify(name: &str, whose: List) -> Option<(ResourceName, Unit)> {
    Some(match name {
        "cpu" => (ResourceName::Cpu, Unit::Core),
        "memory" => (ResourceName::Memory, Unit::Byte),
        "storage" => (ResourceName::Storage, Unit::Byte),
        "ephemeral-storage" => (ResourceName::EphemeralStorage, Unit::Byte),
        "pods" if whose == List::Node => (ResourceName::Pods, Unit::Integer),
        _ if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") => {
            (ResourceName::Other(sanitize(name)), Unit::Byte)
        }
        _ if is_extended(name) => (ResourceName::Other(sanitize(name)), Unit::Integer),
        _ => return None,
    })
}

/// kube-state-metrics' `SanitizeLabelName`.
fn sanitize(name: &str) -> Box<str> {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `isExtendedResourceName`: not native (native = no `/`, or under `kubernetes.io/`), not
/// `requests.`-prefixed, and `requests.<name>` is a qualified name.
fn is_extended(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    !native && !name.starts_with("requests.") && is_qualified_name(&format!("requests.{name}"))
}

/// apimachinery's `IsQualifiedName`: `[DNS-1123 subdomain "/"] name`, the name at most 63
/// characters of `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name(value: &str) -> bool {
    let mut parts = value.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => return false,
    };
    if prefix.is_some_and(|p| !is_dns1123_subdomain(p)) {
        return false;
    }
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    name.len() <= 63
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `IsDNS1123Subdomain`: at most 253 characters of dot-separated labels, each lower-case
/// alphanumerics and `-`, starting and ending alphanumeric.
fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
                    alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Serialized> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Serialized((*v).to_owned())))
            .collect()
    }

    fn series(resources: &[Resource]) -> Vec<(&str, &str, f64)> {
        resources
            .iter()
            .map(|r| (r.name.as_str(), r.unit.as_str(), r.value))
            .collect()
    }

    #[test]
    fn nodes_count_pods_and_take_milli_values_containers_round_up() {
        let resources = list(&[
            ("cpu", "63500m"),
            ("memory", "1500m"),
            ("pods", "110"),
            ("hugepages-2Mi", "2Gi"),
            ("attachable-volumes-aws-ebs", "39"),
            ("example.com/gpu", "4"),
            ("kubernetes.io/not-extended", "1"),
            ("requests.example.com/x", "1"),
            ("bogus", "1"),
        ]);
        let node = project(Some(&resources), List::Node);
        assert_eq!(
            series(&node),
            [
                ("attachable_volumes_aws_ebs", "byte", 39.0),
                ("cpu", "core", 63.5),
                ("example_com_gpu", "integer", 4.0),
                ("hugepages_2Mi", "byte", 2_147_483_648.0),
                ("memory", "byte", 1.5),
                ("pods", "integer", 110.0),
            ]
        );
        let container = project(Some(&resources), List::Container);
        assert_eq!(
            series(&container),
            [
                ("attachable_volumes_aws_ebs", "byte", 39.0),
                ("cpu", "core", 63.5),
                ("example_com_gpu", "integer", 4.0),
                ("hugepages_2Mi", "byte", 2_147_483_648.0),
                ("memory", "byte", 2.0),
            ]
        );
    }

    #[test]
    fn qualified_names_follow_apimachinery() {
        assert!(is_qualified_name("requests.example.com/gpu"));
        assert!(is_qualified_name("gpu"));
        assert!(!is_qualified_name("requests.Example.com/gpu"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name("example.com/-gpu"));
        assert!(!is_qualified_name(&format!(
            "example.com/{}",
            "g".repeat(64)
        )));
    }
}
