//! What a request is — verb, resource, whether it is a watch — and the priority its caller gave
//! it: worked out once per request by the classification layer and read by the layers below it
//! (token bucket, ceiling, concurrency, accounting) from the request's extensions.

use std::sync::Arc;

use http::{Method, Request};

use crate::priority::Priority;

/// What a request is, as the layers below see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; non-resource requests use the lower-case HTTP method.
    pub verb: &'static str,
    /// `pods`, `daemonsets.apps`, `pods/status`; for non-resource requests the path
    /// (`/metrics`).
    pub resource: Arc<str>,
    pub priority: Priority,
}

impl RequestInfo {
    /// Classifies a request by method, path and query.
    pub fn of<B>(request: &Request<B>, priority: Priority) -> Self {
        let uri = request.uri();
        let path = uri.path();
        let watch = uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        // `named`: `Some(true)` for one object, `Some(false)` for a collection, `None` for a
        // non-resource path.
        let (resource, named) = resource_of(path).map_or_else(
            || (Arc::from(path), None),
            |(resource, named)| (Arc::from(resource.as_str()), Some(named)),
        );
        let named = named.unwrap_or(true);
        let verb = match *request.method() {
            Method::GET if watch => "watch",
            Method::GET if !named => "list",
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => "other",
        };
        RequestInfo {
            verb,
            resource,
            priority,
        }
    }

    /// A watch: long-running, so outside the concurrency limit.
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }
}

/// `(resource label, names one object)` for `/api/v1/...` and `/apis/<group>/<version>/...`
/// paths; `None` for non-resource paths.
fn resource_of(path: &str) -> Option<(String, bool)> {
    let mut parts = path.trim_matches('/').split('/');
    let group = match parts.next()? {
        "api" => {
            parts.next()?;
            ""
        }
        "apis" => {
            let group = parts.next()?;
            parts.next()?;
            group
        }
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    let rest = match rest.as_slice() {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        all => all,
    };
    let (resource, name, sub) = (rest.first()?, rest.get(1), rest.get(2));
    let mut label = (*resource).to_owned();
    if !group.is_empty() {
        label = format!("{label}.{group}");
    }
    if let Some(sub) = sub {
        label = format!("{label}/{sub}");
    }
    Some((label, name.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> (String, &'static str) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .expect("request");
        let info = RequestInfo::of(&request, Priority::Normal);
        (info.resource.to_string(), info.verb)
    }

    #[test]
    fn classifies_kubernetes_paths() {
        use Method as M;
        let cases = [
            (M::GET, "/api/v1/pods?limit=500", "pods", "list"),
            (
                M::GET,
                "/api/v1/namespaces/a/pods?watch=true&resourceVersion=5",
                "pods",
                "watch",
            ),
            (M::GET, "/api/v1/namespaces/a/pods/p", "pods", "get"),
            (M::GET, "/api/v1/namespaces", "namespaces", "list"),
            (M::GET, "/api/v1/namespaces/a", "namespaces", "get"),
            (
                M::PATCH,
                "/api/v1/namespaces/a/pods/p/status",
                "pods/status",
                "patch",
            ),
            (
                M::POST,
                "/apis/apps/v1/namespaces/a/daemonsets",
                "daemonsets.apps",
                "create",
            ),
            (
                M::DELETE,
                "/apis/apps/v1/namespaces/a/daemonsets/d",
                "daemonsets.apps",
                "delete",
            ),
            (
                M::DELETE,
                "/api/v1/namespaces/a/configmaps",
                "configmaps",
                "deletecollection",
            ),
            (M::GET, "/metrics", "/metrics", "get"),
            (M::GET, "/version", "/version", "get"),
            (M::GET, "/api", "/api", "get"),
        ];
        for (method, uri, resource, verb) in cases {
            assert_eq!(info(method, uri), (resource.to_owned(), verb), "{uri}");
        }
    }
}
