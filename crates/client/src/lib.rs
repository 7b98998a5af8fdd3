//! The budgeted API client: the only way any fleetwatch component talks to a Kubernetes API
//! server.
//!
//! Owns: construction of `kube::Client`, the tower stack of guard rails around it (identifying
//! User-Agent, token bucket, adaptive concurrency, Retry-After and backoff, a hard ceiling, cost
//! accounting) and informers, the only read API offered.
//!
//! Must not: offer periodic LIST polling, let any setting remove its rate limits or ceiling, or log
//! credentials.
//!
//! Status: being built (see the budgeted-client issue).
