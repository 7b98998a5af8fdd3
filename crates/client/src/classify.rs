//! Classification layer: attaches a [`RequestInfo`] (verb, resource, watch or not, and the
//! priority of the client that sent it) to every request, so the layers below classify nothing
//! themselves. It only maps the request, so it is a [`MapRequestLayer`].

use http::Request;
use kube::client::Body;
use tower::util::MapRequestLayer;

use crate::priority::Priority;
use crate::request_info::RequestInfo;

/// The classification layer for requests sent at `priority`.
pub fn layer(
    priority: Priority,
) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone> {
    MapRequestLayer::new(move |mut request: Request<Body>| {
        let info = RequestInfo::of(&request, priority);
        request.extensions_mut().insert(info);
        request
    })
}
