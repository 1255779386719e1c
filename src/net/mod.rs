//! Sockets: the viewer listeners (SO_REUSEPORT group steered by CPU), the
//! buffered connection type with deadlines, body streaming, and the
//! zero-copy splice path between plain sockets.

pub mod body;
pub mod conn;
pub mod listener;
pub mod proxy_protocol;
pub mod splice;
pub mod tls;
