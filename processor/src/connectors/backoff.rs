//! Exponential backoff for retrying transient connector failures.

use std::time::Duration;

/// Delays that double from `initial` up to `max`; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
            attempts: 0,
        }
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Waits before the next attempt.
    pub async fn wait(&mut self) {
        self.attempts += 1;
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep(delay).await;
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let start = tokio::time::Instant::now();
        backoff.wait().await;
        backoff.wait().await;
        backoff.wait().await;
        backoff.wait().await;
        // 100 + 200 + 350 + 350
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        assert_eq!(backoff.attempts(), 4);
        backoff.reset();
        let start = tokio::time::Instant::now();
        backoff.wait().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}
