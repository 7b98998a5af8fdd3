//! What kind of failure a request met, read from the error's chain of causes by type — never by
//! matching message text, which changes between library versions and languages.
//!
//! kube's HTTP stack reports a failed connection as a `hyper_util` client error of the connect
//! kind; a TLS handshake that failed (unknown issuer, bad certificate, not TLS at all) is an
//! `std::io::Error` of kind `InvalidData` below it, which is how `tokio-rustls` carries every
//! rustls error. An `io::Error` hides the error it wraps from `source()` (it returns that
//! error's source instead), so the walk also looks inside each `io::Error` with `get_ref()`.

use std::error::Error;
use std::io;

use hyper_util::client::legacy::Error as HttpClientError;

/// A request's failure, as far as what to do about it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TLS handshake failed: a configuration problem (CA, client certificate) that waiting
    /// does not fix. Never retried.
    Tls,
    /// No connection could be made (refused, timed out connecting): the request never left.
    Connect,
    /// Anything else, including a request that failed after it may have been sent.
    Other,
}

/// Classifies `error` by the types in its chain of causes.
pub(crate) fn of(error: &(dyn Error + 'static)) -> Failure {
    let mut connect = false;
    let mut tls = false;
    for cause in causes(error) {
        if let Some(http) = cause.downcast_ref::<HttpClientError>() {
            connect |= http.is_connect();
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            tls |= io.kind() == io::ErrorKind::InvalidData;
        }
    }
    match (connect, tls) {
        (true, true) => Failure::Tls,
        (true, false) => Failure::Connect,
        (false, _) => Failure::Other,
    }
}

/// `error` and every error below it, looking inside `io::Error`s too.
fn causes<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| {
        let wrapped = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|inner| inner as &(dyn Error + 'static));
        wrapped.or_else(|| e.source())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{closed_port, https_wire_error, not_tls_server};

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_is_a_tls_failure() {
        let (url, _server) = not_tls_server().await;
        let error = https_wire_error(&url).await;
        assert_eq!(of(error.as_ref()), Failure::Tls, "{error:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let url = format!("https://127.0.0.1:{}", closed_port());
        let error = https_wire_error(&url).await;
        assert_eq!(of(error.as_ref()), Failure::Connect, "{error:?}");
    }

    #[test]
    fn words_in_a_message_do_not_make_a_tls_failure() {
        let error = io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert_eq!(
            of(&error),
            Failure::Other,
            "no connect error: not a TLS handshake"
        );
        let error = io::Error::other("certificate");
        assert_eq!(of(&error), Failure::Other);
    }
}
