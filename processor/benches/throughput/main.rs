//! `make bench`: throughput of the built-in transforms in Wasm and natively, of the
//! reference chain, and of the processor end to end (file -> chain -> file), on the
//! benchmark corpus, pinned to one core.
//!
//! usage: cargo bench -p dataflow-processor --bench throughput -- <corpus.jsonl>
//!
//! `DATAFLOW_BENCH_ONLY=insertField,cast` measures only those rows (for profiling
//! one transform); the end-to-end and user-transform rows then do not run.

mod tap_clients;
mod user_transforms;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dataflow_builtins::Chain;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_transform_sdk::{Transform, process_batch};
use dataflow_wasm_host::{Inputs, Limits, TransformInstance, WasmRuntime, call_chunks};
use serde_json::{Value, json};

const BATCH: usize = 1024;
/// Runs of each transform row, Wasm and native interleaved.
const RUNS: usize = 7;
/// Runs of the end-to-end row.
const END_TO_END_RUNS: usize = 3;

/// The Go original's figures on the same corpus (msgs/s), from shared/bench/README.md.
const GO_REFERENCE: &[(&str, f64)] = &[
    ("timestamp", 23_700.0),
    ("filter", 3_200_000.0),
    ("mask", 156_000.0),
    ("remove", 156_000.0),
    ("select", 148_000.0),
    ("snakeCase", 23_400.0),
    ("camelCase", 26_600.0),
    ("flatten", 13_000.0),
    ("router", 391_000.0),
    ("chain", 13_900.0),
];

fn main() {
    let Some(corpus) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: throughput <corpus.jsonl>");
        std::process::exit(2);
    };
    pin_to_one_core();
    let lines: Vec<Vec<u8>> = std::fs::read(&corpus)
        .expect("read corpus")
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let avg = lines.iter().map(Vec::len).sum::<usize>() / lines.len().max(1);
    println!(
        "corpus: {} messages, {avg} bytes on average; batches of {BATCH}; one core; {RUNS} rounds of one Wasm and one native pass: best rates, median of the rounds' ratios",
        lines.len()
    );
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>10} {:>12} {:>9}",
        "transform", "wasm msg/s", "native msg/s", "wasm/nat", "Go msg/s", "vs Go"
    );

    let runtime = WasmRuntime::new().expect("engine");
    let cases: Vec<(&str, Value)> = vec![
        ("timestamp", json!({})),
        ("filter", json!({"condition": "$.active"})),
        (
            "mask",
            json!({"fields": ["user.email", "card"], "keepLength": true}),
        ),
        ("remove", json!({"fields": ["internal_id", "debug"]})),
        (
            "select",
            json!({"fields": ["orderId", "user.email", "level", "totalAmount"]}),
        ),
        ("snakeCase", json!({"deep": true})),
        ("camelCase", json!({"deep": true})),
        ("flatten", json!({"field": "items"})),
        (
            "router",
            json!({"routes": [{"condition": "$.level == 'error'"}, {"condition": "$.level == 'warning'"}]}),
        ),
    ];
    let only = std::env::var("DATAFLOW_BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|n| n.trim() == name))
    };
    let plain = messages(&lines, &[]);
    for (name, config) in cases.iter().filter(|(name, _)| wanted(name)) {
        let steps = json!({"steps": [{"type": name, "config": config}]});
        report(name, &runtime, &steps, &plain);
    }
    println!();
    for (name, config, input) in newer_builtins(&lines) {
        if wanted(name) {
            let steps = json!({"steps": [{"type": name, "config": config}]});
            report(name, &runtime, &steps, &input);
        }
    }
    if !wanted("chain") {
        return;
    }
    let chain = json!({"steps": [
        {"type": "timestamp", "config": {}},
        {"type": "filter", "config": {"condition": "$.active"}},
        {"type": "mask", "config": {"fields": ["user.email", "card"], "keepLength": true}},
        {"type": "remove", "config": {"fields": ["internal_id", "debug"]}},
        {"type": "snakeCase", "config": {"deep": true}},
    ]});
    let chain_rate = report("chain", &runtime, &chain, &plain);
    println!();
    end_to_end(Path::new(&corpus), lines.len(), chain_rate);
    println!();
    user_transforms::report(&plain);
}

/// The corpus as messages carrying `metadata`.
fn messages(lines: &[Vec<u8>], metadata: &[(&str, &str)]) -> Vec<Message> {
    let metadata: Vec<(String, String)> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    lines
        .iter()
        .map(|line| Message {
            payload: line.clone(),
            metadata: metadata.clone(),
        })
        .collect()
}

/// The rows of the nine newer built-ins: each config with the corpus in the shape
/// it reads (Debezium events, a timestamp field, Kafka metadata and headers).
fn newer_builtins(lines: &[Vec<u8>]) -> Vec<(&'static str, Value, Vec<Message>)> {
    let kafka = [
        ("topic", "orders"),
        ("partition", "3"),
        ("headers.tenant", "acme"),
        ("headers.trace-id", "4bf92f3577b34da6"),
    ];
    let with_kafka = messages(lines, &kafka);
    let plain = messages(lines, &[]);
    // `{"createdAt": "...", ...}`: the corpus line with a timestamp put in front.
    let timed: Vec<Vec<u8>> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut out = format!(
                r#"{{"createdAt":"2026-01-15T12:{:02}:{:02}.{:03}Z","#,
                i / 60 % 60,
                i % 60,
                i % 1000
            )
            .into_bytes();
            out.extend_from_slice(line.get(1..).unwrap_or_default());
            out
        })
        .collect();
    let debezium: Vec<Vec<u8>> = lines
        .iter()
        .map(|line| {
            let mut out = br#"{"before":null,"after":"#.to_vec();
            out.extend_from_slice(line);
            out.extend_from_slice(br#","source":{"version":"3.0","connector":"postgresql","db":"shop","schema":"public","table":"orders","lsn":33554432},"op":"c","ts_ms":1767225600000}"#);
            out
        })
        .collect();
    vec![
        (
            "cast",
            json!({"fields": {"orderId": "string", "totalAmount": "integer", "active": "string"}}),
            plain.clone(),
        ),
        (
            "insertField",
            json!({"fields": {"source": "shop", "topic": "${metadata.topic}", "version": 2}}),
            with_kafka.clone(),
        ),
        ("extractField", json!({"field": "user"}), plain.clone()),
        ("hoistField", json!({"field": "payload"}), plain.clone()),
        ("structFlatten", json!({}), plain.clone()),
        (
            "replaceField",
            json!({"exclude": ["internal_id", "debug"], "renames": ["orderId:order_id", "totalAmount:total_amount"]}),
            plain,
        ),
        (
            "timezone",
            json!({"fields": ["createdAt"], "to": "Europe/Berlin"}),
            messages(&timed, &[]),
        ),
        (
            "debeziumUnwrap",
            json!({"addOp": true, "sourceFields": ["table", "lsn"]}),
            messages(&debezium, &[]),
        ),
        (
            "headersToPayload",
            json!({"headers": ["tenant", "trace-id"], "prefix": "h_"}),
            with_kafka,
        ),
    ]
}

/// Prints one row; returns the Wasm rate.
fn report(name: &str, runtime: &WasmRuntime, config: &Value, lines: &[Message]) -> f64 {
    // Each round times one Wasm and one native pass back to back (in turns of
    // order), so a slow spell of a shared machine hits both sides of a round
    // alike; the ratio is the median of the rounds' ratios, the rates the best.
    let (mut wasm, mut native) = (0.0f64, 0.0f64);
    let mut ratios = Vec::with_capacity(RUNS);
    let wasm_pass = || rate(lines.len(), wasm_run(runtime, config, lines));
    let native_pass = || rate(lines.len(), native_run(config, lines));
    for round in 0..RUNS {
        let (w, n) = if round % 2 == 0 {
            let w = wasm_pass();
            (w, native_pass())
        } else {
            let n = native_pass();
            (wasm_pass(), n)
        };
        wasm = wasm.max(w);
        native = native.max(n);
        ratios.push(n / w);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    // The Go original has no figure for the newer built-ins.
    let (go, vs_go) = GO_REFERENCE
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(("-".to_owned(), "-".to_owned()), |(_, go)| {
            (format!("{go:.0}"), format!("{:.1}x", wasm / go))
        });
    println!(
        "{name:<16} {:>12.0} {:>12.0} {:>9.2}x {go:>12} {vs_go:>9}",
        wasm, native, ratio,
    );
    wasm
}

fn rate(messages: usize, elapsed: Duration) -> f64 {
    messages as f64 / elapsed.as_secs_f64()
}

fn wasm_run(runtime: &WasmRuntime, config: &Value, lines: &[Message]) -> Duration {
    let pre = runtime
        .prepare_builtins(BUILTINS_COMPONENT)
        .expect("compile");
    let limits = Limits {
        memory_bytes: 1 << 30,
        timeout_ms: 60_000,
    };
    let mut instance =
        TransformInstance::create("builtins", pre, config.to_string(), limits).expect("create");
    let mut batches: Vec<Vec<Message>> = lines.chunks(BATCH).map(<[Message]>::to_vec).collect();
    let start = Instant::now();
    let mut outputs = 0usize;
    for batch in &mut batches {
        // As the processor calls a last group of built-ins: cut into cache-sized
        // calls, with the batch's metadata handed on.
        for chunk in call_chunks(batch) {
            outputs += instance
                .call(Inputs::Given(chunk))
                .map_or(0, |outcomes| outcomes.len());
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(outputs, lines.len());
    elapsed
}

fn native_run(config: &Value, lines: &[Message]) -> Duration {
    let mut chain = Chain::from_config(&config.to_string()).expect("config");
    let batches: Vec<Vec<Message>> = lines.chunks(BATCH).map(<[Message]>::to_vec).collect();
    let start = Instant::now();
    let mut outputs = 0usize;
    for batch in batches {
        outputs += process_batch(&mut chain, batch).len();
    }
    let elapsed = start.elapsed();
    assert_eq!(outputs, lines.len());
    elapsed
}

/// Runs the processor binary on file -> chain -> file and reports rate and peak RSS.
fn end_to_end(corpus: &Path, messages: usize, chain_rate: f64) {
    let dir = std::env::temp_dir().join(format!("dataflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("out.jsonl");
    let spec = dir.join("flow.yaml");
    let corpus = corpus.canonicalize().expect("corpus path");
    std::fs::write(
        &spec,
        format!(
            r#"source: {{type: file, file: {{path: {}}}}}
sink: {{type: file, file: {{path: {}}}}}
transformations:
  - {{type: timestamp}}
  - {{type: filter, filter: {{condition: "$.active"}}}}
  - {{type: mask, mask: {{fields: [user.email, card], keepLength: true}}}}
  - {{type: remove, remove: {{fields: [internal_id, debug]}}}}
  - {{type: snakeCase, snakeCase: {{deep: true}}}}
"#,
            corpus.display(),
            out.display()
        ),
    )
    .expect("write spec");
    let run = |with_metrics: bool| {
        let _ = std::fs::remove_file(&out);
        let mut command = processor_run(&spec);
        if with_metrics {
            command.args(["--metrics-addr", "127.0.0.1:0"]);
        }
        command
    };
    // Tap clients at step 2 (inside the fused run, so sampled messages are
    // re-run in the sandbox: the dearest point to watch).
    let tapped = |clients: usize, rate: u32| {
        let _ = std::fs::remove_file(&out);
        let port = tap_clients::free_port();
        let mut command = processor_run(&spec);
        tap_clients::serve_tap(&mut command, port);
        let start = Instant::now();
        let mut child = command.spawn().expect("run processor");
        let watchers = tap_clients::watch(port, "step:2", rate, clients);
        assert!(
            child.wait().expect("processor exits").success(),
            "processor failed"
        );
        let took = start.elapsed().as_secs_f64();
        let samples: usize = watchers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
        (took, samples)
    };
    // Metrics off and on, and tapped, interleaved so all see the same machine noise.
    let mut best = [f64::MAX; 4];
    let mut samples = [0; 2];
    for _ in 0..END_TO_END_RUNS {
        for (with_metrics, best) in [false, true].into_iter().zip(&mut best) {
            let start = Instant::now();
            let status = run(with_metrics).status().expect("run processor");
            assert!(status.success(), "processor failed");
            *best = best.min(start.elapsed().as_secs_f64());
        }
        for (i, (clients, rate)) in [(1, 100), (8, 1000)].into_iter().enumerate() {
            let (took, got) = tapped(clients, rate);
            best[2 + i] = best[2 + i].min(took);
            samples[i] = got;
        }
    }
    // Memory is measured on a separate, untimed run: polling costs a little CPU.
    let peak_rss = peak_rss_mib(&mut run(false));
    let rate = messages as f64 / best[0];
    let metered = messages as f64 / best[1];
    println!(
        "end to end file -> chain -> file: {rate:.0} msg/s ({:.0}% of the chain-only rate), peak RSS {} MiB (corpus file {} MiB)",
        100.0 * rate / chain_rate,
        peak_rss,
        std::fs::metadata(&corpus)
            .map(|m| m.len() >> 20)
            .unwrap_or(0)
    );
    println!(
        "the same with metrics and the tap on, no client (--metrics-addr): {metered:.0} msg/s ({:+.1}%)",
        100.0 * (metered - rate) / rate
    );
    for (i, what) in [
        "one tap client at 100 msg/s",
        "eight tap clients at 1000 msg/s",
    ]
    .into_iter()
    .enumerate()
    {
        let tapped = messages as f64 / best[2 + i];
        println!(
            "  {what} on step 2 (in the fused run): {tapped:.0} msg/s ({:+.1}% against no client; {} samples in the last round)",
            100.0 * (tapped - metered) / metered,
            samples[i]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shortest wall time of `runs` runs of the command `make` builds, seconds.
fn fastest_run(runs: usize, make: &dyn Fn() -> Command) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let status = make().status().expect("run processor");
        assert!(status.success(), "processor failed");
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

/// `dataflow-processor run --spec <spec>`, quiet.
fn processor_run(spec: &Path) -> Command {
    let mut command = Command::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/dataflow-processor"),
    );
    command
        .args(["run", "--spec"])
        .arg(spec)
        .env("LOG_LEVEL", "warn")
        .stderr(std::process::Stdio::null());
    command
}

/// Peak resident set of one run of `command`, MiB, from the child's own `VmHWM`,
/// polled until it exits. (`getrusage` cannot be used: a child spawned with vfork
/// inherits this process's high-water mark, the corpus in memory included.)
fn peak_rss_mib(command: &mut Command) -> u64 {
    let mut child = command.spawn().expect("run processor");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| high_water_kib(&status))
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for processor") {
            assert!(status.success(), "processor failed");
            return peak_kib / 1024;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `VmHWM` line of a `/proc/<pid>/status`, KiB.
fn high_water_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs this process (and the processor it starts) on CPU 0 only.
fn pin_to_one_core() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to one core");
        }
    }
}
