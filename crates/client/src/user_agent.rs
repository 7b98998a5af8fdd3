//! User-Agent layer: every request says which fleetwatch component sent it
//! (`fleetwatch-<component>/<version>`), replacing whatever was there. It only maps the request,
//! so it is a [`MapRequestLayer`].

use http::Request;
use http::header::{HeaderValue, USER_AGENT};
use kube::client::Body;
use tower::util::MapRequestLayer;

/// The layer setting `User-Agent: value`.
pub fn layer(
    value: HeaderValue,
) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone> {
    MapRequestLayer::new(move |mut request: Request<Body>| {
        request.headers_mut().insert(USER_AGENT, value.clone());
        request
    })
}
