//! User-Agent layer: every request says which fleetwatch component sent it
//! (`fleetwatch-<component>/<version>`), replacing whatever was there.

use std::task::{Context, Poll};

use http::Request;
use http::header::{HeaderValue, USER_AGENT};
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct UserAgentLayer {
    value: HeaderValue,
}

impl UserAgentLayer {
    pub fn new(value: HeaderValue) -> Self {
        UserAgentLayer { value }
    }
}

impl<S> Layer<S> for UserAgentLayer {
    type Service = UserAgent<S>;
    fn layer(&self, inner: S) -> UserAgent<S> {
        UserAgent {
            inner,
            value: self.value.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserAgent<S> {
    inner: S,
    value: HeaderValue,
}

impl<S, B> Service<Request<B>> for UserAgent<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        request.headers_mut().insert(USER_AGENT, self.value.clone());
        self.inner.call(request)
    }
}
