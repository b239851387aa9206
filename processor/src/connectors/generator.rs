//! Synthetic messages for demos and benchmarks.

use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use dataflow_api::connectors::GeneratorSpec;
use tokio::time::Instant;

use super::{Ack, BatchLimit, ConnectorError, Source, SourceBatch};
use dataflow_core::Message;

/// Which documents to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Template {
    /// Order events shaped like the benchmark corpus.
    Orders,
    /// `{"id": n, "value": ..., "message": "event n"}`.
    Counter,
}

/// Generates `count` messages (0 = endless), optionally at a fixed rate.
pub struct GeneratorSource {
    template: Template,
    count: u64,
    rate: u64,
    emitted: u64,
    started: Option<Instant>,
    rng: XorShift,
}

impl GeneratorSource {
    /// A generator per `spec` (validated: the template is known).
    pub fn new(spec: &GeneratorSpec) -> Self {
        let template = match spec.template.as_deref() {
            Some("counter") => Template::Counter,
            _ => Template::Orders,
        };
        Self {
            template,
            count: spec.count.unwrap_or(0),
            rate: spec.rate_per_second.unwrap_or(0),
            emitted: 0,
            started: None,
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn render(&mut self, id: u64) -> Vec<u8> {
        match self.template {
            Template::Orders => self.order(id),
            Template::Counter => format!(
                r#"{{"id":{id},"value":{},"message":"event {id}"}}"#,
                self.rng.below(1000)
            )
            .into_bytes(),
        }
    }

    fn order(&mut self, id: u64) -> Vec<u8> {
        const FIRST: [&str; 8] = [
            "John", "Maria", "Wei", "Olga", "Ahmed", "Lena", "Raj", "Sara",
        ];
        const LAST: [&str; 8] = [
            "Doe", "Ivanova", "Chen", "Smith", "Khan", "Novak", "Patel", "Berg",
        ];
        const LEVELS: [&str; 5] = ["info", "info", "info", "warning", "error"];
        let rng = &mut self.rng;
        let first = FIRST[rng.below(8) as usize];
        let last = LAST[rng.below(8) as usize];
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            r#"{{"orderId":{id},"active":{},"level":"{}","customerName":"{first} {last}","user":{{"userId":{},"email":"{}.{}@example.com","homeAddress":{{"streetName":"Main St","zipCode":"{:05}"}}}},"card":"4111{:012}","internal_id":"int-{:08x}","debug":{{"traceId":"{:016x}{:016x}"}},"items":["#,
            rng.below(10) < 8,
            LEVELS[rng.below(5) as usize],
            1 + rng.below(1_000_000),
            first.to_lowercase(),
            last.to_lowercase(),
            rng.below(100_000),
            rng.below(1_000_000_000_000),
            rng.below(1 << 32),
            rng.next(),
            rng.next(),
        );
        let mut total_cents = 0u64;
        for i in 0..3 {
            let qty = 1 + rng.below(5);
            let cents = 100 + rng.below(19_900);
            total_cents += qty * cents;
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                r#"{sep}{{"sku":"SKU-{:04}","qty":{qty},"unitPrice":{}.{:02}}}"#,
                rng.below(200),
                cents / 100,
                cents % 100
            );
        }
        let _ = write!(
            out,
            r#"],"totalAmount":{}.{:02}}}"#,
            total_cents / 100,
            total_cents % 100
        );
        out.into_bytes()
    }
}

#[async_trait]
impl Source for GeneratorSource {
    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        let max = limit.messages.max(1);
        let remaining = if self.count == 0 {
            u64::MAX
        } else {
            self.count - self.emitted
        };
        if remaining == 0 {
            return Ok(None);
        }
        let mut want = remaining.min(max as u64);
        if self.rate > 0 {
            let started = *self.started.get_or_insert_with(Instant::now);
            loop {
                let due = (started.elapsed().as_secs_f64() * self.rate as f64) as u64;
                let allowed = due.saturating_sub(self.emitted);
                if allowed > 0 {
                    want = want.min(allowed);
                    break;
                }
                tokio::time::sleep(Duration::from_secs_f64(1.0 / self.rate as f64)).await;
            }
        }
        let messages = (0..want)
            .map(|i| Message {
                payload: self.render(self.emitted + i),
                metadata: Vec::new(),
            })
            .collect();
        self.emitted += want;
        Ok(Some(SourceBatch::unacked(messages)))
    }

    async fn commit(&mut self, _ack: Ack) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A small deterministic PRNG (xorshift64*): same sequence on every machine.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generates_count_valid_orders() {
        let spec = GeneratorSpec {
            count: Some(5),
            ..Default::default()
        };
        let mut source = GeneratorSource::new(&spec);
        let batch = source
            .next_batch(BatchLimit {
                messages: 3,
                bytes: usize::MAX,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.messages.len(), 3);
        let rest = source
            .next_batch(BatchLimit {
                messages: 10,
                bytes: usize::MAX,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest.messages.len(), 2);
        assert!(
            source
                .next_batch(BatchLimit {
                    messages: 10,
                    bytes: usize::MAX
                })
                .await
                .unwrap()
                .is_none()
        );
        for message in batch.messages.iter().chain(&rest.messages) {
            let doc: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            assert!(
                doc["user"]["email"]
                    .as_str()
                    .unwrap()
                    .ends_with("@example.com")
            );
            assert_eq!(doc["items"].as_array().unwrap().len(), 3);
        }
    }
}
