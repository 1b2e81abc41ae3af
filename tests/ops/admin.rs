//! Every admin command against a running stack: show (text and JSON), list with each
//! filter, retry-now, cancel (allowed and refused), resolve, tasks list. Each action must
//! be in the order's history and arrive as an event on NATS and as a webhook.

use rampd::admin::cli::{self, OrdersCmd, TasksCmd, Who};
use rampd::sandbox::{Faults, SandboxConfig};
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, both, wait_for};
use serde_json::Value;

use crate::capture::capture;

/// Run an `orders` command; returns (succeeded, output).
async fn orders(s: &Stack, cmd: OrdersCmd) -> (bool, String) {
    let mut out = Vec::new();
    let ok = cli::orders(&s.db, &s.cfg, cmd, &mut out).await.unwrap();
    (ok, String::from_utf8(out).unwrap())
}

fn who<const R: bool>(reason: &str) -> Who<R> {
    Who {
        tenant: None,
        by: Some("alice".into()),
        reason: Some(reason.into()),
    }
}

fn show(id: &str, json: bool) -> OrdersCmd {
    OrdersCmd::Show {
        id: id.into(),
        tenant: None,
        json,
    }
}

async fn retry_now(s: &Stack, id: &str, reason: &str) -> (bool, String) {
    let who = who(reason);
    orders(s, OrdersCmd::RetryNow { id: id.into(), who }).await
}

async fn cancel(s: &Stack, id: &str, reason: &str) -> (bool, String) {
    let who = who(reason);
    orders(s, OrdersCmd::Cancel { id: id.into(), who }).await
}

async fn resolve(s: &Stack, id: &str, reason: &str) -> (bool, String) {
    let who = who(reason);
    orders(s, OrdersCmd::Resolve { id: id.into(), who }).await
}

fn list(state: Option<&str>) -> OrdersCmd {
    OrdersCmd::List {
        state: state.map(|s| OrderState::parse(s).unwrap()),
        tenant: None,
        direction: None,
        flagged: false,
        stuck_for: None,
        limit: 100,
        json: true,
    }
}

fn ids(json: &str) -> Vec<String> {
    let v: Vec<Value> = serde_json::from_str(json).unwrap();
    v.iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect()
}

async fn operator_event(s: &Stack, order: &str, action: &str) -> Value {
    let needle = format!("{action} by alice: ");
    s.wait_event(&format!("{action} event"), |e| {
        e["type"] == "order.operator_action"
            && e["order_id"] == order
            && e["reason"].as_str().is_some_and(|r| r.starts_with(&needle))
    })
    .await
}

async fn operator_webhook(s: &Stack, order: &str, action: &str) {
    let needle = format!("{action} by alice: ");
    wait_for(&format!("{action} webhook"), || {
        s.receiver.received().into_iter().find(|r| {
            r.verified
                && r.body["type"] == "order.operator_action"
                && r.body["order_id"] == order
                && r.body["reason"]
                    .as_str()
                    .is_some_and(|x| x.starts_with(&needle))
        })
    })
    .await;
}

async fn admin_commands(backend: Backend) {
    capture();
    // Polls ten minutes apart: only retry-now makes the next one happen within the test.
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.orders.poll_interval_min_ms = 600_000;
        cfg.orders.poll_interval_max_ms = 600_000;
    })
    .await;
    s.create("a-1").await;
    s.create("a-2").await;
    s.wait_state("a-1", OrderState::AwaitingPayment).await;
    s.wait_state("a-2", OrderState::AwaitingPayment).await;

    // show: text and JSON, with the trace id.
    let a1 = s.order("a-1").await.unwrap();
    let trace_id = a1.trace_ctx.as_deref().unwrap().split('-').nth(1).unwrap();
    let (ok, text) = orders(&s, show("a-1", false)).await;
    assert!(ok);
    assert!(text.contains("preparing -> awaiting_payment"), "{text}");
    assert!(text.contains(trace_id), "{text}");
    // It starts with why the order is where it is.
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("awaiting_payment since 20"), "{text}");
    assert!(
        first.contains(": waiting for the user's payment and UTR; next step ("),
        "{text}"
    );
    assert!(
        !text.contains("a-1@example.com") && !text.contains("9876543210"),
        "no PII: {text}"
    );
    let rampd_id = a1.order.id.to_string();
    let (_, json) = orders(
        &s,
        OrdersCmd::Show {
            id: rampd_id.clone(),
            tenant: Some("acme".into()),
            json: true,
        },
    )
    .await;
    let t: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(t["order"]["state"], "awaiting_payment");
    assert_eq!(t["order"]["trace_id"], trace_id);
    let cats: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["category"].as_str().unwrap())
        .collect();
    for c in ["state", "command", "provider", "event"] {
        assert!(cats.contains(&c), "timeline lacks {c}: {cats:?}");
    }
    // Every entry names its trace: the order's.
    for e in t["timeline"].as_array().unwrap() {
        assert_eq!(e["trace_id"], trace_id, "{e}");
    }
    // Webhook deliveries show up once written (they are in the same transaction).
    assert!(cats.contains(&"webhook"), "{cats:?}");
    let missing = cli::orders(&s.db, &s.cfg, show("nope", false), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no order nope"), "{missing}");

    // list and its filters.
    let (_, all) = orders(&s, list(Some("awaiting_payment"))).await;
    assert_eq!(ids(&all).len(), 2);
    let filtered = |tenant: Option<&str>,
                    direction: Option<&str>,
                    flagged: bool,
                    stuck: Option<&str>| OrdersCmd::List {
        state: None,
        tenant: tenant.map(str::to_string),
        direction: direction.map(|d| rampd_domain::Direction::parse(d).unwrap()),
        flagged,
        stuck_for: stuck.map(|d| rampd::admin::duration::parse(d).unwrap()),
        limit: 100,
        json: true,
    };
    assert_eq!(
        ids(
            &orders(&s, filtered(Some("acme"), Some("onramp"), false, None))
                .await
                .1
        )
        .len(),
        2
    );
    assert!(
        ids(&orders(&s, filtered(Some("other"), None, false, None))
            .await
            .1)
        .is_empty()
    );
    assert!(
        ids(&orders(&s, filtered(None, Some("offramp"), false, None))
            .await
            .1)
        .is_empty()
    );
    assert!(ids(&orders(&s, filtered(None, None, true, None)).await.1).is_empty());
    assert!(ids(&orders(&s, filtered(None, None, false, Some("1h"))).await.1).is_empty());
    assert_eq!(
        ids(&orders(&s, filtered(None, None, false, Some("0s"))).await.1).len(),
        2
    );

    // retry-now: after the UTR the next status poll is ten minutes out; retry-now runs it.
    s.utr("a-1", "412345678944").await;
    s.wait_state("a-1", OrderState::UtrSubmitted).await;
    let (ok, out) = retry_now(&s, "a-1", "provider says paid").await;
    assert!(ok, "{out}");
    assert!(out.contains("retry_now recorded by alice"), "{out}");
    s.wait_state("a-1", OrderState::Processing).await;
    operator_event(&s, "a-1", "retry_now").await;
    operator_webhook(&s, "a-1", "retry_now").await;

    // tasks list shows the order's task.
    let mut out = Vec::new();
    assert!(
        cli::tasks(
            &s.db,
            TasksCmd::List {
                due: false,
                limit: 100,
                json: false
            },
            &mut out
        )
        .await
        .unwrap()
    );
    assert!(String::from_utf8(out).unwrap().contains(&rampd_id));

    // A poll that answers an unknown status flags the order; resolve clears the flag.
    s.sandbox.set_faults(Faults {
        unknown_status_rate: 1.0,
        ..Faults::default()
    });
    retry_now(&s, "a-1", "look again").await;
    let start = std::time::Instant::now();
    let flagged = loop {
        let (_, l) = orders(&s, filtered(None, None, true, None)).await;
        if !ids(&l).is_empty() {
            break ids(&l);
        }
        assert!(start.elapsed() < rampd_e2e::WAIT, "a-1 was never flagged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(flagged, ["a-1"]);
    s.sandbox.set_faults(Faults::default());
    let (ok, out) = resolve(&s, "a-1", "checked with the provider").await;
    assert!(ok, "{out}");
    assert!(s.order("a-1").await.unwrap().order.attention.is_none());
    operator_event(&s, "a-1", "resolve").await;
    let (ok, out) = resolve(&s, "a-1", "again").await;
    assert!(ok && out.contains("nothing done"), "{out}");

    // cancel: allowed before payment, refused once the payment is in progress.
    let (ok, out) = cancel(&s, "a-2", "customer asked by phone").await;
    assert!(ok, "{out}");
    let cancelled = s.wait_state("a-2", OrderState::Cancelled).await;
    assert_eq!(
        cancelled.order.reason.as_deref(),
        Some("cancelled_by_operator")
    );
    s.wait_event("a-2 cancelled", |e| {
        e["order_id"] == "a-2" && e["state"] == "cancelled"
    })
    .await;
    operator_event(&s, "a-2", "cancel").await;
    let (_, text) = orders(&s, show("a-2", false)).await;
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("cancelled since 20") && first.contains(": ended"),
        "{text}"
    );
    let (ok, out) = cancel(&s, "a-1", "try").await;
    assert!(!ok && out.contains("payment_in_progress"), "{out}");
    let (ok, out) = retry_now(&s, "a-2", "try").await;
    assert!(!ok && out.contains("order_closed"), "{out}");

    // Every action is in the history with who and why.
    let (_, json) = orders(&s, show("a-1", true)).await;
    let t: Value = serde_json::from_str(&json).unwrap();
    let actions: Vec<(String, String)> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "operator")
        .map(|e| {
            (
                e["detail"]["action"].as_str().unwrap().to_string(),
                e["detail"]["by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("retry_now".to_string(), "alice".to_string()),
            ("retry_now".to_string(), "alice".to_string()),
            ("resolve".to_string(), "alice".to_string())
        ]
    );
    s.finish().await;
}
both!(admin_commands);
