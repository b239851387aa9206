//! The acknowledgement ledger: which source positions may be committed.
//!
//! The rule it keeps: a batch's ack is released only when every message the
//! batch (and every batch before it) handed to any outlet is durable there, error
//! records included; acks are released in batch order.

use std::collections::VecDeque;

use crate::connectors::Ack;

/// Acks waiting for their outputs to become durable, oldest first.
#[derive(Debug, Default)]
pub(crate) struct AckLedger {
    /// Each ack with the handed count every outlet must have made durable.
    pending: VecDeque<(Ack, Vec<u64>)>,
}

impl AckLedger {
    /// Holds `ack` until each outlet `slot` has made `handed[slot]` messages durable.
    pub(crate) fn hold(&mut self, ack: Ack, handed: Vec<u64>) {
        self.pending.push_back((ack, handed));
    }

    /// More messages of earlier batches went to outlet `slot` after their acks
    /// were held (error records of late refusals): every held ack now waits for
    /// `handed` of them too.
    pub(crate) fn raise(&mut self, slot: usize, handed: u64) {
        for (_, required) in &mut self.pending {
            if let Some(need) = required.get_mut(slot) {
                *need = (*need).max(handed);
            }
        }
    }

    /// Takes, in order, the acks whose outlets have all reached their counts given
    /// `durable[slot]`; stops at the first that has not.
    pub(crate) fn release(&mut self, durable: &[u64]) -> Vec<Ack> {
        let mut released = Vec::new();
        while let Some((_, required)) = self.pending.front() {
            let met = required
                .iter()
                .enumerate()
                .all(|(slot, &need)| durable.get(slot).copied().unwrap_or(0) >= need);
            if !met {
                break;
            }
            if let Some((ack, _)) = self.pending.pop_front() {
                released.push(ack);
            }
        }
        released
    }

    /// Acks still held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::PositionLog;

    fn acks(n: usize) -> Vec<Ack> {
        let mut log = PositionLog::default();
        (0..n).map(|i| log.record(i)).collect()
    }

    #[test]
    fn releases_in_order_only_when_every_outlet_is_durable() {
        let a = acks(3);
        let mut ledger = AckLedger::default();
        ledger.hold(a[0], vec![10, 0]);
        ledger.hold(a[1], vec![20, 1]);
        ledger.hold(a[2], vec![25, 1]);
        assert!(
            ledger.release(&[9, 5]).is_empty(),
            "main sink not durable yet"
        );
        assert_eq!(ledger.release(&[10, 0]), vec![a[0]]);
        // The second batch's error record is not durable: nothing after it moves,
        // even though the third batch's main-sink rows are.
        assert!(ledger.release(&[30, 0]).is_empty());
        assert_eq!(ledger.release(&[30, 1]), vec![a[1], a[2]]);
        assert_eq!(ledger.held(), 0);
    }

    #[test]
    fn late_error_records_hold_back_pending_acks() {
        let a = acks(2);
        let mut ledger = AckLedger::default();
        ledger.hold(a[0], vec![10, 0]);
        ledger.hold(a[1], vec![20, 0]);
        // A refusal reported late sent 3 error records.
        ledger.raise(1, 3);
        assert!(ledger.release(&[20, 2]).is_empty());
        assert_eq!(ledger.release(&[20, 3]), vec![a[0], a[1]]);
    }

    #[test]
    fn raising_never_lowers_a_requirement() {
        let a = acks(1);
        let mut ledger = AckLedger::default();
        ledger.hold(a[0], vec![0, 5]);
        ledger.raise(1, 2);
        assert!(ledger.release(&[0, 4]).is_empty());
    }
}
