//! ClickHouse through the `clickhouse` crate, which speaks ClickHouse's HTTP
//! interface: a polling source with an incremental cursor and a batching sink.
//!
//! Both move rows as `JSONEachRow`, so any table shape works and nothing is typed
//! on our side. Works with servers from 18.16 on (the oldest the tests run; it has
//! no `RowBinaryWithNamesAndTypes` and no server-side query parameters, so neither
//! is used).

mod connection;
mod cursor_store;
mod errors;
mod ident;
mod sink;
mod source;
mod upsert;

pub use sink::open as open_sink;
pub use source::open_source;
