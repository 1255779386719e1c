//! The rules of acting as an HTTP gateway (RFC 9110 3.7: a reverse proxy),
//! with no I/O: how a request is routed (refused, passed, looked up), what is
//! sent upstream, how a response is framed and labelled for the viewer and
//! what of it is stored, and the typed decisions (`CachePhase`, `Detail`)
//! that `Cache-Status`, the access log and the metrics render. `proxy`
//! drives these with sockets; everything here is a fast unit test and must
//! never touch a socket, a file, the runtime or the clock.

pub mod behavior;
pub mod decision;
pub mod forwarded;
pub mod route;
pub mod viewer;
