//! The flow's page in a real browser (Debian's headless Chromium, driven by its
//! WebDriver): `dataflow-processor run --ui` of the live demo shows every node
//! of the graph, counts that rise, a step's messages on click (also inside a
//! fused run, and from the keyboard), pause and search, the failures, and a
//! playground edit whose changed output is marked; a hostile payload is shown
//! as text and runs nothing; a page without the right token shows nothing.
//! Screenshots of each state go to `target/screenshots/`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use dataflow_tests::browser::Browser;
use dataflow_tests::cluster::free_port;
use dataflow_tests::{processor_bin, workspace};
use fantoccini::Locator;

/// A processor serving its page.
struct Served {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The page's address, token included.
    url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    fn start(spec: &std::path::Path, extra: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(processor_bin())
            .args(["run", "--spec"])
            .arg(spec)
            .args(["--ui", &addr])
            .args(extra)
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the processor starts");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("its stderr");
        let (found, url) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("the flow's page: ") {
                    let _ = found.send(url.to_owned());
                }
                if let Ok(mut log) = kept.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let url = url
            .recv_timeout(Duration::from_secs(60))
            .expect("the processor prints its page's address");
        Self {
            child,
            stdin,
            url,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |found| found.len())
}

fn number(text: &str) -> u64 {
    text.replace(',', "").trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_demo_in_a_real_browser() {
    let served = Served::start(&workspace().join("examples/live-demo.yaml"), &[]);
    let browser = Browser::start(1500, 1100).await;
    browser
        .client
        .goto(&served.url)
        .await
        .expect("the page loads");
    browser
        .wait_text("#phase", "the flow running", |t| t == "running")
        .await;

    // Every node of the flow: the source, six steps, the sink, the route's
    // sink and the error sink; the two fused runs framed as one call each.
    let points = browser
        .eval(
            "return [...document.querySelectorAll('.node')].map(n => n.getAttribute('data-point'))",
        )
        .await;
    assert_eq!(
        points,
        serde_json::json!([
            "source", "step:0", "step:1", "step:2", "step:3", "step:4", "step:5", "sink",
            "route:0", "errors"
        ])
    );
    assert_eq!(count(&browser, ".fused").await, 2);
    let labels = browser
        .eval("return document.getElementById('graph').textContent")
        .await;
    for shown in [
        "timestamp",
        "filter",
        "mask",
        "python",
        "router",
        "snakeCase",
        "fused: one call, steps 0–2",
    ] {
        assert!(
            labels.as_str().unwrap_or_default().contains(shown),
            "{shown}: {labels}"
        );
    }

    // Counts rise.
    let first = number(
        &browser
            .wait_text("#total-read", "messages read", |t| number(t) > 0)
            .await,
    );
    browser
        .wait_text("#total-read", "the count to rise", |t| number(t) > first)
        .await;
    browser
        .wait_text("[id='count:step:3']", "the python step's counts", |t| {
            t.contains("failed")
        })
        .await;
    browser.screenshot("page-graph").await;

    // A step inside the fused run shows its own output: after timestamp and
    // filter (only active orders), before snakeCase; masked as the flow says.
    let step = browser
        .client
        .find(Locator::Css(".node[data-point='step:1']"))
        .await
        .expect("step 1");
    step.click().await.expect("click step 1");
    let shown = browser
        .wait_text("#tap-list li", "step 1's messages", |t| {
            t.contains("customerName")
        })
        .await;
    assert!(shown.contains("from step 1"), "{shown}");
    assert!(
        shown.contains("\"active\": true") && !shown.contains("\"active\": false"),
        "{shown}"
    );
    assert!(
        shown.contains("\"created_at\""),
        "timestamp ran before: {shown}"
    );
    assert!(
        shown.contains("\"customerName\": \"***\""),
        "maskFields: {shown}"
    );
    assert!(shown.contains("\"card\": \"***\""), "maskFields: {shown}");
    assert!(
        !shown.contains("customer_name"),
        "snakeCase comes later: {shown}"
    );
    browser.screenshot("page-tap-fused-step").await;

    // Pause holds the list; search hides what does not match.
    browser.click("tap-pause").await;
    let held = count(&browser, "#tap-list li").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&browser, "#tap-list li").await, held);
    browser
        .wait_text("#tap-pause", "the resume button", |t| {
            t.starts_with("Resume")
        })
        .await;
    browser.click("tap-pause").await;
    let search = browser
        .client
        .find(Locator::Id("tap-search"))
        .await
        .unwrap();
    search.send_keys("\"warning\"").await.unwrap();
    let hidden = browser
        .eval("const items = [...document.querySelectorAll('#tap-list li')]; return items.filter(i => !i.hidden).every(i => i.textContent.includes('\"warning\"'))")
        .await;
    assert_eq!(hidden, true);
    search.clear().await.unwrap();

    // The keyboard reaches a node: Tab to it, Enter watches it.
    browser
        .eval("document.querySelector(\".node[data-point='step:5']\").focus(); return true")
        .await;
    let focused = browser
        .client
        .active_element()
        .await
        .expect("the focused node");
    focused.send_keys("\u{E007}").await.expect("Enter");
    browser
        .wait_text("#tap-list li", "step 5's messages", |t| {
            t.contains("customer_name")
        })
        .await;
    assert_eq!(
        browser
            .client
            .find(Locator::Id("tap-point"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "step 5"
    );

    // The failures: what the Python code raised, with its type and position.
    browser.click("tab-failures").await;
    let failure = browser
        .wait_text("#failure-list li", "a failure", |t| {
            t.contains("script_error")
        })
        .await;
    assert!(
        failure.contains("needs approval") && failure.contains("step 3"),
        "{failure}"
    );
    browser.screenshot("page-failures").await;

    // The playground: the Python step edited, the changed output marked.
    browser.click("tab-playground").await;
    browser
        .wait_text("#play-samples", "messages to play with", |t| {
            number(t.split(' ').next().unwrap_or("")) >= 3
        })
        .await;
    browser
        .eval(
            "const s = document.getElementById('play-step'); s.value = '3'; s.dispatchEvent(new Event('change')); \
             const e = document.getElementById('play-edit'); \
             e.value = e.value.replace('return doc', 'doc[\"checked\"] = True\\n    return doc'); return e.value",
        )
        .await;
    browser.click("play-run").await;
    let status = browser
        .wait_text("#play-status", "the playground's result", |t| {
            t.contains("come out differently")
        })
        .await;
    assert!(!status.starts_with("0 of"), "{status}");
    let added = browser
        .eval("return [...document.querySelectorAll('#play-results .added')].map(a => a.textContent).join('')")
        .await;
    assert!(
        added
            .as_str()
            .unwrap_or_default()
            .contains("\"checked\": true"),
        "{added}"
    );
    browser.screenshot("page-playground").await;

    // Every control has a label.
    let unlabelled = browser
        .eval("return [...document.querySelectorAll('input, select, textarea')].filter(c => !document.querySelector(`label[for=\"${c.id}\"]`)).map(c => c.id)")
        .await;
    assert_eq!(unlabelled, serde_json::json!([]));
    assert!(
        !served.log().contains("orderId"),
        "no payload in the log:\n{}",
        served.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_message_holds_is_shown_as_text_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dataflow_tests::write_file(
        dir.path(),
        "flow.yaml",
        "source: {type: stdin}\ntransformations:\n  - type: timestamp\nsink: {type: stdout}\n",
    );
    let mut served = Served::start(&spec, &["--name", "<i id=x>flow</i>"]);
    let browser = Browser::start(1300, 900).await;
    browser
        .client
        .goto(&served.url)
        .await
        .expect("the page loads");
    browser
        .wait_text("#flow-name", "the flow's name", |t| t.contains("flow"))
        .await;
    assert_eq!(
        browser
            .client
            .find(Locator::Id("flow-name"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "default/<i id=x>flow</i>"
    );
    browser
        .client
        .find(Locator::Css(".node[data-point='sink']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_text("#tap-status", "the tap to open", |t| t.contains("Watching"))
        .await;
    let hostile = r#"{"name":"<img src=x onerror=\"window.__pwned=1\">","note":"<script>window.__pwned=2</script>","html":"</pre><b>bold</b>"}"#;
    let stdin = served.stdin.as_mut().expect("the processor's stdin");
    for _ in 0..20 {
        writeln!(stdin, "{hostile}").unwrap();
        stdin.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = browser
        .wait_text("#tap-list li", "the hostile message", |t| {
            t.contains("onerror")
        })
        .await;
    assert!(
        shown.contains(r#"<img src=x onerror=\"window.__pwned=1\">"#),
        "{shown}"
    );
    assert!(
        shown.contains("<script>window.__pwned=2</script>"),
        "{shown}"
    );
    let ran = browser
        .eval("return [window.__pwned === undefined, document.querySelectorAll('#tap-list img, #tap-list script, #tap-list b, #flow-name i').length]")
        .await;
    assert_eq!(ran, serde_json::json!([true, 0]));
    browser.screenshot("page-hostile-payload").await;

    // Without the token, or with a wrong one, the page shows nothing of the flow.
    let bare = served.url.split('#').next().unwrap().to_owned();
    let other = Browser::start(1000, 700).await;
    other.client.goto(&bare).await.unwrap();
    other
        .wait_text("#notice", "the missing token", |t| t.contains("No token"))
        .await;
    drop(other);
    let other = Browser::start(1000, 700).await;
    other
        .client
        .goto(&format!("{bare}#token=0000000000000000000000000"))
        .await
        .unwrap();
    other
        .wait_text("#notice", "the wrong token", |t| t.contains("wrong token"))
        .await;
    assert_eq!(count(&other, ".node").await, 0);
}
