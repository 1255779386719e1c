//! Sockets: the viewer listeners (SO_REUSEPORT group steered by CPU), the
//! buffered connection type with deadlines, and body streaming. The zero-copy
//! splice path (a later issue) lives here too.

pub mod body;
pub mod conn;
pub mod listener;
pub mod proxy_protocol;
pub mod tls;
