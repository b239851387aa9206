//! Typed acknowledgements: a source hands out an [`Ack`] with each batch and keeps
//! the batch's position itself, in a [`PositionLog`] of its own position type.
//! The pipeline gives acks back in order once their batches are durable.

use std::collections::VecDeque;

/// A batch's place in its source's sequence, committed back once durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ack(u64);

/// An ack the source never handed out, or already committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("commit of batch {0} that this source does not hold")]
pub struct UnknownAck(u64);

/// The positions of the batches a source has handed out and not yet committed.
#[derive(Debug)]
pub struct PositionLog<P> {
    next: u64,
    pending: VecDeque<(u64, P)>,
}

impl<P> Default for PositionLog<P> {
    fn default() -> Self {
        Self {
            next: 0,
            pending: VecDeque::new(),
        }
    }
}

impl<P> PositionLog<P> {
    /// Remembers the position of a batch about to be handed out; returns its ack.
    pub fn record(&mut self, position: P) -> Ack {
        let seq = self.next;
        self.next += 1;
        self.pending.push_back((seq, position));
        Ack(seq)
    }

    /// Takes the positions of every batch up to and including `ack`'s, oldest first.
    pub fn release(&mut self, ack: Ack) -> Result<Vec<P>, UnknownAck> {
        if !self.pending.iter().any(|(seq, _)| *seq == ack.0) {
            return Err(UnknownAck(ack.0));
        }
        let mut released = Vec::new();
        while let Some((seq, _)) = self.pending.front() {
            if *seq > ack.0 {
                break;
            }
            if let Some((_, position)) = self.pending.pop_front() {
                released.push(position);
            }
        }
        Ok(released)
    }

    /// Whether every batch handed out has been committed.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The newest position up to and including `ack`'s.
    pub fn release_latest(&mut self, ack: Ack) -> Result<P, UnknownAck> {
        self.release(ack)?.pop().ok_or(UnknownAck(ack.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_everything_up_to_the_ack_once() {
        let mut log = PositionLog::default();
        let a = log.record("a");
        let b = log.record("b");
        let c = log.record("c");
        assert_eq!(log.release(b), Ok(vec!["a", "b"]));
        assert_eq!(log.release(a), Err(UnknownAck(0)), "already committed");
        assert_eq!(log.release_latest(c), Ok("c"));
        let mut other = PositionLog::<u8>::default();
        assert!(other.release(c).is_err(), "never handed out by this log");
    }
}
