//! `rampd publish`: the examples in `deploy/examples/` sent to a running worker as they
//! are, with fresh command ids, and the events that answer each printed.

use std::path::PathBuf;

use rampd::admin::publish::{Answer, PublishArgs, prepare, publish};
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

fn args(command: &str, file: PathBuf) -> PublishArgs {
    PublishArgs {
        command: command.into(),
        file,
        tenant: "acme".into(),
        command_id: None,
        order_id: None,
        wait: 20,
    }
}

async fn send(s: &Stack, a: &PublishArgs) -> (Answer, Value, String) {
    let body = prepare(a).unwrap();
    let mut out = Vec::new();
    let answer = publish(&s.client, a, &body, &mut out).await.unwrap();
    (answer, body, String::from_utf8(out).unwrap())
}

/// The JSON events printed (the lines after the subject).
fn printed(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| l.starts_with("ramp.evt."))
        .map(|l| serde_json::from_str(l.split_once(' ').unwrap().1).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_the_examples_and_prints_their_answers() {
    let s = Stack::start(Backend::Sqlite).await;

    // The create example, as it is: a fresh command id, answered by awaiting_payment.
    let (answer, body, out) = send(
        &s,
        &args("onramp.create", example("onramp.create.upi.json")),
    )
    .await;
    assert_eq!(answer, Answer::Answered, "{out}");
    assert_ne!(body["command_id"], "0197a1b2-0001-7000-8000-000000000001");
    assert!(out.starts_with(&format!(
        "published ramp.cmd.acme.onramp.create command_id {}",
        body["command_id"].as_str().unwrap()
    )));
    let evs = printed(&out);
    let last = evs.last().expect("events printed");
    assert_eq!(last["type"], "order.status_changed");
    assert_eq!(last["state"], "awaiting_payment");
    assert!(
        evs.iter().all(|e| e["order_id"] == "acme-order-1001"),
        "{out}"
    );
    s.wait_state("acme-order-1001", OrderState::AwaitingPayment)
        .await;

    // The same command id again: JetStream drops it, and says so.
    let mut again = args("onramp.create", example("onramp.create.upi.json"));
    again.command_id = Some(body["command_id"].as_str().unwrap().into());
    let (answer, _, out) = send(&s, &again).await;
    assert_eq!(answer, Answer::Duplicate, "{out}");
    assert!(!answer.success());

    // The UTR example pays that order.
    let (answer, _, out) = send(&s, &args("onramp.utr", example("onramp.utr.json"))).await;
    assert_eq!(answer, Answer::Answered, "{out}");
    assert_eq!(
        printed(&out).last().unwrap()["state"],
        "utr_submitted",
        "{out}"
    );

    // A create the worker refuses is answered by its rejection.
    let dir = std::env::temp_dir().join(format!("rampd-publish-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut small: Value =
        serde_json::from_str(&std::fs::read_to_string(example("onramp.create.upi.json")).unwrap())
            .unwrap();
    small["fiat_amount"] = "1.00".into();
    let file = dir.join("small.json");
    std::fs::write(&file, small.to_string()).unwrap();
    let mut refused = args("onramp.create", file);
    refused.order_id = Some("acme-order-small".into());
    let (answer, body, out) = send(&s, &refused).await;
    assert_eq!(answer, Answer::Rejected, "{out}");
    let rejection = printed(&out).pop().unwrap();
    assert_eq!(rejection["type"], "command.rejected");
    assert_eq!(rejection["command_id"], body["command_id"]);
    assert_eq!(rejection["order_id"], "acme-order-small");

    // A tenant no worker takes: nothing answers, and it says so.
    let mut nobody = args("onramp.create", example("onramp.create.upi.json"));
    nobody.tenant = "nobody".into();
    nobody.wait = 2;
    let (answer, _, out) = send(&s, &nobody).await;
    assert_eq!(answer, Answer::Silent, "{out}");
    assert!(out.contains("nothing answered within 2s"), "{out}");

    let _ = std::fs::remove_dir_all(dir);
    s.finish().await;
}
