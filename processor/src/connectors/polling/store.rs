//! Where a polling source keeps its position between runs.

use async_trait::async_trait;

/// A polling source's saved position.
#[async_trait]
pub trait PositionStore: Send {
    /// The saved position, if any; a store that cannot be read says so in the log
    /// and returns `None` (the source reads from the start).
    async fn load(&mut self) -> Option<String>;

    /// Saves a committed position; a failure is logged, and the next save covers it.
    async fn save(&mut self, position: &str);

    /// Writes `position` now (`None`: forget it, so the next start reads from the
    /// first row), saying why it could not: a position reset must be durable
    /// before the flow reads on.
    async fn replace(&mut self, position: Option<&str>) -> Result<(), String>;
}

/// Keeps nothing: a restarted flow reads from the start. For sources whose origin
/// cannot be written (Trino catalogs are often read-only), and the fallback when a
/// store's table cannot be created.
pub struct MemoryStore;

#[async_trait]
impl PositionStore for MemoryStore {
    async fn load(&mut self) -> Option<String> {
        None
    }

    async fn save(&mut self, _position: &str) {}

    async fn replace(&mut self, _position: Option<&str>) -> Result<(), String> {
        Err("this source keeps its position in memory only".into())
    }
}
