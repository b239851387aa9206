//! PostgreSQL through `sqlx`: a polling source with an incremental cursor and a
//! batching sink (one statement per batch, JSON rows expanded by the server).

pub mod cdc;
mod cursor_store;
mod errors;
mod ident;
mod sink;
mod source;

pub use ident::QualifiedName;
pub use sink::open as open_sink;
pub use source::open_source;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::ConnectorError;

/// A lazily connecting pool: the first statement connects, and connection failures
/// surface there, where they are retried.
fn pool(path: &str, url: &str, connections: u32) -> Result<PgPool, ConnectorError> {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy(url)
        .map_err(|e| ConnectorError::Config {
            path: format!("{path}.connectionString"),
            reason: format!("not a usable PostgreSQL URL: {e}"),
        })
}
