//! Per-node agent: node and pod telemetry from the local kubelet and `/proc`, plus a DNS probe.
//!
//! Must not: talk to the Kubernetes API server, ever. It has no dependency that could.
//!
//! Status: not started; an issue will fill it in.
