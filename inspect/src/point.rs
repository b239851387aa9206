//! The points of a flow where messages can be watched.

use std::fmt;
use std::str::FromStr;

/// A place between two parts of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// What the source read, before any transformation.
    Source,
    /// What transformation `N` (as `spec.transformations` lists them, from 0) put out.
    Step(usize),
    /// What goes into the main sink.
    Sink,
    /// What goes into route `N`'s sink.
    Route(usize),
    /// What goes into the error sink (or would, without one): error records.
    Errors,
}

/// A point that does not parse, or that this flow does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    /// Not one of the forms.
    #[error("point {0:?}: use source, step:N, sink, route:N or errors")]
    Unknown(String),
    /// A step or route past the flow's own.
    #[error("point {point}: this flow has {count} {what}")]
    OutOfRange {
        /// The point asked for.
        point: Point,
        /// How many steps or routes the flow has.
        count: usize,
        /// `transformations` or `routes`.
        what: &'static str,
    },
}

impl FromStr for Point {
    type Err = PointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || PointError::Unknown(text.chars().take(40).collect());
        let index = |rest: &str| rest.parse::<usize>().map_err(|_| unknown());
        match text {
            "source" => Ok(Self::Source),
            "sink" => Ok(Self::Sink),
            "errors" => Ok(Self::Errors),
            other => match other.split_once(':') {
                Some(("step", n)) => Ok(Self::Step(index(n)?)),
                Some(("route", n)) => Ok(Self::Route(index(n)?)),
                _ => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source => f.write_str("source"),
            Self::Step(n) => write!(f, "step:{n}"),
            Self::Sink => f.write_str("sink"),
            Self::Route(n) => write!(f, "route:{n}"),
            Self::Errors => f.write_str("errors"),
        }
    }
}

/// How many steps and routes a flow has: which points exist, each with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Transformations in the spec.
    pub steps: usize,
    /// Routes of the router (0 without one).
    pub routes: usize,
}

impl Layout {
    /// How many points the flow has.
    pub fn len(&self) -> usize {
        self.steps + self.routes + 3
    }

    /// Whether the flow has no points (never: source, sink and errors exist).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The slot of `point`, or why the flow does not have it.
    pub fn slot(&self, point: Point) -> Result<usize, PointError> {
        match point {
            Point::Source => Ok(0),
            Point::Sink => Ok(1),
            Point::Errors => Ok(2),
            Point::Step(n) if n < self.steps => Ok(3 + n),
            Point::Route(n) if n < self.routes => Ok(3 + self.steps + n),
            Point::Step(_) => Err(PointError::OutOfRange {
                point,
                count: self.steps,
                what: "transformations",
            }),
            Point::Route(_) => Err(PointError::OutOfRange {
                point,
                count: self.routes,
                what: "routes",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_read_and_print_alike() {
        for text in ["source", "step:0", "step:12", "sink", "route:1", "errors"] {
            let point: Point = text.parse().unwrap();
            assert_eq!(point.to_string(), text);
        }
        for bad in [
            "",
            "step",
            "step:",
            "step:-1",
            "step:x",
            "sinks",
            "route:1:2",
        ] {
            assert!(bad.parse::<Point>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_point_of_a_flow_has_its_own_slot() {
        let layout = Layout {
            steps: 2,
            routes: 2,
        };
        let points = [
            Point::Source,
            Point::Sink,
            Point::Errors,
            Point::Step(0),
            Point::Step(1),
            Point::Route(0),
            Point::Route(1),
        ];
        let slots: Vec<usize> = points.iter().map(|p| layout.slot(*p).unwrap()).collect();
        assert_eq!(slots, (0..layout.len()).collect::<Vec<_>>());
        assert_eq!(
            layout.slot(Point::Step(2)).unwrap_err().to_string(),
            "point step:2: this flow has 2 transformations"
        );
        assert!(layout.slot(Point::Route(2)).is_err());
    }
}
