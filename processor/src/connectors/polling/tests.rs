//! The polling skeleton's rules: reads continue after the saved position, only
//! committed positions are saved, at most once per interval, and once at close.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;

fn limit(messages: usize) -> BatchLimit {
    BatchLimit {
        messages,
        bytes: usize::MAX,
    }
}

/// Rows `1..=rows`, each with its number as the cursor.
struct Numbers {
    rows: u32,
    /// Rows added at each read.
    grows_by: u32,
    asked_after: Arc<Mutex<Vec<Option<String>>>>,
}

#[async_trait]
impl Poller for Numbers {
    fn name(&self) -> &str {
        "numbers"
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn check_position(&mut self, position: &str) -> Result<String, String> {
        position
            .parse::<u32>()
            .map(|n| n.to_string())
            .map_err(|e| format!("{position:?}: {e}"))
    }

    async fn poll(&mut self, window: Window<'_>, max: usize) -> Result<Page, ConnectorError> {
        self.asked_after
            .lock()
            .unwrap()
            .push(window.after.map(str::to_owned));
        let start = window.after.map_or(0, |a| a.parse::<u32>().unwrap_or(0));
        let end = window
            .until
            .map_or(self.rows, |u| u.parse::<u32>().unwrap_or(0).min(self.rows));
        let mut page = Page::default();
        // A table written to all along: each read finds rows added since the last.
        self.rows += self.grows_by;
        for n in (start + 1..=end).take(max) {
            page.messages.push(Message {
                payload: format!("{{\"id\":{n}}}").into_bytes(),
                metadata: Vec::new(),
            });
            page.last = Some(n.to_string());
        }
        Ok(page)
    }

    async fn last_position(&mut self) -> Result<Option<String>, ConnectorError> {
        Ok((self.rows > 0).then(|| self.rows.to_string()))
    }
}

/// Remembers what was saved; starts with `saved`.
struct Recorder {
    saved: Option<String>,
    saves: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl PositionStore for Recorder {
    async fn load(&mut self) -> Option<String> {
        self.saved.clone()
    }

    async fn save(&mut self, position: &str) {
        self.saves.lock().unwrap().push(position.to_owned());
    }

    async fn replace(&mut self, position: Option<&str>) -> Result<(), String> {
        let text = position.map_or_else(|| "forgotten".to_owned(), str::to_owned);
        self.saves.lock().unwrap().push(text);
        Ok(())
    }
}

type Probes = (Arc<Mutex<Vec<Option<String>>>>, Arc<Mutex<Vec<String>>>);

async fn source(
    rows: u32,
    saved: Option<&str>,
) -> (
    PollingSource,
    Arc<Mutex<Vec<Option<String>>>>,
    Arc<Mutex<Vec<String>>>,
) {
    let (source, (asked, saves)) = growing_source(rows, 0, saved).await;
    (source, asked, saves)
}

/// A source over rows `1..=rows` that gain `grows_by` more at each read.
async fn growing_source(rows: u32, grows_by: u32, saved: Option<&str>) -> (PollingSource, Probes) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let saves = Arc::new(Mutex::new(Vec::new()));
    let source = PollingSource::new(
        Box::new(Numbers {
            rows,
            grows_by,
            asked_after: asked.clone(),
        }),
        Box::new(Recorder {
            saved: saved.map(str::to_owned),
            saves: saves.clone(),
        }),
        60,
    )
    .await;
    (source, (asked, saves))
}

#[tokio::test]
async fn reads_continue_after_the_saved_position() {
    let (mut source, asked, _) = source(10, Some("7")).await;
    let batch = source.next_batch(limit(100)).await.unwrap().unwrap();
    assert_eq!(batch.messages.len(), 3);
    assert_eq!(asked.lock().unwrap()[0].as_deref(), Some("7"));
}

#[tokio::test(start_paused = true)]
async fn only_committed_positions_are_saved_and_at_most_once_per_interval() {
    let (mut source, _, saves) = source(10, None).await;
    let first = source.next_batch(limit(4)).await.unwrap().unwrap();
    let second = source.next_batch(limit(4)).await.unwrap().unwrap();
    let third = source.next_batch(limit(4)).await.unwrap().unwrap();
    assert!(
        saves.lock().unwrap().is_empty(),
        "nothing committed, nothing saved"
    );
    source.commit(first.ack.unwrap()).await.unwrap();
    assert_eq!(*saves.lock().unwrap(), ["4"]);
    // Within the interval: remembered, not saved yet.
    source.commit(second.ack.unwrap()).await.unwrap();
    assert_eq!(*saves.lock().unwrap(), ["4"]);
    tokio::time::advance(SAVE_EVERY).await;
    source.commit(third.ack.unwrap()).await.unwrap();
    assert_eq!(*saves.lock().unwrap(), ["4", "10"]);
}

#[tokio::test(start_paused = true)]
async fn close_saves_the_last_committed_position_but_never_an_uncommitted_one() {
    let (mut source, _, saves) = source(10, None).await;
    let first = source.next_batch(limit(4)).await.unwrap().unwrap();
    let second = source.next_batch(limit(4)).await.unwrap().unwrap();
    let _third = source.next_batch(limit(4)).await.unwrap().unwrap();
    source.commit(first.ack.unwrap()).await.unwrap();
    source.commit(second.ack.unwrap()).await.unwrap();
    source.close().await.unwrap();
    assert_eq!(
        *saves.lock().unwrap(),
        ["4", "8"],
        "row 10 was read but never committed"
    );
}

#[tokio::test]
async fn an_ack_it_never_handed_out_is_an_error() {
    let (mut source, _, _) = source(10, None).await;
    let mut other = PositionLog::<u8>::default();
    let foreign = other.record(1);
    let err = source.commit(foreign).await.expect_err("unknown ack");
    assert!(err.to_string().contains("does not hold"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_job_reads_to_the_first_short_page_and_ends_without_waiting() {
    let (source, asked, _) = source(10, Some("2")).await;
    let mut source = source.ending_after_one_pass(true);
    let started = tokio::time::Instant::now();
    let mut read = 0;
    loop {
        source.wait_for_input().await.unwrap();
        match source.next_batch(limit(4)).await.unwrap() {
            Some(batch) => read += batch.messages.len(),
            None => break,
        }
    }
    assert_eq!(read, 8, "rows 3 to 10");
    assert_eq!(
        asked.lock().unwrap().len(),
        3,
        "two full pages of 4, then an empty one ends the pass"
    );
    assert_eq!(
        started.elapsed(),
        std::time::Duration::ZERO,
        "no poll interval waited"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_on_a_table_written_to_all_along_ends_at_the_rows_present_at_start() {
    // Every read finds five new rows: a pass that waited for a short page
    // would never end.
    let (source, (asked, _)) = growing_source(10, 5, Some("2")).await;
    let mut source = source.ending_after_one_pass(true);
    let mut ids = Vec::new();
    loop {
        source.wait_for_input().await.unwrap();
        match source.next_batch(limit(4)).await.unwrap() {
            Some(batch) => ids.extend(
                batch
                    .messages
                    .iter()
                    .map(|m| String::from_utf8_lossy(&m.payload).into_owned()),
            ),
            None => break,
        }
        assert!(asked.lock().unwrap().len() < 10, "the pass ends");
    }
    let expected: Vec<String> = (3..=10).map(|n| format!("{{\"id\":{n}}}")).collect();
    assert_eq!(ids, expected, "rows 3 to 10, the last present at start");
}

#[tokio::test]
async fn an_empty_table_ends_a_job_at_once() {
    let (source, (asked, _)) = growing_source(0, 0, None).await;
    let mut source = source.ending_after_one_pass(true);
    assert!(source.next_batch(limit(4)).await.unwrap().is_none());
    assert!(asked.lock().unwrap().is_empty(), "no read needed");
}

#[tokio::test]
async fn a_reset_writes_the_new_position_before_anything_is_read() {
    let (mut source, asked, saves) = source(10, Some("7")).await;
    let detail = source.reset_to(Some("3")).await.unwrap();
    assert!(detail.contains(r#"after "3" (was after "7")"#), "{detail}");
    assert_eq!(*saves.lock().unwrap(), ["3"], "written at once");
    let batch = source.next_batch(limit(100)).await.unwrap().unwrap();
    assert_eq!(batch.messages.len(), 7, "rows 4 to 10");
    assert_eq!(asked.lock().unwrap()[0].as_deref(), Some("3"));
}

#[tokio::test]
async fn a_reset_to_the_beginning_forgets_the_position() {
    let (mut source, asked, saves) = source(10, Some("7")).await;
    source.reset_to(None).await.unwrap();
    assert_eq!(*saves.lock().unwrap(), ["forgotten"]);
    let batch = source.next_batch(limit(100)).await.unwrap().unwrap();
    assert_eq!(batch.messages.len(), 10);
    assert_eq!(asked.lock().unwrap()[0], None);
}

#[tokio::test]
async fn a_cursor_the_column_cannot_hold_is_refused_and_nothing_moves() {
    let (mut source, asked, saves) = source(10, Some("7")).await;
    let error = source.reset_to(Some("x'; DROP TABLE t")).await.unwrap_err();
    assert!(
        error.to_string().contains("cannot reset the position"),
        "{error}"
    );
    assert!(saves.lock().unwrap().is_empty());
    source.next_batch(limit(100)).await.unwrap();
    assert_eq!(asked.lock().unwrap()[0].as_deref(), Some("7"));
}
