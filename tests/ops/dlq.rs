//! `rampd dlq list|show|replay` against the dead letters a real worker wrote.

use rampd::admin::dlq::{DlqCmd, run};
use rampd_e2e::{Backend, Stack, wait_for};
use serde_json::{Value, json};

async fn dlq(s: &Stack, cmd: DlqCmd) -> (bool, String) {
    let mut out = Vec::new();
    let ok = run(&s.js, &s.cfg.nats.dead_letter_stream, cmd, &mut out)
        .await
        .unwrap();
    (ok, String::from_utf8(out).unwrap())
}

async fn listed(s: &Stack) -> Vec<Value> {
    let (_, out) = dlq(
        s,
        DlqCmd::List {
            tenant: Some("acme".into()),
            limit: 100,
            json: true,
        },
    )
    .await;
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_shows_and_replays_dead_letters() {
    let s = Stack::start(Backend::Sqlite).await;
    // A command rampd does not know is dead-lettered.
    let body = json!({"command_id": "d-1", "order_id": "o-d", "user": {"email": "d@example.com"}});
    s.send_raw("acme", "onramp.delete", &body, None).await;
    wait_for("a dead letter", || {
        (!s.dead_letters().is_empty()).then_some(())
    })
    .await;

    let (ok, text) = dlq(
        &s,
        DlqCmd::List {
            tenant: None,
            limit: 100,
            json: false,
        },
    )
    .await;
    assert!(ok);
    assert!(text.contains("ramp.cmd.acme.onramp.delete"), "{text}");
    assert!(text.contains("command_id d-1  order_id o-d"), "{text}");
    assert!(text.ends_with("1 dead letter(s)\n"), "{text}");
    let list = listed(&s).await;
    assert_eq!(list.len(), 1);
    let seq = list[0]["seq"].as_u64().unwrap();
    assert!(list[0]["reason"].as_str().is_some(), "{list:?}");
    let (_, other) = dlq(
        &s,
        DlqCmd::List {
            tenant: Some("globex".into()),
            limit: 100,
            json: true,
        },
    )
    .await;
    assert_eq!(serde_json::from_str::<Value>(&other).unwrap(), json!([]));

    // show: reason and headers, personal data redacted unless --raw.
    let (_, shown) = dlq(
        &s,
        DlqCmd::Show {
            seq,
            raw: false,
            json: false,
        },
    )
    .await;
    assert!(
        shown.starts_with(&format!("dead letter {seq} at ")),
        "{shown}"
    );
    assert!(
        shown.contains("header  Rampd-Original-Subject: ramp.cmd.acme.onramp.delete"),
        "{shown}"
    );
    assert!(
        shown.contains("[redacted]") && !shown.contains("d@example.com"),
        "{shown}"
    );
    let (_, raw) = dlq(
        &s,
        DlqCmd::Show {
            seq,
            raw: true,
            json: true,
        },
    )
    .await;
    let raw: Value = serde_json::from_str(&raw).unwrap();
    assert!(raw["body"].as_str().unwrap().contains("d@example.com"));

    // replay: published again on its subject (and, still unknown, dead-lettered again),
    // and gone from the dead-letter stream.
    let (ok, out) = dlq(&s, DlqCmd::Replay { seq, keep: false }).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("published again on ramp.cmd.acme.onramp.delete"),
        "{out}"
    );
    wait_for("dead-lettered again", || {
        (s.dead_letters().len() >= 2).then_some(())
    })
    .await;
    let list = listed(&s).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_ne!(list[0]["seq"].as_u64().unwrap(), seq);
    assert_eq!(list[0]["command_id"], "d-1");
    let gone = run(
        &s.js,
        &s.cfg.nats.dead_letter_stream,
        DlqCmd::Show {
            seq,
            raw: false,
            json: false,
        },
        &mut Vec::new(),
    )
    .await;
    assert!(gone.is_err());
    s.finish().await;
}
