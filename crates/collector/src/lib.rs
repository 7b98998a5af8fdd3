//! Per-cluster control-plane telemetry collector (one per cluster, leader-elected).
//!
//! Owns: reading API-server metrics and object state through the budgeted client and exporting
//! them. Must not: construct its own `kube::Client` or poll with LIST.
//!
//! Status: not started; an issue will fill it in.
