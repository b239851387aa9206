//! What a running flow shows of itself, and the endpoints that serve it:
//!
//! - [`tap`]: live samples of the messages at any point (after the source,
//!   after each step, into each sink and route, into the error sink), bounded
//!   per client and free when nobody watches;
//! - [`failures`]: the last hundred failed messages;
//! - [`figures`]: per-step and per-sink counts, queues, the source's position,
//!   the phase, and fifteen minutes of history;
//! - [`api`]: `/api/v1` over HTTP (JSON and Server-Sent Events), behind the
//!   flow's token, with the playground's dry run.
//!
//! The processor feeds these from its pipeline; the local page and the console
//! read them over the API. Nothing here logs a payload.

pub mod api;
pub mod failures;
pub mod figures;
pub mod point;
pub mod sample;
pub mod tap;

pub use api::{Inspect, Token};
pub use failures::{FailureView, Failures};
pub use figures::{Figures, SinkFigure};
pub use point::{Layout, Point};
pub use sample::{Sample, Shaper};
pub use tap::{Tap, Watch};
