//! Trino over its REST statement protocol (`POST /v1/statement`, then `nextUri`
//! until the query is done), through `reqwest`, with optional Keycloak (OAuth2)
//! bearer tokens: a polling source and a batching sink.

mod auth;
mod client;
mod errors;
mod sink;
mod source;

pub use sink::open as open_sink;
pub use source::open_source;
