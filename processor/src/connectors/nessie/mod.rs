//! Iceberg tables through Nessie's Iceberg REST catalog (the `iceberg` crates):
//! a sink that appends each batch as one Iceberg commit, and a source that reads
//! the snapshots appended since the last one it read.
//!
//! The catalog is reached at `<baseURL>/iceberg/<branch>`, the address Nessie
//! gives each branch; Nessie's config answer then points every later call at
//! `/iceberg/v1/<branch>|<warehouse>/...`, so reads and commits happen on that
//! branch. Data files go wherever the table's location says (`s3://`, `file://`),
//! with the storage settings the catalog hands out.

mod catalog;
mod errors;
mod sink;
mod snapshots;
mod source;

pub use sink::open as open_sink;
pub use source::NessieSource;
