//! Which API server replicas there are: the ready endpoints of the `kubernetes` EndpointSlice in
//! `default`, which every API server keeps listing itself in (the endpoint reconciler), watched
//! through one informer.

use fleetwatch_client::{Client, Informer, Watch};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The replicas' `https://address:port` URLs, as one EndpointSlice lists them.
type Servers = Vec<String>;

/// The watch on the `kubernetes` EndpointSlice.
#[derive(Debug)]
pub struct Discovery {
    slices: Informer<Servers>,
}

impl Discovery {
    /// Starts the watch (label `kubernetes.io/service-name=kubernetes` in `default`).
    pub fn start(client: &Client) -> Result<Discovery, fleetwatch_client::Error> {
        let watch = Watch::<EndpointSlice>::namespaced("default")
            .labels("kubernetes.io/service-name=kubernetes");
        let slices = client.informer(watch, servers_of)?;
        Ok(Discovery { slices })
    }

    /// Every replica listed, sorted; `configured` while none is (the watch has not synced, or
    /// the slice is empty or not ours to read).
    pub fn servers(&self, configured: &str) -> Vec<String> {
        let store = self.slices.store();
        let mut servers: Vec<String> = store.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
        servers.sort();
        servers.dedup();
        if servers.is_empty() {
            servers.push(configured.to_owned());
        }
        servers
    }
}

/// The ready endpoints of a slice, on its `https` port.
fn servers_of(slice: &EndpointSlice) -> Servers {
    let Some(port) = slice
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .and_then(|p| p.port)
    else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| e.addresses.iter())
        .map(|address| {
            if address.contains(':') {
                format!("https://[{address}]:{port}")
            } else {
                format!("https://{address}:{port}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_endpoints_on_the_https_port() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["127.0.0.2"], "conditions": {"ready": true}},
                {"addresses": ["127.0.0.3"]},
                {"addresses": ["127.0.0.4"], "conditions": {"ready": false}},
            ],
        }))
        .expect("an EndpointSlice");
        assert_eq!(
            servers_of(&slice),
            ["https://127.0.0.2:6443", "https://127.0.0.3:6443"]
        );
    }
}
