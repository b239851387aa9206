//! Whether a connector's server answers, as its last operation found: read by the
//! connection-status gauges and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

// 0: not connected yet (the default).
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A connector's reachability, shared between the connector and what reports it.
/// It starts unknown (not connected yet).
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<AtomicU8>);

impl Health {
    /// A handle that starts as not connected yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server answered.
    pub fn up(&self) {
        self.0.store(UP, Ordering::Relaxed);
    }

    /// The server could not be reached.
    pub fn down(&self) {
        self.0.store(DOWN, Ordering::Relaxed);
    }

    /// Whether the last operation reached the server.
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed) == UP
    }

    /// Whether the last operation failed to reach the server.
    pub fn is_down(&self) -> bool {
        self.0.load(Ordering::Relaxed) == DOWN
    }
}

/// The health of every connector of a flow, by slot.
#[derive(Debug, Clone, Default)]
pub struct FlowHealth {
    /// The source.
    pub source: Health,
    /// The main sink.
    pub sink: Health,
    /// The error sink, if the flow has one.
    pub errors: Option<Health>,
    /// The route sinks, in route order (opened on first use).
    pub routes: Vec<Health>,
}

impl FlowHealth {
    /// Handles for a flow with `routes` route sinks and, if `errors`, an error sink.
    pub fn new(errors: bool, routes: usize) -> Self {
        Self {
            source: Health::new(),
            sink: Health::new(),
            errors: errors.then(Health::new),
            routes: (0..routes).map(|_| Health::new()).collect(),
        }
    }

    /// The sinks' handles in slot order (main, errors, routes); `None` for a
    /// missing error sink.
    pub fn sinks(&self) -> Vec<Option<&Health>> {
        let mut sinks = vec![Some(&self.sink), self.errors.as_ref()];
        sinks.extend(self.routes.iter().map(Some));
        sinks
    }

    /// Whether the flow can do its work: the source, the main sink and the error
    /// sink answer, and no route sink opened so far has lost its server.
    pub fn all_up(&self) -> bool {
        self.source.is_up()
            && self.sink.is_up()
            && self.errors.as_ref().is_none_or(Health::is_up)
            && !self.routes.iter().any(Health::is_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_is_ready_only_while_its_connectors_answer() {
        let health = FlowHealth::new(true, 1);
        assert!(!health.all_up(), "nothing connected yet");
        health.source.up();
        health.sink.up();
        assert!(!health.all_up(), "the error sink is not connected");
        if let Some(errors) = &health.errors {
            errors.up();
        }
        assert!(health.all_up(), "an unopened route does not count");
        health.routes[0].down();
        assert!(!health.all_up());
        health.routes[0].up();
        health.sink.down();
        assert!(!health.all_up());
    }
}
