use std::time::Duration;

use super::*;
use dataflow_core::path::FieldPath;

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            payload: format!(r#"{{"id":{i},"card":"4111"}}"#).into_bytes(),
            metadata: vec![("offset".into(), i.to_string())],
        })
        .collect()
}

fn tap() -> Arc<Tap> {
    Tap::new(
        Layout {
            steps: 3,
            routes: 1,
        },
        Shaper::new(vec![FieldPath::parse("card").unwrap()]),
    )
}

async fn samples(subscription: &mut Subscription) -> Vec<Sample> {
    let mut out = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(1), subscription.next()).await
    {
        match event {
            TapEvent::Sample(sample) => out.push(*sample),
            TapEvent::Dropped(n) => panic!("dropped {n}"),
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn without_a_client_nothing_is_taken_and_offers_are_only_counted() {
    let tap = tap();
    assert!(!tap.wants(Point::Step(1)));
    tap.offer(Point::Step(1), Some(1), &messages(100));
    assert_eq!(tap.offered(Point::Step(1)), 100);
    let mut watching = tap
        .subscribe(Watch::new(Point::Step(1), Some(1000), None).unwrap())
        .unwrap();
    assert!(tap.wants(Point::Step(1)));
    assert!(!tap.wants(Point::Step(0)));
    assert!(
        samples(&mut watching).await.is_empty(),
        "nothing from before"
    );
    drop(watching);
    assert!(!tap.wants(Point::Step(1)));
    assert_eq!(tap.clients(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_gets_its_rate_spread_over_the_batches_masked() {
    let tap = tap();
    let mut watching = tap
        .subscribe(Watch::new(Point::Sink, Some(10), None).unwrap())
        .unwrap();
    tap.offer(Point::Sink, Some(2), &messages(1000));
    let first = samples(&mut watching).await;
    assert_eq!(
        first.iter().map(|s| s.seq).collect::<Vec<_>>(),
        (0..10).map(|i| i * 100).collect::<Vec<_>>()
    );
    assert_eq!(first[3].payload["card"], "***");
    assert_eq!(first[3].payload["id"], 300);
    assert_eq!(first[3].metadata["offset"], "300");
    assert_eq!(first[3].step, Some(2));
    // The second's budget is spent; half a second later, half of it is back.
    tap.offer(Point::Sink, Some(2), &messages(1000));
    assert!(samples(&mut watching).await.is_empty());
    tokio::time::advance(Duration::from_millis(500)).await;
    tap.offer(Point::Sink, Some(2), &messages(1000));
    let later = samples(&mut watching).await;
    assert_eq!(later.len(), 5);
    assert_eq!(later[0].seq, 2000);
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_loses_samples_and_is_told_how_many() {
    let tap = tap();
    let mut watching = tap
        .subscribe(Watch::new(Point::Source, Some(1000), None).unwrap())
        .unwrap();
    tap.offer(Point::Source, None, &messages(1000));
    tokio::time::advance(Duration::from_secs(1)).await;
    // The queue holds a second of samples: the next second's are lost.
    tap.offer(Point::Source, None, &messages(600));
    assert_eq!(watching.next().await, Some(TapEvent::Dropped(600)));
    let mut kept = 0;
    while let Ok(Some(TapEvent::Sample(_))) =
        tokio::time::timeout(Duration::from_millis(1), watching.next()).await
    {
        kept += 1;
    }
    assert_eq!(kept, 1000);
}

#[tokio::test]
async fn at_most_eight_clients_watch_at_once() {
    let tap = tap();
    let watch = Watch::new(Point::Errors, None, None).unwrap();
    let mut held: Vec<Subscription> = (0..MAX_CLIENTS)
        .map(|_| tap.subscribe(watch).unwrap())
        .collect();
    assert_eq!(tap.subscribe(watch).err(), Some(TapError::Busy));
    held.pop();
    assert!(tap.subscribe(watch).is_ok());
}

#[test]
fn watches_outside_the_limits_are_refused() {
    assert_eq!(
        Watch::new(Point::Sink, Some(0), None),
        Err(TapError::Rate(0))
    );
    assert_eq!(
        Watch::new(Point::Sink, Some(1001), None),
        Err(TapError::Rate(1001))
    );
    assert_eq!(
        Watch::new(Point::Sink, None, Some(0)),
        Err(TapError::MaxBytes(0))
    );
    let watch = Watch::new(Point::Sink, None, None).unwrap();
    assert_eq!((watch.rate, watch.max_bytes), (10, 65536));
    let tap = tap();
    assert!(matches!(
        tap.subscribe(Watch::new(Point::Route(1), None, None).unwrap()),
        Err(TapError::Point(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn error_records_show_the_original_message_and_the_error() {
    let tap = tap();
    let mut watching = tap
        .subscribe(Watch::new(Point::Errors, None, None).unwrap())
        .unwrap();
    let record = br#"{"error":{"message":"bad","type":"invalid_data","stage":"transform","transformer_index":1},"original_message":{"id":7,"card":"4111"}}"#;
    tap.offer_errors(&[Message {
        payload: record.to_vec(),
        metadata: vec![],
    }]);
    let got = samples(&mut watching).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload["card"], "***");
    assert_eq!(got[0].payload["id"], 7);
    assert_eq!(got[0].step, Some(1));
    assert_eq!(got[0].error.as_ref().unwrap()["type"], "invalid_data");
}

#[tokio::test(start_paused = true)]
async fn the_last_sampled_messages_are_kept_whole_for_the_playground() {
    let tap = tap();
    let _watching = tap
        .subscribe(Watch::new(Point::Step(0), Some(1000), None).unwrap())
        .unwrap();
    tap.offer(Point::Step(0), Some(0), &messages(150));
    let recent = tap.recent(Point::Step(0), 3).unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(
        recent[2].payload, br#"{"id":149,"card":"4111"}"#,
        "unmasked: the sandbox runs the real message"
    );
    assert_eq!(
        tap.recent(Point::Step(0), 1000).unwrap_err(),
        TapError::Recent(1000)
    );
    assert!(tap.recent(Point::Step(1), 5).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_the_tap_re_runs_is_delivered_within_the_rate() {
    let tap = tap();
    let mut watching = tap
        .subscribe(Watch::new(Point::Step(0), Some(4), None).unwrap())
        .unwrap();
    let inputs = messages(100);
    let asked = std::sync::Mutex::new(Vec::new());
    tap.offer_derived(Point::Step(0), Some(0), inputs.len(), &|indices| {
        asked.lock().unwrap().extend_from_slice(indices);
        indices
            .iter()
            .map(|&i| Message {
                payload: format!(r#"{{"rerun":{i}}}"#).into_bytes(),
                metadata: vec![],
            })
            .collect()
    });
    assert_eq!(
        *asked.lock().unwrap(),
        [0, 25, 50, 75],
        "only what the rate lets through is re-run"
    );
    let got = samples(&mut watching).await;
    assert_eq!(
        got.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [0, 25, 50, 75]
    );
    assert_eq!(got[1].payload["rerun"], 25);
}
