//! Deterministic discrete-event simulator of Kubernetes fleets and the 2024-12-11 incident replay.
//!
//! Owns: the fleet model (API servers, etcd, agents, DNS caches, alerting) and the scenario
//! runner. Must not: do I/O, read clocks or use unseeded randomness.
//!
//! Status: being built (see the simulator issue).
